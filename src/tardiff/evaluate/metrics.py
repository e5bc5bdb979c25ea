"""Utility metrics on the real test split, bootstrap intervals and paired differences.

- :func:`scores`: AUROC, AUPRC (average precision) and the minority-class F1 at a given
  threshold; :func:`f1_threshold` picks that threshold on validation data (the ``select`` part),
  never on test.
- :func:`metric_interval`: a 95 % bootstrap interval over test stays, resampled *stratified by
  label* (positives and negatives separately, each with replacement), so no resample lacks a class
  and AUROC/AUPRC stay defined however few positives the test split has.
- :func:`paired_difference`: Δ = metric(A) − metric(B) of two arms scored on the same test stays
  in each seed. The interval comes from a hierarchical bootstrap: every resample draws the seeds
  with replacement and the test stays (stratified, as above), and averages Δ over the drawn seeds
  on the drawn stays, so both the seed-to-seed and the test-sample variation enter it. Where it
  contains 0 the verdict is "no detectable difference".

All resampling goes through ``scipy.stats.bootstrap`` (independent samples: seeds, positive stays,
negative stays) with a seeded generator, so the same inputs give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

NO_DIFFERENCE = "no detectable difference"


def minority_label(y: np.ndarray) -> int:
    """The rarer label (1 on a tie), whose F1 is reported."""
    return int((y == 1).sum() <= (y == 0).sum())


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


def _minority_f1(y: np.ndarray, score: np.ndarray, threshold: float) -> float:
    minority = minority_label(y)
    predicted = score >= threshold if minority == 1 else score <= threshold
    return float(f1_score(y == minority, predicted, zero_division=0.0))


#: metric name -> f(y, score, threshold); the threshold only matters for F1
METRIC_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray, float], float]] = {
    "auroc": lambda y, s, _: float(roc_auc_score(y, s)),
    "auprc": lambda y, s, _: float(average_precision_score(y, s)),
    "f1": _minority_f1,
}


def scores(y: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """AUROC, AUPRC (average precision) and minority-class F1 at ``threshold``."""
    return {name: fn(y, score, threshold) for name, fn in METRIC_FUNCTIONS.items()}


def _metric(name: str, threshold: float) -> Callable[[np.ndarray, np.ndarray], float]:
    fn = METRIC_FUNCTIONS[name]
    return lambda y, s: fn(y, s, threshold)


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


def _strata(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    """``metric`` of one arm on the test stays with a stratified bootstrap interval."""
    fn = _metric(metric, threshold)
    pos, neg = _strata(y)

    def statistic(p, n):
        rows = np.concatenate([p, n])
        return fn(y[rows], score[rows])

    result = stats.bootstrap(
        (pos, neg), statistic, vectorized=False, n_resamples=n_resamples, method=method,
        confidence_level=0.95, rng=np.random.default_rng(seed),
    )  # fmt: skip
    ci = result.confidence_interval
    return Interval(fn(y, score), float(ci.low), float(ci.high))


@dataclass(frozen=True)
class PairedDifference:
    """Mean Δ over seeds with its interval, the per-seed Δ and the share of seeds with Δ > 0."""

    interval: Interval
    per_seed: tuple[float, ...]

    @property
    def share_positive(self) -> float:
        return float(np.mean(np.asarray(self.per_seed) > 0))


def paired_difference(
    y: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
    metric: str,
    thresholds: tuple[np.ndarray, np.ndarray],
    seed: int,
    n_resamples: int = 1000,
    method: str = "percentile",
) -> PairedDifference:
    """Δ = metric(A) − metric(B) on the same test stays, per seed and pooled (module docstring).

    ``score_a``/``score_b`` are (seeds, stays); ``thresholds`` the F1 thresholds of A and B per
    seed (chosen on validation). The interval defaults to percentiles: with a handful of seeds
    BCa's jackknife over seeds is unstable.
    """
    score_a, score_b = np.atleast_2d(score_a), np.atleast_2d(score_b)
    if score_a.shape != score_b.shape or score_a.shape[1] != len(y):
        raise ValueError(f"scores must be (seeds, {len(y)}), got {score_a.shape}, {score_b.shape}")
    fa = [_metric(metric, float(t)) for t in thresholds[0]]
    fb = [_metric(metric, float(t)) for t in thresholds[1]]

    def delta(k: int, rows: np.ndarray) -> float:
        return fa[k](y[rows], score_a[k, rows]) - fb[k](y[rows], score_b[k, rows])

    every = np.arange(len(y))
    per_seed = tuple(delta(k, every) for k in range(len(score_a)))
    pos, neg = _strata(y)

    def statistic(*samples):
        *seeds, p, n = samples  # one seed: nothing to resample between seeds
        rows = np.concatenate([p, n])
        return float(np.mean([delta(int(k), rows) for k in (seeds[0] if seeds else [0])]))

    data = (pos, neg) if len(score_a) == 1 else (np.arange(len(score_a)), pos, neg)
    result = stats.bootstrap(
        data, statistic, vectorized=False, n_resamples=n_resamples, method=method,
        confidence_level=0.95, rng=np.random.default_rng(seed),
    )  # fmt: skip
    ci = result.confidence_interval
    return PairedDifference(Interval(float(np.mean(per_seed)), ci.low, ci.high), per_seed)
