"""The primary comparison and Holm's adjustment: hand-computed examples and consistency."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tardiff.evaluate.downstream.metrics import NO_DIFFERENCE, SAME_SAMPLES
from tardiff.evaluate.downstream.multiplicity import (
    adjust,
    holm,
    holm_levels,
    normal_p_value,
    on_headline_test_set,
    primary_rows,
)
from tardiff.evaluate.downstream.utility import PAIRED_COLUMNS
from tardiff.settings import PrimarySettings

PRIMARY = PrimarySettings("tardiff", "conditional", "TSRTR", 1.0, "auprc", "headline", "gru")


def test_holm_on_a_hand_computed_example():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # levels 0.05/4, 0.05/3, 0.05/2, 0.05/1: 0.005 and 0.01 rejected, 0.03 > 0.025 stops
    assert holm_levels(p) == pytest.approx([0.05 / 3, 0.025, 0.025, 0.0125])
    assert holm(np.array([0.5, 0.9])) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm(np.array([])).size == 0


def test_normal_p_values():
    assert normal_p_value(0.0, 0.0) == 1.0 and normal_p_value(0.1, 0.0) == 0.0
    assert normal_p_value(0.0196, 0.01) == pytest.approx(0.05, abs=1e-4)
    assert normal_p_value(-0.0196, 0.01) == normal_p_value(0.0196, 0.01)


def _paired(rows):
    """Rows ``(test_set, method, baseline, ratio, metric, delta, se, verdict)``."""
    frame = pd.DataFrame(rows, columns=["test_set", "method", "baseline", "ratio", "metric",
                                        "delta", "delta_se", "verdict"])  # fmt: skip
    frame = frame.assign(dataset="d", task="t", evaluator="gru", protocol="TSRTR", fraction=1.0,
                         n_seeds=3,
                         share_positive=1.0, delta_lo=frame.delta - 0.01,
                         delta_hi=frame.delta + 0.01)  # fmt: skip
    frame["p_value"] = [
        normal_p_value(d, s) for d, s in zip(frame.delta, frame.delta_se, strict=True)
    ]
    return frame[PAIRED_COLUMNS]


ROWS = [
    ("internal", "tardiff", "conditional", 1.0, "auprc", 0.05, 0.02, "improves"),
    ("external", "tardiff", "conditional", 1.0, "auprc", 0.01, 0.02, NO_DIFFERENCE),  # primary
    ("external", "tardiff", "conditional", 1.0, "auroc", 0.05, 0.005, "improves"),
    ("external", "tardiff", "real", 1.0, "auprc", -0.05, 0.015, "worse"),
    ("external", "cfg", "conditional", 1.0, "auprc", 0.0, 0.0, SAME_SAMPLES),
    ("external", "tardiff", "conditional", 0.5, "auprc", 0.03, 0.02, NO_DIFFERENCE),
]


def test_the_primary_row_is_on_the_headline_test_set():
    paired = _paired(ROWS)
    assert on_headline_test_set(paired).tolist() == [False, True, True, True, True, True]
    assert primary_rows(paired, PRIMARY).tolist() == [False, True] + [False] * 4
    internal = PrimarySettings(**{**PRIMARY.to_dict(), "test_set": "internal"})
    assert primary_rows(paired, internal).tolist() == [True] + [False] * 5
    scarce = paired.assign(fraction=0.5)
    assert not primary_rows(scarce, PRIMARY).any()  # the main study only
    only_internal = paired[paired.test_set == "internal"]
    assert on_headline_test_set(only_internal).all()


def test_the_headline_test_set_is_external_then_the_folds_then_internal():
    paired = _paired(ROWS[:2] + [("fold", "tardiff", "conditional", 1.0, "auprc", 0.0, 0.01,
                                  NO_DIFFERENCE)])  # fmt: skip
    assert on_headline_test_set(paired).tolist() == [False, True, False]
    cross_validated = paired[paired.test_set != "external"]
    assert on_headline_test_set(cross_validated).tolist() == [False, True]
    fold = PrimarySettings(**{**PRIMARY.to_dict(), "test_set": "fold"})
    assert primary_rows(paired, fold).tolist() == [False, False, True]


def test_adjust_keeps_the_primary_leaves_out_same_samples_and_holm_adjusts_the_rest():
    paired = _paired(ROWS)
    out = adjust(paired, PRIMARY)
    assert list(out.columns[: len(PAIRED_COLUMNS)]) == PAIRED_COLUMNS
    assert paired.equals(_paired(ROWS))  # the input is left as it was
    primary, same = out.iloc[1], out.iloc[4]
    assert primary.primary and primary.p_holm == primary.p_value
    assert (primary.delta_lo_adj, primary.delta_hi_adj) == (primary.delta_lo, primary.delta_hi)
    assert same.verdict_adj == SAME_SAMPLES and same.p_holm == 1.0 and not same.primary
    family = out.drop(index=[1, 4])
    assert family.p_holm.to_numpy() == pytest.approx(holm(family.p_value.to_numpy()))
    levels = holm_levels(family.p_value.to_numpy())
    z = stats.norm.isf(levels / 2)
    assert family.delta_lo_adj.to_numpy() == pytest.approx(family.delta - z * family.delta_se)
    # the adjusted interval excludes 0 exactly where Holm flags the row
    flagged = family.p_holm < 0.05
    excludes = (family.delta_lo_adj > 0) | (family.delta_hi_adj < 0)
    assert flagged.tolist() == excludes.tolist() == [True, True, True, False]
    assert family.verdict_adj.tolist() == ["improves", "improves", "worse", NO_DIFFERENCE]


def test_adjusted_intervals_agree_with_holm_on_random_rows():
    rng = np.random.default_rng(3)
    n = 200
    deltas, ses = rng.normal(0, 0.03, n), rng.uniform(0.005, 0.02, n)
    rows = [("external", "m", "real", 1.0, "auroc", d, s, NO_DIFFERENCE)
            for d, s in zip(deltas, ses, strict=True)]  # fmt: skip
    out = adjust(_paired(rows), PRIMARY)
    flagged = out.p_holm < 0.05
    assert 0 < flagged.sum() < n
    assert flagged.equals((out.delta_lo_adj > 0) | (out.delta_hi_adj < 0))
    assert (out.delta_hi_adj - out.delta_lo_adj >= out.delta_hi - out.delta_lo - 0.02).all()
