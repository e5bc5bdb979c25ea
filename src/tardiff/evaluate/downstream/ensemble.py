"""Train many small downstream evaluation models: one by one or as one stacked ensemble.

The harness trains ~100 binary classifiers per (dataset, task), each from scratch on its own
training set, all with one fixed recipe (``evaluation.model``) so only the data differ. Model k
trains on the pool rows ``members[k]`` (repeats allowed) with seed ``seeds[k]``:

- initial weights: ``build_classifier(arch, C, hidden, layers, dropout=0)`` right after
  ``torch.manual_seed(seeds[k])``, on the CPU in a forked RNG (the caller's state is untouched),
  then moved to the device: they depend on the seed alone (:func:`initial_model`);
- mini-batches of ``b = min(batch_size, len(members[k]))`` members, taken in order from random
  permutations of the members drawn by a ``torch.Generator`` seeded with ``seeds[k]``; a new
  permutation starts when fewer than ``b`` members are left (that remainder is dropped);
- exactly ``steps`` AdamW(lr, weight_decay) steps on the mean ``BCEWithLogitsLoss`` of the
  batch, each row's loss multiplied by its class's weight ``class_weights[k][y]`` (1 and 1
  unless the model is class-weighted); no early stopping: the final weights are the model.

Two paths give the same models up to float rounding:

- one by one (``batched=False``, the reference): a plain module (fused GRU), its own AdamW;
- batched: a chunk of models with stacked parameters (``torch.func.stack_module_state``) and one
  AdamW over them. The loss is the sum over models of each model's mean batch loss, so each model
  gets its own gradient, and AdamW, being elementwise, steps each model as its own optimizer would.
  Batches of a model with fewer members than ``batch_size`` are padded with zero-weight rows. The
  GRU runs as :mod:`~tardiff.evaluate.downstream.stacked_gru`, a hand-written recurrence with
  batched matmuls over the same parameters (on CPU ``torch.vmap`` of the unrolled classifier is no
  faster than one by one; this is ~2.8x faster on one thread, ~5x on two:
  ``benchmarks/evaluation.py``); the TCN as ``torch.vmap`` of ``functional_call`` on the classifier
  (~2x).

Memory: :func:`training_memory_mb` estimates a chunk's working memory (batch × T × hidden ×
layers × a constant measured per architecture, plus weights, gradients and AdamW state); a chunk
holds as many models as fit ``mem_mb`` (at most ``MAX_CHUNK``). :meth:`Ensemble.predict` (for
the GRU the stacked no-grad recurrence of ``stacked_gru``; for the TCN ``torch.vmap`` of the
classifier) sizes its row batches to the same budget.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn import functional as F

from tardiff.evaluate.downstream.stacked_gru import (
    Params,
    Workspace,
    stacked_gru,
    stacked_gru_predict,
)
from tardiff.models.classifier import build_classifier, unrolled_rnn
from tardiff.runtime import adamw, check_memory, progress
from tardiff.settings import EvaluationModelSettings

log = logging.getLogger(__name__)

#: most models per chunk when no memory bound is given
MAX_CHUNK = 32
#: bytes per (model, batch row, time step, hidden unit, layer) of working memory, by (arch,
#: training): peak RSS growth of batched training steps (GRU 42-48, TCN 46-58 measured) and of
#: prediction (25 for one layer, less per layer for more), with a margin
_BYTES = {("gru", True): 56, ("gru", False): 28, ("tcn", True): 64, ("tcn", False): 28}
#: most rows per call of the stacked GRU prediction: 128-256 rows were fastest on CPU (larger
#: batches fall out of the cache; 1,024 rows took 1.3x as long)
_STACKED_ROWS = 256
#: working memory for prediction when no bound is given (MiB)
_PREDICT_MB = 256.0


def initial_model(n_features: int, settings: EvaluationModelSettings, seed: int) -> nn.Module:
    """The untrained model of ``seed`` (on the CPU; its weights depend on the seed alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_classifier(
            settings.arch, n_features, settings.hidden, settings.layers, dropout=0.0
        )


def _vmapped(template: nn.Module, x_dim: int | None) -> Callable[..., torch.Tensor]:
    """``(params, buffers, x) -> (K, B)`` logits of stacked models (``x`` per model or shared)."""

    def one(params: Params, buffers: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (params, buffers), (x,))

    return torch.vmap(one, in_dims=(0, 0, x_dim))


def _activation_mb(
    settings: EvaluationModelSettings, seq_len: int, rows: int, training: bool
) -> float:
    per_row = seq_len * settings.hidden * settings.layers * _BYTES[settings.arch, training]
    return rows * per_row / 2**20


def training_memory_mb(
    settings: EvaluationModelSettings, seq_len: int, n_features: int, n_models: int
) -> float:
    """Estimated working memory (MiB) of batched training of ``n_models`` models at once."""
    n_params = sum(p.numel() for p in initial_model(n_features, settings, 0).parameters())
    state_mb = 4 * n_params * 4 / 2**20  # weights, gradients, two AdamW moments (float32)
    activations = _activation_mb(settings, seq_len, settings.batch_size, training=True)
    return n_models * (activations + state_mb)


def _chunk_size(
    settings: EvaluationModelSettings, seq_len: int, n_features: int, mem_mb: float | None
) -> int:
    one = training_memory_mb(settings, seq_len, n_features, 1)
    check_memory(one, mem_mb, "evaluation models (one model)")
    return MAX_CHUNK if mem_mb is None else max(1, min(MAX_CHUNK, int(mem_mb // one)))


def _batches(n: int, size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless batches of ``size`` positions in range(n) from epoch-wise random permutations."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.randperm(n, generator=gen)[: n - n % size].split(size)


@dataclass
class Ensemble:
    """Trained models, stacked per chunk (``chunks``: (parameters, buffers), model order)."""

    template: nn.Module  # the architecture on the meta device, eval mode
    chunks: list[tuple[Params, Params]]
    settings: EvaluationModelSettings
    device: torch.device
    predict_mb: float = _PREDICT_MB  # working memory of one forward call

    def __len__(self) -> int:
        return sum(len(next(iter(params.values()))) for params, _ in self.chunks)

    def subset(self, models: range) -> Ensemble:
        """The models ``models`` (consecutive, model order) as an ensemble of their own."""
        chunks, first = [], 0
        for params, buffers in self.chunks:
            k = len(next(iter(params.values())))
            lo, hi = max(models.start - first, 0), min(models.stop - first, k)
            if lo < hi:
                chunks.append(({n: p[lo:hi] for n, p in params.items()},
                               {n: b[lo:hi] for n, b in buffers.items()}))  # fmt: skip
            first += k
        return Ensemble(self.template, chunks, self.settings, self.device, self.predict_mb)

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Float64 logits (K, len(x)) of every model on ``x`` (N, T, C), model order."""
        xt = torch.as_tensor(x, dtype=torch.float32)
        stacked = self.settings.arch == "gru"
        forward = _vmapped(self.template, None)
        out = []
        with unrolled_rnn():
            for params, buffers in self.chunks:
                k = len(next(iter(params.values())))
                per_row = k * _predict_row_mb(self.settings, xt.shape[1])
                cap = min(batch_size, _STACKED_ROWS) if stacked else batch_size
                rows = max(1, min(cap, int(self.predict_mb // per_row)))
                parts = [
                    (stacked_gru_predict(params, xb, self.settings.layers) if stacked
                     else forward(params, buffers, xb)).cpu()
                    for xb in (xt[i : i + rows].to(self.device) for i in range(0, len(xt), rows))
                ]  # fmt: skip
                out.append(torch.cat(parts, 1) if parts else torch.zeros(k, 0))
        return torch.cat(out).double().numpy()


def _predict_row_mb(settings: EvaluationModelSettings, seq_len: int) -> float:
    """Working memory of one model and row in :meth:`Ensemble.predict`: for the GRU the outputs
    of every layer below the top (which feed the next) and a dozen hidden-sized buffers."""
    if settings.arch != "gru":
        return _activation_mb(settings, seq_len, 1, training=False)
    floats = (settings.layers - 1) * seq_len * settings.hidden + 12 * settings.hidden
    return 4 * floats / 2**20


def _checked_members(
    pool_x: np.ndarray, pool_y: np.ndarray, members: Sequence[np.ndarray], seeds: Sequence[int]
) -> list[torch.Tensor]:
    """The member arrays as int64 tensors; ValueError (naming the model) on bad input."""
    if pool_x.ndim != 3 or len(pool_y) != len(pool_x):
        raise ValueError(f"pool_x {pool_x.shape} must be (N, T, C) with N = len(pool_y)")
    if not len(members) or len(members) != len(seeds):
        raise ValueError(
            f"need >= 1 model and one seed per model: {len(members)} member sets, {len(seeds)} "
            "seeds"
        )
    checked = []
    for k, rows in enumerate(members):
        rows = np.asarray(rows)
        if rows.ndim != 1 or not len(rows) or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"model {k}: members must be non-empty 1-d integer row indices")
        if rows.min() < 0 or rows.max() >= len(pool_x):
            raise ValueError(f"model {k}: member index out of range [0, {len(pool_x)})")
        checked.append(torch.as_tensor(rows, dtype=torch.int64))
    return checked


def _train_one(
    pool: tuple[torch.Tensor, torch.Tensor],
    rows: torch.Tensor,
    seed: int,
    class_weights: torch.Tensor,
    settings: EvaluationModelSettings,
    desc: str,
) -> nn.Module:
    """The reference path: one module (fused GRU) and its own AdamW."""
    x, y = pool
    model = initial_model(x.shape[2], settings, seed).to(x.device)
    opt = adamw(model.parameters(), settings.lr, settings.weight_decay)
    batches = _batches(len(rows), min(settings.batch_size, len(rows)), seed)
    for _ in progress(range(settings.steps), settings.steps, desc, "step"):
        idx = rows[next(batches)].to(x.device)
        row_loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx], reduction="none")
        loss = (row_loss * class_weights[y[idx].long()]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def _train_chunk(
    pool: tuple[torch.Tensor, torch.Tensor],
    members: list[torch.Tensor],
    seeds: Sequence[int],
    class_weights: torch.Tensor,
    settings: EvaluationModelSettings,
    desc: str,
) -> tuple[Params, Params]:
    """The batched path: the chunk's models stacked, one AdamW over them (``class_weights``:
    (K, 2))."""
    x, y = pool
    models = [initial_model(x.shape[2], settings, s).to(x.device) for s in seeds]
    params, buffers = stack_module_state(models)
    if settings.arch == "gru":
        workspaces = [Workspace() for _ in range(settings.layers)]
        forward = lambda p, _, xb: stacked_gru(p, xb, workspaces)  # noqa: E731
    else:
        forward = _vmapped(copy.deepcopy(models[0]).to("meta"), 0)
    opt = adamw(params.values(), settings.lr, settings.weight_decay)
    sizes = [min(settings.batch_size, len(rows)) for rows in members]
    weight = torch.zeros(len(members), max(sizes), device=x.device)  # 1/b, 0 on padding
    for k, size in enumerate(sizes):
        weight[k, :size] = 1.0 / size
    batches = [_batches(len(r), b, s) for r, b, s in zip(members, sizes, seeds, strict=True)]
    for _ in progress(range(settings.steps), settings.steps, desc, "step"):
        idx = torch.zeros(weight.shape, dtype=torch.int64)
        for k, (rows, it) in enumerate(zip(members, batches, strict=True)):
            idx[k, : sizes[k]] = rows[next(it)]
        idx = idx.to(x.device)
        logits = forward(params, buffers, x[idx])
        labels = y[idx]
        loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        opt.zero_grad(set_to_none=True)
        (loss * weight * class_weights.gather(1, labels.long())).sum().backward()
        opt.step()
    return _stacked_detached(params, buffers)


def _stacked_detached(params: Params, buffers: Params) -> tuple[Params, Params]:
    return {name: p.detach() for name, p in params.items()}, buffers


def train_models(
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    members: Sequence[np.ndarray],
    seeds: Sequence[int],
    settings: EvaluationModelSettings,
    *,
    device: torch.device,
    batched: bool = True,
    mem_mb: float | None = None,
    class_weights: Sequence[tuple[float, float]] | None = None,
) -> Ensemble:
    """Train model k on the pool rows ``members[k]`` with seed ``seeds[k]`` and per-class loss
    weights ``class_weights[k]`` (None: 1 and 1 for every model) (module docstring).

    ``batched`` trains chunks of models as stacked ensembles, each chunk's working memory within
    ``mem_mb`` MiB (None: chunks of ``MAX_CHUNK``); otherwise one by one (stacked afterwards in
    the same chunks, for :meth:`Ensemble.predict`). The pool is never copied per model.
    """
    checked = _checked_members(pool_x, pool_y, members, seeds)
    pool = (
        torch.as_tensor(pool_x, dtype=torch.float32, device=device),
        torch.as_tensor(pool_y, dtype=torch.float32, device=device),
    )
    weights = torch.as_tensor(
        np.ones((len(checked), 2)) if class_weights is None else class_weights,
        dtype=torch.float32, device=device,
    )  # fmt: skip
    if weights.shape != (len(checked), 2) or not bool((weights > 0).all()):
        raise ValueError(f"class_weights must be {len(checked)} positive (w0, w1) pairs")
    n, seq_len, n_features = pool_x.shape
    size = _chunk_size(settings, seq_len, n_features, mem_mb)
    groups = [range(i, min(i + size, len(checked))) for i in range(0, len(checked), size)]
    log.info(
        "evaluation models: %d %s models on %d series (%d x %d), %s, %d chunk(s) of <= %d "
        "(~%.1f MiB each)", len(checked), settings.arch, n, seq_len, n_features,
        "batched" if batched else "one by one", len(groups), size,
        training_memory_mb(settings, seq_len, n_features, size),
    )  # fmt: skip
    chunks = []
    for group in groups:
        desc = f"evaluation models {group.start + 1}-{group.stop}/{len(checked)}"
        if batched:
            rows, chunk_seeds = [checked[k] for k in group], [seeds[k] for k in group]
            chunks.append(_train_chunk(pool, rows, chunk_seeds, weights[group.start : group.stop],
                                       settings, desc))  # fmt: skip
        else:
            models = [_train_one(pool, checked[k], seeds[k], weights[k], settings, desc)
                      for k in group]  # fmt: skip
            chunks.append(_stacked_detached(*stack_module_state(models)))
    template = initial_model(n_features, settings, 0).to("meta").eval()
    return Ensemble(template, chunks, settings, device, mem_mb or _PREDICT_MB)
