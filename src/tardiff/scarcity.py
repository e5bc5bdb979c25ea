"""Data-scarcity study: a copy of a cohort whose train split keeps a share of its stays.

The kept train stays are a seeded random subsample stratified by the labels of the studied tasks
(every combination of their labels keeps ``round(fraction · n)`` stays, at least one), so the
class ratios stay those of the full train split. Validation and test stays are unchanged, so
every fraction is scored on the same test stays. The model stages then run unchanged on the copy
(``results/<dataset>-train<fraction>/``): the transform, guidance classifier, G and diffusion
model are all refitted on the reduced train split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.io import read_parquet, write_json, write_parquet
from tardiff.layout import CohortFiles

log = logging.getLogger(__name__)


def kept_train_stays(stays: pd.DataFrame, fraction: float, tasks: list[str], seed: int) -> pd.Index:
    """Row labels of the train stays kept: a stratified, seeded ``fraction`` of each stratum."""
    missing = [t for t in tasks if t not in stays.columns]
    if missing:
        raise ValueError(f"stays table: missing task columns {missing}")
    train = stays[stays["split"] == "train"]
    rng = np.random.default_rng([seed, round(fraction * 1e6)])
    kept = []
    for _, group in train.groupby(tasks, sort=True):
        n = max(1, int(round(fraction * len(group))))
        kept.append(group.index[np.sort(rng.choice(len(group), n, replace=False))])
    return pd.Index(np.concatenate(kept)) if kept else pd.Index([])


def run_scarcity_cohort_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    out: CohortFiles,
    fraction: float,
    tasks: list[str],
    seed: int,
) -> dict:
    """Write the cohort ``stays``/``timeseries`` with ``fraction`` of its train stays (module
    docstring)."""
    table = read_parquet(stays)
    keep = table["split"] != "train"
    keep[kept_train_stays(table, fraction, tasks, seed)] = True
    kept_stays = table[keep].reset_index(drop=True)
    series = read_parquet(timeseries)
    kept_series = series[series["stay_id"].isin(kept_stays["stay_id"])].reset_index(drop=True)
    write_parquet(kept_stays, out.stays)
    write_parquet(kept_series, out.timeseries)
    train = kept_stays[kept_stays["split"] == "train"]
    summary = {
        "source": str(stays),
        "fraction": fraction,
        "stratified_by": tasks,
        "seed": seed,
        "n_stays": len(kept_stays),
        "n_train": len(train),
        "n_train_full": int((table["split"] == "train").sum()),
        "train_positives": {t: int(train[t].sum()) for t in tasks},
    }
    write_json(summary, out.summary)
    log.info(
        "kept %d of %d train stays (fraction %g)", len(train), summary["n_train_full"], fraction
    )
    return summary
