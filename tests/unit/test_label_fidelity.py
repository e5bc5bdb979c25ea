"""The label judge: threshold on select only, own-label shares with exact oracles."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tardiff.data import Prepared
from tardiff.evaluate.quality.label_fidelity import (
    REFERENCE,
    Judge,
    balanced_threshold,
    train_judge,
)
from tardiff.settings import JudgeSettings

SETTINGS = JudgeSettings(
    arch="gru", hidden=4, layers=1, lr=0.02, weight_decay=0.0, batch_size=32, steps=60,
    seed_offset=7919,
)  # fmt: skip


def _toy(seed: int, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Perfectly separable (N, 4, 2) z-unit series: class 1 near +2, class 0 near -2."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0, 0.1, (n, 4, 2)) + np.where(y == 1, 2.0, -2.0)[:, None, None]
    return x.astype(np.float32), y.astype(np.int64)


def _prepared(test_seed: int = 2, select_seed: int = 1) -> Prepared:
    prepared = Prepared("mortality", ["hr", "sbp"], 4, transform=None)
    for split, seed in (("train", 0), ("select", select_seed), ("test", test_seed)):
        prepared.x[split], prepared.y[split] = _toy(seed)
    return prepared


@pytest.fixture(scope="module")
def judge() -> Judge:
    return train_judge(_prepared(), SETTINGS, seed=0, device="cpu")


def test_threshold_maximises_balanced_accuracy_exactly():
    # candidates -3, -1.5, -0.25, 0.75, 2, 4; Youden's J 0, 1/3, 2/3, 1/6, 1/2, 0
    logits = np.array([-2.0, -1.0, 0.5, 1.0, 3.0])
    assert balanced_threshold(logits, np.array([0, 0, 1, 0, 1])) == -0.25
    # J = 0 at -1, 1.5 and 4: the tie goes to the candidate nearest 0
    assert balanced_threshold(np.arange(4.0), np.array([1, 0, 1, 0])) == -1.0
    with pytest.raises(ValueError, match="labels 0 and 1"):
        balanced_threshold(logits, np.zeros(5, int))
    with pytest.raises(ValueError, match="finite"):
        balanced_threshold(np.array([0.0, np.nan]), np.array([0, 1]))


def test_own_label_share_oracle():
    judge = Judge(lambda x: x[:, 0, 0], threshold=0.0)
    x = np.array([-1.0, 2.0, 3.0, -4.0, 5.0]).reshape(5, 1, 1)
    assert judge.flags(x).tolist() == [0, 1, 1, 0, 1]
    assert judge.own_label_share(x, np.array([0, 0, 1, 1, 1])) == {0: 0.5, 1: 2 / 3}
    only_zero = judge.own_label_share(x[:2], np.array([0, 0]))
    assert only_zero == {0: 0.5}  # an absent class is left out, never NaN
    assert judge.records(x[:2], np.array([0, 0])) == [
        {"metric": "label_share_0", "feature": "all", "value": 0.5, "reference": REFERENCE}
    ]
    with pytest.raises(ValueError, match="finite"):
        judge.flags(np.full((2, 1, 1), np.nan))
    with pytest.raises(ValueError, match="one label"):
        judge.own_label_share(x, np.array([0, 1, 2, 0, 1]))


def test_separable_toy_set_is_judged_perfectly(judge):
    x, y = _toy(seed=5)
    assert judge.own_label_share(x, y) == {0: 1.0, 1: 1.0}
    assert judge.own_label_share(x, 1 - y) == {0: 0.0, 1: 0.0}  # every label swapped
    assert all(np.isfinite(r["value"]) for r in judge.records(x, 1 - y))


def test_threshold_comes_from_select_only(judge):
    prepared = _prepared()
    assert judge.threshold == balanced_threshold(
        judge.logits(prepared.x["select"]), prepared.y["select"]
    )
    other_test = train_judge(_prepared(test_seed=9), SETTINGS, seed=0, device="cpu")
    assert other_test.threshold == judge.threshold
    no_test = _prepared()
    del no_test.x["test"], no_test.y["test"]
    assert train_judge(no_test, SETTINGS, seed=0, device="cpu").threshold == judge.threshold
    other_select = train_judge(_prepared(select_seed=9), SETTINGS, seed=0, device="cpu")
    assert other_select.threshold != judge.threshold


def test_model_seed_is_seed_plus_offset(judge):
    shifted = dataclasses.replace(SETTINGS, seed_offset=SETTINGS.seed_offset - 3)
    assert train_judge(_prepared(), shifted, seed=3, device="cpu").threshold == judge.threshold
    assert train_judge(_prepared(), SETTINGS, seed=3, device="cpu").threshold != judge.threshold
