"""The second evaluator: gradient-boosted trees (LightGBM) on per-stay summary features.

Clinical benchmarks (YAIB) put LightGBM on summary statistics within about one AUROC point of a
GRU on the same task; a gain that shows for one small GRU only is not one a clinician gets.

- **Features** (:func:`summary_features`): per variable of the normalised, imputed grid the
  evaluation models see: last value, mean, minimum, maximum, SD and least-squares slope over the
  window (6 × C columns). Synthetic series carry no missingness mask, so the observed share is
  left out: it would tell real from synthetic rows instead of the outcome.
- **Models** (:func:`train_trees`): one booster per evaluation model, trained on exactly that
  model's rows of the pool (repeats allowed) with its class weights as sample weights, a fixed
  recipe (``evaluation.trees``: rounds, learning rate, leaves, minimum leaf size; no early
  stopping), seeded with the model's seed, deterministic on a fixed thread count.
- **Scores** are raw margins (log-odds), like the GRU's logits, so thresholds and the shared
  bootstrap of :mod:`tardiff.evaluate.downstream.resampling` apply unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import lightgbm as lgb
import numpy as np

from tardiff.runtime import progress
from tardiff.settings import TreeSettings

log = logging.getLogger(__name__)

#: the per-variable statistics of :func:`summary_features`, in column order
STATISTICS = ("last", "mean", "min", "max", "sd", "slope")


def summary_features(x: np.ndarray) -> np.ndarray:
    """(N, 6·C) float32 summary of series ``x`` (N, T, C): ``STATISTICS`` per variable,
    variable-major (all statistics of variable 0 first)."""
    if x.ndim != 3 or not x.shape[1]:
        raise ValueError(f"series must be (N, T, C) with T >= 1, got {x.shape}")
    x = np.asarray(x, np.float64)
    t = np.arange(x.shape[1], dtype=np.float64)
    t_centred = t - t.mean()
    denom = float(t_centred @ t_centred) or 1.0
    slope = np.einsum("t,ntc->nc", t_centred, x) / denom
    stats = (x[:, -1], x.mean(1), x.min(1), x.max(1), x.std(1), slope)
    return np.stack(stats, axis=2).reshape(len(x), -1).astype(np.float32)


def _params(settings: TreeSettings, seed: int, threads: int) -> dict:
    return {
        "objective": "binary",
        "learning_rate": settings.learning_rate,
        "num_leaves": settings.num_leaves,
        "min_child_samples": settings.min_child_samples,
        "seed": seed,
        "num_threads": threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }


def train_trees(
    features: np.ndarray,
    y: np.ndarray,
    members: Sequence[np.ndarray],
    seeds: Sequence[int],
    class_weights: Sequence[tuple[float, float]],
    settings: TreeSettings,
    threads: int = 1,
) -> list[lgb.Booster]:
    """One booster per model k on the pool rows ``members[k]`` (module docstring)."""
    if not (len(members) == len(seeds) == len(class_weights)):
        raise ValueError("need one seed and one class-weight pair per model")
    y = np.asarray(y, np.float64)
    boosters = []
    for rows, seed, (w0, w1) in progress(
        zip(members, seeds, class_weights, strict=True), len(members), "trees", "model"
    ):
        labels = y[rows]
        data = lgb.Dataset(features[rows], labels, weight=np.where(labels == 1, w1, w0),
                           free_raw_data=True)  # fmt: skip
        boosters.append(lgb.train(_params(settings, seed, threads), data, settings.rounds))
    log.info("trained %d LightGBM evaluators (%d rounds each)", len(boosters), settings.rounds)
    return boosters


def predict_trees(boosters: Sequence[lgb.Booster], features: np.ndarray) -> np.ndarray:
    """Float64 margins (K, len(features)) of every booster, model order."""
    return np.stack([b.predict(features, raw_score=True) for b in boosters]).astype(np.float64)
