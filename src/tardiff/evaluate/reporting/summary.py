"""What DVC shows of the utility evaluation: a metrics JSON and the curves its plots draw.

DVC metrics must be JSON, YAML or TOML, and DVC plots cannot filter or average rows, so this module
derives both from the tidy tables of ``results/metrics/``
(:mod:`tardiff.evaluate.reporting.collect`):

- :func:`metrics_summary` (``metrics/summary.json``, ``dvc metrics show`` / ``diff``): per dataset,
  task and method of the main study (``fraction`` 1.0), the mean over evaluation seeds of test
  AUROC and AUPRC of the real-train-only arms (``real``, ``class_weight``) at TRTR and of every
  other method at TSTR and at TSRTR with α = 1 (keys ``<protocol>_<metric>``), and the paired
  AUPRC difference against ``real`` at TSRTR α = 1 (``vs_real_TSRTR_auprc_delta``), on the
  internal test split with the GRU evaluator; on the external population the same keys start
  with ``external_``, with another evaluator (``lgbm``) with ``<evaluator>_`` before that
  (``lgbm_external_TSRTR_auprc``). Values are rounded to 4 decimals; a non-finite one is left
  out.
- :func:`curve_tables` (``metrics/curves/``, ``dvc plots show``): long tables ``series, <x>,
  auprc``, one line per ``series`` (``dataset/task/method``; `` (external)`` appended on the
  external population, `` (internal, lgbm)`` / `` (external, lgbm)`` with another evaluator
  than the GRU), AUPRC averaged over seeds: TSRTR test AUPRC against the synthetic ratio α (main
  study; each TRTR arm, ``real`` and ``class_weight``, as a flat reference line: its TRTR AUPRC
  at every ratio of that dataset and task), test AUPRC against the share of real train kept
  (pairs of the data-scarcity study: TSRTR α = 1, and TRTR) and the scale sweep's validation
  AUPRC against the guidance scale.
- Tables without an ``evaluator`` column are read as all ``gru``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.evaluate.downstream.utility import UTILITY_COLUMNS
from tardiff.evaluate.reporting.collect import COLLECTED_PAIRED_COLUMNS, read_table
from tardiff.evaluate.reporting.plotting import add_evaluator, with_evaluator
from tardiff.evaluate.studies.stage import SWEEP_COLUMNS
from tardiff.io import write_csv, write_json
from tardiff.layout import CurveFiles

#: the synthetic ratio α of the TSRTR numbers in the summary
SUMMARY_RATIO = 1.0
#: decimals kept in the summary and the curves
DIGITS = 4
#: key of the paired difference in the summary
DELTA_KEY = "vs_real_TSRTR_auprc_delta"
PAIR_KEYS = ["dataset", "task", "method"]
#: the evaluator whose summary keys and curve series carry no evaluator name
MAIN_EVALUATOR = "gru"


def _read(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """A tidy CSV whose columns must be ``columns`` (``evaluator`` added as ``gru`` where the
    file has none)."""
    frame = add_evaluator(pd.read_csv(path))
    expected = with_evaluator(columns)
    if list(frame.columns) != expected:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected {expected}")
    return frame


def _prefix(test_set: str, evaluator: str) -> str:
    """Start of the summary keys of a test set and evaluator (none for the internal test split
    and the GRU)."""
    named = "" if evaluator == MAIN_EVALUATOR else f"{evaluator}_"
    return named + ("" if test_set == "internal" else f"{test_set}_")


def _suffix(test_set: str, evaluator: str) -> str:
    """End of a curve's series name: none for the internal test split and the GRU."""
    if evaluator != MAIN_EVALUATOR:
        return f" ({test_set}, {evaluator})"
    return "" if test_set == "internal" else f" ({test_set})"


def _rounded(value: object) -> float | None:
    """``value`` as a float with ``DIGITS`` decimals, or None when it is missing or not finite."""
    number = float(value)
    return round(number, DIGITS) + 0.0 if math.isfinite(number) else None  # + 0.0: no -0.0


def _close(column: pd.Series, value: float) -> np.ndarray:
    """Rows where a float column equals ``value`` (False where it is missing)."""
    return np.isclose(column.to_numpy(float), value)


def _main_arms(utility: pd.DataFrame) -> pd.DataFrame:
    """Rows of the summary: main study, TRTR, TSTR, TSRTR at ``SUMMARY_RATIO``."""
    main = utility[_close(utility["fraction"], 1.0)]
    protocol = main["protocol"]
    keep = (
        (protocol == "TRTR")
        | (protocol == "TSTR")
        | ((protocol == "TSRTR") & _close(main["ratio"], SUMMARY_RATIO))
    )
    return main[keep]


