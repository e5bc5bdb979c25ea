"""Figures and tables of the utility evaluation (:func:`write_report`).

Reads every dataset's ``utility.csv`` (one row per trained evaluation model and test set), the
collected ``paired.csv`` (paired differences, adjusted for multiplicity) and the
``selection.json`` files (guidance scales scored on validation), and writes the paper's figures
(PNG and PDF), its tables (Markdown and CSV), the verdict table and the results README
(:mod:`tardiff.evaluate.reporting.verdict`) named by ``ReportFiles``.

- **Table 1**: TRTR and TSTR; **Table 4**: minority-class F1; both with each method's chosen
  guidance scale (``0 (= conditional)``: a scale-guided method whose samples are conditional's)
  and one row per evaluation model (``evaluator``).
- **Fig. 2**: TSRTR against α, one row of panels per evaluator and metric; real-data-only arms
  (TRTR: ``real``, ``class_weight``) as dashed horizontal lines; a method whose samples are
  conditional's is not drawn on top of it but named in the panel title.
- **Scarcity**: AUPRC against the share of real train kept, one row of panels per evaluator; a
  method at conditional's samples at every share is named, not drawn, as in Fig. 2.
- **Scale selection** (:mod:`tardiff.evaluate.reporting.selection_figure`).

Conventions:
- An estimate over seeds is the mean of the per-seed values; its interval is the mean of the
  per-seed 95 % test-bootstrap bounds; SD is the standard deviation over seeds. Figure bands are
  that interval.
- Tables without an ``evaluator`` column were all evaluated by the GRU (``gru``).
- Main results use the full real train split (``fraction`` 1.0); the data-scarcity figure uses the
  rest. A dataset named ``<base>-train<fraction>`` is read as ``<base>`` at that fraction.
- Tables show every test set (``test_set``); figures show the headline one (the external population
  where a dataset has one, :func:`~tardiff.evaluate.downstream.multiplicity.on_headline_test_set`).
- Methods, evaluators and protocols have a fixed order, methods a fixed colour; unknown ones
  come last, by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from tardiff.evaluate.downstream.multiplicity import on_headline_test_set
from tardiff.evaluate.reporting.collect import COLLECTED_PAIRED_COLUMNS
from tardiff.evaluate.reporting.plotting import (
    EVALUATOR_NAMES,
    INTERVAL_NOTE,
    ORDERS,
    add_evaluator,
    band_line,
    cells,
    colour,
    evaluators,
    finish,
    grid,
    here,
    log_axis,
    methods,
    num,
    panels,
    placeholder,
    same_as_conditional,
    scale_cells,
    sort_rows,
    style,
    summarise,
    with_evaluator,
    write_markdown,
    write_text,
)
from tardiff.evaluate.reporting.selection_figure import selection_figure
from tardiff.evaluate.reporting.verdict import (
    paired_summary,
    results_readme,
    setting,
    verdict_markdown,
    verdict_table,
)
from tardiff.io import write_csv
from tardiff.layout import ReportFiles
from tardiff.names import parse_dataset

PROTOCOL_ORDER = ("TRTR", "TSTR", "TSRTR", "minority")
_ORDERS = {**ORDERS, "protocol": PROTOCOL_ORDER, "test_set": ("internal", "external", "fold")}
_TEXT = ("dataset", "task", "test_set", "fold", "evaluator", "method", "baseline", "protocol",
         "metric", "verdict", "verdict_adj")  # fmt: skip
_METRICS = ("auroc", "auprc", "minority_f1")
_CHOSEN_NOTE = (
    "chosen w: the guidance scale chosen on validation; 0 (= conditional): the method's samples "
    "are conditional's, so its row repeats conditional's."
)
UTILITY_COLUMNS = (
    ("dataset", "task", "test_set", "method", "protocol", "ratio", "fraction", "fold", "seed",
     "scale")
    + tuple(f"{m}{s}" for m in _METRICS for s in ("", "_lo", "_hi"))
)  # fmt: skip


def write_report(
    *,
    utility: str | Path,
    paired: str | Path,
    selections: Sequence[str | Path],
    out: ReportFiles,
) -> None:
    """Write the three figures (PNG + PDF), the four tables (Markdown + CSV) and the results
    README of ``out``."""
    runs = _read_csv(utility, UTILITY_COLUMNS)
    _check_one_scale(runs, utility)
    diffs = _read_csv(paired, COLLECTED_PAIRED_COLUMNS)
    chosen = [s for s in map(_read_selection, selections) if s["methods"]]  # any guided method
    chosen.sort(key=lambda s: (s["dataset"], s["task"]))
    _table1(runs, out)
    _paired_table(diffs, out)
    _table4(runs, out)
    verdicts = verdict_table(diffs)
    write_csv(verdicts, out.verdict_csv)
    write_text(verdict_markdown(verdicts), out.verdict_md)
    write_text(results_readme(verdicts), out.readme)
    headline = runs[on_headline_test_set(runs)]
    with style():
        _ratio_figure(headline, out)
        _scarcity_figure(headline, out)
        selection_figure(chosen, *_files(out, "selection"))


def _read_csv(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """A CSV with its ``required`` columns (ValueError naming file and column if one is absent),
    and an ``evaluator`` column (all ``gru`` where the file has none)."""
    frame = pd.read_csv(path, dtype={c: str for c in _TEXT})
    frame = add_evaluator(frame)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing required column(s): {', '.join(missing)}")
    for column in set(required) - set(_TEXT):
        frame[column] = pd.to_numeric(frame[column])
    named = frame["dataset"].map(parse_dataset)
    base, tag = named.str[0], named.str[1]
    frame["fraction"] = frame["fraction"].where(base == frame["dataset"], tag)
    frame["dataset"] = base
    return frame


def _check_one_scale(runs: pd.DataFrame, path: str | Path) -> None:
    """Each method must come at one guidance scale per setting (the chosen one; per fold in a
    cross-validation)."""
    keys = ["dataset", "task", "test_set", "fold", "method", "protocol", "ratio", "fraction"]
    scales = runs.groupby(keys, dropna=False)["scale"].nunique()
    if (scales > 1).any():
        raise ValueError(f"{path}: column scale has several values for {scales.idxmax()}")


def _read_selection(path: str | Path) -> dict:
    """A ``selection.json`` with its required keys (ValueError naming file and key if absent)."""
    selection = json.loads(Path(path).read_text())
    missing = [k for k in ("dataset", "task", "methods") if k not in selection]
    for method, entry in selection.get("methods", {}).items():
        missing += [f"methods.{method}.{k}" for k in ("grid", "score", "chosen") if k not in entry]
    if missing:
        raise ValueError(f"{path}: missing required key(s): {', '.join(missing)}")
    return selection


def _full(frame: pd.DataFrame) -> np.ndarray:
    return np.isclose(frame["fraction"], 1.0)


def _with_scale(table: pd.DataFrame, rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``table`` (a :func:`summarise` of ``rows`` by ``keys``) with the chosen ``scale`` of each
    group after the keys (NaN where there is none, or where cross-validation folds chose
    different ones)."""
    scales = rows.groupby(keys, dropna=False)["scale"].agg(_one_value).reset_index()
    table = table.merge(scales, on=keys, how="left", validate="one_to_one")
    return table[[*keys, "scale", *table.columns.difference([*keys, "scale"], sort=False)]]


