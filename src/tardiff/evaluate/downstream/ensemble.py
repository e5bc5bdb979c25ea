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
  AdamW over them. The loss is the sum over models of each model's mean batch loss, so each
  model gets its own gradient, and AdamW, being elementwise, steps each model as its own
  optimizer would. Batches of a model with fewer members than ``batch_size`` are padded with
  zero-weight rows. The GRU runs as :class:`_StackedGRULayer`, a hand-written recurrence with
  batched matmuls over the same parameters (on CPU ``torch.vmap`` of the unrolled classifier is
  no faster than one by one; this is ~2.8x faster on one thread, ~5x on two:
  ``benchmarks/evaluation.py``); the TCN as ``torch.vmap`` of ``functional_call`` on the
  classifier (~2x).

Memory: :func:`training_memory_mb` estimates a chunk's working memory (batch × T × hidden ×
layers × a constant measured per architecture, plus weights, gradients and AdamW state); a chunk
holds as many models as fit ``mem_mb`` (at most ``MAX_CHUNK``). :meth:`Ensemble.predict` (for
the GRU a stacked no-grad recurrence, :func:`_stacked_gru_predict`; for the TCN ``torch.vmap`` of
the classifier) sizes its row batches to the same budget.
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

from tardiff.models.classifier import build_classifier, unrolled_rnn
from tardiff.runtime import check_memory, progress
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
_GRU_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

Params = dict[str, torch.Tensor]


def initial_model(n_features: int, settings: EvaluationModelSettings, seed: int) -> nn.Module:
    """The untrained model of ``seed`` (on the CPU; its weights depend on the seed alone)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_classifier(
            settings.arch, n_features, settings.hidden, settings.layers, dropout=0.0
        )


class _Workspace(dict):
    """Buffers reused from step to step (fresh large tensors cost page faults every step); what a
    forward saves in them is valid until the next forward."""

    def buffer(self, name: str, like: torch.Tensor, *shape: int) -> torch.Tensor:
        buf = self.get(name)
        if buf is None or buf.shape != shape:
            buf = self[name] = like.new_empty(shape)
        return buf


def _gate_derivatives(out, h_new, n, r, z, hn, u, v) -> None:
    """Into ``out`` (K, 5, H, B): d h_new / d (pre-activation) of r and z (a_r, a_z), of the
    hidden term hn = W_hn h + b_hn of gate n (a_hn) and of gate n (a_n), then z. ``u``, ``v``:
    scratch."""
    a_r, a_z, a_hn, a_n = (out[:, i] for i in range(4))
    torch.sub(1, z, out=u)
    torch.mul(torch.sub(h_new, n, out=v), u, out=a_z)  # (h - n) z (1 - z) = (h_new - n)(1 - z)
    torch.mul(u, n, out=v)
    torch.addcmul(u, v, n, value=-1, out=a_n)  # (1 - z)(1 - n^2)
    torch.mul(a_n, r, out=a_hn)
    torch.mul(a_hn, hn, out=v)
    torch.addcmul(v, v, r, value=-1, out=a_r)  # a_n hn r (1 - r)
    out[:, 4].copy_(z)


def _fused_weights(w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """(K, 4H, H + 1 + I) weights mapping [h; 1; x] to the pre-activations of r and z (input and
    hidden terms summed), hn (hidden term of gate n) and the input term of gate n."""
    k, h3, n_in = w_ih.shape
    h = h3 // 3
    w = w_ih.new_zeros(k, 4 * h, h + 1 + n_in)
    w[:, : 3 * h, :h], w[:, : 3 * h, h] = w_hh, b_hh
    w[:, : 2 * h, h] += b_ih[:, : 2 * h]
    w[:, 3 * h :, h] = b_ih[:, 2 * h :]
    w[:, : 2 * h, h + 1 :], w[:, 3 * h :, h + 1 :] = w_ih[:, : 2 * h], w_ih[:, 2 * h :]
    return w


class _StackedGRULayer(torch.autograd.Function):
    """One ``nn.GRU`` layer (h0 = 0) of K models at once, with a hand-written backward.

    Time-major and batch-last, so every per-step op is on contiguous blocks: x (T, K, I, B) ->
    outputs (T, K, H, B), or with ``readout`` the last and the time-mean output (K, H, B) each;
    weights the stacked ``nn.GRU`` tensors. A buffer holds [h_t; 1; x_t] per step, so one matmul
    with :func:`_fused_weights` gives a step's pre-activations and one its weight gradients. The
    forward keeps each step's gate derivatives (:func:`_gate_derivatives`), so a backward step is
    a few ops. tanh is computed as 2 sigmoid(2a) - 1 (torch's CPU tanh is several times slower).
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, ws: _Workspace, readout: bool):
        steps, k, n_in, b = x.shape
        h = w_hh.shape[2]
        zs = ws.buffer("zs", x, steps + 1, k, h + 1 + n_in, b)
        zs[0, :, :h], zs[:, :, h], zs[:steps, :, h + 1 :] = 0, 1, x
        w = _fused_weights(w_ih, w_hh, b_ih, b_hh)
        coef = ws.buffer("coef", x, steps, k, 5, h, b)
        pre, rz = ws.buffer("pre", x, k, 4 * h, b), ws.buffer("rz", x, k, 2 * h, b)
        s, n, u, v = (ws.buffer(name, x, k, h, b) for name in "snuv")
        r, z, hn = rz[:, :h], rz[:, h:], pre[:, 2 * h : 3 * h]
        for t in range(steps):
            torch.bmm(w, zs[t], out=pre)
            torch.sigmoid(pre[:, : 2 * h], out=rz)
            torch.addcmul(pre[:, 3 * h :], r, hn, out=s).mul_(2).sigmoid_()
            torch.mul(s, 2, out=n).sub_(1)
            h_new = torch.lerp(n, zs[t, :, :h], z, out=zs[t + 1, :, :h])
            _gate_derivatives(coef[t], h_new, n, r, z, hn, u, v)
        ctx.ws, ctx.readout = ws, readout
        ctx.save_for_backward(w, zs, coef)
        out = zs[1:, :, :h]
        return (out[-1], out.mean(0)) if readout else out

    @staticmethod
    def backward(ctx, *grads):
        w, zs, coef = ctx.saved_tensors
        steps, k, _, h, b = coef.shape
        g = ctx.ws.buffer("g", zs, steps, k, 4 * h, b)  # pre-activation gradients, rows as w
        dh, dz = ctx.ws.buffer("dh", zs, k, h, b), ctx.ws.buffer("dz", zs, k, h, b)
        if ctx.readout:  # d out_t = d_mean / T, plus d_last at the last step
            carry, d_mean = grads[0].clone(), grads[1] / steps
        else:
            carry = torch.zeros_like(dh)
        w_hh = w[:, : 3 * h, :h].transpose(1, 2)
        dw = torch.zeros_like(w)
        for t in reversed(range(steps)):
            torch.add(carry, d_mean if ctx.readout else grads[0][t], out=dh)
            torch.mul(dh.unsqueeze(1), coef[t, :, :4], out=g[t].view(k, 4, h, b))
            torch.mul(dh, coef[t, :, 4], out=dz)
            carry = torch.baddbmm(dz, w_hh, g[t, :, : 3 * h])
            dw.baddbmm_(g[t], zs[t].transpose(1, 2))
        dx = torch.matmul(w[:, :, h + 1 :].transpose(1, 2), g) if ctx.needs_input_grad[0] else None
        d_ih = torch.cat([dw[:, : 2 * h, h:], dw[:, 3 * h :, h:]], 1)  # columns 1, x
        d_hh = dw[:, : 3 * h, : h + 1]  # columns h, 1
        return dx, d_ih[..., 1:], d_hh[..., :h], d_ih[..., 0], d_hh[..., h], None, None


