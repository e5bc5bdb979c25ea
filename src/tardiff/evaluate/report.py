"""Figures and tables of the utility evaluation (:func:`write_report`).

Reads every dataset's ``utility.csv`` (one row per trained evaluation model), ``paired.csv``
(paired differences) and the ``selection.json`` files (guidance scales scored on validation), and
writes the paper's figures (PNG and PDF) and tables (Markdown and CSV) named by ``ReportFiles``.

Conventions:
- An estimate over seeds is the mean of the per-seed values; its interval is the mean of the
  per-seed 95 % test-bootstrap bounds; SD is the standard deviation over seeds. Figure bands span
  the minimum to the maximum over seeds.
- Main results use the full real train split (``fraction`` 1.0); the data-scarcity figure uses the
  rest. A dataset named ``<base>-train<fraction>`` is read as ``<base>`` at that fraction.
- Methods and protocols have a fixed order and colour; unknown methods come last, by name.
"""

from __future__ import annotations

import json
import textwrap
import zlib
from collections.abc import Sequence
from pathlib import Path

import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tardiff.io import atomic_path, write_csv
from tardiff.layout import ReportFiles, parse_dataset

METHOD_ORDER = ("real", "conditional", "tardiff", "classifier_guidance", "jitter")
PROTOCOL_ORDER = ("TRTR", "TSTR", "TSRTR", "minority")
COLOURS = {"real": "black", "conditional": "tab:blue", "tardiff": "tab:red",
           "classifier_guidance": "tab:green", "jitter": "tab:gray"}  # fmt: skip
_EXTRA_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:orange")
_ORDERS = {"method": METHOD_ORDER, "baseline": METHOD_ORDER, "protocol": PROTOCOL_ORDER}
_TEXT = ("dataset", "task", "method", "baseline", "protocol", "metric", "verdict")
_METRICS = ("auroc", "auprc", "minority_f1")
UTILITY_COLUMNS = (
    ("dataset", "task", "method", "protocol", "ratio", "fraction", "seed", "scale")
    + tuple(f"{m}{s}" for m in _METRICS for s in ("", "_lo", "_hi"))
)  # fmt: skip
PAIRED_COLUMNS = (
    "dataset", "task", "method", "baseline", "protocol", "ratio", "fraction", "metric",
    "delta", "delta_lo", "delta_hi", "share_positive", "n_seeds", "verdict",
)  # fmt: skip
BAND_NOTE = "line: mean over seeds; band: min–max over seeds"


def write_report(
    *,
    utility: str | Path,
    paired: str | Path,
    selections: Sequence[str | Path],
    out: ReportFiles,
) -> None:
    """Write the three figures (PNG + PDF) and three tables (Markdown + CSV) of ``out``."""
    runs = _read_csv(utility, UTILITY_COLUMNS)
    _check_one_scale(runs, utility)
    diffs = _read_csv(paired, PAIRED_COLUMNS)
    chosen = [s for s in map(_read_selection, selections) if s["methods"]]  # any guided method
    chosen.sort(key=lambda s: (s["dataset"], s["task"]))
    _table1(runs, out)
    _paired_table(diffs, out)
    _table4(runs, out)
    with matplotlib.style.context("default"):
        _ratio_figure(runs, out)
        _scarcity_figure(runs, out)
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
    keys = ["dataset", "task", "method", "protocol", "ratio", "fraction"]
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


def _rank(value: str, order: Sequence[str]) -> tuple[int, str]:
    return (order.index(value) if value in order else len(order), value)