def _one_value(values: pd.Series) -> float:
    """The value all of ``values`` share; NaN if they differ."""
    return values.iloc[0] if values.nunique(dropna=False) == 1 else np.nan


def _table1(runs: pd.DataFrame, out: ReportFiles) -> None:
    keys = ["dataset", "task", "test_set", "evaluator", "protocol", "method"]
    rows = runs[runs["protocol"].isin(["TRTR", "TSTR"]) & _full(runs)]
    table = _with_scale(summarise(rows, keys, ("auroc", "auprc"), _ORDERS), rows, keys)
    write_csv(table, out.table1_csv)
    shown = table[keys].assign(
        **{"chosen w": scale_cells(table)},
        seeds=table["n_seeds"],
        **{"AUROC [95 % CI]": cells(table, "auroc"), "AUROC SD": table["auroc_sd"].map(num)},
        **{"AUPRC [95 % CI]": cells(table, "auprc"), "AUPRC SD": table["auprc_sd"].map(num)},
    )
    title = (
        "Table 1. TRTR and TSTR on the real test sets (all real train data; internal: the test "
        "split, external: the external population) per evaluation model (evaluator: gru = GRU, "
        "lgbm = LightGBM): mean over seeds [mean of the per-seed 95 % test-bootstrap interval "
        f"bounds]; SD over seeds. {_CHOSEN_NOTE}"
    )
    write_markdown(title, shown, out.table1_md)


