"""Jitter: the non-generative augmentation baseline, so users see what diffusion buys.

Each synthetic sample copies a real training stay of the requested class, drawn with replacement
(so the set is class-stratified by construction), and perturbs its normalised, imputed grid
(the arrays the diffusion model is trained on) in two ways:

- a random **time warp**: the sample is read at positions ``t + d(t)``, where the displacement
  ``d`` is linear between four knots drawn uniformly in ``±warp·(T−1)`` steps, kept monotone and
  inside the series; values in between are linearly interpolated per feature;
- Gaussian **noise** of SD ``noise_sd`` (normalised units, i.e. a share of each feature's SD).

Labels come from :func:`tardiff.generate.sample_labels`, as for the diffusion methods, so every
method's synthetic set has the same class counts. Samples are written in physical units in the
cohort timeseries schema plus the label column, like the generation stage's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tardiff.data import prepare, prepare_memory_mb, sample_labels, to_timeseries_frame
from tardiff.io import write_json, write_parquet
from tardiff.layout import JitterFiles
from tardiff.runtime import check_memory, measured
from tardiff.settings import JitterSettings

log = logging.getLogger(__name__)
_KNOTS = 4


def time_warp(x: np.ndarray, warp: float, rng: np.random.Generator) -> np.ndarray:
    """Each (T, C) series of ``x`` (N, T, C) read at randomly displaced, monotone time points."""
    n, steps, _ = x.shape
    if steps < 2 or warp == 0:
        return x.copy()
    knots = np.linspace(0, steps - 1, _KNOTS)
    shifts = rng.uniform(-warp, warp, (n, _KNOTS)) * (steps - 1)
    grid = np.arange(steps, dtype=np.float64)
    out = np.empty_like(x)
    for i in range(n):
        where = np.clip(grid + np.interp(grid, knots, shifts[i]), 0, steps - 1)
        where = np.maximum.accumulate(where)
        low = np.floor(where).astype(int)
        high = np.minimum(low + 1, steps - 1)
        frac = (where - low)[:, None]
        out[i] = (1 - frac) * x[i, low] + frac * x[i, high]
    return out


def jitter_samples(
    x: np.ndarray, y: np.ndarray, labels: np.ndarray, settings: JitterSettings, seed: int
) -> np.ndarray:
    """Jittered copies (normalised units) of real stays ``x`` with classes ``y``, one per label."""
    rng = np.random.default_rng([seed, 7])
    rows = np.empty(len(labels), np.int64)
    for c in np.unique(labels):
        pool = np.flatnonzero(y == c)
        if not len(pool):
            raise ValueError(f"jitter: no real training stay of class {c} to resample")
        wanted = labels == c
        rows[wanted] = rng.choice(pool, size=int(wanted.sum()), replace=True)
    warped = time_warp(x[rows], settings.warp, rng)
    noise = rng.standard_normal(warped.shape) * settings.noise_sd
    return (warped + noise).astype(np.float32)


def run_jitter_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    task: str,
    seeds: Sequence[int],
    outs: Sequence[JitterFiles],
    settings: JitterSettings,
    n_samples: int | None = None,
    minority_multiple: float = 1.0,
    mem_mb: float | None = None,
) -> list[dict]:
    """Write one jittered set (module docstring) and its settings record per seed."""
    if len(seeds) != len(outs):
        raise ValueError(f"{len(seeds)} seeds but {len(outs)} output sets")
    check_memory(prepare_memory_mb(timeseries), mem_mb, "jitter (data)")
    prepared = prepare(stays, timeseries, task, splits=("train",))
    x, y = prepared.x["train"], prepared.y["train"]
    infos = []
    for seed, out in zip(seeds, outs, strict=True):
        with measured() as watch:
            labels = sample_labels(y, n_samples, seed, minority_multiple)
            x_norm = jitter_samples(x, y, labels, settings, seed)
        physical = prepared.transform.inverse(x_norm)
        write_parquet(to_timeseries_frame(physical, labels, prepared.features, task), out.samples)
        info = {
            "method": "jitter",
            **settings.to_dict(),
            "task": task,
            "seed": seed,
            "n_samples": len(labels),
            "n_per_class": {str(c): int((labels == c).sum()) for c in (0, 1)},
            "wall_s": watch.wall_s,
        }
        write_json(info, out.settings)
        log.info("seed %d: jittered %d samples in %.1f s", seed, len(labels), watch.wall_s)
        infos.append(info)
    return infos
