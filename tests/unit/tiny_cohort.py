"""A tiny synthetic cohort in the extraction contract's format, for unit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.io import write_parquet
from tardiff.layout import CohortFiles

FEATURES = ["hr", "sbp", "spo2"]


def write_cohort(
    cohort_dir: str | Path,
    n: int = 80,
    seq_len: int = 6,
    seed: int = 0,
    missing: float = 0.3,
    effect: float = 25.0,
) -> CohortFiles:
    """Write stays/timeseries parquet files into ``cohort_dir``; return their paths (the summary
    is not written). Label 1 stays have ``effect`` more heart rate."""
    rng = np.random.default_rng(seed)
    stay_id = np.arange(1000, 1000 + n, dtype=np.int64)
    y = (np.arange(n) % 4 == 0).astype(np.int8)  # 25 % positives, every split gets both
    split = np.array(["train", "train", "train", "train", "train", "val", "val", "test"] * n)[:n]
    rng.shuffle(split)
    val_idx = np.flatnonzero(split == "val")
    val_part = np.full(n, None, dtype=object)
    val_part[val_idx] = np.where(np.arange(len(val_idx)) % 2 == 0, "guide", "select")
    stays = pd.DataFrame(
        {
            "stay_id": stay_id,
            "subject_id": stay_id + 10,
            "split": split,
            "val_part": val_part,
            "mortality": y,
            "age": rng.uniform(20, 90, n).astype(np.float32),
            "sex": np.where(rng.random(n) < 0.5, "F", "M"),
        }
    )
    base = np.array([80.0, 120.0, 96.0])
    scale = np.array([10.0, 15.0, 2.0])
    x = base + scale * rng.standard_normal((n, seq_len, len(FEATURES)))
    x[:, :, 0] += effect * y[:, None]
    x[rng.random(x.shape) < missing] = np.nan
    ts = pd.DataFrame(
        {
            "stay_id": np.repeat(stay_id, seq_len),
            "step": np.tile(np.arange(seq_len, dtype=np.int64), n),
        }
    )
    for j, name in enumerate(FEATURES):
        ts[name] = x[:, :, j].reshape(-1).astype(np.float32)
    files = CohortFiles.in_dir(cohort_dir)
    write_parquet(stays, files.stays)
    write_parquet(ts, files.timeseries)
    return files
