"""Figures and tables of the guidance studies, of fidelity and privacy, and of efficiency.

Every figure is written as PNG and PDF, every table as Markdown and CSV, atomically; reruns give
identical bytes. Conventions of :mod:`tardiff.evaluate.reporting.plotting`: an estimate over seeds
is the mean of the per-seed values, its interval the mean of the per-seed 95 % bounds, SD the
standard deviation over seeds; figure bands span min–max over seeds; methods have a fixed order and
colour. An input without the rows an output needs gives a placeholder figure or table that says why.

- **Fig. 3** (:func:`sweep_figure`): one row per dataset × task, against the guidance scale w
  (w = 0: the conditional draw). Left: mean sample influence G·∇φℓ of each method's class 0
  (solid) and class 1 (dashed) samples: which way, and how far, guidance moved each class.
  Second: TSRTR α=1 AUROC (solid) and AUPRC (dotted) on the validation select part. Third:
  real-vs-synthetic discriminator AUROC on seed 0's draw, 95 % interval over runs (0.5:
  indistinguishable). Right: the label judge's own-label share of class 0 (solid) and class 1
  (dashed) samples, mean over seeds (1: every sample looks like its label). x is symmetric-log
  (linear below the smallest non-zero |w|, a tick per scale): the scales are log-spaced on both
  sides of 0, so they come out evenly spaced, 0 shown.
- **Fig. 4** (:func:`guidance_size_figure`): TSRTR α=1 AUROC and AUPRC on the real test split
  against the number of guide stays G is built from (log axis), the full guide set's mean as a
  dashed reference; flat, near it: a small guide set suffices.
- **Table 3** (:func:`table3`): per-sample gradient norms of the guide stays by class and the
  minority / majority ratio of their means (> 1: minority stays weigh more in G).
- **Table 5** (:func:`table5`): utility with G from all, minority-only or majority-only stays.
- **Fig. 5**: :mod:`tardiff.evaluate.reporting.samples_figure`.
- **Fidelity and privacy** (:func:`fidelity_privacy_table`): one row per method at its chosen
  scale (``chosen w``; ``0 (= conditional)``: the method's samples are conditional's, so its row
  repeats conditional's) next to the real-holdout floor; **efficiency**
  (:func:`efficiency_table`): what each stage cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes

from tardiff.evaluate.reporting.plotting import (
    BAND_NOTE,
    METHOD_ORDER,
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
    plain,
    rank,
    scale_cells,
    sort_rows,
    style,
    summarise,
    symlog_axis,
    write_markdown,
)
from tardiff.io import write_csv

SOURCE_ORDER = ("all", "minority", "majority")
SOURCE_COLOURS = {"all": "tab:red", "minority": "tab:purple", "majority": "tab:olive"}
FIDELITY_ORDER = ("real_holdout", *METHOD_ORDER)
SUMMARY_METRICS = (
    "disc_auroc", "disc_score", "pred_mae", "mmd", "sd_ratio_min", "out_of_range",
    "label_share_0", "label_share_1",
)  # fmt: skip
_KEYS = ["dataset", "task", "method"]
_STUDY_METRICS = ("minority_f1", "auroc", "auprc")


def _placeholder_table(title: str, why: str, md: str, csv: str) -> None:
    """A one-cell table (``note``) saying why there is nothing to show."""
    table = pd.DataFrame({"note": [why]})
    write_csv(table, csv)
    write_markdown(title, table, md)


def _study(studies: pd.DataFrame, study: str) -> pd.DataFrame:
    return studies[studies["study"] == study] if len(studies) else studies


def sweep_figure(*, sweep: pd.DataFrame, png: str, pdf: str) -> None:
    """Fig. 3: influence, validation utility and discriminability against the guidance scale."""
    with style():
        pairs = panels(sweep) if len(sweep) else []
        if not pairs:
            return placeholder("no guidance-scale sweep rows in this run", png, pdf)
        fig, axes = grid(len(pairs), 4, 2.9)
        titles = ("sample influence", "TSRTR α=1 on validation select", "real vs synthetic",
                  "label judge")  # fmt: skip
        for row, (dataset, task) in enumerate(pairs):
            rows = here(sweep, dataset, task).sort_values("scale", kind="stable")
            _influence_panel(axes[row, 0], rows)
            _utility_panel(axes[row, 1], rows)
            _discriminator_panel(axes[row, 2], rows)
            _label_panel(axes[row, 3], rows)
            for ax, title in zip(axes[row], titles, strict=True):
                symlog_axis(ax, rows["scale"].to_numpy())
                ax.tick_params(axis="x", labelrotation=45)
                ax.set_xlabel("guidance scale w")
                ax.set_title(f"{dataset} · {task}\n{title}", fontsize=9)
        note = (
            f"Fig. 3. Guidance-scale sweep of {', '.join(methods(sweep))} (w = 0: the conditional "
            "draw; x symlog, linear below the smallest non-zero |w|). Left: mean sample influence "
            "G·∇φℓ (a.u.), class 0 solid, class 1 dashed. Second: AUROC solid, AUPRC dotted; "
            f"{BAND_NOTE}. Third: discriminator AUROC on seed 0's draw, bars: 95 % interval over "
            "discriminator runs; dotted: 0.5 (indistinguishable). Right: share of each class's "
            "samples that a judge trained on real train labels as their own class (threshold "
            "on validation select), class 0 solid, class 1 dashed, mean over seeds."
        )
        finish(fig, note, png, pdf)


def _per_class_lines(ax: Axes, rows: pd.DataFrame, prefix: str) -> None:
    """Columns ``<prefix>0`` (solid) and ``<prefix>1`` (dashed) against the scale, per method."""
    for method in methods(rows):
        part = rows[rows["method"] == method]
        for label, ls in ((0, "-"), (1, "--")):
            ax.plot(part["scale"], part[f"{prefix}{label}"], color=colour(method), ls=ls,
                    marker="o", ms=3, lw=1.2, label=f"{method}, class {label} samples")  # fmt: skip


def _influence_panel(ax: Axes, rows: pd.DataFrame) -> None:
    _per_class_lines(ax, rows, "influence_")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("mean influence G·∇φℓ (a.u.)")


def _utility_panel(ax: Axes, rows: pd.DataFrame) -> None:
    for method in methods(rows):
        part = rows[rows["method"] == method]
        for metric, ls, marker in (("auroc", "-", "o"), ("auprc", ":", "s")):
            band_line(ax, part["scale"], part[metric], part[f"{metric}_min"],
                      part[f"{metric}_max"], color=colour(method),
                      label=f"{method}, {metric.upper()}", ls=ls, marker=marker)  # fmt: skip
    ax.set_ylabel("AUROC / AUPRC")


def _discriminator_panel(ax: Axes, rows: pd.DataFrame) -> None:
    shown = rows.dropna(subset=["disc_auroc"])
    for method in methods(shown):
        part = shown[shown["method"] == method]
        below = (part["disc_auroc"] - part["disc_auroc_lo"]).clip(lower=0).fillna(0)
        above = (part["disc_auroc_hi"] - part["disc_auroc"]).clip(lower=0).fillna(0)
        ax.errorbar(part["scale"], part["disc_auroc"], yerr=[below, above], color=colour(method),
                    marker="o", ms=3, lw=1.2, capsize=2, label=method)  # fmt: skip
    if shown.empty:
        ax.text(0.5, 0.5, "no discriminator runs", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)  # fmt: skip
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="AUROC 0.5 (indistinguishable)")
    ax.set_ylabel("discriminator AUROC")


def _label_panel(ax: Axes, rows: pd.DataFrame) -> None:
    _per_class_lines(ax, rows, "label_share_")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("own-label share (judge)")


def guidance_size_figure(*, studies: pd.DataFrame, png: str, pdf: str) -> None:
    """Fig. 4: TSRTR α=1 AUROC and AUPRC on real test against the guide set size."""
    rows = _study(studies, "guide_size")
    with style():
        pairs = panels(rows) if len(rows) else []
        if not pairs:
            return placeholder("no guide_size study rows in this run", png, pdf)
        fig, axes = grid(len(pairs), 2, 2.8)
        for row, (dataset, task) in enumerate(pairs):
            for ax, metric in zip(axes[row], ("auroc", "auprc"), strict=True):
                _size_lines(ax, here(rows, dataset, task), metric)
                _full_set_line(ax, here(rows, dataset, task), metric)
                ax.set(xlabel="guide stays used for G (log)", ylabel=f"{metric.upper()}, real test")
                ax.set_title(f"{dataset} · {task}: {metric.upper()}", fontsize=9)
        note = (
            "Fig. 4. Guide-set size: tardiff, TSRTR α=1 on the real test split against the number "
            f"of guide stays G is built from; {BAND_NOTE}; dashed: the full guide set (all guide "
            "stays, the main run's G), mean over seeds"
        )
        finish(fig, note, png, pdf)


def _size_lines(ax: Axes, rows: pd.DataFrame, metric: str) -> None:
    """One line per guide source: mean over seeds at each guide fraction, band min–max."""
    ticks: set[float] = set()
    for source in sorted(rows["source"].unique(), key=lambda s: rank(s, SOURCE_ORDER)):
        part = rows[rows["source"] == source]
        stats = part.groupby("fraction").agg(n=("n_guide", "mean"), mean=(metric, "mean"),
                                             low=(metric, "min"), high=(metric, "max"))  # fmt: skip
        stats = stats.sort_values("n")
        band_line(ax, stats["n"], stats["mean"], stats["low"], stats["high"],
                  color=SOURCE_COLOURS.get(source, colour(source)),
                  label=f"tardiff, guide source: {source}")  # fmt: skip
        ticks |= set(stats["n"])
    log_axis(ax, sorted(ticks))


def _full_set_line(ax: Axes, rows: pd.DataFrame, metric: str) -> None:
    """A dashed horizontal line at the mean of the full guide set (all stays, fraction 1)."""
    full = rows[(rows["source"] == "all") & (rows["fraction"] == 1.0)]
    if len(full):
        ax.axhline(full[metric].mean(), color="black", ls="--", lw=1,
                   label="full guide set (mean over seeds)")  # fmt: skip


def table5(*, studies: pd.DataFrame, md: str, csv: str) -> None:
    """Table 5: TSRTR α=1 on real test with G from all, minority-only or majority-only stays."""
    title = (
        "Table 5. Guide-set source of tardiff's G: TSRTR α=1 on the real test split; mean over "
        "seeds [mean of the per-seed 95 % test-bootstrap interval bounds]; SD over seeds; "
        "n_guide: guide stays used for G (mean over seeds)."
    )
    rows = _study(studies, "guide_source")
    if rows.empty:
        return _placeholder_table(title, "no guide_source study rows in this run", md, csv)
    keys = ["dataset", "task", "source"]
    table = summarise(rows, keys, _STUDY_METRICS, {"source": SOURCE_ORDER})
    size = rows.groupby(keys)["n_guide"].mean()
    table.insert(3, "n_guide", size.reindex(pd.MultiIndex.from_frame(table[keys])).to_numpy())
    write_csv(table, csv)
    shown = table[keys].assign(n_guide=plain(table["n_guide"]), seeds=table["n_seeds"])
    for metric, name in zip(_STUDY_METRICS, ("minority F1", "AUROC", "AUPRC"), strict=True):
        shown[f"{name} [95 % CI]"] = cells(table, metric)
        shown[f"{name} SD"] = table[f"{metric}_sd"].map(num)
    write_markdown(title, shown, md)


def table3(*, summaries: Sequence[dict], md: str, csv: str) -> None:
    """Table 3: per-sample gradient norms of the guide stays by class (influence summaries)."""
    title = (
        "Table 3. Per-sample gradient norms ‖∇φℓ‖₂ of the guide stays by class (BCE loss of the "
        "guidance classifier, L2 norm over its parameters; unitless): n, mean and median per "
        "class; ratio: minority mean / majority mean."
    )
    if not summaries:
        return _placeholder_table(title, "no influence summaries in this run", md, csv)
    table = pd.DataFrame([_norm_row(s) for s in summaries])
    table = sort_rows(table, ["dataset", "task", "source"], {"source": SOURCE_ORDER})
    write_csv(table, csv)
    shown = table[["dataset", "task", "source", "minority_label", "n_guide"]].copy()
    for name in ("majority", "minority"):
        shown[f"n {name}"] = table[f"n_{name}"]
        shown[f"mean {name}"] = [f"{v:.4g}" for v in table[f"mean_{name}"]]
        shown[f"median {name}"] = [f"{v:.4g}" for v in table[f"median_{name}"]]
    shown["ratio of means"] = table["ratio_of_means"].map(lambda v: f"{v:.2f}")
    write_markdown(title, shown, md)


def _norm_row(summary: dict) -> dict:
    """One Table 3 row from an influence ``summary.json`` (plus ``dataset``)."""
    required = ("dataset", "task", "minority_label", "n_guide", "grad_norm_by_class")
    missing = [k for k in required if k not in summary]
    if missing:
        raise ValueError(f"influence summary: missing required key(s): {', '.join(missing)}")
    minority = int(summary["minority_label"])
    by_class = summary["grad_norm_by_class"]
    row = {k: summary[k] for k in required[:4]} | {"source": summary.get("source", "all")}
    for name, label in (("majority", 1 - minority), ("minority", minority)):
        norms = by_class[str(label)]
        row[f"n_{name}"] = int(norms["n"])
        row[f"mean_{name}"] = float(norms["mean_grad_norm"])
        row[f"median_{name}"] = float(norms["median_grad_norm"])
    row["ratio_of_means"] = row["mean_minority"] / row["mean_majority"]
    return row


def fidelity_privacy_table(
    *, fidelity: pd.DataFrame, privacy: pd.DataFrame, md: str, csv: str
) -> None:
    """Fidelity and privacy summary: one row per dataset × task × method, means over seeds."""
    title = (
        "Fidelity and privacy of each method's evaluated synthetic sets (at the guidance scale "
        "chosen on validation: chosen w; 0 (= conditional): the method's samples are "
        "conditional's, so its row repeats conditional's) against real train, mean over seeds "
        "[mean of the per-seed 95 % bounds]. disc.: real-vs-synthetic discriminator AUROC and "
        "score |0.5 − accuracy| (0.5 / 0: indistinguishable); pred. MAE: next-step predictor "
        "trained on the set, tested on real test (z-units); MMD²: Gaussian kernel, median "
        "heuristic (z-units); min SD ratio: the smallest per-feature SD(set) / SD(real train) "
        "(1: the real spread); out of range: share of values outside the valid clinical "
        "ranges; own label 0 / 1: share of the set's class 0 / 1 stays that a judge trained on "
        "real train (threshold on validation select) labels as their own class (real_holdout: "
        "its recall per class on real test); DCR share: share of synthetic stays closer to "
        "train than the median holdout stay (0.5: no memorisation); attack AUC: distance-based "
        "membership inference (0.5: chance); near copies: summed over seeds / synthetic stays. "
        "real_holdout: real test vs real train (the floor); real: predictor trained on real "
        "train."
    )
    if fidelity.empty and privacy.empty:
        return _placeholder_table(title, "no fidelity or privacy rows in this run", md, csv)
    keys = pd.concat([f[[*_KEYS, "seed", "scale"]] for f in (fidelity, privacy) if len(f)])
    table = keys.groupby(_KEYS).agg(n_seeds=("seed", "nunique"), scale=("scale", _one_scale))
    table = table.join(_fidelity_summary(fidelity)).join(_privacy_summary(privacy))
    table = sort_rows(table.reset_index(), _KEYS, {"method": FIDELITY_ORDER})
    table = table.astype({"near_copies": "Int64", "n_synthetic": "Int64"})
    write_csv(table, csv)
    copies = [
        f"{int(c)} / {int(n)}" if pd.notna(c) and pd.notna(n) else ""
        for c, n in zip(table["near_copies"], table["n_synthetic"], strict=True)
    ]
    shown = table[_KEYS].assign(
        seeds=[str(n) if n else "" for n in table["n_seeds"]],
        **{"chosen w": scale_cells(table)},
        **{"disc. AUROC [95 % CI]": cells(table, "disc_auroc")},
        **{"disc. score": table["disc_score"].map(num), "pred. MAE": table["pred_mae"].map(num)},
        **{"MMD²": table["mmd"].map(num), "min SD ratio": table["sd_ratio_min"].map(num)},
        **{"out of range": table["out_of_range"].map(num)},
        **{f"own label {c}": table[f"label_share_{c}"].map(num) for c in (0, 1)},
        **{"DCR share": table["dcr_share"].map(num)},
        **{"attack AUC [95 % CI]": cells(table, "attack_auc"), "near copies": copies},
    )
    write_markdown(title, shown, md)


def _one_scale(scales: pd.Series) -> float:
    """The one guidance scale of a method's rows (NaN for real rows and jitter)."""
    values = scales.dropna().unique()
    if len(values) > 1:
        raise ValueError(f"fidelity/privacy: one method at several scales {sorted(values)}")
    return float(values[0]) if len(values) else float("nan")