def _sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``frame`` sorted by ``by``, methods and protocols in their fixed order."""

    def key(column: pd.Series) -> pd.Series:
        order = _ORDERS.get(str(column.name))
        if order is None:
            return column
        return column.map(lambda v: "{:03d}{}".format(*_rank(v, order)))

    return frame.sort_values(by, key=key, kind="stable").reset_index(drop=True)


def _methods(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["method"].unique(), key=lambda m: _rank(m, METHOD_ORDER))


def _colour(method: str) -> str:
    extra = _EXTRA_COLOURS[zlib.crc32(method.encode()) % len(_EXTRA_COLOURS)]
    return COLOURS.get(method, extra)


def _num(value: float) -> str:
    return "" if pd.isna(value) else f"{value:.3f}"


def _plain(values: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else format(float(v), "g") for v in values]


def _cells(table: pd.DataFrame, name: str) -> list[str]:
    """``est [lo, hi]`` of ``name`` (just ``est`` where a bound is missing)."""
    rows = zip(table[name], table[f"{name}_lo"], table[f"{name}_hi"], strict=True)
    return [
        f"{_num(e)} [{_num(lo)}, {_num(hi)}]" if pd.notna(lo) and pd.notna(hi) else _num(e)
        for e, lo, hi in rows
    ]


def _write_markdown(title: str, table: pd.DataFrame, path: str) -> None:
    """A title line, then a pipe table of the (already formatted) cells."""

    def row(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    lines = [title, "", row(table.columns), "|" + "---|" * len(table.columns)]
    lines += [row(cells) for cells in table.itertuples(index=False)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _full(frame: pd.DataFrame) -> np.ndarray:
    return np.isclose(frame["fraction"], 1.0)


def _summary(frame: pd.DataFrame, keys: list[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Per group of ``keys``: seeds, and mean, SD, mean lower and upper bound of each metric."""
    groups = frame.groupby(keys, dropna=False, sort=False)
    table = groups["seed"].nunique().rename("n_seeds").to_frame()
    for m in metrics:
        table[m], table[f"{m}_sd"] = groups[m].mean(), groups[m].std()
        table[f"{m}_lo"], table[f"{m}_hi"] = groups[f"{m}_lo"].mean(), groups[f"{m}_hi"].mean()
    return _sorted(table.reset_index(), keys)


def _table1(runs: pd.DataFrame, out: ReportFiles) -> None:
    keys = ["dataset", "task", "protocol", "method"]
    rows = runs[runs["protocol"].isin(["TRTR", "TSTR"]) & _full(runs)]
    table = _summary(rows, keys, ("auroc", "auprc"))
    write_csv(table, out.table1_csv)
    shown = table[keys].assign(
        seeds=table["n_seeds"],
        **{"AUROC [95 % CI]": _cells(table, "auroc"), "AUROC SD": table["auroc_sd"].map(_num)},
        **{"AUPRC [95 % CI]": _cells(table, "auprc"), "AUPRC SD": table["auprc_sd"].map(_num)},
    )
    title = (
        "Table 1. TRTR and TSTR on the real test split (all real train data): mean over seeds "
        "[mean of the per-seed 95 % test-bootstrap interval bounds]; SD over seeds."
    )
    _write_markdown(title, shown, out.table1_md)


def _paired_table(diffs: pd.DataFrame, out: ReportFiles) -> None:
    by = ["dataset", "task", "baseline", "protocol", "ratio", "method", "fraction", "metric"]
    table = _sorted(diffs[list(PAIRED_COLUMNS)], by)
    write_csv(table, out.paired_csv)
    shown = table[by].assign(ratio=_plain(table["ratio"]), fraction=_plain(table["fraction"]))
    shown["Δ [95 % CI]"] = _cells(table, "delta")
    shown["share Δ>0"] = table["share_positive"].map(_num)
    shown["seeds"], shown["verdict"] = _plain(table["n_seeds"]), table["verdict"]
    title = (
        "Paired differences Δ = method − baseline on the same test stays, mean over seeds [95 % "
        "hierarchical bootstrap interval]; 'no detectable difference' where it contains 0."
    )
    _write_markdown(title, shown, out.paired_md)


def _setting(protocol: str, ratio: float) -> str:
    if protocol == "minority":
        return f"minority ×{format(float(ratio), 'g')}"
    return protocol if pd.isna(ratio) else f"{protocol} α={format(float(ratio), 'g')}"