def _paired_table(diffs: pd.DataFrame, out: ReportFiles) -> None:
    """The full paired table (CSV, sorted) and its summary (Markdown)."""
    by = ["dataset", "task", "test_set", "evaluator", "baseline", "protocol", "ratio", "method",
          "fraction", "metric"]  # fmt: skip
    table = sort_rows(diffs[with_evaluator(COLLECTED_PAIRED_COLUMNS)], by, _ORDERS)
    write_csv(table, out.paired_csv)
    write_text(paired_summary(table), out.paired_md)


def _table4(runs: pd.DataFrame, out: ReportFiles) -> None:
    keys = ["dataset", "task", "test_set", "evaluator", "protocol", "ratio", "method"]
    protocol = runs["protocol"]
    keep = (
        (protocol == "TRTR")
        | ((protocol == "TSRTR") & np.isclose(runs["ratio"], 1.0))
        | (protocol == "minority")
    )
    rows = runs[keep & _full(runs)]
    table = _with_scale(summarise(rows, keys, ("minority_f1",), _ORDERS), rows, keys)
    write_csv(table, out.table4_csv)
    settings = [setting(p, r) for p, r in zip(table["protocol"], table["ratio"], strict=True)]
    shown = table[["dataset", "task", "test_set", "evaluator"]].assign(
        setting=settings,
        method=table["method"],
        **{"chosen w": scale_cells(table)},
        seeds=table["n_seeds"],
        **{"minority F1 [95 % CI]": cells(table, "minority_f1")},
        **{"SD": table["minority_f1_sd"].map(num)},
    )
    title = (
        "Table 4. Minority-class F1 on the real test sets per evaluation model (evaluator): real "
        "data alone (TRTR), synthetic added at α=1 (TSRTR), and minority-only augmentation "
        "(×multiple of the real minority count); mean over seeds [mean of the per-seed 95 % "
        f"test-bootstrap interval bounds]. {_CHOSEN_NOTE}"
    )
    write_markdown(title, shown, out.table4_md)


def _method_lines(
    ax: Axes, frame: pd.DataFrame, x: str, metric: str, suffix: str = "", ls: str = "-"
) -> None:
    """One line (mean over seeds) and band (mean of the per-seed 95 % bounds) per method,
    against ``x``."""
    for method in methods(frame):
        rows = frame[frame["method"] == method]
        stats = rows.groupby(x)[[metric, f"{metric}_lo", f"{metric}_hi"]].mean().sort_index()
        band_line(ax, stats.index, stats[metric], stats[f"{metric}_lo"], stats[f"{metric}_hi"],
                  color=colour(method), label=f"{method}{suffix}", ls=ls)  # fmt: skip


def _files(out: ReportFiles, name: str) -> tuple[str, str]:
    """The PNG and PDF paths of figure ``name`` in ``out``."""
    return getattr(out, f"{name}_png"), getattr(out, f"{name}_pdf")


def _conditional_copies(rows: pd.DataFrame) -> list[str]:
    """Methods of ``rows`` whose every row is at scale 0 of a scale-guided method: the same
    samples as ``conditional`` (empty where ``conditional`` is not among them)."""
    if "conditional" not in set(rows["method"]):
        return []
    scales = rows.groupby("method")["scale"]
    return [m for m in methods(rows) if all(same_as_conditional(m, w) for w in scales.get_group(m))]


def _panel_title(dataset: str, task: str, copies: list[str]) -> str:
    """``dataset · task``, then the methods drawn as conditional."""
    if not copies:
        return f"{dataset} · {task}"
    return f"{dataset} · {task}\n{', '.join(copies)} = conditional (w = 0)"


def _evaluator_label(evaluator: str, metric: str) -> str:
    return f"{EVALUATOR_NAMES.get(evaluator, evaluator)}: {metric.upper()}"


