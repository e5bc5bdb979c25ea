"""Every evaluation model's scores on the internal test stays (``predictions.parquet``).

One row per evaluator, model and test stay: the model's keys (``model``, its index in the stage;
``method``, ``protocol``, ``ratio``, ``seed``, ``scale``, ``samples``, the fingerprint of its
synthetic samples), its minority-F1 threshold (chosen on validation ``select``), the stay and its
label, and the model's score (logit). It is what the cross-validation pools across folds
(:mod:`tardiff.evaluate.downstream.folds`) and lets a user recompute any metric of the stage.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.io import read_parquet

#: the model keys of a prediction row, as in the stage's model table
MODEL_KEYS = ["model", "method", "protocol", "ratio", "seed", "scale", "samples"]
PREDICTION_COLUMNS = ["evaluator", *MODEL_KEYS, "f1_threshold", "stay_id", "label", "score"]


def predictions_table(
    models: pd.DataFrame,
    evaluator: str,
    thresholds: np.ndarray,
    stay_id: np.ndarray,
    y: np.ndarray,
    scores: np.ndarray,
) -> pd.DataFrame:
    """The rows of one evaluator: ``models`` (the stage's model table, ``model`` = row of
    ``scores``), ``scores`` (models, stays) on the stays ``stay_id`` with labels ``y``."""
    n_models, n_stays = scores.shape
    if n_models != len(models) or n_stays != len(y) or len(thresholds) != n_models:
        raise ValueError(f"scores {scores.shape} for {len(models)} models and {len(y)} stays")
    rows = models[MODEL_KEYS].iloc[np.repeat(np.arange(n_models), n_stays)]
    return rows.reset_index(drop=True).assign(
        evaluator=evaluator,
        f1_threshold=np.repeat(np.asarray(thresholds, float), n_stays),
        stay_id=np.tile(np.asarray(stay_id, np.int64), n_models),
        label=np.tile(np.asarray(y, np.int8), n_models),
        score=np.asarray(scores, np.float32).ravel(),
    )[PREDICTION_COLUMNS]


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A ``predictions.parquet`` with its columns checked (ValueError naming the file)."""
    table = read_parquet(path)
    if list(table.columns) != PREDICTION_COLUMNS:
        raise ValueError(f"{path}: columns {list(table.columns)}, expected {PREDICTION_COLUMNS}")
    return table


def model_scores(
    table: pd.DataFrame,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """One evaluator's rows back as (model table, thresholds, labels, scores (models, stays)),
    models in ``model`` order and stays in ``stay_id`` order."""
    table = table.sort_values(["model", "stay_id"], kind="stable")
    models = table.drop_duplicates("model")
    n_models = len(models)
    n_stays, remainder = divmod(len(table), n_models)
    if remainder or not (table["model"].value_counts() == n_stays).all():
        raise ValueError("predictions: every model must score the same stays")
    stays = table["stay_id"].to_numpy().reshape(n_models, n_stays)
    if not (stays == stays[0]).all():
        raise ValueError("predictions: every model must score the same stays")
    scores = table["score"].to_numpy(float).reshape(n_models, n_stays)
    labels = table["label"].to_numpy().reshape(n_models, n_stays)[0]
    return (models[MODEL_KEYS].reset_index(drop=True), models["f1_threshold"].to_numpy(float),
            labels, scores)  # fmt: skip
