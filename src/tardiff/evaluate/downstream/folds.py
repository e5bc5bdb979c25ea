"""Paired differences pooled over the folds of a cross-validation (``paired_folds.csv``).

Each fold copy of a dataset (:mod:`tardiff.folds`) ran its own evaluation stage and wrote every
model's scores on its test stays (:mod:`tardiff.evaluate.downstream.predictions`). Here each fold's
models are scored again on resamples of their own test stays (stratified, seeded per fold), and
every paired difference of :func:`~tardiff.evaluate.downstream.utility.paired_table` is pooled
over folds and seeds (:func:`~tardiff.evaluate.downstream.resampling.pooled_difference`): Δ is the
mean over folds of each fold's mean over seeds, its interval from resamples that draw stays and
seeds within every fold. Two arms are "same samples" where they are in every fold. The rows carry
``test_set`` ``fold`` and ``n_seeds`` the seeds per fold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.evaluate.downstream.predictions import model_scores, read_predictions
from tardiff.evaluate.downstream.resampling import fold_seed, score_models
from tardiff.evaluate.downstream.utility import FOLD, PAIRED_COLUMNS, paired_table, require_finite
from tardiff.io import write_csv

log = logging.getLogger(__name__)


def run_pooled_stage(
    *,
    predictions: Sequence[str | Path],
    dataset: str,
    task: str,
    out: str | Path,
    resamples: int,
    seed: int = 0,
) -> pd.DataFrame:
    """Pool the paired differences of the folds whose ``predictions`` files are given (one per
    fold, in fold order) and write them to ``out``."""
    if len(predictions) < 2:
        raise ValueError(f"{dataset}/{task}: pooling needs two folds or more ({len(predictions)})")
    tables = [read_predictions(p) for p in predictions]
    evaluators = list(dict.fromkeys(tables[0]["evaluator"]))
    pooled = []
    for evaluator in evaluators:
        folds = []
        for k, (path, table) in enumerate(zip(predictions, tables, strict=True)):
            rows = table[table["evaluator"] == evaluator]
            if rows.empty:
                raise ValueError(f"{path}: no predictions of evaluator {evaluator!r}")
            models, thresholds, y, scores = model_scores(rows)
            scored = score_models(y, scores, thresholds, resamples, fold_seed(seed, k))
            folds.append((models.assign(model=np.arange(len(models))), scored))
        pooled.append(paired_table(folds, seed).assign(test_set=FOLD, evaluator=evaluator))
        log.info("%s/%s, %s: pooled %d folds", dataset, task, evaluator, len(folds))
    table = pd.concat(pooled).assign(dataset=dataset, task=task, fraction=1.0)
    table = table[PAIRED_COLUMNS].reset_index(drop=True)
    require_finite(table, ["delta", "delta_lo", "delta_hi", "delta_se", "p_value"],
                   f"pooled folds of {dataset}/{task}")  # fmt: skip
    write_csv(table, out)
    return table