def _table4(runs: pd.DataFrame, out: ReportFiles) -> None:
    keys = ["dataset", "task", "protocol", "ratio", "method"]
    protocol = runs["protocol"]
    keep = (
        ((protocol == "TRTR") & (runs["method"] == "real"))
        | ((protocol == "TSRTR") & np.isclose(runs["ratio"], 1.0))
        | (protocol == "minority")
    )
    table = _summary(runs[keep & _full(runs)], keys, ("minority_f1",))
    write_csv(table, out.table4_csv)
    settings = [_setting(p, r) for p, r in zip(table["protocol"], table["ratio"], strict=True)]
    shown = table[["dataset", "task"]].assign(
        setting=settings,
        method=table["method"],
        seeds=table["n_seeds"],
        **{"minority F1 [95 % CI]": _cells(table, "minority_f1")},
        **{"SD": table["minority_f1_sd"].map(_num)},
    )
    title = (
        "Table 4. Minority-class F1 on the real test split: real data alone (TRTR), synthetic "
        "added at α=1 (TSRTR), and minority-only augmentation (×multiple of the real minority "
        "count); mean over seeds [mean of the per-seed 95 % test-bootstrap interval bounds]."
    )
    _write_markdown(title, shown, out.table4_md)


def _panels(frame: pd.DataFrame) -> list[tuple[str, str]]:
    return sorted(set(zip(frame["dataset"], frame["task"], strict=True)))


def _here(frame: pd.DataFrame, dataset: str, task: str) -> pd.DataFrame:
    return frame[(frame["dataset"] == dataset) & (frame["task"] == task)]


def _method_lines(
    ax: Axes, frame: pd.DataFrame, x: str, metric: str, suffix: str = "", ls: str = "-"
) -> None:
    """One line (mean over seeds) and band (min–max over seeds) per method, against ``x``."""
    for method in _methods(frame):
        rows = frame[frame["method"] == method]
        stats = rows.groupby(x)[metric].agg(["mean", "min", "max"]).sort_index()
        colour = _colour(method)
        ax.fill_between(stats.index, stats["min"], stats["max"], color=colour, alpha=0.15, lw=0)
        ax.plot(stats.index, stats["mean"], color=colour, marker="o", ms=3, lw=1.2,
                ls=ls, label=f"{method}{suffix}")  # fmt: skip


def _save(fig: Figure, out: ReportFiles, name: str) -> None:
    """``out.<name>_png`` (150 dpi) and ``_pdf``, without timestamps or version stamps."""
    with atomic_path(getattr(out, f"{name}_png")) as tmp:
        fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
    with atomic_path(getattr(out, f"{name}_pdf")) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "Producer": None})


def _finish(fig: Figure, note: str, out: ReportFiles, name: str) -> None:
    """Figure-wide legend (each label once), the reading note as title, then save."""
    legend: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    width = fig.get_figwidth()
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", fontsize=8,
               ncols=max(1, min(len(legend), int(width / 2.2))), frameon=False)  # fmt: skip
    fig.suptitle(textwrap.fill(note, int(width * 13)), fontsize=9)
    _save(fig, out, name)


def _placeholder(message: str, out: ReportFiles, name: str) -> None:
    fig = Figure(figsize=(5, 2))
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    _save(fig, out, name)


def _grid(rows: int, columns: int, height: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(3.2 * columns + 0.6, height * rows + 1.2), layout="constrained")
    return fig, fig.subplots(rows, columns, squeeze=False)


def _ratio_figure(runs: pd.DataFrame, out: ReportFiles) -> None:
    """Fig. 2: TSRTR AUROC (top) and AUPRC (bottom) against α; real TRTR mean dashed."""
    main = runs[_full(runs)]
    panels = _panels(main[main["protocol"] == "TSRTR"])
    if not panels:
        return _placeholder("no TSRTR rows in this run", out, "fig2")
    fig, axes = _grid(2, len(panels), 2.6)
    for col, (dataset, task) in enumerate(panels):
        here = _here(main, dataset, task)
        real = here[(here["protocol"] == "TRTR") & (here["method"] == "real")]
        for row, metric in enumerate(("auroc", "auprc")):
            ax = axes[row, col]
            _method_lines(ax, here[here["protocol"] == "TSRTR"], "ratio", metric)
            if len(real):
                ax.axhline(real[metric].mean(), color=_colour("real"), ls="--", lw=1,
                           label="real (TRTR mean)")  # fmt: skip
            ax.set_ylabel(metric.upper() if col == 0 else "")
            ax.set_xlabel("synthetic ratio α" if row == 1 else "")
        axes[0, col].set_title(f"{dataset} · {task}", fontsize=9)
    note = f"TSRTR utility against α (all real train data); {BAND_NOTE}; dashed: real TRTR mean"
    _finish(fig, note, out, "fig2")


