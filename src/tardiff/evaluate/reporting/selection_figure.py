"""The scale-selection figure (:func:`selection_figure`): how each guided method's scale was chosen.

One row of panels per ``selection.json`` (dataset · task), one column per scale-guided method.
Each panel: the validation score of each seed (points) and their mean (line) at every scale of
the method's grid, the chosen scale starred, dotted and named in the title (``= conditional``
where it is 0: the method's samples are then conditional's). Panels of a row share the y axis;
x is symmetric-log (linear below the smallest non-zero scale), a tick per scale of the grid.
Written with the conventions of :mod:`tardiff.evaluate.reporting.plotting`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from tardiff.evaluate.reporting.plotting import (
    METHOD_ORDER,
    colour,
    finish,
    grid,
    placeholder,
    rank,
    same_as_conditional,
    symlog_axis,
)


def selection_figure(selections: list[dict], png: str, pdf: str) -> None:
    """Validation score against guidance scale, a row per selection and a column per method."""
    if not selections:
        return placeholder("no guidance-scale selection in this run", png, pdf)
    names = sorted(
        {m for s in selections for m in s["methods"]}, key=lambda m: rank(m, METHOD_ORDER)
    )
    fig, axes = grid(len(selections), len(names), 1.9, width=2.8, sharey="row")
    for row, selection in enumerate(selections):
        for col, method in enumerate(names):
            ax = axes[row, col]
            if method not in selection["methods"]:
                ax.set_axis_off()
                continue
            chosen = _panel(ax, selection["methods"][method], colour(method))
            ax.set_title(_title(selection, method, chosen), fontsize=8)
            ax.set_xlabel("guidance scale w" if row == len(selections) - 1 else "")
        metric = str(selection.get("metric", "score")).upper()
        axes[row, 0].set_ylabel(f"{metric}, validation")
    note = (
        f"Guidance-scale selection ({_settings(selections)} on the validation select part): "
        "line: mean over seeds; points: single seeds; star and dotted line: the chosen scale w; "
        "'= conditional': w = 0, the method's samples are conditional's; x symlog (linear below "
        "the smallest non-zero scale)"
    )
    finish(fig, note, png, pdf)


def _panel(ax: Axes, entry: dict, tint: str) -> float:
    """One method's scores (seeds and mean) against its grid, the chosen scale marked; returns
    the chosen scale."""
    scales, score = np.asarray(entry["grid"], float), np.asarray(entry["score"], float)
    for scale, seeds in zip(scales, entry.get("per_seed", [[]] * len(scales)), strict=True):
        seeds = np.asarray(seeds, float)
        ax.scatter(np.full(len(seeds), scale), seeds, color=tint, alpha=0.35, s=10, lw=0)
    order = np.argsort(scales)
    ax.plot(scales[order], score[order], color=tint, marker="o", ms=3, lw=1.2)
    chosen = float(entry["chosen"])
    ax.axvline(chosen, color=tint, ls=":", lw=1)
    at = np.isclose(scales, chosen)
    if at.any():
        ax.scatter([chosen], score[at][:1], marker="*", s=90, color=tint,
                   edgecolors="black", linewidths=0.5, zorder=3)  # fmt: skip
    symlog_axis(ax, scales)
    return chosen


def _title(selection: dict, method: str, chosen: float) -> str:
    """``dataset · task``, then the method and its chosen scale."""
    same = " (= conditional)" if same_as_conditional(method, chosen) else ""
    return f"{selection['dataset']} · {selection['task']}\n{method}: w = {chosen:g}{same}"


def _settings(selections: list[dict]) -> str:
    """The protocols and ratios the selections scored (``TSRTR α=1``), each once."""
    shown = []
    for selection in selections:
        ratio = selection.get("ratio")
        where = f"{selection.get('protocol', '')} α={ratio:g}" if ratio is not None else ""
        if where.strip() and where not in shown:
            shown.append(where)
    return ", ".join(shown) or "scored"
