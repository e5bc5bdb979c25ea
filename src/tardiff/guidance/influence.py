"""Influence vector G = Σ_{(x, y) in D} ∇φ ℓ(f_φ(x), y) of a trained classifier (paper Alg. 1).

- ℓ is the per-sample *plain* BCE on the logit, without the ``pos_weight`` the classifier may have
  been trained with. This is the loss of the paper's influence function and the one recommended
  here: a class weight would rescale the positive samples' gradients by a constant, i.e. silently
  re-weight the classes inside G (the ``source`` option controls that explicitly), and, once J is
  RMS-normalised per class, would have no other effect on guidance.
- Per-sample gradients come from ``torch.func`` (``vmap(grad(functional_call))``) in batches,
  with the classifier in eval mode (no dropout) and the GRU's unrolled recurrence
  (``unrolled_rnn``: vmap cannot batch the fused ``nn.GRU``).
- D is the ``guide`` part of the validation split, restricted by ``source`` to all samples, the
  minority class or the majority class (minority = the rarer label of the *train* split).
- ``normalize``: ``none`` (the sum), ``l2`` (G / ‖G‖, as the official code), ``mean`` (G / |D|,
  as the paper). Only the direction matters once the guidance scale is tuned.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from tardiff.data import prepare
from tardiff.io import save_checkpoint, write_csv, write_json
from tardiff.models.classifier import unrolled_rnn
from tardiff.models.train_classifier import checkpoint_transform, load_classifier
from tardiff.runtime import measured, pick_device, setup_logging

SOURCES = ("all", "minority", "majority")
NORMALIZE = ("none", "l2", "mean")
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


def per_sample_grads(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss = per_sample_loss
) -> torch.Tensor:
    """Per-sample parameter gradients ∇φ ℓ(f(x_i), y_i) as an (N, P) tensor (one vmap call)."""
    params = detached_params(model)

    def one(p, xi, yi):
        return loss(functional_call(model, p, (xi[None],)), yi[None]).sum()

    with unrolled_rnn():  # vmap cannot batch the fused nn.GRU recurrence
        grads = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g.reshape(len(x), -1) for g in grads.values()], dim=1)


def influence_vector(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Loss = per_sample_loss,
    batch_size: int = 256,
    normalize: str = "l2",
    include: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """G over the samples in ``include`` (default all) and per-sample gradient norms of all (N,)."""
    require_eval(model)
    if normalize not in NORMALIZE:
        raise ValueError(f"config key 'influence.normalize' must be one of {NORMALIZE}")
    include = torch.ones(len(x), dtype=torch.bool) if include is None else include.bool().cpu()
    if not include.any():
        raise ValueError("no samples to build the influence vector from")
    device = next(model.parameters()).device
    total, norms = None, []
    for i in range(0, len(x), batch_size):
        g = per_sample_grads(
            model, x[i : i + batch_size].to(device), y[i : i + batch_size].to(device), loss
        )
        norms.append(g.norm(dim=1).cpu())
        part = g[include[i : i + batch_size].to(device)].sum(0)
        total = part if total is None else total + part
    if normalize == "l2":
        total = total / total.norm()
    elif normalize == "mean":
        total = total / int(include.sum())
    return total, torch.cat(norms)


def minority_label(y_train: np.ndarray) -> int:
    """The rarer label of the train split (1 on a tie)."""
    return int((y_train == 1).sum() <= (y_train == 0).sum())


def select_source(y: np.ndarray, source: str, minority: int) -> np.ndarray:
    """Boolean mask of the guidance samples that build G."""
    if source not in SOURCES:
        raise ValueError(f"config key 'influence.source' must be one of {SOURCES}, got {source!r}")
    if source == "all":
        return np.ones(len(y), dtype=bool)
    return y == (minority if source == "minority" else 1 - minority)


def run_influence_stage(
    cohort_dir: str | Path,
    task: str,
    classifier_path: str | Path,
    out_dir: str | Path,
    config: dict[str, Any],
    log_file: str | None = None,
) -> dict[str, Any]:
    """Build G on the guide part; write ``G.pt``, ``grad_norms.csv`` and ``summary.json``."""
    log = setup_logging(log_file)
    cfg = config["influence"]
    device = pick_device(config["device"])
    out_dir = Path(out_dir)
    with measured() as watch:
        prepared = prepare(cohort_dir, task, seed=config["seed"])
        model, ckpt = load_classifier(classifier_path, device)
        if checkpoint_transform(ckpt) != prepared.transform:
            raise ValueError(f"{classifier_path}: its data transform differs from the cohort's")
        prepared.require_both_classes(("guide",))
        y = prepared.y["guide"]
        minority = minority_label(prepared.y["train"])
        include = select_source(y, cfg["source"], minority)
        G, norms = influence_vector(
            model,
            torch.as_tensor(prepared.x["guide"]),
            torch.as_tensor(y),
            batch_size=cfg["batch_size"],
            normalize=cfg["normalize"],
            include=torch.as_tensor(include),
        )
    params = detached_params(model)
    save_checkpoint(
        {
            "G": G.cpu(),
            "names": list(params),
            "shapes": [list(p.shape) for p in params.values()],
            "normalize": cfg["normalize"],
            "source": cfg["source"],
            "minority_label": minority,
            "n_guide": int(include.sum()),
            "n_guide_total": len(y),
            "loss": "bce (per sample, no pos_weight)",
            "task": task,
        },
        out_dir / "G.pt",
    )
    norms = norms.numpy()
    write_csv(
        pd.DataFrame({"stay_id": prepared.stay_id["guide"], "label": y, "grad_norm": norms}),
        out_dir / "grad_norms.csv",
    )
    by_class = {
        str(c): {
            "n": int((y == c).sum()),
            "mean_grad_norm": float(norms[y == c].mean()),
            "median_grad_norm": float(np.median(norms[y == c])),
        }
        for c in (0, 1)
    }
    summary = {
        "task": task,
        "source": cfg["source"],
        "normalize": cfg["normalize"],
        "minority_label": minority,
        "n_guide": int(include.sum()),
        "n_guide_total": len(y),
        "n_params": int(G.numel()),
        "grad_norm_by_class": by_class,
        "wall_s": watch.seconds,
        "peak_rss_mb": watch.peak_rss_mb,
    }
    write_json(summary, out_dir / "summary.json")
    log.info(
        "influence: |D|=%d of %d, grad norms by class %s", summary["n_guide"], len(y), by_class
    )
    return summary
