"""The external test population, read for the final evaluation only.

A dataset's external population (``datasets.<name>.external``: the demo's independently
simulated stays, or another database) is extracted like the dataset itself with every stay in
the ``test`` split. The evaluation maps it into the transform fitted on the dataset's own train
split, so every evaluation model sees it exactly as it sees the internal test split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tardiff.data import Prepared, load_cohort, prepare_memory_mb
from tardiff.runtime import check_memory


def load_external(
    stays: str | Path, timeseries: str | Path, prepared: Prepared, mem_mb: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised, imputed series (N, T, C) and labels of an external population, through
    ``prepared``'s transform; ValueError naming the file if it does not fit the dataset."""
    check_memory(prepare_memory_mb(timeseries), mem_mb, "evaluation (external population)")
    cohort = load_cohort(stays, timeseries, prepared.task)
    if cohort.features != prepared.features or cohort.seq_len != prepared.seq_len:
        raise ValueError(
            f"{timeseries}: features {cohort.features} x {cohort.seq_len} steps, but the dataset "
            f"has {prepared.features} x {prepared.seq_len}"
        )
    if not (cohort.stays["split"] == "test").all():
        raise ValueError(f"{stays}: every stay of an external population must be a test stay")
    y = cohort.stays[prepared.task].to_numpy(np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"{stays}: task {prepared.task} has only one class")
    return prepared.transform.transform(cohort.x)[0], y
