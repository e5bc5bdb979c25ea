"""Generation stage: sample synthetic series with one method and write them in the cohort schema.

Methods (:data:`tardiff.methods.METHODS`): ``conditional`` (label-conditional diffusion, no
guidance, scale 0), ``tardiff`` (influence guidance) and ``classifier_guidance`` (∇x log p(y|x)),
each at one scale of its grid ``generation.scales`` (see :mod:`tardiff.guidance.terms`),
``cfg`` (classifier-free guidance, ε̂ = (1+s) ε̂(x, y) - s ε̂(x, ∅) on the model output, scale s
from ``generation.scales.cfg``; s = 0 is conditional sampling exactly) and ``influence_filter``
(no scale: ``generation.filter_factor`` k times the conditional samples of each class, the
sample influence s = G·∇φℓ of each, and per class the top ones kept, ties to the earlier draw).

Labels: ``generation.n_samples`` (default: the size of the real train split) with the train
class ratio; with the default the class counts equal the train counts exactly. When
minority-only augmentation asks for more minority samples than that (``minority_multiple`` times
the real minority count), the minority class is topped up to it. Labels are shuffled with the
run's seed so every mini-batch mixes classes.

``generation.normalize`` ``reference``/``capped`` scale the guidance by its RMS on a reference
batch: up to 512 real training samples drawn (fixed seed) at the class ratio of the labels.
``generation.clip_x0`` bounds x̂0 and the samples. A non-finite value stops the run with a
``FloatingPointError`` naming the method, batch and step; nothing of that seed is written.

Outputs per seed: ``seed{seed}.parquet`` (cohort timeseries schema in physical units plus the
label column named after the task), ``seed{seed}.json`` (settings, reverse steps actually taken
``grid_steps``, counts, cost, mean sample influence G·∇φℓ of the final samples by class) and
``seed{seed}_diagnostics.csv`` (per batch and step: t, sigma, shift_rms, ratio = shift_rms /
sigma, x0_rms, mean_move = the RMS move of the step mean caused by guidance, mean_move_ratio =
mean_move / sigma).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
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
from tardiff.diffusion.steppers import STEPPERS
from tardiff.diffusion.train import load_diffusion
from tardiff.guidance.hook import REFERENCE_SCALED, Guidance
from tardiff.guidance.influence import load_influence
from tardiff.guidance.per_sample import Loss, loss_for
from tardiff.guidance.terms import sample_influence
from tardiff.io import write_csv, write_json, write_parquet
from tardiff.layout import SyntheticFiles
from tardiff.methods import GRADIENT_KINDS, METHODS
from tardiff.models.train_classifier import checkpoint_transform, load_classifier, predict_logits
from tardiff.runtime import check_memory, measured, pick_device, seed_everything
from tardiff.settings import GenerationSettings

log = logging.getLogger(__name__)

#: real training samples of the reference batch (``normalize`` reference / capped)
REFERENCE_SIZE = 512
#: seed of the labels whose class ratio the reference batch takes (the first evaluation seed's):
#: the same batch whichever seeds a job draws
REFERENCE_SEED = 0


def _check_transform(expected: Transform, other: Transform, what: str) -> None:
    if other != expected:
        raise ValueError(f"{what}: data transform differs from the diffusion model's")


def reference_batch(
    x_train: np.ndarray, y_train: np.ndarray, labels: np.ndarray, size: int = REFERENCE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``size`` real training samples at the class ratio of ``labels`` (a class short of
    real samples gives all it has), drawn with a fixed seed so every job of a run gets the same
    batch, in train order."""
    rng = np.random.default_rng(0)
    n = min(size, len(y_train))
    n_pos = int(round(n * float(np.mean(labels))))
    rows = []
    for c, k in ((0, n - n_pos), (1, n_pos)):
        pool = np.flatnonzero(y_train == c)
        rows.append(rng.choice(pool, size=min(k, len(pool)), replace=False))
    rows = np.sort(np.concatenate(rows))
    return x_train[rows], y_train[rows]


def _guidance(
    method: str,
    classifier,
    G,
    settings: GenerationSettings,
    scale: float,
    reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    loss: Loss | None = None,
) -> Guidance | None:
    """The classifier-gradient hook of ``method`` at ``scale`` (None for the other methods)."""
    kind = METHODS[method]
    if kind is None and scale != 0:
        raise ValueError(f"method {method} is unguided: its scale must be 0, got {scale}")
    if kind not in GRADIENT_KINDS:
        return None
    return Guidance(
        kind,
        classifier,
        G if kind == "tardiff" else None,
        scale=scale,
        evaluate_on=settings.evaluate_on,
        jacobian=settings.jacobian,
        normalize=settings.normalize,
        fd_eps=settings.fd_eps,
        reference=reference,
        loss=loss if kind == "tardiff" and loss is not None else loss_for(None),
        preserve=settings.preserve,
    )