def _scarcity_figure(runs: pd.DataFrame, out: ReportFiles) -> None:
    """AUPRC against the share of real train kept: TSRTR α=1 per method and TRTR real."""
    panels = _panels(runs[runs["fraction"] < 1.0])
    if not panels:
        return _placeholder("no data-scarcity study in this run", out, "scarcity")
    fig, axes = _grid(1, len(panels), 3.0)
    for ax, (dataset, task) in zip(axes[0], panels, strict=True):
        here = _here(runs, dataset, task)
        tsrtr = here[(here["protocol"] == "TSRTR") & np.isclose(here["ratio"], 1.0)]
        real = here[(here["protocol"] == "TRTR") & (here["method"] == "real")]
        _method_lines(ax, tsrtr, "fraction", "auprc", suffix=" (TSRTR α=1)")
        _method_lines(ax, real, "fraction", "auprc", suffix=" (TRTR)", ls="--")
        fractions = sorted(set(tsrtr["fraction"]) | set(real["fraction"]))
        ax.set_xscale("log")
        ax.set_xticks(fractions, labels=[format(f, "g") for f in fractions])
        ax.set_xticks([], minor=True)
        ax.set(xlabel="share of real train kept (log)", ylabel="AUPRC")
        ax.set_title(f"{dataset} · {task}", fontsize=9)
    _finish(fig, f"Data scarcity: {BAND_NOTE}", out, "scarcity")


def _selection_panel(ax: Axes, selection: dict) -> None:
    grids = []
    for method in sorted(selection["methods"], key=lambda m: _rank(m, METHOD_ORDER)):
        entry, colour = selection["methods"][method], _colour(method)
        grid, score = np.asarray(entry["grid"], float), np.asarray(entry["score"], float)
        per_seed = entry.get("per_seed", [[]] * len(grid))
        for scale, seeds in zip(grid, per_seed, strict=True):
            seeds = np.asarray(seeds, float)
            ax.scatter(np.full(len(seeds), scale), seeds, color=colour, alpha=0.3, s=10, lw=0)
        order = np.argsort(grid)
        ax.plot(grid[order], score[order], color=colour, marker="o", ms=3, lw=1.2, label=method)
        chosen = float(entry["chosen"])
        ax.axvline(chosen, color=colour, ls=":", lw=1)
        at = np.isclose(grid, chosen)
        if at.any():
            ax.scatter([chosen], score[at][:1], marker="*", s=90, color=colour,
                       edgecolors="black", linewidths=0.5, zorder=3)  # fmt: skip
        grids.append(grid)
    ticks = np.unique(np.concatenate(grids)) if grids else np.array([])
    nonzero = np.abs(ticks[ticks != 0])
    ax.set_xscale("symlog", linthresh=float(nonzero.min()) if nonzero.size else 1.0)
    ax.set_xticks(ticks, labels=[format(t, "g") for t in ticks], fontsize=7)
    ratio = selection.get("ratio")
    where = f"{selection.get('protocol', '')} α={ratio:g}" if ratio is not None else ""
    metric = str(selection.get("metric", "score")).upper()
    ax.set(xlabel="guidance scale", ylabel=f"{metric} on validation select")
    ax.set_title(f"{selection['dataset']} · {selection['task']} {where}".strip(), fontsize=9)


def _selection_figure(selections: list[dict], out: ReportFiles) -> None:
    """Validation score against guidance scale per guided method, the chosen scale marked."""
    if not selections:
        return _placeholder("no guidance-scale selection in this run", out, "selection")
    fig, axes = _grid(1, len(selections), 3.0)
    for ax, selection in zip(axes[0], selections, strict=True):
        _selection_panel(ax, selection)
    note = (
        "Guidance-scale selection: line: mean over seeds; points: single seeds; "
        "star and dotted line: chosen scale; x symlog (linear below the smallest non-zero scale)"
    )
    _finish(fig, note, out, "selection")
