"""Figures and tables of the utility evaluation (:func:`write_report`).

Reads every dataset's ``utility.csv`` (one row per trained evaluation model and test set), the
collected ``paired.csv`` (paired differences, adjusted for multiplicity) and the
``selection.json`` files (guidance scales scored on validation), and writes the paper's figures
(PNG and PDF), its tables (Markdown and CSV), the verdict table and the results README
(:mod:`tardiff.evaluate.verdict`) named by ``ReportFiles``.

Conventions:
- An estimate over seeds is the mean of the per-seed values; its interval is the mean of the
  per-seed 95 % test-bootstrap bounds; SD is the standard deviation over seeds. Figure bands span
  the minimum to the maximum over seeds.
- Main results use the full real train split (``fraction`` 1.0); the data-scarcity figure uses the
  rest. A dataset named ``<base>-train<fraction>`` is read as ``<base>`` at that fraction.
- Tables show every test set (``test_set``); figures show the headline one (the external
  population where a dataset has one, :func:`~tardiff.evaluate.multiplicity.on_headline_test_set`).
- Methods and protocols have a fixed order and colour; unknown methods come last, by name.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from tardiff.evaluate.collect import COLLECTED_PAIRED_COLUMNS
from tardiff.evaluate.multiplicity import on_headline_test_set
from tardiff.evaluate.plotting import (
    BAND_NOTE,
    METHOD_ORDER,
    ORDERS,
    band_line,
    cells,
    colour,
    finish,
    grid,
    here,
    log_axis,
    methods,
    num,
    panels,
    placeholder,
    rank,
    sort_rows,
    style,
    summarise,
    symlog_axis,
    write_markdown,
    write_text,
)
from tardiff.evaluate.verdict import (
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
_ORDERS = {**ORDERS, "protocol": PROTOCOL_ORDER, "test_set": ("internal", "external")}
_TEXT = ("dataset", "task", "test_set", "method", "baseline", "protocol", "metric", "verdict",
         "verdict_adj")  # fmt: skip
_METRICS = ("auroc", "auprc", "minority_f1")
UTILITY_COLUMNS = (
    ("dataset", "task", "test_set", "method", "protocol", "ratio", "fraction", "seed", "scale")
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
        _selection_figure(chosen, out)


def _read_csv(path: str | Path, required: Sequence[str]) -> pd.DataFrame:
    """A CSV with its ``required`` columns (ValueError naming file and column if one is absent)."""
    frame = pd.read_csv(path, dtype={c: str for c in _TEXT})
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
    """Each method must come at one guidance scale per setting (the chosen one)."""
    keys = ["dataset", "task", "test_set", "method", "protocol", "ratio", "fraction"]
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


def _table1(runs: pd.DataFrame, out: ReportFiles) -> None:
    keys = ["dataset", "task", "test_set", "protocol", "method"]
    rows = runs[runs["protocol"].isin(["TRTR", "TSTR"]) & _full(runs)]
    table = summarise(rows, keys, ("auroc", "auprc"), _ORDERS)
    write_csv(table, out.table1_csv)
    shown = table[keys].assign(
        seeds=table["n_seeds"],
        **{"AUROC [95 % CI]": cells(table, "auroc"), "AUROC SD": table["auroc_sd"].map(num)},
        **{"AUPRC [95 % CI]": cells(table, "auprc"), "AUPRC SD": table["auprc_sd"].map(num)},
    )
    title = (
        "Table 1. TRTR and TSTR on the real test sets (all real train data; internal: the test "
        "split, external: the external population): mean over seeds [mean of the per-seed 95 % "
        "test-bootstrap interval bounds]; SD over seeds."
    )
    write_markdown(title, shown, out.table1_md)


def _paired_table(diffs: pd.DataFrame, out: ReportFiles) -> None:
    """The full paired table (CSV, sorted) and its summary (Markdown)."""
    by = ["dataset", "task", "test_set", "baseline", "protocol", "ratio", "method", "fraction",
          "metric"]  # fmt: skip
    table = sort_rows(diffs[list(COLLECTED_PAIRED_COLUMNS)], by, _ORDERS)
    write_csv(table, out.paired_csv)
    write_text(paired_summary(table), out.paired_md)


def _table4(runs: pd.DataFrame, out: ReportFiles) -> None:
    keys = ["dataset", "task", "test_set", "protocol", "ratio", "method"]
    protocol = runs["protocol"]
    keep = (
        ((protocol == "TRTR") & (runs["method"] == "real"))
        | ((protocol == "TSRTR") & np.isclose(runs["ratio"], 1.0))
        | (protocol == "minority")
    )
    table = summarise(runs[keep & _full(runs)], keys, ("minority_f1",), _ORDERS)
    write_csv(table, out.table4_csv)
    settings = [setting(p, r) for p, r in zip(table["protocol"], table["ratio"], strict=True)]
    shown = table[["dataset", "task", "test_set"]].assign(
        setting=settings,
        method=table["method"],
        seeds=table["n_seeds"],
        **{"minority F1 [95 % CI]": cells(table, "minority_f1")},
        **{"SD": table["minority_f1_sd"].map(num)},
    )
    title = (
        "Table 4. Minority-class F1 on the real test sets: real data alone (TRTR), synthetic "
        "added at α=1 (TSRTR), and minority-only augmentation (×multiple of the real minority "
        "count); mean over seeds [mean of the per-seed 95 % test-bootstrap interval bounds]."
    )
    write_markdown(title, shown, out.table4_md)


def _method_lines(
    ax: Axes, frame: pd.DataFrame, x: str, metric: str, suffix: str = "", ls: str = "-"
) -> None:
    """One line (mean over seeds) and band (min–max over seeds) per method, against ``x``."""
    for method in methods(frame):
        rows = frame[frame["method"] == method]
        stats = rows.groupby(x)[metric].agg(["mean", "min", "max"]).sort_index()
        band_line(ax, stats.index, stats["mean"], stats["min"], stats["max"],
                  color=colour(method), label=f"{method}{suffix}", ls=ls)  # fmt: skip


def _files(out: ReportFiles, name: str) -> tuple[str, str]:
    """The PNG and PDF paths of figure ``name`` in ``out``."""
    return getattr(out, f"{name}_png"), getattr(out, f"{name}_pdf")


def _ratio_figure(runs: pd.DataFrame, out: ReportFiles) -> None:
    """Fig. 2: TSRTR AUROC (top) and AUPRC (bottom) against α; real TRTR mean dashed."""
    main = runs[_full(runs)]
    pairs = panels(main[main["protocol"] == "TSRTR"])
    if not pairs:
        return placeholder("no TSRTR rows in this run", *_files(out, "fig2"))
    fig, axes = grid(2, len(pairs), 2.6)
    for col, (dataset, task) in enumerate(pairs):
        rows = here(main, dataset, task)
        real = rows[(rows["protocol"] == "TRTR") & (rows["method"] == "real")]
        for row, metric in enumerate(("auroc", "auprc")):
            ax = axes[row, col]
            _method_lines(ax, rows[rows["protocol"] == "TSRTR"], "ratio", metric)
            if len(real):
                ax.axhline(real[metric].mean(), color=colour("real"), ls="--", lw=1,
                           label="real (TRTR mean)")  # fmt: skip
            ax.set_ylabel(metric.upper() if col == 0 else "")
            ax.set_xlabel("synthetic ratio α" if row == 1 else "")
        axes[0, col].set_title(f"{dataset} · {task}", fontsize=9)
    note = (
        f"TSRTR utility against α (all real train data; external test population where there is "
        f"one); {BAND_NOTE}; dashed: real TRTR mean"
    )
    finish(fig, note, *_files(out, "fig2"))


def _scarcity_figure(runs: pd.DataFrame, out: ReportFiles) -> None:
    """AUPRC against the share of real train kept: TSRTR α=1 per method and TRTR real."""
    pairs = panels(runs[runs["fraction"] < 1.0])
    if not pairs:
        return placeholder("no data-scarcity study in this run", *_files(out, "scarcity"))
    fig, axes = grid(1, len(pairs), 3.0)
    for ax, (dataset, task) in zip(axes[0], pairs, strict=True):
        rows = here(runs, dataset, task)
        tsrtr = rows[(rows["protocol"] == "TSRTR") & np.isclose(rows["ratio"], 1.0)]
        real = rows[(rows["protocol"] == "TRTR") & (rows["method"] == "real")]
        _method_lines(ax, tsrtr, "fraction", "auprc", suffix=" (TSRTR α=1)")
        _method_lines(ax, real, "fraction", "auprc", suffix=" (TRTR)", ls="--")
        log_axis(ax, sorted(set(tsrtr["fraction"]) | set(real["fraction"])))
        ax.set(xlabel="share of real train kept (log)", ylabel="AUPRC")
        ax.set_title(f"{dataset} · {task}", fontsize=9)
    note = f"Data scarcity (external test population where there is one): {BAND_NOTE}"
    finish(fig, note, *_files(out, "scarcity"))


def _selection_panel(ax: Axes, selection: dict) -> None:
    grids = []
    for method in sorted(selection["methods"], key=lambda m: rank(m, METHOD_ORDER)):
        entry, tint = selection["methods"][method], colour(method)
        scales, score = np.asarray(entry["grid"], float), np.asarray(entry["score"], float)
        per_seed = entry.get("per_seed", [[]] * len(scales))
        for scale, seeds in zip(scales, per_seed, strict=True):
            seeds = np.asarray(seeds, float)
            ax.scatter(np.full(len(seeds), scale), seeds, color=tint, alpha=0.3, s=10, lw=0)
        order = np.argsort(scales)
        ax.plot(scales[order], score[order], color=tint, marker="o", ms=3, lw=1.2, label=method)
        chosen = float(entry["chosen"])
        ax.axvline(chosen, color=tint, ls=":", lw=1)
        at = np.isclose(scales, chosen)
        if at.any():
            ax.scatter([chosen], score[at][:1], marker="*", s=90, color=tint,
                       edgecolors="black", linewidths=0.5, zorder=3)  # fmt: skip
        grids.append(scales)
    symlog_axis(ax, np.concatenate(grids) if grids else np.array([]))
    ratio = selection.get("ratio")
    where = f"{selection.get('protocol', '')} α={ratio:g}" if ratio is not None else ""
    metric = str(selection.get("metric", "score")).upper()
    ax.set(xlabel="guidance scale", ylabel=f"{metric} on validation select")
    ax.set_title(f"{selection['dataset']} · {selection['task']} {where}".strip(), fontsize=9)


def _selection_figure(selections: list[dict], out: ReportFiles) -> None:
    """Validation score against guidance scale per guided method, the chosen scale marked."""
    if not selections:
        return placeholder("no guidance-scale selection in this run", *_files(out, "selection"))
    fig, axes = grid(1, len(selections), 3.0)
    for ax, selection in zip(axes[0], selections, strict=True):
        _selection_panel(ax, selection)
    note = (
        "Guidance-scale selection: line: mean over seeds; points: single seeds; "
        "star and dotted line: chosen scale; x symlog (linear below the smallest non-zero scale)"
    )
    finish(fig, note, *_files(out, "selection"))
