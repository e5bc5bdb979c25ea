"""Shared helpers of the evaluation's figures and tables (``report``, ``study_figures``).

- Methods have a fixed order (:data:`METHOD_ORDER`) and colour (:data:`COLOURS`); unknown
  methods come last, by name, in a colour picked from their name (stable across runs).
- An estimate over seeds is the mean of the per-seed values; its interval is the mean of the
  per-seed 95 % bounds; SD is the standard deviation over seeds (:func:`summarise`).
- Utility rows carry the evaluation model (``evaluator``: ``gru``, ``lgbm``); a table without
  that column is read as all ``gru`` (:func:`add_evaluator`).
- A scale-guided method at scale 0 *is* ``conditional`` (same samples): tables say so next to its
  chosen scale (:func:`scale_cells`).
- Tables are written as a title line plus a Markdown pipe table (:func:`write_markdown`);
  figures as PNG (150 dpi) and PDF without timestamps (:func:`save`), so reruns are
  byte-identical. Every write is atomic. Draw inside ``with style():``.
"""

from __future__ import annotations

import re
import textwrap
import zlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager

import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from tardiff.io import atomic_path
from tardiff.methods import EVALUATORS, scale_guided

COLOURS = {"real": "black", "class_weight": "tab:brown", "oversample": "tab:cyan",
           "conditional": "tab:blue", "tardiff": "tab:red", "classifier_guidance": "tab:green",
           "cfg": "tab:purple", "influence_filter": "tab:orange", "jitter": "tab:gray"}  # fmt: skip
METHOD_ORDER = tuple(COLOURS)  # the order methods are shown in
EXTRA_COLOURS = ("tab:pink", "tab:olive")
EVALUATOR_NAMES = {"gru": "GRU", "lgbm": "LightGBM"}  # how figures name the evaluators
ORDERS: Mapping[str, Sequence[str]] = {
    "method": METHOD_ORDER, "baseline": METHOD_ORDER, "evaluator": EVALUATORS
}  # fmt: skip
BAND_NOTE = "line: mean over seeds; band: min–max over seeds"
INTERVAL_NOTE = "line: mean over seeds; band: mean of the per-seed 95 % test-bootstrap bounds"


def style() -> AbstractContextManager:
    """The matplotlib style every figure is drawn in (defaults, whatever the user's rc)."""
    return matplotlib.style.context("default")


def rank(value: str, order: Sequence[str]) -> tuple[int, str]:
    """Sort key: position in ``order``, values not in it last, by name."""
    return (order.index(value) if value in order else len(order), value)


def sort_rows(
    frame: pd.DataFrame, by: list[str], orders: Mapping[str, Sequence[str]] = ORDERS
) -> pd.DataFrame:
    """``frame`` sorted by ``by``; columns named in ``orders`` in their fixed order."""

    def key(column: pd.Series) -> pd.Series:
        order = orders.get(str(column.name))
        if order is None:
            return column
        return column.map(lambda v: "{:03d}{}".format(*rank(v, order)))

    return frame.sort_values(by, key=key, kind="stable").reset_index(drop=True)


def methods(frame: pd.DataFrame, order: Sequence[str] = METHOD_ORDER) -> list[str]:
    """The methods of ``frame`` in their fixed order."""
    return sorted(frame["method"].unique(), key=lambda m: rank(m, order))


def colour(method: str) -> str:
    """The method's colour; an unknown method gets one picked from its name."""
    extra = EXTRA_COLOURS[zlib.crc32(method.encode()) % len(EXTRA_COLOURS)]
    return COLOURS.get(method, extra)


def with_evaluator(columns: Sequence[str]) -> list[str]:
    """``columns`` with ``evaluator`` right after ``test_set`` (unless already there)."""
    if "evaluator" in columns:
        return list(columns)
    at = list(columns).index("test_set") + 1
    return [*columns[:at], "evaluator", *columns[at:]]


def add_evaluator(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with an ``evaluator`` column; a table without one was all ``gru``."""
    if "evaluator" in frame.columns:
        return frame
    return frame.assign(evaluator="gru")[with_evaluator(list(frame.columns))]


def evaluators(frame: pd.DataFrame) -> list[str]:
    """The evaluators of ``frame`` in their fixed order."""
    return sorted(frame["evaluator"].unique(), key=lambda e: rank(e, EVALUATORS))


def same_as_conditional(method: str, scale: float) -> bool:
    """Whether a method at its chosen ``scale`` draws conditional's samples (scale 0 of a
    scale-guided method)."""
    return scale_guided(method) and pd.notna(scale) and float(scale) == 0.0


def scale_cell(method: str, scale: float) -> str:
    """The chosen scale of ``method``; ``0 (= conditional)`` where its samples are
    conditional's; empty where it has none (real, jitter)."""
    if pd.isna(scale):
        return ""
    note = " (= conditional)" if same_as_conditional(method, scale) else ""
    return format(float(scale), "g") + note


def scale_cells(table: pd.DataFrame) -> list[str]:
    """:func:`scale_cell` of each row of ``table`` (columns ``method``, ``scale``)."""
    return [scale_cell(m, w) for m, w in zip(table["method"], table["scale"], strict=True)]


def num(value: float) -> str:
    """Three decimals; empty for a missing value."""
    return "" if pd.isna(value) else f"{value:.3f}"


