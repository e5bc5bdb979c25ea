"""Bootstrap resamples of one test set, shared by every model scored on it.

Every evaluation model of a stage is scored on the same ``B`` resamples of the test stays, drawn
*stratified by label* (positives and negatives each with replacement, so no resample lacks a
class and AUROC/AUPRC stay defined however few positives there are):

- :func:`score_models`: each model's AUROC, AUPRC and minority-class F1 on the test set and on
  every resample; :meth:`Scored.interval` is the 95 % percentile interval over the resamples.
- :func:`paired_difference`: Δ = metric(A) − metric(B) of two arms scored on the same stays in
  each seed, pooled over seeds. Each resample also draws the seeds with replacement and averages
  the per-seed Δ of the drawn seeds on the drawn stays (a hierarchical bootstrap: the
  seed-to-seed and the test-sample variation both enter it). The interval is the 95 % percentile
  interval, ``se`` the SD of the resampled Δ, ``p_value`` (H0: Δ = 0) the normal approximation
  :func:`~tardiff.evaluate.downstream.multiplicity.normal_p_value`.
- :func:`pooled_difference`: the same over the folds of a cross-validation, each fold's arms
  scored on its own test stays: Δ is the mean over folds of each fold's mean over seeds, and each
  resample draws stays within every fold (that fold's resamples) and seeds within every fold,
  then averages over the folds.

A resample is a vector of counts (how often each stay was drawn). Metrics are running sums of the
counts along each model's score order, sorted once per class: AUROC as the Mann–Whitney statistic
with half credit for ties, AUPRC as step-wise average precision (the precision at the end of each
tie group), F1 at a fixed threshold. They equal :mod:`tardiff.evaluate.downstream.metrics` on the
explicit resample (tested) at O(B·n) per model, without a sort per resample. Resamples come in
batches of at most ``CELLS`` counts, each batch from its own seeded generator: memory stays bounded
and the same inputs give the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from tardiff.data import minority_label
from tardiff.evaluate.downstream.metrics import METRICS, Interval, scores, strata
from tardiff.evaluate.downstream.multiplicity import normal_p_value

#: most stay counts held per batch of resamples
CELLS = 2_000_000
_STAYS, _SEEDS = 17, 19  # seed-sequence keys of the two kinds of draws


def _key(seed: int | Sequence[int]) -> list[int]:
    """A seed (or a fold's seed sequence) as the start of a seed-sequence key."""
    return [seed] if isinstance(seed, int | np.integer) else list(seed)


def count_batches(
    y: np.ndarray, n_resamples: int, seed: int | Sequence[int]
) -> Iterator[np.ndarray]:
    """The stratified resamples of the stays of ``y`` as (b, n) count arrays, batch by batch."""
    classes = strata(y)
    size = max(1, min(n_resamples, CELLS // len(y)))
    for first in range(0, n_resamples, size):
        b = min(size, n_resamples - first)
        rng = np.random.default_rng([*_key(seed), _STAYS, first // size])
        counts = np.zeros((b, len(y)), np.int32)
        for stratum in classes:
            k = len(stratum)
            drawn = rng.integers(0, k, (b, k)) + k * np.arange(b)[:, None]
            counts[:, stratum] = np.bincount(drawn.ravel(), minlength=b * k).reshape(b, k)
        yield counts


def _above(values: np.ndarray, at: np.ndarray, strictly: bool) -> np.ndarray:
    """How many of ``values`` are >= (or >) each of ``at``."""
    ascending = np.sort(values)
    return len(values) - np.searchsorted(ascending, at, "right" if strictly else "left")


@dataclass(frozen=True)
class ScoreOrder:
    """One model's positives and negatives in descending score order and, for every positive,
    how many stays of each class score at least as high (ties: the whole tie group) and how
    many negatives score higher; for the F1 threshold, how many of each class lie above it."""

    pos: np.ndarray
    neg: np.ndarray
    pos_ge: np.ndarray
    neg_ge: np.ndarray
    neg_gt: np.ndarray
    pos_above: int
    neg_above: int
    minority: int

    @classmethod
    def of(cls, y: np.ndarray, score: np.ndarray, threshold: float) -> ScoreOrder:
        pos, neg = (i[np.argsort(-score[i], kind="stable")] for i in strata(y))
        s_pos, s_neg = score[pos], score[neg]
        minority = minority_label(y)
        strictly = minority == 0  # label 0 is predicted at or below the threshold
        return cls(
            pos, neg, _above(s_pos, s_pos, False), _above(s_neg, s_pos, False),
            _above(s_neg, s_pos, True), int(_above(s_pos, threshold, strictly)),
            int(_above(s_neg, threshold, strictly)), minority,
        )  # fmt: skip


def _cumulative(counts: np.ndarray) -> np.ndarray:
    """(b, k + 1) running sums of (b, k) int32 counts, from 0 (int32 throughout: several times
    faster than widening, and no sum of counts exceeds the number of stays)."""
    out = np.zeros((len(counts), counts.shape[1] + 1), np.int32)
    np.cumsum(counts, axis=1, dtype=np.int32, out=out[:, 1:])
    return out


def resampled_metrics(order: ScoreOrder, counts: np.ndarray) -> dict[str, np.ndarray]:
    """AUROC, average precision and minority F1 of every resample (row of ``counts``)."""
    c_pos = counts[:, order.pos]
    cum_pos, cum_neg = _cumulative(c_pos), _cumulative(counts[:, order.neg])
    n_pos, n_neg = cum_pos[:, -1].astype(float), cum_neg[:, -1].astype(float)
    ge, gt = cum_neg[:, order.neg_ge].astype(float), cum_neg[:, order.neg_gt]
    auroc = (c_pos * (n_neg[:, None] - 0.5 * (ge + gt))).sum(1) / (n_pos * n_neg)
    hits = cum_pos[:, order.pos_ge].astype(float)  # positives as high or higher, ties included
    auprc = (c_pos * hits / np.maximum(hits + ge, 1)).sum(1) / n_pos
    above_pos, above_neg = cum_pos[:, order.pos_above], cum_neg[:, order.neg_above]
    if order.minority == 1:  # predicted where score >= threshold
        tp, predicted, actual = above_pos, above_pos + above_neg, n_pos
    else:  # label 0 predicted where score <= threshold
        tp, actual = n_neg - above_neg, n_neg
        predicted = tp + n_pos - above_pos
    return {"auroc": auroc, "auprc": auprc, "f1": 2 * tp / np.maximum(predicted + actual, 1)}


@dataclass(frozen=True)
class Scored:
    """Every model's metrics on one test set: ``estimate`` (models, metrics) and ``resampled``
    (models, metrics, resamples), metrics in the order of ``METRICS``."""

    estimate: np.ndarray
    resampled: np.ndarray

    def interval(self, model: int, metric: str) -> Interval:
        """The metric of one model with its 95 % percentile interval."""
        j = METRICS.index(metric)
        low, high = np.percentile(self.resampled[model, j], [2.5, 97.5])
        return Interval(float(self.estimate[model, j]), float(low), float(high))


def score_models(
    y: np.ndarray,
    score: np.ndarray,
    thresholds: Sequence[float],
    n_resamples: int,
    seed: int | Sequence[int],
) -> Scored:
    """Metrics of every model (rows of ``score``, (models, stays)) on the test stays and on
    ``n_resamples`` shared resamples; ``thresholds``: each model's F1 threshold."""
    if score.ndim != 2 or score.shape[1] != len(y) or len(thresholds) != len(score):
        raise ValueError(f"scores must be (models, {len(y)}) with one threshold per model")
    estimate = np.array(
        [[scores(y, s, t)[m] for m in METRICS] for s, t in zip(score, thresholds, strict=True)]
    )
    orders = [ScoreOrder.of(y, s, t) for s, t in zip(score, thresholds, strict=True)]
    parts = []
    for counts in count_batches(y, n_resamples, seed):
        part = np.empty((len(score), len(METRICS), len(counts)))
        for k, order in enumerate(orders):
            values = resampled_metrics(order, counts)
            part[k] = [values[m] for m in METRICS]
        parts.append(part)
    return Scored(estimate, np.concatenate(parts, axis=2))


def seed_draws(n_seeds: int, n_resamples: int, seed: int | Sequence[int]) -> np.ndarray:
    """The seeds each resample draws, with replacement: (resamples, seeds) indices."""
    if n_seeds == 1:  # nothing to resample between seeds
        return np.zeros((n_resamples, 1), np.int64)
    rng = np.random.default_rng([*_key(seed), _SEEDS])
    return rng.integers(0, n_seeds, (n_resamples, n_seeds))


@dataclass(frozen=True)
class PairedDifference:
    """Mean Δ over seeds (and folds) with its interval, the per-seed Δ (fold by fold) and the
    bootstrap standard error."""

    interval: Interval
    per_seed: tuple[float, ...]
    se: float

    @property
    def share_positive(self) -> float:
        """The share of seeds with Δ > 0."""
        return float(np.mean(np.asarray(self.per_seed) > 0))

    @property
    def p_value(self) -> float:
        return normal_p_value(self.interval.estimate, self.se)


def fold_seed(seed: int, fold: int) -> int | tuple[int, int]:
    """The resampling seed of fold ``fold`` (0-based): ``seed`` itself for the first (a single
    split's resamples are those of its only fold), then a sequence of its own per fold."""
    return seed if fold == 0 else (seed, fold)


def paired_difference(
    scored: Scored, models_a: np.ndarray, models_b: np.ndarray, metric: str, seed: int
) -> PairedDifference:
    """Δ = ``metric`` of models A − models B (one of each per seed, same order), pooled over
    seeds with the hierarchical bootstrap of the module docstring."""
    return pooled_difference([(scored, models_a, models_b)], metric, seed)


def pooled_difference(
    folds: Sequence[tuple[Scored, np.ndarray, np.ndarray]], metric: str, seed: int
) -> PairedDifference:
    """:func:`paired_difference` over folds: each entry of ``folds`` is one fold's scored models
    and its two arms (one model per seed); every fold holds the same number of resamples."""
    j = METRICS.index(metric)
    per_seed, pooled = [], 0.0
    for fold, (scored, models_a, models_b) in enumerate(folds):
        if len(models_a) != len(models_b) or not len(models_a):
            raise ValueError(
                f"one model per seed in each arm: got {len(models_a)}, {len(models_b)}"
            )
        per_seed.append(scored.estimate[models_a, j] - scored.estimate[models_b, j])
        delta = scored.resampled[models_a, j] - scored.resampled[models_b, j]  # (seeds, resamples)
        drawn = seed_draws(len(models_a), delta.shape[1], fold_seed(seed, fold))
        pooled = pooled + np.take_along_axis(delta.T, drawn, axis=1).mean(1) / len(folds)
    low, high = np.percentile(pooled, [2.5, 97.5])
    estimate = float(np.mean([d.mean() for d in per_seed]))
    per_fold_seed = tuple(map(float, np.concatenate(per_seed)))
    return PairedDifference(
        Interval(estimate, float(low), float(high)), per_fold_seed, float(np.std(pooled, ddof=1))
    )