def _stacked_gru(params: Params, x: torch.Tensor, workspaces: list[_Workspace]) -> torch.Tensor:
    """Logits (K, B) of K stacked GRU classifiers (their state dicts) on x (K, B, T, C)."""
    h = x.permute(2, 0, 3, 1)
    for layer, ws in enumerate(workspaces):
        weights = (params[f"rnn.{w}_l{layer}"] for w in _GRU_WEIGHTS)
        h = _StackedGRULayer.apply(h, *weights, ws, layer == len(workspaces) - 1)
    feats = torch.cat(h, 1)  # (K, 2H, B): last and mean, as GRUClassifier.forward
    hid = F.gelu(torch.baddbmm(params["head.0.bias"].unsqueeze(2), params["head.0.weight"], feats))
    return torch.baddbmm(params["head.3.bias"].unsqueeze(2), params["head.3.weight"], hid)[:, 0]


@torch.no_grad()
def _stacked_gru_predict(params: Params, x: torch.Tensor, layers: int) -> torch.Tensor:
    """Logits (K, B) of K stacked GRU classifiers on a shared x (B, T, C), without autograd:
    the recurrence as batched matmuls over the models, batch-last (several times faster than
    ``torch.vmap`` of the unrolled classifier on CPU; equal up to float rounding, tested)."""
    inputs = x.permute(1, 2, 0)  # (T, C, B), shared by every model
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = (params[f"rnn.{w}_l{layer}"] for w in _GRU_WEIGHTS)
        k, h3, _ = w_ih.shape
        h = w_hh.shape[2]
        state = x.new_zeros(k, h, x.shape[0])
        total, outputs = torch.zeros_like(state), []
        for x_t in inputs:  # (C, B) shared, or (K, H_prev, B) per model
            gi = torch.matmul(w_ih, x_t).add_(b_ih.unsqueeze(2))
            gh = torch.bmm(w_hh, state).add_(b_hh.unsqueeze(2))
            rz = (gi[:, : 2 * h] + gh[:, : 2 * h]).sigmoid_()
            n = torch.addcmul(gi[:, 2 * h :], rz[:, :h], gh[:, 2 * h :]).mul_(2).sigmoid_()
            n.mul_(2).sub_(1)  # tanh(a) = 2 sigmoid(2a) - 1 (torch's CPU tanh is slower)
            state = torch.lerp(n, state, rz[:, h:])
            total += state
            outputs.append(state) if layer < layers - 1 else None
        inputs = outputs
    feats = torch.cat([state, total / len(x[0])], 1)  # last and mean, as GRUClassifier.forward
    hid = F.gelu(torch.baddbmm(params["head.0.bias"].unsqueeze(2), params["head.0.weight"], feats))
    return torch.baddbmm(params["head.3.bias"].unsqueeze(2), params["head.3.weight"], hid)[:, 0]


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
                    (_stacked_gru_predict(params, xb, self.settings.layers) if stacked
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
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
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
        workspaces = [_Workspace() for _ in range(settings.layers)]
        forward = lambda p, _, xb: _stacked_gru(p, xb, workspaces)  # noqa: E731
    else:
        forward = _vmapped(copy.deepcopy(models[0]).to("meta"), 0)
    opt = torch.optim.AdamW(params.values(), lr=settings.lr, weight_decay=settings.weight_decay)
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