def plain(values: pd.Series) -> list[str]:
    """Each value in its shortest form (``0.5``, ``2``); empty for a missing value."""
    return ["" if pd.isna(v) else format(float(v), "g") for v in values]


def cells(table: pd.DataFrame, name: str) -> list[str]:
    """``est [lo, hi]`` of ``name`` (just ``est`` where a bound is missing)."""
    rows = zip(table[name], table[f"{name}_lo"], table[f"{name}_hi"], strict=True)
    return [
        f"{num(e)} [{num(lo)}, {num(hi)}]" if pd.notna(lo) and pd.notna(hi) else num(e)
        for e, lo, hi in rows
    ]


def markdown_table(table: pd.DataFrame) -> list[str]:
    """The lines of a pipe table of the (already formatted) cells."""

    def row(values: Sequence[object]) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [row(table.columns), "|" + "---|" * len(table.columns)]
    return lines + [row(values) for values in table.itertuples(index=False)]


def write_text(lines: Sequence[str], path: str) -> None:
    """``lines`` as a text file (atomically)."""
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def write_markdown(title: str, table: pd.DataFrame, path: str) -> None:
    """A title line, then a pipe table of the (already formatted) cells."""
    write_text([title, "", *markdown_table(table)], path)


def summarise(
    frame: pd.DataFrame,
    keys: list[str],
    metrics: Sequence[str],
    orders: Mapping[str, Sequence[str]] = ORDERS,
) -> pd.DataFrame:
    """Per group of ``keys``: seeds, and mean, SD, mean lower and upper bound of each metric."""
    groups = frame.groupby(keys, dropna=False, sort=False)
    table = groups["seed"].nunique().rename("n_seeds").to_frame()
    for m in metrics:
        table[m], table[f"{m}_sd"] = groups[m].mean(), groups[m].std()
        table[f"{m}_lo"], table[f"{m}_hi"] = groups[f"{m}_lo"].mean(), groups[f"{m}_hi"].mean()
    return sort_rows(table.reset_index(), keys, orders)


def panels(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The (dataset, task) pairs of ``frame``, sorted."""
    return sorted(set(zip(frame["dataset"], frame["task"], strict=True)))


def here(frame: pd.DataFrame, dataset: str, task: str) -> pd.DataFrame:
    """The rows of one dataset and task."""
    return frame[(frame["dataset"] == dataset) & (frame["task"] == task)]


def band_line(ax: Axes, x, mean, low, high, *, color: str, label: str, **line) -> None:
    """A band from ``low`` to ``high`` under a line of ``mean`` (markers ``o`` unless given)."""
    ax.fill_between(x, low, high, color=color, alpha=0.15, lw=0)
    ax.plot(x, mean, color=color, **({"marker": "o", "ms": 3, "lw": 1.2} | line), label=label)


def symlog_axis(ax: Axes, values: np.ndarray, fontsize: float = 7) -> None:
    """Symmetric-log x axis, linear below the smallest non-zero |value|, a tick at each value."""
    ticks = np.unique(np.asarray(values, float))
    nonzero = np.abs(ticks[ticks != 0])
    ax.set_xscale("symlog", linthresh=float(nonzero.min()) if nonzero.size else 1.0)
    ax.set_xticks(ticks, labels=[format(t, "g") for t in ticks], fontsize=fontsize)


def log_axis(ax: Axes, values: Sequence[float]) -> None:
    """Log x axis with a labelled tick at each of ``values`` and no minor ticks."""
    ax.set_xscale("log")
    ax.set_xticks(values, labels=[format(v, "g") for v in values])
    ax.set_xticks([], minor=True)


def save(fig: Figure, png: str, pdf: str) -> None:
    """``png`` (150 dpi) and ``pdf``, without timestamps or version stamps."""
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
    with atomic_path(pdf) as tmp:
        fig.savefig(tmp, format="pdf", metadata={"CreationDate": None, "Producer": None})


def _method_first(label: str) -> int:
    """Sort key of a legend label: the position of the method it starts with (others last)."""
    word = re.match(r"\w+", label)
    return rank(word.group(0) if word else label, METHOD_ORDER)[0]


def finish(fig: Figure, note: str, png: str, pdf: str) -> None:
    """Figure-wide legend (each label once, in method order), the reading note as title, then
    save."""
    seen: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    legend = dict(sorted(seen.items(), key=lambda item: _method_first(item[0])))
    width = fig.get_figwidth()
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", fontsize=8,
               ncols=max(1, min(len(legend), int(width / 2.2))), frameon=False)  # fmt: skip
    fig.suptitle(textwrap.fill(note, int(width * 13)), fontsize=9)
    save(fig, png, pdf)


def placeholder(message: str, png: str, pdf: str) -> None:
    """A small figure that only says ``message`` (why there is nothing to draw)."""
    fig = Figure(figsize=(5, 2))
    ax = fig.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    save(fig, png, pdf)


def grid(
    rows: int, columns: int, height: float, width: float = 3.2, **shared: object
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of ``rows`` × ``columns`` axes (always a 2-D array);
    ``shared``: ``sharex`` / ``sharey`` of :meth:`~matplotlib.figure.Figure.subplots`."""
    fig = Figure(figsize=(width * columns + 0.6, height * rows + 1.2), layout="constrained")
    return fig, fig.subplots(rows, columns, squeeze=False, **shared)
