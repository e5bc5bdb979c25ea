"""Privacy metrics: DCR share and percentiles, membership-inference AUC, near copies."""

from __future__ import annotations

import numpy as np
import pytest

from tardiff.evaluate.quality.privacy import privacy_metrics

SHAPE = (8, 3)


def _gauss(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *SHAPE)).astype(np.float32)


def _metrics(train, holdout, synthetic, near_copy_distance=0.05):
    return privacy_metrics(
        train, holdout, synthetic, near_copy_distance=near_copy_distance, resamples=200, seed=0
    )


def test_independent_draw_leaks_nothing():
    out = _metrics(_gauss(300, 0), _gauss(300, 1), _gauss(400, 2))
    assert out["dcr_share"] == pytest.approx(0.5, abs=0.15)
    assert out["attack_auc"] == pytest.approx(0.5, abs=0.1)
    assert out["attack_auc_lo"] <= out["attack_auc"] <= out["attack_auc_hi"]
    assert out["near_copies"] == 0
    assert out["dcr_p5_synthetic"] == pytest.approx(out["dcr_p5_holdout"], rel=0.2)
    assert (out["n_synthetic"], out["n_holdout"], out["n_members"]) == (400, 300, 300)


def test_copies_of_train_are_flagged():
    train = _gauss(300, 0)
    out = _metrics(train, _gauss(200, 1), train.copy())
    assert out["near_copies"] == 300 and out["dcr_share"] == 1.0
    assert out["dcr_p5_synthetic"] == 0.0 and out["dcr_p5_holdout"] > 0.5
    assert out["attack_auc"] > 0.9
    assert out["attack_auc_lo"] <= out["attack_auc"] <= out["attack_auc_hi"]


def test_distances_are_rms_per_element():
    train = _gauss(100, 0)
    shifted = train + np.float32(0.01)  # every element 0.01 off its own training record
    out = _metrics(train, _gauss(100, 1), shifted)
    assert out["dcr_p5_synthetic"] == pytest.approx(0.01, rel=1e-3)
    assert _metrics(train, _gauss(100, 1), shifted, near_copy_distance=0.02)["near_copies"] == 100
    assert _metrics(train, _gauss(100, 1), shifted, near_copy_distance=0.005)["near_copies"] == 0


def test_partial_copies_are_counted_exactly():
    train = _gauss(200, 0)
    synthetic = np.concatenate([train[:37], _gauss(163, 2)])
    out = _metrics(train, _gauss(150, 1), synthetic)
    assert out["near_copies"] == 37 and out["n_synthetic"] == 200


def test_small_train_sets_the_member_count():
    out = _metrics(_gauss(50, 0), _gauss(120, 1), _gauss(80, 2))
    assert (out["n_members"], out["n_holdout"], out["n_synthetic"]) == (50, 120, 80)
    assert np.isfinite(list(out.values())).all()


@pytest.mark.parametrize(
    "arrays",
    [
        (_gauss(20, 0), _gauss(20, 1), _gauss(20, 2)[:, :, :2]),
        (_gauss(20, 0), _gauss(20, 1)[:, :4], _gauss(20, 2)),
        (_gauss(20, 0), _gauss(0, 1), _gauss(20, 2)),
        (_gauss(20, 0)[0], _gauss(20, 1), _gauss(20, 2)),
    ],
)
def test_bad_shapes_raise(arrays):
    with pytest.raises(ValueError, match="privacy metrics need"):
        _metrics(*arrays)
