"""The pre-registered primary comparison and Holm's control of every other paired row.

- **Primary comparison** (``evaluation.primary``; default ``tardiff`` − ``conditional``, TSRTR
  α = 1, AUPRC, GRU evaluator, on the headline test set): one paired row per dataset and task of
  the main study (``fraction`` 1), fixed before the run. Its 95 % interval and p-value are
  reported as they are.
- **Headline test set** of a dataset and task: its external population where it has one, else
  its cross-validation folds where it was cross-validated (``split.folds``), else the internal
  test split (:func:`on_headline_test_set`).
- **Family**: every other paired row of the run (all datasets, tasks, test sets, metrics,
  baselines, protocols and the scarcity study) except those whose two arms are the same samples.
- **p-values**: two-sided, H0: Δ = 0, from the normal approximation z = Δ / SE, SE the standard
  deviation of the paired bootstrap's resampled Δ (:func:`normal_p_value`); the bootstrap's
  resamples alone cannot resolve the p-values far below 1/B that Holm needs over hundreds of rows.
- **Holm** step-down (:func:`holm`) gives ``p_holm``; a row improves or is worse where
  ``p_holm`` < α = 0.05, which keeps the family-wise error rate at 5 %.
- **Adjusted interval**: Δ ± z(1 − a/2)·SE at the row's Holm level a (:func:`holm_levels`):
  α / (m − i + 1) for the i-th smallest p-value while the step-down rejects, then the level at
  which it stopped for every row it does not reject. It excludes 0 exactly where Holm flags the
  row: a Holm-consistent reading of each row, not a simultaneous band.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from tardiff.evaluate.downstream.metrics import NO_DIFFERENCE, SAME_SAMPLES
from tardiff.settings import PrimarySettings

#: family-wise error rate of the Holm procedure (two-sided)
FAMILY_ALPHA = 0.05
#: columns the collected paired table adds to the per-dataset one
ADJUSTED_COLUMNS = ["primary", "p_holm", "delta_lo_adj", "delta_hi_adj", "verdict_adj"]


def normal_p_value(delta: float, se: float) -> float:
    """Two-sided p-value of Δ = 0 from z = Δ / SE; where SE is 0 (every resample gives the same
    Δ): 1 if Δ is 0, else 0."""
    if se > 0:
        return float(2 * stats.norm.sf(abs(delta) / se))
    return 1.0 if delta == 0 else 0.0


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order of ``p``."""
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    steps = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty(len(p))
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(steps))
    return adjusted


def holm_levels(p: np.ndarray, alpha: float = FAMILY_ALPHA) -> np.ndarray:
    """Each row's Holm level (module docstring), in the order of ``p``."""
    p = np.asarray(p, float)
    order = np.argsort(p, kind="stable")
    levels = alpha / (len(p) - np.arange(len(p)))
    rejected = np.logical_and.accumulate(p[order] < levels)
    stop = int(rejected.sum())  # the first rank not rejected
    if stop < len(p):
        levels[stop:] = levels[stop]
    out = np.empty(len(p))
    out[order] = levels
    return out


def on_headline_test_set(frame: pd.DataFrame) -> np.ndarray:
    """Rows on the headline test set of their dataset and task: the first of the external
    population, the cross-validation folds and the internal test split that they have rows of."""
    chosen = np.zeros(len(frame), bool)
    decided = np.zeros(len(frame), bool)
    for test_set in ("external", "fold", "internal"):
        on = (frame["test_set"] == test_set).to_numpy()
        has = pd.Series(on, index=frame.index).groupby([frame["dataset"], frame["task"]])
        here = has.transform("any").to_numpy() & ~decided
        chosen |= here & on
        decided |= here
    return chosen


def primary_rows(paired: pd.DataFrame, primary: PrimarySettings) -> np.ndarray:
    """The rows of the primary comparison: one per dataset and task of the main study."""
    ratio = paired["ratio"].to_numpy(float)
    same_ratio = np.isnan(ratio) if primary.ratio is None else np.isclose(ratio, primary.ratio)
    test_set = (
        on_headline_test_set(paired)
        if primary.test_set == "headline"
        else (paired["test_set"] == primary.test_set).to_numpy()
    )
    rows = same_ratio & test_set & np.isclose(paired["fraction"].to_numpy(float), 1.0)
    for column in ("method", "baseline", "protocol", "metric", "evaluator"):
        rows &= (paired[column] == getattr(primary, column)).to_numpy()
    return rows


def _reading(delta: float, p: float) -> str:
    if p >= FAMILY_ALPHA or delta == 0:
        return NO_DIFFERENCE
    return "improves" if delta > 0 else "worse"


def adjust(paired: pd.DataFrame, primary: PrimarySettings) -> pd.DataFrame:
    """``paired`` (the per-dataset columns) with ``ADJUSTED_COLUMNS``: the primary rows keep
    their interval and p-value, same-samples rows are left out of the family (``p_holm`` 1),
    every other row is Holm-adjusted (module docstring)."""
    is_primary = primary_rows(paired, primary)
    same = (paired["verdict"] == SAME_SAMPLES).to_numpy()
    family = ~is_primary & ~same
    p = paired["p_value"].to_numpy(float)
    p_holm = np.where(same, 1.0, p)
    low = paired["delta_lo"].to_numpy(float, copy=True)
    high = paired["delta_hi"].to_numpy(float, copy=True)
    verdict = paired["verdict"].to_numpy(object, copy=True)
    if family.any():
        delta, se = paired["delta"].to_numpy(float)[family], paired["delta_se"].to_numpy(float)
        p_holm[family] = holm(p[family])
        z = stats.norm.isf(holm_levels(p[family]) / 2)
        low[family], high[family] = delta - z * se[family], delta + z * se[family]
        verdict[family] = [_reading(d, q) for d, q in zip(delta, p_holm[family], strict=True)]
    adjusted = {"primary": is_primary, "p_holm": p_holm, "delta_lo_adj": low,
                "delta_hi_adj": high, "verdict_adj": verdict}  # fmt: skip
    return paired.assign(**adjusted)
