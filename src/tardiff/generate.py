"""Generation stage: sample synthetic series with one method and write them in the cohort schema.

Methods (``METHODS``): ``conditional`` (label-conditional diffusion, no guidance), ``tardiff``
(influence guidance, scale ``generation.scale``) and ``classifier_guidance`` (∇x log p(y|x),
scale ``generation.classifier_guidance_scale``); see :mod:`tardiff.guidance.terms`.

Labels: ``generation.n_samples`` (default: the size of the real train split) with the train
class ratio; with the default the class counts equal the train counts exactly. Labels are
shuffled with the run's seed so every mini-batch mixes classes.

Outputs per seed: ``seed{seed}.parquet`` (cohort timeseries schema in physical units plus the
label column named after the task), ``seed{seed}.json`` (settings, counts, cost, mean sample
influence G·∇φℓ of the final samples by class) and
``seed{seed}_diagnostics.csv`` (per batch and step: t, sigma, shift_rms, shift_rms / sigma).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tardiff.data import Transform, prepare, prepare_memory_mb, to_timeseries_frame
from tardiff.diffusion.samplers import generate
from tardiff.diffusion.train import load_diffusion
from tardiff.guidance.influence import load_influence
from tardiff.guidance.terms import Guidance, sample_influence
from tardiff.io import write_csv, write_json, write_parquet
from tardiff.layout import SyntheticFiles
from tardiff.models.train_classifier import checkpoint_transform, load_classifier
from tardiff.runtime import check_memory, measured, pick_device, seed_everything
from tardiff.settings import GenerationSettings

log = logging.getLogger(__name__)

# method -> (guidance kind or None, GenerationSettings field holding its scale)
METHODS: dict[str, tuple[str | None, str | None]] = {
    "conditional": (None, None),
    "tardiff": ("tardiff", "scale"),
    "classifier_guidance": ("classifier", "classifier_guidance_scale"),
}


def sample_labels(y_train: np.ndarray, n_samples: int | None, seed: int) -> np.ndarray:
    """``n_samples`` labels (default ``len(y_train)``) with the train class ratio, shuffled."""
    n = len(y_train) if n_samples is None else int(n_samples)
    n_pos = int(round(n * float(np.mean(y_train))))
    labels = np.r_[np.zeros(n - n_pos, np.int64), np.ones(n_pos, np.int64)]
    return np.random.default_rng(seed).permutation(labels)


def _check_transform(expected: Transform, other: Transform, what: str) -> None:
    if other != expected:
        raise ValueError(f"{what}: data transform differs from the diffusion model's")


def _guidance(method: str, classifier, G, settings: GenerationSettings) -> Guidance | None:
    """The sampler hook of ``method`` (None for unguided sampling)."""
    kind, scale_key = METHODS[method]
    if kind is None:
        return None
    return Guidance(
        kind,
        classifier,
        G if kind == "tardiff" else None,
        scale=getattr(settings, scale_key),
        evaluate_on=settings.evaluate_on,
        jacobian=settings.jacobian,
        normalize=settings.normalize,
    )


def _mean_influence(classifier, G, x_norm: np.ndarray, labels: np.ndarray, device) -> dict:
    """Mean sample influence G·∇φℓ of the final samples, by class and overall."""
    xs, ys = torch.as_tensor(x_norm, device=device), torch.as_tensor(labels, device=device)
    s = sample_influence(classifier, G, xs, ys).cpu().numpy()
    influence = {str(c): float(s[labels == c].mean()) for c in (0, 1) if (labels == c).any()}
    return {**influence, "all": float(s.mean())}


def _settings_record(method: str, settings: GenerationSettings, source: str) -> dict[str, Any]:
    kind, scale_key = METHODS[method]
    return {
        "method": method,
        "sampler": settings.sampler,
        "steps": settings.steps,
        "eta": settings.eta,
        "scale": None if scale_key is None else getattr(settings, scale_key),
        "guidance_source": source if kind == "tardiff" else None,
        "jacobian": settings.jacobian if kind == "tardiff" else None,
        "evaluate_on": settings.evaluate_on if kind else None,
        "normalize": settings.normalize if kind else None,
        "batch_size": settings.batch_size,
    }


def run_generation_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    diffusion: str | Path,
    classifier: str | Path,
    influence: str | Path,
    task: str,
    method: str,
    seed: int,
    out: SyntheticFiles,
    settings: GenerationSettings,
    device: str = "auto",
    mem_mb: float | None = None,
) -> dict[str, Any]:
    """Generate with ``method`` and write ``out`` (see the module docstring)."""
    check_memory(prepare_memory_mb(timeseries), mem_mb, "generation (data)")
    torch_device = pick_device(device)
    seed_everything(seed)
    prepared = prepare(stays, timeseries, task)
    model, schedule, dckpt = load_diffusion(diffusion, torch_device)
    transform = Transform.from_state_dict(dckpt["extra"]["transform"])
    _check_transform(transform, prepared.transform, f"cohort {stays}")
    clf, cckpt = load_classifier(classifier, torch_device)
    _check_transform(transform, checkpoint_transform(cckpt), str(classifier))
    inf = load_influence(influence, clf)
    G = inf["G"].to(torch_device)

    labels = sample_labels(prepared.y["train"], settings.n_samples, seed)
    with measured() as watch:
        x_norm, diagnostics = generate(
            model, schedule, labels, prepared.seq_len, len(prepared.features),
            batch_size=settings.batch_size, sampler=settings.sampler, steps=settings.steps,
            eta=settings.eta, guidance=_guidance(method, clf, G, settings), seed=seed,
            device=torch_device, progress=True,
        )  # fmt: skip
    mean_influence = _mean_influence(clf, G, x_norm, labels, torch_device)
    frame = to_timeseries_frame(transform.inverse(x_norm), labels, prepared.features, task)
    write_parquet(frame, out.samples)
    diag = pd.DataFrame(diagnostics)
    diag["ratio"] = diag["shift_rms"] / diag["sigma"]
    write_csv(diag, out.diagnostics)
    info = {
        **_settings_record(method, settings, inf["source"]),
        "task": task,
        "seed": seed,
        "n_samples": len(labels),
        "n_per_class": {str(c): int((labels == c).sum()) for c in (0, 1)},
        "wall_s": watch.wall_s,
        "samples_per_s": len(labels) / watch.wall_s if watch.wall_s > 0 else None,
        "peak_rss_mb": watch.peak_rss_mb,
        "mean_sample_influence": mean_influence,
        "mean_shift_ratio": float(diag["ratio"].mean()) if len(diag) else 0.0,
        "device": str(torch_device),
    }
    write_json(info, out.settings)
    log.info("generated %d samples with %s in %.1f s", len(labels), method, watch.wall_s)
    return info
