"""Shared bootstrap resamples: metrics from counts equal the metrics of the explicit resample,
intervals and paired differences from the resampled values (exact oracles)."""

from __future__ import annotations

import numpy as np
import pytest

from tardiff.evaluate.downstream import resampling
from tardiff.evaluate.downstream.metrics import (
    NO_DIFFERENCE,
    auroc,
    average_precision,
    minority_f1,
    scores,
)
from tardiff.evaluate.downstream.resampling import (
    Scored,
    ScoreOrder,
    count_batches,
    paired_difference,
    resampled_metrics,
    score_models,
    seed_draws,
)


def _data(n=120, prevalence=0.15, seed=0, ties=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[:3], y[3:6] = 1, 0
    s = 1.2 * y + rng.standard_normal(n)
    return y, np.round(s, 0) if ties else s  # rounding: many ties, also across labels


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("prevalence", [0.15, 0.85])  # minority label 1, then 0
@pytest.mark.parametrize("threshold", [0.0, 1.0])  # with ties: on a tie group
def test_metrics_from_counts_equal_those_of_the_explicit_resample(ties, prevalence, threshold):
    y, s = _data(prevalence=prevalence, ties=ties)
    (counts,) = count_batches(y, 40, seed=3)
    values = resampled_metrics(ScoreOrder.of(y, s, threshold), counts)
    minority = int(prevalence > 0.5) ^ 1
    for r in range(len(counts)):
        rows = np.repeat(np.arange(len(y)), counts[r])
        ys, ss = y[rows], s[rows]
        assert values["auroc"][r] == pytest.approx(auroc(ys, ss), abs=1e-12)
        assert values["auprc"][r] == pytest.approx(average_precision(ys, ss), abs=1e-12)
        f1 = minority_f1(ys, ss, threshold, minority)
        assert values["f1"][r] == pytest.approx(f1, abs=1e-12)


def test_resamples_are_stratified_seeded_and_batched(monkeypatch):
    y, _ = _data()
    batches = list(count_batches(y, 50, seed=1))
    assert [len(b) for b in batches] == [50]
    counts = np.concatenate(batches)
    assert (counts[:, y == 1].sum(1) == (y == 1).sum()).all()
    assert (counts[:, y == 0].sum(1) == (y == 0).sum()).all()
    assert np.array_equal(counts, np.concatenate(list(count_batches(y, 50, seed=1))))
    assert not np.array_equal(counts, np.concatenate(list(count_batches(y, 50, seed=2))))
    monkeypatch.setattr(resampling, "CELLS", 20 * len(y))  # at most 20 resamples per batch
    small = list(count_batches(y, 50, seed=1))
    assert [len(b) for b in small] == [20, 20, 10]
    with pytest.raises(ValueError, match="at least 2 stays of each class"):
        next(count_batches(np.r_[1, np.zeros(9, int)], 10, seed=0))


def test_score_models_estimates_and_percentile_intervals():
    y, s = _data()
    score = np.stack([s, -s, 0.3 * s])
    thresholds = [0.5, -0.5, 0.0]
    scored = score_models(y, score, thresholds, n_resamples=60, seed=0)
    assert scored.estimate.shape == (3, 3) and scored.resampled.shape == (3, 3, 60)
    for k in range(3):
        expected = scores(y, score[k], thresholds[k])
        assert scored.estimate[k].tolist() == [expected[m] for m in ("auroc", "auprc", "f1")]
        iv = scored.interval(k, "auprc")
        assert (iv.low, iv.high) == tuple(np.percentile(scored.resampled[k, 1], [2.5, 97.5]))
    # the same resamples for every model: a rescaled score ranks the same in every resample
    assert np.array_equal(scored.resampled[0, :2], scored.resampled[2, :2])
    with pytest.raises(ValueError, match="one threshold per model"):
        score_models(y, score, thresholds[:2], n_resamples=10, seed=0)


def test_paired_difference_pools_the_drawn_seeds_of_each_resample():
    estimate = np.array([[0.0, 0.5, 0.0], [0.0, 0.3, 0.0], [0.0, 0.6, 0.0], [0.0, 0.2, 0.0]])
    rng = np.random.default_rng(0)
    resampled = rng.random((4, 3, 30))
    scored = Scored(estimate, resampled)
    a, b = np.array([0, 2]), np.array([1, 3])
    d = paired_difference(scored, a, b, "auprc", seed=5)
    assert d.per_seed == pytest.approx((0.2, 0.4)) and d.interval.estimate == pytest.approx(0.3)
    assert d.share_positive == 1.0
    drawn = seed_draws(2, 30, seed=5)
    delta = resampled[a, 1] - resampled[b, 1]  # (seeds, resamples)
    pooled = np.array([delta[drawn[r], r].mean() for r in range(30)])
    assert (d.interval.low, d.interval.high) == pytest.approx(
        tuple(np.percentile(pooled, [2.5, 97.5]))
    )
    assert d.se == pytest.approx(np.std(pooled, ddof=1))
    assert seed_draws(1, 4, seed=0).tolist() == [[0]] * 4
    with pytest.raises(ValueError, match="one model per seed"):
        paired_difference(scored, a, b[:1], "auprc", seed=0)


def test_identical_arms_differ_by_nothing_and_a_better_arm_improves():
    y, _ = _data(n=200, prevalence=0.2)
    rng = np.random.default_rng(1)
    good = [2.0 * y + rng.standard_normal(len(y)) for _ in range(3)]
    poor = [0.2 * y + rng.standard_normal(len(y)) for _ in range(3)]
    scored = score_models(y, np.stack(good + poor + good), np.zeros(9), 150, seed=0)
    same = paired_difference(scored, np.arange(3), np.arange(6, 9), "auroc", seed=0)
    assert same.per_seed == (0.0, 0.0, 0.0) and same.se == 0.0 and same.p_value == 1.0
    assert (same.interval.low, same.interval.high) == (0.0, 0.0)
    assert same.interval.verdict == NO_DIFFERENCE
    better = paired_difference(scored, np.arange(3), np.arange(3, 6), "auprc", seed=0)
    assert better.interval.verdict == "improves" and better.share_positive == 1.0
    assert better.p_value < 1e-3
    worse = paired_difference(scored, np.arange(3, 6), np.arange(3), "auroc", seed=0)
    assert worse.interval.verdict == "worse"
