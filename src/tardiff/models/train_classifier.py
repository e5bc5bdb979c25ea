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
from sklearn.metrics import average_precision_score, roc_auc_score
from torch import nn

from tardiff.data import Prepared, Transform, prepare
from tardiff.io import load_checkpoint, save_checkpoint, write_json
from tardiff.models.classifier import build_classifier
from tardiff.runtime import measured, pick_device, seed_everything, setup_logging


@torch.no_grad()
def predict_logits(model: nn.Module, x: np.ndarray, device, batch_size: int = 512) -> np.ndarray:
    """Logits of ``model`` (in its current mode) for an (N, T, C) array."""
    out = [
        model(torch.as_tensor(x[i : i + batch_size], device=device)).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def _scores(y: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    return {
        "auroc": float(roc_auc_score(y, logits)),
        "auprc": float(average_precision_score(y, logits)),
    }


def train_classifier(
    prepared: Prepared,
    cfg: dict[str, Any],
    device,
    seed: int,
    log: logging.Logger | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a classifier per the ``classifier`` config section; return (model.eval(), metrics)."""
    log = log or logging.getLogger("tardiff")
    prepared.require_both_classes(("train", "select"))
    seed_everything(seed)
    model = build_classifier(
        cfg["arch"], len(prepared.features), cfg["hidden"], cfg["layers"], cfg["dropout"]
    ).to(device)
    x_train = torch.as_tensor(prepared.x["train"])
    y_train = torch.as_tensor(prepared.y["train"], dtype=torch.float32)
    n_pos = float(y_train.sum())
    pos_weight = (len(y_train) - n_pos) / n_pos if cfg["loss"] == "weighted_bce" else None
    criterion = nn.BCEWithLogitsLoss(
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight, device=device)
    )
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    gen = torch.Generator().manual_seed(seed)
    best = {"auprc": -np.inf, "epoch": 0, "state": None}
    history = []
    for epoch in range(1, cfg["max_epochs"] + 1):
        model.train()
        total = 0.0
        for idx in torch.randperm(len(x_train), generator=gen).split(cfg["batch_size"]):
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            loss = criterion(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        val = _scores(prepared.y["select"], predict_logits(model, prepared.x["select"], device))
        history.append({"epoch": epoch, "train_loss": total / len(x_train), **val})
        log.info(
            "epoch %d loss %.4f select auroc %.4f auprc %.4f",
            epoch,
            total / len(x_train),
            val["auroc"],
            val["auprc"],
        )
        if val["auprc"] > best["auprc"]:
            best = {
                "auprc": val["auprc"],
                "epoch": epoch,
                "state": copy.deepcopy(model.state_dict()),
            }
        elif epoch - best["epoch"] >= cfg["patience"]:
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


def classifier_kwargs(cfg: dict[str, Any], n_features: int) -> dict[str, Any]:
    """Arguments of :func:`build_classifier` from the ``classifier`` config section."""
    keys = ("arch", "hidden", "layers", "dropout")
    return {"n_features": n_features, **{k: cfg[k] for k in keys}}


def run_classifier_stage(
    cohort_dir: str | Path,
    task: str,
    out_dir: str | Path,
    config: dict[str, Any],
    log_file: str | None = None,
) -> dict[str, Any]:
    """Train the guidance classifier; write ``out_dir/model.pt`` and ``out_dir/metrics.json``."""
    log = setup_logging(log_file)
    cfg = config["classifier"]
    device = pick_device(config["device"])
    out_dir = Path(out_dir)
    with measured() as watch:
        prepared = prepare(cohort_dir, task, seed=config["seed"])
        model, metrics = train_classifier(prepared, cfg, device, config["seed"], log)
    metrics.update(task=task, wall_s=watch.seconds, peak_rss_mb=watch.peak_rss_mb)
    save_checkpoint(
        {
            "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
            "arch": classifier_kwargs(cfg, len(prepared.features)),
            "config": cfg,
            "transform": prepared.transform.state_dict(),
            "features": prepared.features,
            "seq_len": prepared.seq_len,
            "task": task,
        },
        out_dir / "model.pt",
    )
    write_json(metrics, out_dir / "metrics.json")
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
