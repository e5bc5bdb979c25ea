"""The LightGBM evaluator: summary features (exact oracle), seeded boosters, class weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tardiff.evaluate.downstream.trees import (
    STATISTICS,
    predict_trees,
    summary_features,
    train_trees,
)
from tardiff.settings import TreeSettings

SETTINGS = TreeSettings(rounds=20, learning_rate=0.1, num_leaves=7, min_child_samples=5)


def test_summary_features_match_a_per_series_oracle():
    x = np.random.default_rng(0).standard_normal((5, 7, 3)).astype(np.float32)
    features = summary_features(x)
    assert features.shape == (5, 3 * len(STATISTICS)) and features.dtype == np.float32
    for n in range(5):
        for c in range(3):
            s = x[n, :, c].astype(np.float64)
            expected = [
                s[-1],
                s.mean(),
                s.min(),
                s.max(),
                s.std(),
                np.polyfit(np.arange(7), s, 1)[0],
            ]
            np.testing.assert_allclose(
                features[n, 6 * c : 6 * c + 6], expected, rtol=1e-5, atol=1e-6
            )
    ramp = np.broadcast_to(np.arange(4.0)[None, :, None] * 2 + 1, (1, 4, 1))
    assert summary_features(ramp).tolist() == [[7, 4, 1, 7, pytest.approx(np.sqrt(5)), 2]]
    assert summary_features(np.ones((2, 1, 1))).tolist() == [[1, 1, 1, 1, 0, 0]] * 2
    with pytest.raises(ValueError, match="N, T, C"):
        summary_features(np.ones((2, 3)))


def _pool(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6, 2))
    y = (x[:, -1, 0] + 0.3 * rng.standard_normal(n) > 1.0).astype(np.int64)  # ~16 % positive
    return summary_features(x), y


def test_boosters_learn_are_seeded_and_use_their_own_rows_and_weights():
    features, y = _pool()
    test_x, test_y = _pool(300, seed=1)
    members = [np.arange(400), np.arange(400), np.arange(200), np.arange(400)]
    weights = [(1.0, 1.0), (1.0, 1.0), (1.0, 1.0), (0.6, 3.0)]
    boosters = train_trees(features, y, members, [0, 0, 0, 1], weights, SETTINGS)
    scores = predict_trees(boosters, test_x)
    assert scores.shape == (4, 300) and scores.dtype == np.float64
    assert roc_auc_score(test_y, scores[0]) > 0.9
    np.testing.assert_array_equal(scores[0], scores[1])  # same rows and seed: same model
    assert not np.allclose(scores[0], scores[2])  # other rows
    assert scores[3].mean() > scores[0].mean() + 0.5  # positives weighted up: higher margins
    again = predict_trees(train_trees(features, y, members[:1], [0], weights[:1], SETTINGS), test_x)
    np.testing.assert_array_equal(again[0], scores[0])
    with pytest.raises(ValueError, match="one seed and one class-weight pair"):
        train_trees(features, y, members, [0], weights, SETTINGS)