def _trtr_lines(ax: Axes, trtr: pd.DataFrame, metric: str) -> None:
    """A dashed horizontal line at each TRTR method's mean (real train only)."""
    for method in methods(trtr):
        mean = trtr.loc[trtr["method"] == method, metric].mean()
        ax.axhline(mean, color=colour(method), ls="--", lw=1, label=f"{method} (TRTR mean)")


def _ratio_figure(runs: pd.DataFrame, out: ReportFiles) -> None:
    """Fig. 2: TSRTR AUROC and AUPRC against α, a row of panels per evaluator and metric; TRTR
    means dashed; methods at conditional's samples named in the title, not drawn again."""
    main = runs[_full(runs)]
    tsrtr = main[main["protocol"] == "TSRTR"]
    pairs = panels(tsrtr)
    if not pairs:
        return placeholder("no TSRTR rows in this run", *_files(out, "fig2"))
    rows_of = [(e, m) for e in evaluators(tsrtr) for m in ("auroc", "auprc")]
    fig, axes = grid(len(rows_of), len(pairs), 2.4)
    for col, (dataset, task) in enumerate(pairs):
        rows = here(main, dataset, task)
        copies = _conditional_copies(here(tsrtr, dataset, task))
        for row, (evaluator, metric) in enumerate(rows_of):
            ax, part = axes[row, col], rows[rows["evaluator"] == evaluator]
            shown = (part["protocol"] == "TSRTR") & ~part["method"].isin(copies)
            _method_lines(ax, part[shown], "ratio", metric)
            _trtr_lines(ax, part[part["protocol"] == "TRTR"], metric)
            ax.set_ylabel(_evaluator_label(evaluator, metric) if col == 0 else "")
            ax.set_xlabel("synthetic ratio α" if row == len(rows_of) - 1 else "")
        axes[0, col].set_title(_panel_title(dataset, task, copies), fontsize=8)
    note = (
        "Fig. 2. TSRTR utility against α (all real train data; external test population where "
        f"there is one), one row per evaluation model and metric; {INTERVAL_NOTE}; dashed: TRTR "
        "mean (real train only). 'X = conditional (w = 0)': X chose guidance scale 0, so its "
        "samples, and its line, are conditional's."
    )
    finish(fig, note, *_files(out, "fig2"))


def _scarcity_figure(runs: pd.DataFrame, out: ReportFiles) -> None:
    """AUPRC against the share of real train kept, a row of panels per evaluator: TSRTR α=1 per
    method and TRTR (real train only) dashed; a method at conditional's samples at every share
    named in the title, not drawn again."""
    scarce = runs[runs["fraction"] < 1.0]
    pairs = panels(scarce)
    if not pairs:
        return placeholder("no data-scarcity study in this run", *_files(out, "scarcity"))
    fig, axes = grid(len(evaluators(scarce)), len(pairs), 3.0)
    for row, evaluator in enumerate(evaluators(scarce)):
        for col, (dataset, task) in enumerate(pairs):
            ax, rows = axes[row, col], here(runs, dataset, task)
            rows = rows[rows["evaluator"] == evaluator]
            tsrtr = rows[(rows["protocol"] == "TSRTR") & np.isclose(rows["ratio"], 1.0)]
            trtr = rows[rows["protocol"] == "TRTR"]
            copies = _conditional_copies(tsrtr)
            shown = tsrtr[~tsrtr["method"].isin(copies)]
            _method_lines(ax, shown, "fraction", "auprc", suffix=" (TSRTR α=1)")
            _method_lines(ax, trtr, "fraction", "auprc", suffix=" (TRTR)", ls="--")
            log_axis(ax, sorted(set(tsrtr["fraction"]) | set(trtr["fraction"])))
            ax.set_xlabel("share of real train kept (log)")
            ax.set_ylabel(_evaluator_label(evaluator, "auprc"))
            ax.set_title(_panel_title(dataset, task, copies), fontsize=8)
    note = (
        f"Data scarcity (external test population where there is one): {INTERVAL_NOTE}. "
        "'X = conditional (w = 0)': X chose guidance scale 0 at every share, so its samples, "
        "and its line, are conditional's."
    )
    finish(fig, note, *_files(out, "scarcity"))