def _paired_deltas(paired: pd.DataFrame) -> dict[tuple[str, ...], float]:
    """AUPRC difference of each method against ``real`` at TSRTR α = 1 (main study), by
    dataset, task, method, test set and evaluator."""
    rows = paired[
        (paired["baseline"] == "real")
        & (paired["protocol"] == "TSRTR")
        & (paired["metric"] == "auprc")
        & _close(paired["ratio"], SUMMARY_RATIO)
        & _close(paired["fraction"], 1.0)
    ]
    columns = [*PAIR_KEYS, "test_set", "evaluator"]
    keys = [tuple(str(v) for v in key) for key in rows[columns].itertuples(index=False)]
    if len(set(keys)) != len(keys):
        raise ValueError("paired table: more than one TSRTR AUPRC row against real per method")
    return dict(zip(keys, rows["delta"], strict=True))


def _put(summary: dict, key: Sequence[str], name: str, value: object) -> None:
    number = _rounded(value)
    if number is not None:
        dataset, task, method = key
        summary.setdefault(dataset, {}).setdefault(task, {}).setdefault(method, {})[name] = number


def metrics_summary(utility: pd.DataFrame, paired: pd.DataFrame) -> dict:
    """``{dataset: {task: {method: {"TSRTR_auprc": ..., ...}}}}`` (module docstring)."""
    summary: dict = {}
    utility, paired = add_evaluator(utility), add_evaluator(paired)
    keys = [*PAIR_KEYS, "test_set", "evaluator", "protocol"]
    groups = _main_arms(utility).groupby(keys)[["auroc", "auprc"]].mean()
    for (dataset, task, method, test_set, evaluator, protocol), row in groups.iterrows():
        for metric in ("auroc", "auprc"):
            key = (str(dataset), str(task), str(method))
            _put(summary, key, f"{_prefix(test_set, evaluator)}{protocol}_{metric}", row[metric])
    for (*key, test_set, evaluator), delta in _paired_deltas(paired).items():
        _put(summary, key, f"{_prefix(test_set, evaluator)}{DELTA_KEY}", delta)
    return summary


def _curve(rows: pd.DataFrame, x: str) -> pd.DataFrame:
    """Mean AUPRC per (dataset, task, method, ``x``) as a ``series, x, auprc`` table."""
    columns = ["series", x, "auprc"]
    rows = rows[np.isfinite(rows["auprc"].to_numpy(float))]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows if "test_set" in rows else rows.assign(test_set="internal")
    means = add_evaluator(rows).groupby([*PAIR_KEYS, "test_set", "evaluator", x])["auprc"].mean()
    means = means.reset_index()
    series = means["dataset"].astype(str)
    for key in PAIR_KEYS[1:]:
        series = series + "/" + means[key].astype(str)
    ends = zip(means["test_set"], means["evaluator"], strict=True)
    series = series + [_suffix(t, e) for t, e in ends]
    table = pd.DataFrame(
        {"series": series, x: means[x].astype(float), "auprc": means["auprc"].round(DIGITS)}
    )
    return table[columns].sort_values(["series", x]).reset_index(drop=True)


def _with_trtr_lines(main: pd.DataFrame) -> pd.DataFrame:
    """The TSRTR rows of ``main``, plus each TRTR row once at every TSRTR ratio of its dataset,
    task, test set and evaluator (a flat reference line)."""
    tsrtr = main[main["protocol"] == "TSRTR"]
    keys = ["dataset", "task", "test_set", "evaluator"]
    ratios = tsrtr[[*keys, "ratio"]].drop_duplicates()
    trtr = main[main["protocol"] == "TRTR"].drop(columns="ratio").merge(ratios, on=keys)
    return pd.concat([tsrtr, trtr[tsrtr.columns]], ignore_index=True)


def curve_tables(utility: pd.DataFrame, sweep: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables of ``CurveFiles`` by field (module docstring)."""
    utility = add_evaluator(utility)
    tsrtr = (utility["protocol"] == "TSRTR") & _close(utility["ratio"], SUMMARY_RATIO)
    trtr = utility["protocol"] == "TRTR"
    reduced = utility.loc[~_close(utility["fraction"], 1.0), ["dataset", "task"]]
    studied = pd.MultiIndex.from_frame(reduced.drop_duplicates())
    in_study = utility.set_index(["dataset", "task"]).index.isin(studied)
    main = _close(utility["fraction"], 1.0)
    return {
        "tsrtr": _curve(_with_trtr_lines(utility[main]), "ratio"),
        "scarcity": _curve(utility[in_study & (tsrtr | trtr)], "fraction"),
        "sweep": _curve(sweep, "scale"),
    }


def write_metrics_summary(*, utility: str | Path, paired: str | Path, out: str | Path) -> dict:
    """Read ``utility.csv`` and ``paired.csv`` (columns checked), write the summary JSON."""
    summary = metrics_summary(
        _read(utility, UTILITY_COLUMNS), _read(paired, COLLECTED_PAIRED_COLUMNS)
    )
    write_json(summary, out)
    return summary


def write_curves(*, utility: str | Path, sweep: str | Path, out: CurveFiles) -> None:
    """Read ``utility.csv`` and ``scale_sweep.csv`` (columns checked), write the curve tables."""
    tables = curve_tables(_read(utility, UTILITY_COLUMNS), read_table(sweep, SWEEP_COLUMNS))
    for field, table in tables.items():
        write_csv(table, getattr(out, field))
