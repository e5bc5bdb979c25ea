"""Per-sample parameter gradients of a classifier, in memory bounded by a budget.

With the classifier in eval mode (no dropout) and the GRU's unrolled recurrence
(``unrolled_rnn``), one batched forward records the input of every ``F.linear`` / ``F.conv1d``
that reads a parameter and one backward gives the gradients of their outputs; each weight's
per-sample gradient is then one batched matmul Σ_t ∂ℓ/∂out_t ⊗ in_t over all its uses (time
steps, positions), so no per-step per-sample weight gradient is ever materialised.
:func:`influence_memory_mb` estimates the working memory of a chunk of samples (probed on one
sample) and :func:`influence_chunk` picks the chunk size for a budget. Also the small parameter
helpers the guidance terms share (``per_sample_loss``, ``detached_params``, ``unflatten``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from tardiff.models.classifier import unrolled_rnn

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def per_sample_loss(
    logits: torch.Tensor, y: torch.Tensor, pos_weight: float | None = None
) -> torch.Tensor:
    """BCE on logits, one value per sample (no reduction); ``pos_weight`` weights the positive
    term as the classifier's ``weighted_bce`` training loss does (None: plain BCE)."""
    weight = None if pos_weight is None else logits.new_tensor(float(pos_weight))
    return F.binary_cross_entropy_with_logits(
        logits, y.to(logits.dtype), pos_weight=weight, reduction="none"
    )


def loss_for(pos_weight: float | None) -> Loss:
    """The per-sample loss with the given ``pos_weight`` (None: plain BCE)."""
    return (
        per_sample_loss if pos_weight is None else partial(per_sample_loss, pos_weight=pos_weight)
    )


def detached_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters, detached (functional calls never touch ``.grad``)."""
    return {n: p.detach() for n, p in model.named_parameters()}


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (same key order)."""
    out, i = {}, 0
    for name, ref in like.items():
        out[name] = flat[i : i + ref.numel()].view_as(ref)
        i += ref.numel()
    if i != flat.numel():
        raise ValueError(f"vector has {flat.numel()} entries, the parameters {i}")
    return out


def require_eval(model: nn.Module) -> None:
    if model.training:
        raise ValueError("the classifier must be in eval mode (call model.eval())")


#: Most samples per ``per_sample_grads`` call in ``influence_vector``. On the demo GRU, larger
#: chunks gained < 10 % speed at 24 and 288 steps and, at 288 steps, even lost it (the unrolled
#: GRU's per-step ``gi[:, t]`` backward costs O(T) per step); they only cost memory.
MAX_CHUNK = 128
#: ``influence_memory_mb`` = fixed + factor x the probed bytes per sample; calibrated on peak RSS
#: (measured/probed 0.85-1.4 for the demo GRU and TCN, 24-288 steps, chunks of 16-1024).
_MEMORY_FIXED_MB, _MEMORY_FACTOR = 16.0, 1.5
_OP_ARGS: dict[Callable, tuple[str, ...]] = {
    F.linear: ("input", "weight", "bias"),
    F.conv1d: ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
}
_OP_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
_Use = tuple[Callable, dict[str, Any], torch.Tensor]  # (op, its arguments, its output)


