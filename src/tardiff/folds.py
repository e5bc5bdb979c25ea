"""Cross-validation: a copy of a cohort per fold of a repeated, stratified k-fold split.

With ``split.folds: k`` every dataset without an external test population is also evaluated by
cross-validation (``split.repeats`` times). Subjects, labelled positive where any of their stays
is positive for the first task (as in extraction's own split), are shuffled per label stratum with
a seeded generator of their own per repeat and cut into k nearly equal parts. Fold f of repeat r
(``results/<dataset>-cv<r>.<f>/``) is the whole cohort with new split columns: the subjects of
part f are its test split; the others are split into train and val at the config's ratio
``train : val`` (stratified, subject-level), and val into guide and select as extraction does.
Every subject is a test subject in exactly one fold of each repeat. The model stages then run
unchanged on each copy, and :mod:`tardiff.evaluate.downstream.folds` pools the folds' paired
differences.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.extract.cohort import split_groups, with_subject_splits
from tardiff.io import atomic_path, read_parquet, write_json, write_parquet
from tardiff.layout import CohortFiles
from tardiff.settings import SplitSettings

log = logging.getLogger(__name__)

_FOLDS, _TRAIN_VAL, _GUIDE = 2, 3, 4  # seed-sequence keys of the three draws


def fold_parts(labels: pd.Series, folds: int, repeat: int, seed: int) -> pd.Series:
    """Fold (0 .. folds - 1) of each subject (``labels``: one label per subject), stratified by
    label and seeded by ``seed`` and ``repeat``."""
    rng = np.random.default_rng([seed, _FOLDS, repeat])
    part = split_groups(labels.to_numpy(), [1 / folds] * folds, rng)
    return pd.Series(part, index=labels.index)


def fold_splits(
    stays: pd.DataFrame, task: str, split: SplitSettings, repeat: int, fold: int, seed: int
) -> pd.DataFrame:
    """``stays`` with the ``split`` / ``val_part`` columns of fold ``fold`` (1-based) of repeat
    ``repeat`` (module docstring)."""
    if split.folds < 2 or not 1 <= fold <= split.folds:
        raise ValueError(f"fold {fold} of split.folds = {split.folds}")
    subjects = stays.groupby("subject_id", sort=True)[task].max()
    if subjects.value_counts().min() < split.folds:
        raise ValueError(
            f"task {task!r}: {subjects.value_counts().min()} subjects of the rarer class cannot "
            f"fill split.folds = {split.folds} folds (lower split.folds)"
        )
    test = fold_parts(subjects, split.folds, repeat, seed) == fold - 1
    rest = subjects[~test]
    rng = np.random.default_rng([seed, _TRAIN_VAL, repeat, fold])
    share = split.train / (split.train + split.val)
    train = split_groups(rest.to_numpy(), [share, 1 - share], rng) == 0
    names = pd.Series("test", index=subjects.index, dtype=object)
    names[rest.index] = np.where(train, "train", "val")
    rng = np.random.default_rng([seed, _GUIDE, repeat, fold])
    return with_subject_splits(stays, names, subjects, split.guide_fraction, rng)


def run_fold_cohort_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    out: CohortFiles,
    task: str,
    split: SplitSettings,
    repeat: int,
    fold: int,
    seed: int,
) -> dict:
    """Write the cohort ``stays``/``timeseries`` with the splits of one fold (module docstring)."""
    table = fold_splits(read_parquet(stays), task, split, repeat, fold, seed)
    for name in ("train", "val", "test"):
        part = table[table["split"] == name]
        if part[task].nunique() < 2:
            raise ValueError(
                f"{stays}: fold {repeat}.{fold} has a {name} split without both classes of "
                f"{task!r} ({len(part)} stays; lower split.folds)"
            )
    write_parquet(table, out.stays)
    with atomic_path(out.timeseries) as tmp:  # the same series: a byte copy
        shutil.copyfile(timeseries, tmp)
    sizes = table["split"].value_counts().sort_index()
    summary = {
        "source": str(stays),
        "repeat": repeat,
        "fold": fold,
        "folds": split.folds,
        "stratified_by": task,
        "seed": seed,
        "split_sizes": {k: int(v) for k, v in sizes.items()},
        "positives": {k: int(v) for k, v in table.groupby("split")[task].sum().items()},
    }
    write_json(summary, out.summary)
    log.info("fold %d.%d of %s: %s stays by split", repeat, fold, stays, summary["split_sizes"])
    return summary
