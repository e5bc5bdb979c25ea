"""Influence vector G = Σ_{(x, y) in D} ∇φ ℓ(f_φ(x), y) of a trained classifier (paper Alg. 1).

- ℓ is the per-sample *plain* BCE on the logit, without the ``pos_weight`` the classifier may have
  been trained with. This is the loss of the paper's influence function and the one recommended
  here: a class weight would rescale the positive samples' gradients by a constant, i.e. silently
  re-weight the classes inside G (the ``source`` option controls that explicitly), and, once J is
  RMS-normalised per class, would have no other effect on guidance.
- Per-sample gradients (``per_sample_grads``), with the classifier in eval mode (no dropout) and
  the GRU's unrolled recurrence (``unrolled_rnn``): one batched forward records the input of
  every ``F.linear`` / ``F.conv1d`` that reads a parameter, one backward gives the gradients of
  their outputs, and each weight's per-sample gradient is one batched matmul Σ_t ∂ℓ/∂out_t ⊗ in_t
  over all its uses (time steps, positions), so no per-step per-sample weight gradient is ever
  materialised. ``influence_vector`` runs it in chunks sized from a memory budget
  (``influence_chunk``, ``influence_memory_mb``): memory is bounded whatever |D| and T.
- D is the ``guide`` part of the validation split, restricted by ``source`` to all samples, the
  minority class or the majority class (minority = the rarer label of the *train* split).
- ``normalize``: ``none`` (the sum), ``l2`` (G / ‖G‖, as the official code), ``mean`` (G / |D|,
  as the paper). Only the direction matters once the guidance scale is tuned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from tardiff.data import prepare, prepare_memory_mb
from tardiff.io import load_checkpoint, save_checkpoint, write_csv, write_json
from tardiff.layout import InfluenceFiles
from tardiff.models.classifier import unrolled_rnn
from tardiff.models.train_classifier import checkpoint_transform, load_classifier
from tardiff.runtime import check_memory, measured, pick_device
from tardiff.settings import InfluenceSettings

log = logging.getLogger(__name__)
#: Memory a stage run by hand may use (MiB); the workflow passes the rule's ``mem_mb``.
DEFAULT_MEM_MB = 2048
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def per_sample_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Plain BCE on logits, one value per sample (no reduction, no pos_weight)."""
    return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction="none")


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


def influence_vector(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Loss = per_sample_loss,
    normalize: str = "l2",
    include: torch.Tensor | None = None,
    memory_mb: float = 512,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G over the samples in ``include`` (default all) and per-sample gradient norms of all (N,).

    The per-sample gradients are computed :func:`influence_chunk` samples at a time, so their
    working memory stays within ``memory_mb`` MiB whatever N and the sequence length.
    """
    require_eval(model)
    include = torch.ones(len(x), dtype=torch.bool) if include is None else include.bool().cpu()
    if not include.any():
        raise ValueError("no samples to build the influence vector from")
    device = next(model.parameters()).device
    chunk = min(len(x), influence_chunk(model, tuple(x.shape[1:]), memory_mb, loss))
    total, norms = None, []
    for i in range(0, len(x), chunk):
        part = slice(i, i + chunk)
        g = per_sample_grads(model, x[part].to(device), y[part].to(device), loss)
        norms.append(g.norm(dim=1).cpu())
        g = g[include[part].to(device)].sum(0)
        total = g if total is None else total + g
    if normalize == "l2":
        total = total / total.norm()
    elif normalize == "mean":
        total = total / int(include.sum())
    return total, torch.cat(norms)


def minority_label(y_train: np.ndarray) -> int:
    """The rarer label of the train split (1 on a tie)."""
    return int((y_train == 1).sum() <= (y_train == 0).sum())


def select_source(y: np.ndarray, source: str, minority: int) -> np.ndarray:
    """Boolean mask of the guidance samples that build G (``influence.source``)."""
    label = {"all": None, "minority": minority, "majority": 1 - minority}[source]
    return np.ones(len(y), dtype=bool) if label is None else y == label


def save_influence(path: str | Path, G: torch.Tensor, model: nn.Module, info: dict) -> None:
    """Write G with the names and shapes of the classifier parameters it belongs to."""
    params = detached_params(model)
    shapes = [list(p.shape) for p in params.values()]
    state = {"G": G.cpu(), "names": list(params), "shapes": shapes}
    save_checkpoint({**state, **info}, path)


def load_influence(path: str | Path, classifier: nn.Module) -> dict[str, Any]:
    """Load a :func:`save_influence` file and check it belongs to ``classifier``'s parameters."""
    ckpt = load_checkpoint(path)
    params = detached_params(classifier)
    shapes = [list(p.shape) for p in params.values()]
    if ckpt["names"] != list(params) or ckpt["shapes"] != shapes:
        raise ValueError(f"{path}: G does not match the classifier's parameters")
    return ckpt


def _norms_by_class(y: np.ndarray, norms: np.ndarray) -> dict[str, dict[str, float]]:
    return {
        str(c): {
            "n": int((y == c).sum()),
            "mean_grad_norm": float(norms[y == c].mean()),
            "median_grad_norm": float(np.median(norms[y == c])),
        }
        for c in (0, 1)
    }


def run_influence_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    task: str,
    classifier: str | Path,
    out: InfluenceFiles,
    settings: InfluenceSettings,
    device: str = "auto",
    mem_mb: float = DEFAULT_MEM_MB,
) -> dict[str, Any]:
    """Build G on the guide part; write ``out.G``, ``out.norms`` and ``out.summary``.

    The per-sample gradients get what ``mem_mb`` (the rule's memory) leaves after the data.
    """
    data_mb = prepare_memory_mb(timeseries)
    check_memory(data_mb, mem_mb, "influence (data)")
    torch_device = pick_device(device)
    with measured() as watch:
        prepared = prepare(stays, timeseries, task)
        model, ckpt = load_classifier(classifier, torch_device)
        if checkpoint_transform(ckpt) != prepared.transform:
            raise ValueError(f"{classifier}: its data transform differs from the cohort's")
        prepared.require_both_classes(("guide",))
        y = prepared.y["guide"]
        minority = minority_label(prepared.y["train"])
        include = select_source(y, settings.source, minority)
        G, norms = influence_vector(
            model,
            torch.as_tensor(prepared.x["guide"]),
            torch.as_tensor(y),
            normalize=settings.normalize,
            include=torch.as_tensor(include),
            memory_mb=mem_mb - data_mb,
        )
    info = {
        "task": task,
        "source": settings.source,
        "normalize": settings.normalize,
        "minority_label": minority,
        "n_guide": int(include.sum()),
        "n_guide_total": len(y),
    }
    save_influence(out.G, G, model, {**info, "loss": "bce (per sample, no pos_weight)"})
    norms = norms.numpy()
    frame = pd.DataFrame({"stay_id": prepared.stay_id["guide"], "label": y, "grad_norm": norms})
    write_csv(frame, out.norms)
    by_class = _norms_by_class(y, norms)
    summary = {**info, "n_params": int(G.numel()), "grad_norm_by_class": by_class}
    summary.update(wall_s=watch.wall_s, peak_rss_mb=watch.peak_rss_mb)
    write_json(summary, out.summary)
    log.info("influence: |D|=%d of %d, grad norms by class %s", info["n_guide"], len(y), by_class)
    return summary
