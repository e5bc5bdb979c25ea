"""Train many small downstream evaluation models: one by one or as one stacked ensemble.

The evaluation harness trains ~100 binary classifiers per (dataset, task), each from scratch on
its own training set; all follow one fixed recipe (``evaluation.model``), so only the data differ.
Model k trains on the pool rows ``members[k]`` (repeats allowed) with seed ``seeds[k]``:

- initial weights: ``build_classifier(arch, C, hidden, layers, dropout=0)`` right after
  ``torch.manual_seed(seeds[k])``, on the CPU in a forked RNG (the caller's state is untouched),
  then moved to the device: they depend on the seed alone (:func:`initial_model`);
- mini-batches of ``b = min(batch_size, len(members[k]))`` of the model's members, taken in order
  from random permutations of them drawn by a ``torch.Generator`` seeded with ``seeds[k]``; a new
  permutation starts when fewer than ``b`` members are left (that remainder is dropped);
- exactly ``steps`` AdamW(lr, weight_decay) steps on the unweighted mean ``BCEWithLogitsLoss``
  of the batch; no dropout, no early stopping: the final weights are the model.

Two paths give the same models up to float rounding:

- one by one (``batched=False``, the reference): an ordinary module (fused GRU) and its own
  AdamW per model;
- batched: a chunk of models as one ensemble. Their parameters are stacked
  (``torch.func.stack_module_state``) and the classifier runs as ``torch.vmap`` of
  ``functional_call`` (the unrolled GRU). The loss is the sum over models of each model's mean
  batch loss, so each model gets its own gradient, and one AdamW over the stacked parameters,
  being elementwise, steps every model as its own optimizer would. A model with fewer members
  than ``batch_size`` gets its batches padded with zero-weight rows.

Chunks bound memory: :func:`training_memory_mb` estimates a chunk's peak working memory
(activations of one step, batch × T × hidden × a constant measured per architecture, plus
parameters, gradients and AdamW state) and a chunk holds as many models as fit ``mem_mb`` (at
most ``MAX_CHUNK``). :meth:`Ensemble.predict` sizes its row batches to the same budget.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn import functional as F

from tardiff.models.classifier import build_classifier, unrolled_rnn
from tardiff.runtime import check_memory, progress
from tardiff.settings import EvaluationModelSettings

log = logging.getLogger(__name__)

#: most models per chunk when no memory bound is given
MAX_CHUNK = 64
#: bytes per (model, row, time step, hidden unit) of the batched path's working memory,
#: measured as the peak RSS growth of a training step (``grad``) and of prediction (``no_grad``)
_BYTES = {("gru", True): 160, ("gru", False): 24, ("tcn", True): 120, ("tcn", False): 40}
#: working memory for prediction when no bound is given (MiB)
_PREDICT_MB = 256.0

Params = dict[str, torch.Tensor]


def initial_model(n_features: int, settings: EvaluationModelSettings, seed: int) -> nn.Module:
    """The untrained model of ``seed`` (on the CPU; its weights depend on the seed alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_classifier(
            settings.arch, n_features, settings.hidden, settings.layers, dropout=0.0
        )


def _activation_mb(
    settings: EvaluationModelSettings, seq_len: int, rows: int, training: bool
) -> float:
    per_row = seq_len * settings.hidden * settings.layers * _BYTES[settings.arch, training]
    return rows * per_row / 2**20


def training_memory_mb(
    settings: EvaluationModelSettings, seq_len: int, n_features: int, n_models: int
) -> float:
    """Estimated working memory (MiB) of one batched training step of ``n_models`` models."""
    n_params = sum(p.numel() for p in initial_model(n_features, settings, 0).parameters())
    state_mb = 4 * n_params * 4 / 2**20  # weights, gradients, two AdamW moments (float32)
    rows = settings.batch_size
    return n_models * (_activation_mb(settings, seq_len, rows, True) + state_mb)


def _chunk_size(
    settings: EvaluationModelSettings, seq_len: int, n_features: int, mem_mb: float | None
) -> int:
    one = training_memory_mb(settings, seq_len, n_features, 1)
    check_memory(one, mem_mb, "evaluation models (one model)")
    return MAX_CHUNK if mem_mb is None else max(1, min(MAX_CHUNK, int(mem_mb // one)))


def _detached(params: Params) -> Params:
    return {name: p.detach() for name, p in params.items()}


def _stacked(models: list[nn.Module]) -> tuple[Params, Params]:
    """Weights of trained models stacked along a new first dimension (model order)."""
    params, buffers = stack_module_state(models)
    return _detached(params), buffers


def _batches(n: int, size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless batches of ``size`` positions in range(n) from epoch-wise random permutations."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.randperm(n, generator=gen)[: n - n % size].split(size)


def _vmapped(template: nn.Module, x_dim: int | None):
    """``(params, buffers, x) -> (K, B)`` logits of stacked models (``x`` per model or shared)."""

    def one(params: Params, buffers: Params, x: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (params, buffers), (x,))

    return torch.vmap(one, in_dims=(0, 0, x_dim))


@dataclass
class Ensemble:
    """Trained models, stacked per chunk (``chunks``: (parameters, buffers), model order)."""

    template: nn.Module  # the architecture on the meta device, eval mode
    chunks: list[tuple[Params, Params]]
    settings: EvaluationModelSettings
    device: torch.device
    mem_mb: float | None = None

    def __len__(self) -> int:
        return sum(len(next(iter(params.values()))) for params, _ in self.chunks)

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Float64 logits (K, len(x)) of every model on ``x`` (N, T, C), model order."""
        xt = torch.as_tensor(x, dtype=torch.float32)
        forward = _vmapped(self.template, None)
        budget = _PREDICT_MB if self.mem_mb is None else self.mem_mb
        out = []
        with unrolled_rnn():
            for params, buffers in self.chunks:
                k = len(next(iter(params.values())))
                per_row = _activation_mb(self.settings, xt.shape[1], k, training=False)
                rows = max(1, min(batch_size, int(budget // per_row)))
                parts = [
                    forward(params, buffers, xt[i : i + rows].to(self.device)).cpu()
                    for i in range(0, len(xt), rows)
                ]
                out.append(torch.cat(parts, 1) if parts else torch.zeros(k, 0))
        return torch.cat(out).double().numpy()


def _checked_members(
    pool_x: np.ndarray, pool_y: np.ndarray, members: Sequence[np.ndarray], seeds: Sequence[int]
) -> list[torch.Tensor]:
    """The member arrays as int64 tensors; ValueError (naming the model) on bad input."""
    if pool_x.ndim != 3 or len(pool_y) != len(pool_x):
        raise ValueError(f"pool_x {pool_x.shape} must be (N, T, C) with N = len(pool_y)")
    if not len(members) or len(members) != len(seeds):
        raise ValueError(f"need one seed per model and >= 1 model: {len(members)} member sets, "
                         f"{len(seeds)} seeds")  # fmt: skip
    checked = []
    for k, rows in enumerate(members):
        rows = np.asarray(rows)
        if rows.ndim != 1 or not len(rows) or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(f"model {k}: members must be a non-empty 1-d integer index array")
        if rows.min() < 0 or rows.max() >= len(pool_x):
            raise ValueError(f"model {k}: member index out of range [0, {len(pool_x)})")
        checked.append(torch.as_tensor(rows, dtype=torch.int64))
    return checked


def _train_one(
    pool: tuple[torch.Tensor, torch.Tensor],
    rows: torch.Tensor,
    seed: int,
    settings: EvaluationModelSettings,
    desc: str,
) -> nn.Module:
    """The reference path: one module (fused GRU) and its own AdamW."""
    x, y = pool
    model = initial_model(x.shape[2], settings, seed).to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    batches = _batches(len(rows), min(settings.batch_size, len(rows)), seed)
    for _ in progress(range(settings.steps), settings.steps, desc, "step"):
        idx = rows[next(batches)].to(x.device)
        loss = F.binary_cross_entropy_with_logits(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def _train_chunk(
    pool: tuple[torch.Tensor, torch.Tensor],
    members: list[torch.Tensor],
    seeds: Sequence[int],
    settings: EvaluationModelSettings,
    desc: str,
) -> tuple[Params, Params]:
    """The batched path: the chunk's models stacked, vmapped, one AdamW over them."""
    x, y = pool
    models = [initial_model(x.shape[2], settings, s).to(x.device) for s in seeds]
    params, buffers = stack_module_state(models)
    forward = _vmapped(copy.deepcopy(models[0]).to("meta"), 0)
    opt = torch.optim.AdamW(params.values(), lr=settings.lr, weight_decay=settings.weight_decay)
    sizes = [min(settings.batch_size, len(rows)) for rows in members]
    width = max(sizes)
    weight = torch.zeros(len(members), width, device=x.device)  # 1/b on real rows, 0 on padding
    for k, size in enumerate(sizes):
        weight[k, :size] = 1.0 / size
    batches = [_batches(len(r), b, s) for r, b, s in zip(members, sizes, seeds, strict=True)]
    with unrolled_rnn():
        for _ in progress(range(settings.steps), settings.steps, desc, "step"):
            idx = torch.zeros(len(members), width, dtype=torch.int64)
            for k, (rows, it) in enumerate(zip(members, batches, strict=True)):
                idx[k, : sizes[k]] = rows[next(it)]
            idx = idx.to(x.device)
            loss = F.binary_cross_entropy_with_logits(
                forward(params, buffers, x[idx]), y[idx], reduction="none"
            )
            opt.zero_grad(set_to_none=True)
            (loss * weight).sum().backward()
            opt.step()
    return _detached(params), buffers


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
) -> Ensemble:
    """Train model k on the pool rows ``members[k]`` with seed ``seeds[k]`` (module docstring).

    ``batched`` trains chunks of models as stacked ensembles, each chunk's working memory within
    ``mem_mb`` MiB (None: chunks of ``MAX_CHUNK``); otherwise one by one. The pool is never
    copied per model.
    """
    checked = _checked_members(pool_x, pool_y, members, seeds)
    pool = (
        torch.as_tensor(pool_x, dtype=torch.float32, device=device),
        torch.as_tensor(pool_y, dtype=torch.float32, device=device),
    )
    n, seq_len, n_features = pool_x.shape
    size = _chunk_size(settings, seq_len, n_features, mem_mb)
    groups = [range(i, min(i + size, len(checked))) for i in range(0, len(checked), size)]
    log.info(
        "evaluation models: %d %s models on %d series (%d x %d), %s, %d chunk(s) of <= %d "
        "(~%.0f MiB each)", len(checked), settings.arch, n, seq_len, n_features,
        "batched" if batched else "one by one", len(groups), size,
        training_memory_mb(settings, seq_len, n_features, size),
    )  # fmt: skip
    chunks = []
    for group in groups:
        desc = f"evaluation models {group.start + 1}-{group.stop}/{len(checked)}"
        if batched:
            rows, chunk_seeds = [checked[k] for k in group], [seeds[k] for k in group]
            chunks.append(_train_chunk(pool, rows, chunk_seeds, settings, desc))
        else:
            models = [_train_one(pool, checked[k], seeds[k], settings, f"{desc}: {k + 1}")
                      for k in group]  # fmt: skip
            chunks.append(_stacked(models))
    template = initial_model(n_features, settings, 0).to("meta").eval()
    return Ensemble(template, chunks, settings, device, mem_mb)
