"""Fidelity and privacy stages: how plausible the evaluated synthetic sets are, and how close they
come to copying training patients.

Both stages read the draws the utility evaluation uses (each method at the scale chosen on
validation, and the ``jitter`` baseline; every evaluation seed). Each draw is reduced to its ``|real
train|`` samples at the real class ratio (the TSTR subset, :mod:`tardiff.evaluate.downstream.sets`),
so its class mix matches the data it is compared with.

- **Fidelity** (``fidelity.csv``): every draw against the real **imputed training grids** (what the
  generator was trained on), with the metrics of :mod:`tardiff.evaluate.quality.fidelity`. The row
  ``real_holdout`` compares the real test split with real train the same way: the floor a perfect
  generator would reach. The predictive score's row ``real`` is the predictor trained on real train.
  Label fidelity (``label_share_0``, ``label_share_1``) is each set's own-label share per class
  under one judge per dataset and task (:mod:`tardiff.evaluate.quality.label_fidelity`: trained on
  real train, threshold on validation ``select``, model seed from ``seed``); on ``real_holdout`` it
  is the judge's recall of each class on the test split.
- **Privacy** (``privacy.csv``): the distance metrics of :mod:`tardiff.evaluate.quality.privacy`
  with the real test split as the holdout (non-members).
- **Fig. 5** (:func:`run_samples_figure_stage`): real train vs seed 0's draw of each method.

These are final evaluations: they read the test split, and nothing is chosen from them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.data import Prepared, prepare, prepare_memory_mb
from tardiff.evaluate.downstream.sets import (
    Draw,
    class_orders,
    evaluation_draws,
    load_draw,
    ratio_counts,
    take,
)
from tardiff.evaluate.downstream.utility import require_finite
from tardiff.evaluate.quality.fidelity import (
    Summary,
    discriminative_scores,
    marginal_metrics,
    plausibility,
    predictive_score,
)
from tardiff.evaluate.quality.label_fidelity import train_judge
from tardiff.evaluate.quality.privacy import privacy_metrics
from tardiff.evaluate.reporting.samples_figure import samples_figure
from tardiff.io import read_json, write_csv
from tardiff.layout import FigureFiles
from tardiff.runtime import check_memory, pick_device, progress
from tardiff.settings import FidelitySettings, PrivacySettings
from tardiff.variables import find_variable

log = logging.getLogger(__name__)

FIDELITY_COLUMNS = [
    "dataset",
    "task",
    "method",
    "scale",
    "seed",
    "reference",
    "metric",
    "feature",
    "value",
    "lo",
    "hi",
]
PRIVACY_COLUMNS = [
    "dataset",
    "task",
    "method",
    "scale",
    "seed",
    "n_synthetic",
    "n_holdout",
    "n_members",
    "dcr_share",
    "dcr_p5_synthetic",
    "dcr_p5_holdout",
    "attack_auc",
    "attack_auc_lo",
    "attack_auc_hi",
    "near_copies",
    "near_copy_distance",
]
#: what every fidelity row is compared with
REFERENCE = "real train (imputed grids)"


def load_evaluated(
    stays: str | Path,
    timeseries: str | Path,
    selection: str | Path,
    synthetic: Sequence[str | Path],
    task: str,
    methods: tuple[str, ...],
    seeds: int,
    mem_mb: float | None = None,
    splits: tuple[str, ...] = ("train", "test"),
) -> tuple[Prepared, list[Draw]]:
    """The real ``splits`` and every evaluated draw, each reduced to ``|real train|`` samples at
    the real class ratio (normalised units)."""
    chosen = {m: v["chosen"] for m, v in read_json(selection)["methods"].items()}
    keys = evaluation_draws(methods, chosen, seeds)
    if len(keys) != len(synthetic):
        raise ValueError(f"expected {len(keys)} synthetic files, got {len(synthetic)}")
    check_memory(prepare_memory_mb(timeseries), mem_mb, "fidelity and privacy (data)")
    prepared = prepare(stays, timeseries, task, splits=splits)
    y_train = prepared.y["train"]
    draws = []
    for path, key in zip(synthetic, keys, strict=True):
        draw = load_draw(path, key, prepared.transform, task, prepared.seq_len)
        rows = take(class_orders(draw.y, key[2]), ratio_counts(y_train, 1.0), str(path))
        draws.append(Draw(key, draw.x[rows], draw.y[rows]))
    return prepared, draws


def _rows(records: list[dict], **keys) -> list[dict]:
    return [{**keys, "lo": np.nan, "hi": np.nan, "reference": REFERENCE, **r} for r in records]


def _set_rows(
    prepared: Prepared,
    x: np.ndarray,
    disc: dict[str, Summary],
    settings: FidelitySettings,
    seed: int,
) -> list[dict]:
    """Discriminative scores ``disc``, marginals, dynamics and plausibility of one set against
    train."""
    real = prepared.x["train"]
    records = [
        {"metric": name, "feature": "all", "value": s.mean, "lo": s.low, "hi": s.high}
        for name, s in disc.items()
    ]
    inverse = prepared.transform.inverse
    records += marginal_metrics(
        inverse(real),
        inverse(x),
        real,
        x,
        prepared.features,
        max_mmd_samples=settings.max_mmd_samples,
        seed=seed,
    )
    return records + plausibility(inverse(x), prepared.features)


def fidelity_table(
    prepared: Prepared,
    draws: Sequence[Draw],
    settings: FidelitySettings,
    *,
    seed: int,
    device,
    mem_mb: float | None = None,
) -> pd.DataFrame:
    """Fidelity rows of the real holdout (the floor), of a predictor trained on real train, and
    of every draw (module docstring); ``prepared`` holds train, select and test."""
    test = prepared.x["test"]
    judge = train_judge(prepared, settings.judge, seed, device, mem_mb=mem_mb)
    disc = discriminative_scores(
        prepared.x["train"], [test, *(d.x for d in draws)],
        [seed, *(seed + d.key[2] for d in draws)], settings.discriminator, settings.runs,
        device=device, mem_mb=mem_mb,
    )  # fmt: skip
    rows = _rows(
        _set_rows(prepared, test, disc[0], settings, seed)
        + judge.records(test, prepared.y["test"]),
        method="real_holdout",
        scale=np.nan,
        seed=np.nan,
    )
    mae = predictive_score(prepared.x["train"], test, settings.predictor, seed, device=device)
    rows += _rows(
        [{"metric": "pred_mae", "feature": "all", "value": mae}],
        method="real",
        scale=np.nan,
        seed=np.nan,
    )
    for i, draw in enumerate(progress(draws, len(draws), "fidelity", unit="set")):
        method, scale, k = draw.key
        records = _set_rows(prepared, draw.x, disc[i + 1], settings, seed + k)
        mae = predictive_score(draw.x, test, settings.predictor, seed + k, device=device)
        records.append({"metric": "pred_mae", "feature": "all", "value": mae})
        rows += _rows(records + judge.records(draw.x, draw.y), method=method, scale=scale, seed=k)
    return pd.DataFrame(rows)


def run_fidelity_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    selection: str | Path,
    synthetic: Sequence[str | Path],
    dataset: str,
    task: str,
    out: str | Path,
    methods: tuple[str, ...],
    seeds: int,
    settings: FidelitySettings,
    seed: int = 0,
    device: str = "auto",
    mem_mb: float | None = None,
) -> pd.DataFrame:
    """Write ``fidelity.csv`` of ``dataset``/``task`` (``synthetic``: the evaluation's draws)."""
    splits = ("train", "select", "test")  # select: the label judge's threshold
    prepared, draws = load_evaluated(
        stays, timeseries, selection, synthetic, task, methods, seeds, mem_mb, splits
    )
    budget = None if mem_mb is None else mem_mb - prepare_memory_mb(timeseries)
    table = fidelity_table(
        prepared, draws, settings, seed=seed, device=pick_device(device), mem_mb=budget
    )
    table = table.assign(dataset=dataset, task=task)[FIDELITY_COLUMNS]
    require_finite(table, ["value"], f"fidelity of {dataset}/{task}")
    write_csv(table, out)
    return table


def run_privacy_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    selection: str | Path,
    synthetic: Sequence[str | Path],
    dataset: str,
    task: str,
    out: str | Path,
    methods: tuple[str, ...],
    seeds: int,
    settings: PrivacySettings,
    seed: int = 0,
    mem_mb: float | None = None,
) -> pd.DataFrame:
    """Write ``privacy.csv`` of ``dataset``/``task``: one row per evaluated draw."""
    prepared, draws = load_evaluated(
        stays, timeseries, selection, synthetic, task, methods, seeds, mem_mb
    )
    rows = []
    for draw in progress(draws, len(draws), "privacy", unit="set"):
        method, scale, k = draw.key
        result = privacy_metrics(
            prepared.x["train"],
            prepared.x["test"],
            draw.x,
            near_copy_distance=settings.near_copy_distance,
            resamples=settings.bootstrap_resamples,
            seed=seed + k,
        )
        rows.append({"method": method, "scale": scale, "seed": k, **result})
    table = pd.DataFrame(rows).assign(
        dataset=dataset, task=task, near_copy_distance=settings.near_copy_distance
    )
    table = table[PRIVACY_COLUMNS]
    require_finite(
        table,
        ["dcr_share", "attack_auc", "attack_auc_lo", "attack_auc_hi"],
        f"privacy of {dataset}/{task}",
    )
    write_csv(table, out)
    return table


def run_samples_figure_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    selection: str | Path,
    synthetic: Sequence[str | Path],
    dataset: str,
    task: str,
    out: FigureFiles,
    methods: tuple[str, ...],
    seeds: int,
    mem_mb: float | None = None,
) -> None:
    """Fig. 5 of ``dataset``/``task``: real train vs seed 0's draw of each evaluated method."""
    prepared, draws = load_evaluated(
        stays, timeseries, selection, synthetic, task, methods, seeds, mem_mb
    )
    inverse = prepared.transform.inverse
    first = {d.key[0]: (inverse(d.x), d.y) for d in draws if d.key[2] == 0}
    units = [v.unit if (v := find_variable(f)) else "" for f in prepared.features]
    title = f"{dataset} / {task}: real train vs synthetic (seed 0), physical units"
    samples_figure(
        real=(inverse(prepared.x["train"]), prepared.y["train"]),
        draws=first,
        features=prepared.features,
        units=units,
        title=title,
        png=out.png,
        pdf=out.pdf,
    )
