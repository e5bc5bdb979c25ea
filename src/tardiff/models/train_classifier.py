"""Train the guidance classifier on the real train split; select it on validation ``select``.

Early stopping watches the AUPRC on the ``select`` part of the validation split (the ``guide``
part is reserved for the influence vector G, the test split is never read). The state with the
best AUPRC is restored and the model is returned in eval mode.

Loss: ``bce`` = plain binary cross-entropy on logits; ``weighted_bce`` = BCE with
``pos_weight = n_neg / n_pos`` of the train split.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tardiff.data import Prepared, Transform, prepare, prepare_memory_mb
from tardiff.io import load_checkpoint, save_checkpoint, write_json
from tardiff.layout import ClassifierFiles
from tardiff.models.classifier import build_classifier
from tardiff.runtime import adamw, check_memory, measured, pick_device, progress, seed_everything
from tardiff.settings import ClassifierSettings

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, device, batch_size: int = 512) -> np.ndarray:
    """Logits of ``model`` (in its current mode) for an (N, T, C) array."""
    out = [
        model(torch.as_tensor(x[i : i + batch_size], device=device)).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def _scores(y: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    # imported here: scikit-learn adds 0.8 s to the start of every job that imports this module
    from sklearn.metrics import average_precision_score, roc_auc_score

    return {
        "auroc": float(roc_auc_score(y, logits)),
        "auprc": float(average_precision_score(y, logits)),
    }


def train_classifier(
    prepared: Prepared, settings: ClassifierSettings, device, seed: int
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a classifier with ``settings``; return (model in eval mode, metrics)."""
    prepared.require_both_classes(("train", "select"))
    seed_everything(seed)
    model = build_classifier(**classifier_kwargs(settings, len(prepared.features))).to(device)
    x_train = torch.as_tensor(prepared.x["train"])
    y_train = torch.as_tensor(prepared.y["train"], dtype=torch.float32)
    n_pos = float(y_train.sum())
    pos_weight = (len(y_train) - n_pos) / n_pos if settings.loss == "weighted_bce" else None
    criterion = nn.BCEWithLogitsLoss(
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight, device=device)
    )
    opt = adamw(model.parameters(), settings.lr, settings.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    best = {"auprc": -np.inf, "epoch": 0, "state": None}
    history = []
    epochs = progress(range(1, settings.max_epochs + 1), settings.max_epochs, "classifier", "epoch")
    for epoch in epochs:
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=gen).split(settings.batch_size):
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            loss = criterion(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        val = _scores(prepared.y["select"], predict_logits(model, prepared.x["select"], device))
        history.append({"epoch": epoch, "train_loss": total / len(x_train), **val})
        log.info("epoch %d loss %.4f select auroc %.4f auprc %.4f",
                 epoch, total / len(x_train), val["auroc"], val["auprc"])  # fmt: skip
        if val["auprc"] > best["auprc"]:
            best = {
                "auprc": val["auprc"],
                "epoch": epoch,
                "state": copy.deepcopy(model.state_dict()),
            }
        elif epoch - best["epoch"] >= settings.patience:
            log.info("early stop at epoch %d (best %d)", epoch, best["epoch"])
            break
    model.load_state_dict(best["state"])
    model.eval()
    final = history[best["epoch"] - 1]
    metrics = {
        "val_part": "select",
        "val_auroc": final["auroc"],
        "val_auprc": final["auprc"],
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "pos_weight": pos_weight,
        "n_train": len(x_train),
        "n_select": len(prepared.y["select"]),
        "history": history,
    }
    return model, metrics


def classifier_kwargs(settings: ClassifierSettings, n_features: int) -> dict[str, Any]:
    """Arguments of :func:`build_classifier` from the classifier settings."""
    keys = ("arch", "hidden", "layers", "dropout")
    return {"n_features": n_features, **{k: getattr(settings, k) for k in keys}}


def run_classifier_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    task: str,
    out: ClassifierFiles,
    settings: ClassifierSettings,
    seed: int,
    device: str = "auto",
    mem_mb: float | None = None,
) -> dict[str, Any]:
    """Train the guidance classifier on a cohort; write ``out.model`` and ``out.metrics``."""
    check_memory(prepare_memory_mb(timeseries), mem_mb, "classifier")
    torch_device = pick_device(device)
    with measured() as watch:
        prepared = prepare(stays, timeseries, task)
        model, metrics = train_classifier(prepared, settings, torch_device, seed)
    metrics.update(task=task, wall_s=watch.wall_s, peak_rss_mb=watch.peak_rss_mb)
    save_checkpoint(
        {
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "arch": classifier_kwargs(settings, len(prepared.features)),
            "config": settings.to_dict(),
            "pos_weight": metrics["pos_weight"],
            "transform": prepared.transform.state_dict(),
            "features": prepared.features,
            "seq_len": prepared.seq_len,
            "task": task,
        },
        out.model,
    )
    write_json(metrics, out.metrics)
    log.info("classifier: val AUROC %.4f AUPRC %.4f", metrics["val_auroc"], metrics["val_auprc"])
    return metrics


def load_classifier(path: str | Path, device="cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Load a classifier checkpoint; the model comes back in eval mode on ``device``."""
    ckpt = load_checkpoint(path, map_location=device)
    model = build_classifier(**ckpt["arch"]).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def checkpoint_transform(ckpt: dict[str, Any]) -> Transform:
    """The data transform stored in a classifier checkpoint."""
    return Transform.from_state_dict(ckpt["transform"])
