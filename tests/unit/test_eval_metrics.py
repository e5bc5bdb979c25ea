"""Utility metrics, a stratified bootstrap interval and verdicts (exact oracles)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from tardiff.evaluate.downstream.metrics import (
    NO_DIFFERENCE,
    Interval,
    auroc,
    average_precision,
    f1_threshold,
    metric_interval,
    scores,
)


def _data(n=200, prevalence=0.1, signal=1.5, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[:3], y[3:6] = 1, 0  # both classes present
    return y, signal * y + rng.standard_normal(n)


def test_f1_threshold_is_the_best_on_a_hand_example():
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    # F1 of the positives at thresholds 0.5, 0.7, 0.8: 6/7, 4/5, 1/2 -> 0.5 is best
    assert f1_threshold(y, s) == 0.5
    assert scores(y, s, 0.5)["f1"] == pytest.approx(6 / 7)


def test_f1_of_the_minority_when_it_is_label_0():
    y = np.array([1, 1, 1, 1, 0, 1, 0, 0])  # label 0 is rarer
    s = -np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    t = f1_threshold(y, s)
    assert scores(y, s, t)["f1"] == pytest.approx(6 / 7)


def test_scores_match_sklearn():
    y, s = _data()
    out = scores(y, s, 0.0)
    assert out["auroc"] == roc_auc_score(y, s)
    assert out["auprc"] == average_precision_score(y, s)


def test_batched_metrics_equal_sklearn_row_by_row_with_ties():
    rng = np.random.default_rng(4)
    y = (rng.random((50, 40)) < 0.2).astype(int)
    y[:, :2] = [1, 0]
    score = rng.integers(0, 6, (50, 40)).astype(float)  # many ties, also across labels
    score[::2] = rng.standard_normal((25, 40))
    ap, roc = average_precision(y, score), auroc(y, score)
    for row in range(len(y)):
        assert ap[row] == pytest.approx(average_precision_score(y[row], score[row]), abs=1e-12)
        assert roc[row] == pytest.approx(roc_auc_score(y[row], score[row]), abs=1e-12)
        f1 = scores(y[row], score[row], 2.0)["f1"]
        minority = int((y[row] == 1).sum() <= (y[row] == 0).sum())
        predicted = score[row] >= 2.0 if minority == 1 else score[row] <= 2.0
        assert f1 == pytest.approx(f1_score(y[row] == minority, predicted, zero_division=0.0))


def test_interval_is_seeded_contains_the_estimate_and_survives_few_positives():
    y, s = _data(n=120, prevalence=0.02)  # a handful of positives
    a = metric_interval(y, s, "auprc", 0.0, seed=3, n_resamples=200)
    b = metric_interval(y, s, "auprc", 0.0, seed=3, n_resamples=200)
    assert a == b and np.isfinite([a.low, a.high]).all()
    assert a.low <= a.estimate <= a.high and a.high - a.low > 0.01


def test_too_few_stays_of_a_class_is_an_error():
    with pytest.raises(ValueError, match="at least 2 stays of each class"):
        metric_interval(np.r_[1, np.zeros(9, int)], np.arange(10.0), "auroc", 0.0, seed=0)


def test_a_perfect_ranking_still_gets_a_finite_interval():
    y = np.r_[np.zeros(20, int), np.ones(5, int)]
    s = np.arange(25.0)  # every positive above every negative: AUROC 1 in every resample
    iv = metric_interval(y, s, "auroc", 0.0, seed=0, n_resamples=200)
    assert iv == Interval(1.0, 1.0, 1.0)


def test_the_verdict_of_a_difference():
    assert Interval(0.1, 0.01, 0.2).verdict == "improves"
    assert Interval(-0.1, -0.2, -0.01).verdict == "worse"
    assert Interval(0.0, 0.0, 0.0).verdict == NO_DIFFERENCE
    assert Interval(0.05, -0.01, 0.1).verdict == NO_DIFFERENCE