def _fidelity_summary(fidelity: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean over seeds of each summary metric (feature "all"), disc AUROC bounds."""
    columns = ["disc_auroc", "disc_auroc_lo", "disc_auroc_hi", *SUMMARY_METRICS[1:]]
    if fidelity.empty:
        return pd.DataFrame(columns=columns, index=pd.MultiIndex.from_tuples([], names=_KEYS))
    rows = fidelity[(fidelity["feature"] == "all") & fidelity["metric"].isin(SUMMARY_METRICS)]
    twice = rows.duplicated([*_KEYS, "metric", "seed"])
    if twice.any():
        where = rows.loc[twice, [*_KEYS, "metric", "seed"]].iloc[0].tolist()
        raise ValueError(f"fidelity: several rows (references) for {where}")
    means = rows.groupby([*_KEYS, "metric"])[["value", "lo", "hi"]].mean()
    wide = {c: means[c].unstack("metric").reindex(columns=list(SUMMARY_METRICS)) for c in means}
    table = wide["value"].assign(disc_auroc_lo=wide["lo"]["disc_auroc"],
                                 disc_auroc_hi=wide["hi"]["disc_auroc"])  # fmt: skip
    return table[columns].astype(float)


def _privacy_summary(privacy: pd.DataFrame) -> pd.DataFrame:
    """Per method: means over seeds of the privacy metrics; near copies and sizes summed."""
    means = ["dcr_share", "attack_auc", "attack_auc_lo", "attack_auc_hi"]
    if privacy.empty:
        index = pd.MultiIndex.from_tuples([], names=_KEYS)
        return pd.DataFrame(columns=[*means, "near_copies", "n_synthetic"], index=index)
    groups = privacy.groupby(_KEYS)
    return groups[means].mean().join(groups[["near_copies", "n_synthetic"]].sum().astype(int))


def efficiency_table(*, efficiency: pd.DataFrame, md: str, csv: str) -> None:
    """The efficiency table, sorted by stage then dataset; seconds to 0.1, MB to 1."""
    title = (
        "Efficiency: wall time (s, summed over a stage's jobs) and peak resident memory (MB, "
        "max over its jobs) per stage, dataset and task."
    )
    if efficiency.empty:
        return _placeholder_table(title, "no efficiency rows in this run", md, csv)
    table = efficiency.sort_values(["stage", "dataset"], kind="stable").reset_index(drop=True)
    table = table.assign(wall_s=table["wall_s"].round(1), max_rss_mb=table["max_rss_mb"].round(0))
    write_csv(table, csv)
    shown = table.assign(
        wall_s=["" if pd.isna(v) else f"{v:.1f}" for v in table["wall_s"]],
        max_rss_mb=["" if pd.isna(v) else f"{v:.0f}" for v in table["max_rss_mb"]],
        note=table["note"].fillna(""),
    ).rename(columns={"wall_s": "wall time (s)", "max_rss_mb": "peak memory (MB)"})
    write_markdown(title, shown, md)
