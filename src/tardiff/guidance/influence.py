"""Influence vector G = Σ_{(x, y) in D} ∇φ ℓ(f_φ(x), y) of a trained classifier (paper Alg. 1).

- ℓ is, by default (``influence.loss: training``), the per-sample loss the classifier was
  trained with: BCE with the checkpoint's ``pos_weight`` for ``weighted_bce``. Influence is the
  first-order change of the *training objective's* fit; under another loss G measures something
  else: a ``pos_weight`` classifier over-predicts the minority under plain BCE, so a plain-BCE G
  mostly encodes that calibration offset (on the demo, cosine 0.991 with the train-set gradient)
  and raising G·∇φℓ raises every sample's logit whatever its label. ``bce`` keeps plain BCE (the
  paper's formula). The loss is written into G's file (``pos_weight``), and generation computes
  J and the sample influence with the same one.
- Per-sample gradients come from :mod:`tardiff.guidance.per_sample`; ``influence_vector`` runs
  them in chunks sized from a memory budget, so memory is bounded whatever |D| and T.
- D is the ``guide`` part of the validation split, restricted by ``source`` to all samples, the
  minority class or the majority class (minority = the rarer label of the *train* split).
- ``normalize``: ``none`` (the sum), ``l2`` (G / ‖G‖, as the official code), ``mean`` (G / |D|,
  as the paper). Only the direction matters once the guidance scale is tuned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tardiff.data import prepare, prepare_memory_mb
from tardiff.guidance.per_sample import (
    Loss,
    detached_params,
    influence_chunk,
    loss_for,
    per_sample_grads,
    per_sample_loss,
    require_eval,
)
from tardiff.io import load_checkpoint, save_checkpoint, write_csv, write_json
from tardiff.layout import InfluenceFiles
from tardiff.models.train_classifier import checkpoint_transform, load_classifier
from tardiff.runtime import check_memory, measured, pick_device
from tardiff.settings import InfluenceSettings

log = logging.getLogger(__name__)
#: Memory a stage run by hand may use (MiB); the workflow passes the rule's ``mem_mb``.
DEFAULT_MEM_MB = 2048


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
    log.info("influence: %d samples in chunks of %d (sized to a %.0f MiB budget)",
             len(x), chunk, memory_mb)  # fmt: skip
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


def subsample(include: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``include`` keeping a seeded share ``fraction`` of its samples of each class (at least one
    per class present): the guidance-set size study."""
    if fraction >= 1:
        return include
    rng = np.random.default_rng([seed, 23])
    kept = np.zeros_like(include)
    for c in (0, 1):
        rows = np.flatnonzero(include & (y == c))
        if len(rows):
            k = max(1, int(round(fraction * len(rows))))
            kept[rng.choice(rows, size=k, replace=False)] = True
    return kept


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
    fraction: float = 1.0,
    seed: int = 0,
    device: str = "auto",
    mem_mb: float = DEFAULT_MEM_MB,
) -> dict[str, Any]:
    """Build G on the guide part (a stratified share ``fraction`` of it, drawn with ``seed``);
    write ``out.G``, ``out.norms`` and ``out.summary``.

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
        include = subsample(select_source(y, settings.source, minority), y, fraction, seed)
        pos_weight = ckpt.get("pos_weight") if settings.loss == "training" else None
        G, norms = influence_vector(
            model,
            torch.as_tensor(prepared.x["guide"]),
            torch.as_tensor(y),
            loss=loss_for(pos_weight),
            normalize=settings.normalize,
            include=torch.as_tensor(include),
            memory_mb=mem_mb - data_mb,
        )
    info = {
        "task": task,
        "source": settings.source,
        "guide_fraction": fraction,
        "normalize": settings.normalize,
        "loss": settings.loss,
        "pos_weight": pos_weight,
        "minority_label": minority,
        "n_guide": int(include.sum()),
        "n_guide_total": len(y),
    }
    save_influence(out.G, G, model, info)
    norms = norms.numpy()
    frame = pd.DataFrame({"stay_id": prepared.stay_id["guide"], "label": y, "grad_norm": norms})
    write_csv(frame, out.norms)
    by_class = _norms_by_class(y, norms)
    summary = {**info, "n_params": int(G.numel()), "grad_norm_by_class": by_class}
    summary.update(wall_s=watch.wall_s, peak_rss_mb=watch.peak_rss_mb)
    write_json(summary, out.summary)
    log.info("influence: |D|=%d of %d, grad norms by class %s", info["n_guide"], len(y), by_class)
    return summary
