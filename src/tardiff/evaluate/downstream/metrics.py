"""Utility metrics, a bootstrap interval of one score, and how a difference reads.

- :func:`scores`: AUROC, AUPRC (average precision) and the minority-class F1 at a given
  threshold; :func:`f1_threshold` picks that threshold on validation data (the ``select`` part),
  never on test.
- :func:`metric_interval`: a 95 % BCa bootstrap interval of one score (``scipy.stats.bootstrap``,
  seeded), resampled *stratified by label* (positives and negatives separately, each with
  replacement), so no resample lacks a class (the privacy attack's AUC). The utility evaluation
  scores many models on shared resamples instead (:mod:`tardiff.evaluate.downstream.resampling`).
- :attr:`Interval.verdict`: a difference whose interval contains 0 is "no detectable difference".
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import precision_recall_curve

from tardiff.data import minority_label

NO_DIFFERENCE = "no detectable difference"
#: the reading of two arms trained on the same synthetic samples: no comparison at all
SAME_SAMPLES = "same samples"


def f1_threshold(y_val: np.ndarray, score_val: np.ndarray) -> float:
    """The score threshold that maximises the minority-class F1 on validation data.

    Predicted minority where ``score >= threshold`` (scores rank the positive class; for a
    minority label 0 the score is negated).
    """
    minority = minority_label(y_val)
    s = score_val if minority == 1 else -score_val
    precision, recall, thresholds = precision_recall_curve(y_val == minority, s)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    best = int(np.argmax(f1[:-1]))  # the last point has no threshold
    return float(thresholds[best] if minority == 1 else -thresholds[best])


# The metrics below work on the last axis of (..., n) arrays, so that a whole batch of
# bootstrap resamples is scored at once; they equal scikit-learn's roc_auc_score,
# average_precision_score and f1_score (ties included; tested against them).


def auroc(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y = y.astype(bool)
    ranks = stats.rankdata(score, axis=-1)
    n_pos = y.sum(-1)
    n_neg = y.shape[-1] - n_pos
    return (np.where(y, ranks, 0.0).sum(-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def average_precision(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Average precision: the mean over positives of the precision at the end of their tie group
    of scores (scikit-learn's step-wise AUPRC)."""
    order = np.argsort(-score, axis=-1, kind="stable")
    s = np.take_along_axis(score, order, -1)
    hits = np.take_along_axis(y.astype(bool), order, -1)
    n = s.shape[-1]
    precision = np.cumsum(hits, -1) / np.arange(1, n + 1)
    last = np.ones(s.shape, bool)
    last[..., :-1] = s[..., 1:] != s[..., :-1]
    group_end = np.minimum.accumulate(np.where(last, np.arange(n), n)[..., ::-1], -1)[..., ::-1]
    at_end = np.take_along_axis(precision, group_end, -1)
    return np.where(hits, at_end, 0.0).sum(-1) / hits.sum(-1)


def minority_f1(y: np.ndarray, score: np.ndarray, threshold: float, minority: int) -> np.ndarray:
    """F1 of the ``minority`` label, predicted where the score is on its side of ``threshold``."""
    predicted = score >= threshold if minority == 1 else score <= threshold
    actual = y == minority
    tp = (predicted & actual).sum(-1)
    denominator = predicted.sum(-1) + actual.sum(-1)
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


Metric = Callable[[np.ndarray, np.ndarray], np.ndarray]
METRICS = ("auroc", "auprc", "f1")


def metric_function(name: str, threshold: float, minority: int) -> Metric:
    """``f(y, score)`` of metric ``name``; the threshold and minority label only matter for F1."""
    if name == "auroc":
        return auroc
    if name == "auprc":
        return average_precision
    return lambda y, s: minority_f1(y, s, threshold, minority)


def scores(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """AUROC, AUPRC (average precision) and minority-class F1 at ``threshold``."""
    minority = minority_label(y)
    return {m: float(metric_function(m, threshold, minority)(y, score)) for m in METRICS}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % bootstrap interval."""

    estimate: float
    low: float
    high: float

    @property
    def verdict(self) -> str:
        """For a difference: "improves", "worse" or "no detectable difference"."""
        if self.low > 0:
            return "improves"
        if self.high < 0:
            return "worse"
        return NO_DIFFERENCE


def strata(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the positive and the negative stays (at least 2 of each, or ValueError)."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if len(pos) < 2 or len(neg) < 2:
        raise ValueError(f"need at least 2 stays of each class, got {len(pos)} and {len(neg)}")
    return pos, neg


def metric_interval(
    y: np.ndarray,
    score: np.ndarray,
    metric: str,
    threshold: float,
    seed: int,
    n_resamples: int = 1000,
    method: str = "BCa",
) -> Interval:
    """``metric`` of one arm on the test stays with a stratified bootstrap interval (BCa, or
    percentiles where BCa is undefined)."""
    fn = metric_function(metric, threshold, minority_label(y))
    pos, neg = strata(y)

    def statistic(p, n, axis=-1):
        rows = np.concatenate([p, n], axis=-1)
        return fn(y[rows], score[rows])

    with warnings.catch_warnings():  # a degenerate BCa is handled below
        warnings.simplefilter("ignore", (RuntimeWarning, stats.DegenerateDataWarning))
        result = stats.bootstrap(
            (pos, neg), statistic, vectorized=True, n_resamples=n_resamples, method=method,
            confidence_level=0.95, rng=np.random.default_rng(seed),
        )  # fmt: skip
    ci = result.confidence_interval
    if method != "percentile" and not np.isfinite([ci.low, ci.high]).all():
        # BCa is undefined when the resampled statistic hardly varies (e.g. a perfect ranking)
        return metric_interval(y, score, metric, threshold, seed, n_resamples, "percentile")
    return Interval(float(fn(y, score)), float(ci.low), float(ci.high))
