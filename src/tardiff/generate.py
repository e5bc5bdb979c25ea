"""Generation stage: sample synthetic series with one method and write them in the cohort schema.

Methods (``METHODS``): ``conditional`` (label-conditional diffusion, no guidance), ``tardiff``
(influence guidance, scale ``generation.scale``) and ``classifier_guidance`` (∇x log p(y|x),
scale ``generation.classifier_guidance_scale``); see :mod:`tardiff.guidance.terms`.

Labels: ``generation.n_samples`` (default: the size of the real train split) with the train
class ratio; with the default the class counts equal the train counts exactly. Labels are
shuffled with the run's seed so every mini-batch mixes classes.

Outputs per seed: ``seed{seed}.parquet`` (cohort timeseries schema in physical units plus the
label column named after the task), ``seed{seed}.json`` (settings, counts, cost, mean sample
influence G·∇φℓ of the final samples by class when a classifier and G are given) and
``seed{seed}_diagnostics.csv`` (per batch and step: t, sigma, shift_rms, shift_rms / sigma).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tardiff.data import Transform, prepare, to_timeseries_frame
from tardiff.diffusion.samplers import generate
from tardiff.diffusion.train import load_diffusion
from tardiff.guidance.influence import detached_params
from tardiff.guidance.terms import Guidance, sample_influence
from tardiff.io import load_checkpoint, write_csv, write_json, write_parquet
from tardiff.models.train_classifier import checkpoint_transform, load_classifier
from tardiff.runtime import measured, pick_device, seed_everything, setup_logging

# method -> (guidance kind or None, generation config key of its scale)
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


def output_paths(out: str | Path | dict[str, str], seed: int) -> dict[str, Path]:
    """``{parquet, json, diagnostics}`` paths: given explicitly, or named by seed in a folder."""
    if isinstance(out, dict):
        return {k: Path(out[k]) for k in ("parquet", "json", "diagnostics")}
    out = Path(out)
    return {
        "parquet": out / f"seed{seed}.parquet",
        "json": out / f"seed{seed}.json",
        "diagnostics": out / f"seed{seed}_diagnostics.csv",
    }


def load_influence(path: str | Path, classifier: torch.nn.Module) -> dict[str, Any]:
    """Load ``G.pt`` and check it belongs to ``classifier``'s parameters."""
    ckpt = load_checkpoint(path)
    params = detached_params(classifier)
    shapes = [list(p.shape) for p in params.values()]
    if ckpt["names"] != list(params) or ckpt["shapes"] != shapes:
        raise ValueError(f"{path}: G does not match the classifier's parameters")
    return ckpt


def _check_transform(expected: Transform, other: Transform, what: str) -> None:
    if other != expected:
        raise ValueError(f"{what}: data transform differs from the diffusion model's")


def run_generation_stage(
    cohort_dir: str | Path,
    task: str,
    method: str,
    seed: int,
    diffusion_path: str | Path,
    classifier_path: str | Path | None,
    influence_path: str | Path | None,
    out_dir_or_paths: str | Path | dict[str, str],
    config: dict[str, Any],
    log_file: str | None = None,
) -> dict[str, Any]:
    """Generate with ``method`` and write parquet/json/diagnostics (see module docstring)."""
    log = setup_logging(log_file)
    if method not in METHODS:
        raise ValueError(f"unknown generation method {method!r}; choose from {sorted(METHODS)}")
    gcfg = config["generation"]
    kind, scale_key = METHODS[method]
    device = pick_device(config["device"])
    paths = output_paths(out_dir_or_paths, seed)
    seed_everything(seed)

    prepared = prepare(cohort_dir, task, seed=seed)
    model, schedule, dckpt = load_diffusion(diffusion_path, device)
    transform = Transform.from_state_dict(dckpt["extra"]["transform"])
    _check_transform(transform, prepared.transform, f"cohort {cohort_dir}")
    classifier = G = guidance = source = None
    if classifier_path is not None:
        classifier, cckpt = load_classifier(classifier_path, device)
        _check_transform(transform, checkpoint_transform(cckpt), str(classifier_path))
    if influence_path is not None and classifier is not None:
        inf = load_influence(influence_path, classifier)
        G, source = inf["G"].to(device), inf["source"]
    if kind is not None:
        if classifier is None or (kind == "tardiff" and G is None):
            raise ValueError(
                f"method {method} needs a classifier and (tardiff) an influence vector"
            )
        guidance = Guidance(
            kind, classifier, G, gcfg[scale_key], gcfg["evaluate_on"], gcfg["jacobian"],
            gcfg["normalize"],
        )  # fmt: skip

    labels = sample_labels(prepared.y["train"], gcfg["n_samples"], seed)
    with measured() as watch:
        x_norm, diagnostics = generate(
            model, schedule, labels, prepared.seq_len, len(prepared.features),
            gcfg["batch_size"], gcfg["sampler"], gcfg["steps"], gcfg["eta"],
            guidance=guidance, seed=seed, device=device, progress=True, log=log,
        )  # fmt: skip
    influence = None
    if G is not None:
        xs, ys = torch.as_tensor(x_norm, device=device), torch.as_tensor(labels, device=device)
        s = sample_influence(classifier, G, xs, ys).cpu().numpy()
        influence = {str(c): float(s[labels == c].mean()) for c in (0, 1) if (labels == c).any()}
        influence["all"] = float(s.mean())

    frame = to_timeseries_frame(transform.inverse(x_norm), labels, prepared.features, task)
    write_parquet(frame, paths["parquet"])
    diag = pd.DataFrame(diagnostics)
    diag["ratio"] = diag["shift_rms"] / diag["sigma"]
    write_csv(diag, paths["diagnostics"])
    info = {
        "method": method,
        "task": task,
        "seed": seed,
        "sampler": gcfg["sampler"],
        "steps": gcfg["steps"],
        "eta": gcfg["eta"],
        "scale": None if scale_key is None else gcfg[scale_key],
        "guidance_source": source if kind == "tardiff" else None,
        "jacobian": gcfg["jacobian"] if kind == "tardiff" else None,
        "evaluate_on": gcfg["evaluate_on"] if kind else None,
        "normalize": gcfg["normalize"] if kind else None,
        "n_samples": len(labels),
        "n_per_class": {str(c): int((labels == c).sum()) for c in (0, 1)},
        "batch_size": gcfg["batch_size"],
        "wall_s": watch.seconds,
        "samples_per_s": len(labels) / watch.seconds if watch.seconds > 0 else None,
        "peak_rss_mb": watch.peak_rss_mb,
        "mean_sample_influence": influence,
        "mean_shift_ratio": float(diag["ratio"].mean()) if len(diag) else 0.0,
        "device": str(device),
    }
    write_json(info, paths["json"])
    log.info("generated %d samples with %s in %.1f s", len(labels), method, watch.seconds)
    return info