def _influence(run: _Run, x_norm: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
    """Sample influence G·∇φℓ of every sample (G's loss); non-finite raises naming the seed."""
    xs = torch.as_tensor(x_norm, device=run.device)
    ys = torch.as_tensor(labels, device=run.device)
    try:
        return sample_influence(run.classifier, run.G, xs, ys, loss=run.loss).cpu().numpy()
    except FloatingPointError as err:
        raise FloatingPointError(f"{run.what(seed)}: {err}") from err


@torch.no_grad()
def own_label_share(classifier, x_norm: np.ndarray, labels: np.ndarray, device) -> dict:
    """Per class, the share of samples the classifier assigns to their own label (logit > 0 ↔
    1)."""
    logits = predict_logits(classifier, x_norm, device)
    agree = (logits > 0).astype(np.int64) == labels
    return {str(c): float(agree[labels == c].mean()) for c in (0, 1) if (labels == c).any()}


def _by_class(s: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean of ``s`` by class and overall."""
    influence = {str(c): float(s[labels == c].mean()) for c in (0, 1) if (labels == c).any()}
    return {**influence, "all": float(s.mean())}


def top_influence(
    scores: np.ndarray, drawn: np.ndarray, labels: np.ndarray, own: np.ndarray | None = None
) -> np.ndarray:
    """Rows of the drawn samples kept, aligned with ``labels``: for each class c the
    ``(labels == c).sum()`` highest ``scores`` among ``drawn == c`` (ties: the earlier row), in
    drawn order, at the positions of class c in ``labels``. With ``own`` (True where the
    classifier assigns a drawn sample to its own label) those samples are ranked first: a
    sample that looks like the other class is kept only when too few keep their label."""
    keep = np.empty(len(labels), np.int64)
    first = np.ones(len(drawn), bool) if own is None else own
    for c in (0, 1):
        slots, pool = np.flatnonzero(labels == c), np.flatnonzero(drawn == c)
        if len(slots) > len(pool):
            raise ValueError(f"class {c}: {len(slots)} samples needed, {len(pool)} drawn")
        order = np.lexsort((-scores[pool], ~first[pool]))  # own label first, then by score
        keep[slots] = np.sort(pool[order[: len(slots)]])
    return keep


def _settings_record(
    method: str, settings: GenerationSettings, source: str, scale: float
) -> dict[str, Any]:
    kind = METHODS[method]
    gradient = kind in GRADIENT_KINDS
    fd = kind == "tardiff" and settings.jacobian == "finite_difference"
    return {
        "method": method,
        "sampler": settings.sampler,
        "steps": settings.steps,
        "eta": settings.eta,
        "scale": scale,
        "guidance_source": source if kind == "tardiff" else None,
        "jacobian": settings.jacobian if kind == "tardiff" else None,
        "evaluate_on": settings.evaluate_on if gradient else None,
        "normalize": settings.normalize if gradient else None,
        "batch_size": settings.batch_size,
        "fd_eps": settings.fd_eps if fd else None,
        "clip_x0": settings.clip_x0,
        "guide_skip_share": settings.guide_skip_share if gradient else None,
        "shift_schedule": settings.shift_schedule if gradient else None,
        "shift_cutoff": settings.shift_cutoff if gradient else None,
        "preserve": settings.preserve if kind == "tardiff" else None,
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
    G, loss = inf["G"].to(device), loss_for(inf.get("pos_weight"))
    return prepared, model, schedule, clf, G, loss, inf["source"]


@dataclass
class _Run:
    """What every seed of one generation job shares (models, hook, settings)."""

    method: str
    scale: float
    settings: GenerationSettings
    model: Any
    schedule: Any
    classifier: Any
    G: torch.Tensor
    loss: Loss
    guidance: Guidance | None
    shape: tuple[int, int]
    device: Any

    def what(self, seed: int) -> str:
        return f"method {self.method} (scale {self.scale:g}), seed {seed}"

    def sample(self, labels: np.ndarray, seed: int) -> tuple[np.ndarray, list[dict]]:
        """Normalised samples of ``labels`` and the per-step diagnostics."""
        cfg = self.scale if METHODS[self.method] == "cfg" else 0.0
        st = self.settings
        try:
            return generate(
                self.model, self.schedule, labels, *self.shape, batch_size=st.batch_size,
                sampler=st.sampler, steps=st.steps, eta=st.eta, guidance=self.guidance,
                seed=seed, device=self.device, progress=True, cfg_scale=cfg, clip_x0=st.clip_x0,
                guide_skip_share=st.guide_skip_share, shift_schedule=st.shift_schedule,
                shift_cutoff=st.shift_cutoff,
            )  # fmt: skip
        except FloatingPointError as err:
            raise FloatingPointError(f"{self.what(seed)}: {err}") from err

    def draw(self, labels: np.ndarray, seed: int):
        """Samples, diagnostics, their influence (None: not computed yet) and extra record
        fields; ``influence_filter`` draws ``filter_factor`` x ``labels`` and keeps the top."""
        if self.method != "influence_filter":
            return *self.sample(labels, seed), None, {}
        k = self.settings.filter_factor
        drawn = np.tile(labels, k)
        x, diagnostics = self.sample(drawn, seed)
        scores = _influence(self, x, drawn, seed)
        logits = predict_logits(self.classifier, x, self.device)
        keep = top_influence(scores, drawn, labels, (logits > 0).astype(np.int64) == drawn)
        extra = {"filter_factor": k, "n_drawn": len(drawn),
                 "drawn_mean_sample_influence": _by_class(scores, drawn)}  # fmt: skip
        return x[keep], diagnostics, scores[keep], extra


def _start(loaded, method, scale, settings, minority_multiple, device) -> _Run:
    """The shared state of a job; the reference batch only where ``normalize`` needs it."""
    prepared, model, schedule, clf, G, loss, _ = loaded
    reference = None
    if settings.normalize in REFERENCE_SCALED and METHODS[method] in GRADIENT_KINDS:
        y_train = prepared.y["train"]
        labels = sample_labels(y_train, settings.n_samples, REFERENCE_SEED, minority_multiple)
        x_ref, y_ref = reference_batch(prepared.x["train"], y_train, labels)
        reference = (torch.as_tensor(x_ref, device=device), torch.as_tensor(y_ref, device=device))
    try:
        guidance = _guidance(method, clf, G, settings, scale, reference, loss)
    except FloatingPointError as err:
        what = f"method {method} (scale {scale:g}), reference batch"
        raise FloatingPointError(f"{what}: {err}") from err
    shape = (prepared.seq_len, len(prepared.features))
    return _Run(method, scale, settings, model, schedule, clf, G, loss, guidance, shape, device)


def _seed_info(seed: int, labels: np.ndarray, watch, scores, diag, own_label: dict) -> dict:
    """One seed's counts, cost, mean sample influence by class and mean shift ratios."""
    return {
        "seed": seed,
        "n_samples": len(labels),
        "n_per_class": {str(c): int((labels == c).sum()) for c in (0, 1)},
        "wall_s": watch.wall_s,
        "samples_per_s": len(labels) / watch.wall_s if watch.wall_s > 0 else None,
        "peak_rss_mb": watch.peak_rss_mb,
        "mean_sample_influence": _by_class(scores, labels),
        "classifier_own_label_share": own_label,
        "mean_shift_ratio": float(diag["ratio"].mean()) if len(diag) else 0.0,
        "mean_move_ratio": float(diag["mean_move_ratio"].mean()) if len(diag) else 0.0,
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
    prepared, source = loaded[0], loaded[-1]
    run = _start(loaded, method, scale, settings, minority_multiple, torch_device)
    record = {**_settings_record(method, settings, source, scale), "task": task}
    stepper = STEPPERS[settings.sampler](run.schedule, settings.eta)
    record["grid_steps"] = len(stepper.grid(settings.steps))
    if run.guidance is not None and run.guidance.ref_scale is not None:
        record["reference_scale"] = run.guidance.ref_scale
    infos = []
    for seed, out in zip(seeds, outs, strict=True):
        seed_everything(seed)
        labels = sample_labels(prepared.y["train"], settings.n_samples, seed, minority_multiple)
        with measured() as watch:
            x_norm, diagnostics, scores, extra = run.draw(labels, seed)
        x_phys = prepared.transform.inverse(x_norm)
        write_parquet(to_timeseries_frame(x_phys, labels, prepared.features, task), out.samples)
        diag = pd.DataFrame(diagnostics)
        diag["ratio"] = diag["shift_rms"] / diag["sigma"]
        write_csv(diag, out.diagnostics)
        if scores is None:
            scores = _influence(run, x_norm, labels, seed)
        own = own_label_share(run.classifier, x_norm, labels, torch_device)
        info = {**record, **_seed_info(seed, labels, watch, scores, diag, own), **extra,
                "device": str(torch_device)}  # fmt: skip
        write_json(info, out.settings)
        log.info("seed %d: %d samples with %s in %.1f s", seed, len(labels), method, watch.wall_s)
        infos.append(info)
    return infos