def _tensors(obj: Any) -> list[torch.Tensor]:
    """The tensors in a nest of tuples, lists and dicts."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    return []


class _ParamUses(TorchFunctionMode):
    """Records every ``F.linear`` / ``F.conv1d`` call whose weight is one of ``params`` (its
    arguments and its output, made to require grad); refuses any other op that makes a tensor
    from a parameter, and layer inputs that are not batch-first."""

    def __init__(self, params: dict[str, torch.Tensor], n_samples: int):
        super().__init__()
        self.names = {id(p): name for name, p in params.items()}
        self.n_samples = n_samples
        self.uses: list[_Use] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        read = [self.names[id(t)] for t in _tensors((args, kwargs)) if id(t) in self.names]
        if not read or not isinstance(out, torch.Tensor):
            return out  # no parameter read, or metadata (shape, dtype, ...)
        op = getattr(func, "__name__", repr(func))
        call = {**_OP_DEFAULTS, **dict(zip(_OP_ARGS.get(func, ()), args, strict=False)), **kwargs}
        if func not in _OP_ARGS or id(call["weight"]) not in self.names:
            raise ValueError(
                f"per-sample gradients: {op} reads parameter {read[0]!r}; only the weight and "
                "bias of F.linear and F.conv1d are supported"
            )
        if id(call["input"]) in self.names or call["input"].shape[0] != self.n_samples:
            raise ValueError(f"per-sample gradients: the input of {op} ({read[0]!r}) is no batch")
        if not out.requires_grad:  # e.g. a GRU step on the zero initial state
            out.requires_grad_()
        self.uses.append((func, {**call, "input": call["input"].detach()}, out))
        return out


def _single(v: Any) -> Any:
    return v[0] if isinstance(v, (tuple, list)) else v


def _conv1d_windows(x: torch.Tensor, weight: torch.Tensor, call: dict[str, Any]) -> torch.Tensor:
    """The input window of every conv1d output, (N, L_out, C_in * k) in the weight's layout."""
    if call["groups"] != 1:
        raise ValueError("per-sample gradients: grouped conv1d is not supported")
    stride, dilation, padding = (_single(call[k]) for k in ("stride", "dilation", "padding"))
    span = dilation * (weight.shape[2] - 1)
    if padding == "same":
        pad = (span // 2, span - span // 2)
    else:
        pad = (0, 0) if padding == "valid" else (padding, padding)
    windows = F.pad(x, pad).unfold(2, span + 1, stride)[..., ::dilation]  # (N, C_in, L_out, k)
    return windows.permute(0, 2, 1, 3).flatten(2)


def _use_rows(func: Callable, call: dict[str, Any], grad_out: torch.Tensor):
    """One use's layer inputs (N, positions, fan_in) and output gradients (N, positions, out)."""
    x, weight = call["input"], call["weight"]
    if func is F.linear:
        return x.reshape(len(x), -1, weight.shape[1]), grad_out.reshape(len(x), -1, len(weight))
    return _conv1d_windows(x, weight, call), grad_out.transpose(1, 2)


@torch.no_grad()
def _assemble(
    params: dict[str, torch.Tensor], uses: list[_Use], grads: list[torch.Tensor | None], n: int
) -> torch.Tensor:
    """(n, P) per-sample gradients: per weight, one batched matmul over all its uses' output
    gradients and inputs; per bias, the sum of its uses' output gradients."""
    names = {id(p): name for name, p in params.items()}
    inputs: dict[str, list] = {name: [] for name in params}
    outputs: dict[str, list] = {name: [] for name in params}
    biases: dict[str, list] = {name: [] for name in params}
    for (func, call, _), grad_out in zip(uses, grads, strict=True):
        if grad_out is None:  # the output does not reach the loss
            continue
        x_rows, g_rows = _use_rows(func, call, grad_out)
        inputs[names[id(call["weight"])]].append(x_rows)
        outputs[names[id(call["weight"])]].append(g_rows)
        if call["bias"] is not None and id(call["bias"]) in names:
            biases[names[id(call["bias"])]].append(g_rows.sum(1))
    columns = []
    for name, p in params.items():
        g = p.new_zeros(n, p.numel())
        if inputs[name]:
            g_out, x_in = torch.cat(outputs[name], 1), torch.cat(inputs[name], 1)
            g += torch.einsum("npo,npi->noi", g_out, x_in).reshape(n, -1)
        for part in biases[name]:
            g += part
        columns.append(g)
    return torch.cat(columns, dim=1)


def per_sample_grads(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss = per_sample_loss
) -> torch.Tensor:
    """Per-sample parameter gradients ∇φ ℓ(f(x_i), y_i) of a batch as an (N, P) tensor.

    One batched forward (GRU unrolled) records the input of each ``F.linear`` / ``F.conv1d`` on a
    parameter, one backward the gradient of its output; a weight's gradient is then one batched
    matmul over all its uses (see the module docstring). ``loss`` gives one value per sample, and
    samples must not interact in the forward pass (eval mode). Memory grows with N: chunk it as
    :func:`influence_vector` does.
    """
    params = detached_params(model)
    with torch.enable_grad(), unrolled_rnn(), _ParamUses(params, len(x)) as mode:
        losses = loss(functional_call(model, params, (x,)), y)
    if losses.shape != (len(x),):
        raise ValueError(f"the loss must give one value per sample, got shape {losses.shape}")
    outs = [out for _, _, out in mode.uses]
    grads = torch.autograd.grad(losses.sum(), outs, allow_unused=True) if outs else []
    return _assemble(params, mode.uses, list(grads), len(x))


def _bytes_per_sample(model: nn.Module, sample_shape: tuple[int, ...], loss: Loss) -> int:
    """Bytes one sample adds to :func:`per_sample_grads`' working memory, from a one-sample
    probe: the tensors autograd saves, the recorded layer inputs and outputs, their gradients
    and concatenated copies, and three gradient rows."""
    params = detached_params(model)
    ref = next(iter(params.values()))
    x = torch.zeros(1, *sample_shape, dtype=ref.dtype, device=ref.device)
    seen = {p.untyped_storage().data_ptr() for p in params.values()}
    total = 3 * sum(p.numel() for p in params.values()) * ref.element_size()

    def count(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        if (ptr := t.untyped_storage().data_ptr()) not in seen:
            seen.add(ptr)
            total += t.untyped_storage().nbytes()
        return t

    saved = torch.autograd.graph.saved_tensors_hooks(count, lambda t: t)
    with torch.enable_grad(), unrolled_rnn(), _ParamUses(params, 1) as mode, saved:
        probe = loss(functional_call(model, params, (x,)), torch.zeros(1, device=ref.device))
    for func, call, out in mode.uses:
        count(call["input"])
        count(out)
        x_rows, _ = _use_rows(func, call, out.detach())
        total += 2 * out.nbytes + x_rows.numel() * x_rows.element_size()
    del probe
    return total


def influence_memory_mb(
    model: nn.Module, sample_shape: tuple[int, ...], chunk: int, loss: Loss = per_sample_loss
) -> float:
    """Estimated working memory (MiB) of :func:`per_sample_grads` on ``chunk`` samples of shape
    ``sample_shape`` (one sample's, e.g. (T, C)): linear in ``chunk``, calibrated on peak RSS."""
    per_sample = _bytes_per_sample(model, tuple(sample_shape), loss) / 2**20
    return _MEMORY_FIXED_MB + _MEMORY_FACTOR * chunk * per_sample


def influence_chunk(
    model: nn.Module, sample_shape: tuple[int, ...], memory_mb: float, loss: Loss = per_sample_loss
) -> int:
    """The most samples (at most ``MAX_CHUNK``) per :func:`per_sample_grads` call whose estimated
    working memory fits ``memory_mb`` MiB; ValueError if not even one sample fits."""
    one = influence_memory_mb(model, sample_shape, 1, loss)
    if one > memory_mb:
        raise ValueError(
            f"influence: one sample of shape {tuple(sample_shape)} needs about {one:.1f} MiB for "
            f"its per-sample gradients, more than the budget of {memory_mb:.1f} MiB"
        )
    chunk = int((memory_mb - _MEMORY_FIXED_MB) // (one - _MEMORY_FIXED_MB))
    return min(chunk, MAX_CHUNK)
