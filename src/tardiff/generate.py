"""Generation stage: sample synthetic series with one method and write them in the cohort schema.

Methods (``METHODS``): ``conditional`` (label-conditional diffusion, no guidance, scale 0),
``tardiff`` (influence guidance) and ``classifier_guidance`` (∇x log p(y|x)), each at one scale
of its grid ``generation.scales``; see :mod:`tardiff.guidance.terms`.

Labels: ``generation.n_samples`` (default: the size of the real train split) with the train
class ratio; with the default the class counts equal the train counts exactly. When
minority-only augmentation asks for more minority samples than that (``minority_multiple`` times
the real minority count), the minority class is topped up to it. Labels are shuffled with the
run's seed so every mini-batch mixes classes.

Outputs per seed: ``seed{seed}.parquet`` (cohort timeseries schema in physical units plus the
label column named after the task), ``seed{seed}.json`` (settings, counts, cost, mean sample
influence G·∇φℓ of the final samples by class) and
``seed{seed}_diagnostics.csv`` (per batch and step: t, sigma, shift_rms, shift_rms / sigma).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tardiff.data import (
    Transform,
    prepare,
    prepare_memory_mb,
    sample_labels,
    to_timeseries_frame,
)
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

#: method -> guidance kind (None = unguided); the schema's method names
METHODS: dict[str, str | None] = {
    "conditional": None,
    "tardiff": "tardiff",
    "classifier_guidance": "classifier",
}


def _check_transform(expected: Transform, other: Transform, what: str) -> None:
    if other != expected:
        raise ValueError(f"{what}: data transform differs from the diffusion model's")


def _guidance(
    method: str, classifier, G, settings: GenerationSettings, scale: float
) -> Guidance | None:
    """The sampler hook of ``method`` at ``scale`` (None for unguided sampling)."""
    kind = METHODS[method]
    if kind is None:
        if scale != 0:
            raise ValueError(f"method {method} is unguided: its scale must be 0, got {scale}")
        return None
    return Guidance(
        kind,
        classifier,
        G if kind == "tardiff" else None,
        scale=scale,
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


def _settings_record(
    method: str, settings: GenerationSettings, source: str, scale: float
) -> dict[str, Any]:
    kind = METHODS[method]
    return {
        "method": method,
        "sampler": settings.sampler,
        "steps": settings.steps,
        "eta": settings.eta,
        "scale": scale,
        "guidance_source": source if kind == "tardiff" else None,
        "jacobian": settings.jacobian if kind == "tardiff" else None,
        "evaluate_on": settings.evaluate_on if kind else None,
        "normalize": settings.normalize if kind else None,
        "batch_size": settings.batch_size,
    }


def _load(stays, timeseries, task, diffusion, classifier, influence, device):
    """The train split, the diffusion model, the classifier and G, their transforms checked."""
    prepared = prepare(stays, timeseries, task, splits=("train",))
    model, schedule, dckpt = load_diffusion(diffusion, device)
    transform = Transform.from_state_dict(dckpt["extra"]["transform"])
    _check_transform(transform, prepared.transform, f"cohort {stays}")
    clf, cckpt = load_classifier(classifier, device)
    _check_transform(transform, checkpoint_transform(cckpt), str(classifier))
    inf = load_influence(influence, clf)
    return prepared, model, schedule, clf, inf["G"].to(device), inf["source"]


def run_generation_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    diffusion: str | Path,
    classifier: str | Path,
    influence: str | Path,
    task: str,
    method: str,
    scale: float,
    seeds: Sequence[int],
    outs: Sequence[SyntheticFiles],
    settings: GenerationSettings,
    minority_multiple: float = 1.0,
    device: str = "auto",
    mem_mb: float | None = None,
) -> list[dict[str, Any]]:
    """Generate with ``method`` at guidance ``scale`` once per seed and write ``outs`` (one per
    seed); the data and models are loaded once (module docstring)."""
    if len(seeds) != len(outs):
        raise ValueError(f"{len(seeds)} seeds but {len(outs)} output sets")
    check_memory(prepare_memory_mb(timeseries), mem_mb, "generation (data)")
    torch_device = pick_device(device)
    loaded = _load(stays, timeseries, task, diffusion, classifier, influence, torch_device)
    prepared, model, schedule, clf, G, source = loaded
    guidance = _guidance(method, clf, G, settings, scale)
    record = {**_settings_record(method, settings, source, scale), "task": task}
    infos = []
    for seed, out in zip(seeds, outs, strict=True):
        seed_everything(seed)
        labels = sample_labels(prepared.y["train"], settings.n_samples, seed, minority_multiple)
        with measured() as watch:
            x_norm, diagnostics = generate(
                model, schedule, labels, prepared.seq_len, len(prepared.features),
                batch_size=settings.batch_size, sampler=settings.sampler, steps=settings.steps,
                eta=settings.eta, guidance=guidance, seed=seed, device=torch_device,
                progress=True,
            )  # fmt: skip
        x_phys = prepared.transform.inverse(x_norm)
        write_parquet(to_timeseries_frame(x_phys, labels, prepared.features, task), out.samples)
        diag = pd.DataFrame(diagnostics)
        diag["ratio"] = diag["shift_rms"] / diag["sigma"]
        write_csv(diag, out.diagnostics)
        info = {
            **record,
            "seed": seed,
            "n_samples": len(labels),
            "n_per_class": {str(c): int((labels == c).sum()) for c in (0, 1)},
            "wall_s": watch.wall_s,
            "samples_per_s": len(labels) / watch.wall_s if watch.wall_s > 0 else None,
            "peak_rss_mb": watch.peak_rss_mb,
            "mean_sample_influence": _mean_influence(clf, G, x_norm, labels, torch_device),
            "mean_shift_ratio": float(diag["ratio"].mean()) if len(diag) else 0.0,
            "device": str(torch_device),
        }
        write_json(info, out.settings)
        log.info("seed %d: %d samples with %s in %.1f s", seed, len(labels), method, watch.wall_s)
        infos.append(info)
    return infos
