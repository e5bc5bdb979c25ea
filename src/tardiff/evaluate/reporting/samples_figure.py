"""Fig. 5 (:func:`samples_figure`): real train vs each method's synthetic set.

Top: one row per feature, one column per class and method: the method's mean (line) and 10–90 %
band (translucent, its colour) over stays per time step, over real train's (black: mean solid,
10–90 % dashed); a row shares its y axis. Bottom: a PCA of whole sequences fitted on real, one
panel per method (real: black rings; synthetic points should cover the real cloud: neither
collapse nor stray). Written as PNG and PDF with the conventions of
:mod:`tardiff.evaluate.reporting.plotting`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from tardiff.evaluate.reporting.plotting import (
    METHOD_ORDER,
    colour,
    finish,
    placeholder,
    rank,
    style,
)

BAND_ALPHA = 0.2


def samples_figure(
    *,
    real: tuple[np.ndarray, np.ndarray],
    draws: dict[str, tuple[np.ndarray, np.ndarray]],
    features: Sequence[str],
    units: Sequence[str],
    title: str,
    png: str,
    pdf: str,
    seed: int = 0,
) -> None:
    """Fig. 5: real train vs each method's synthetic set, per feature and class, and a PCA."""
    x_real, y_real = np.asarray(real[0], float), np.asarray(real[1])
    if x_real.ndim != 3 or not len(features) == len(units) == x_real.shape[2]:
        raise ValueError(f"real x of shape {x_real.shape} for {len(features)} features")
    with style():
        if len(x_real) < 2 or not draws:
            return placeholder(f"{title}: no real train or synthetic sets to show", png, pdf)
        names = sorted(draws, key=lambda m: rank(m, METHOD_ORDER))
        classes = sorted(np.unique(y_real).tolist())
        n_features, columns = x_real.shape[2], len(classes) * len(names)
        fig = Figure(figsize=(1.55 * columns + 0.8, 1.25 * n_features + 4.6), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.25 * n_features + 0.6, 3.0])
        labels = [f"{f} [{u}]" if u else f for f, u in zip(features, units, strict=True)]
        for block, cls in zip(np.atleast_1d(top.subfigures(1, len(classes))), classes, strict=True):
            _class_block(block, (x_real, y_real), draws, names, cls, labels)
        pca_axes = list(bottom.subplots(1, len(names), squeeze=False)[0])
        _pca_panels(pca_axes, x_real, draws, names, seed)
        note = (
            f"{title}. Top: per time step, mean over stays (line) and 10–90 % of stays: "
            "each method's in its colour (line, band), real train's in black (line, dashed). "
            "Bottom: PCA of whole sequences (features standardised with the real mean/SD), "
            "fitted on real; real: black rings; at most 500 points per set."
        )
        finish(fig, note, png, pdf)


def _class_block(block, real, draws, names: list[str], cls: int, labels: list[str]) -> None:
    """The trajectories of class ``cls``: a row per feature (``labels``), a column per method;
    a row shares its y axis."""
    axes = block.subplots(len(labels), len(names), sharex=True, sharey="row", squeeze=False)
    block.suptitle(f"class {cls} (real n = {int((np.asarray(real[1]) == cls).sum())})", fontsize=9)
    for d, label in enumerate(labels):
        for ax, method in zip(axes[d], names, strict=True):
            _trajectories(ax, real, draws[method], method, cls, d)
            ax.tick_params(labelsize=7)
        axes[d, 0].set_ylabel(label, fontsize=8)
    for ax, method in zip(axes[0], names, strict=True):
        ax.set_title(method, fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("time step", fontsize=8)


def _trajectories(ax: Axes, real, draw, method: str, label: int, d: int) -> None:
    """Mean and 10–90 % band of feature ``d`` of class ``label``: the method's (band), then
    real train's (lines)."""
    for name, (x, y) in ((method, draw), ("real train", real)):
        values = np.asarray(x, float)[np.asarray(y) == label][:, :, d]
        if not len(values):
            continue
        steps = np.arange(values.shape[1])
        low, high = np.percentile(values, [10, 90], axis=0)
        if name == method:
            ax.fill_between(steps, low, high, color=colour(method), alpha=BAND_ALPHA, lw=0)
            ax.plot(steps, values.mean(axis=0), color=colour(method), lw=1.2,
                    label=f"{method}: mean, 10–90 % band")  # fmt: skip
        else:
            ax.plot(steps, values.mean(axis=0), color="black", lw=1, label="real train: mean")
            ax.plot(steps, low, color="black", lw=0.7, ls="--", label="real train: 10–90 %")
            ax.plot(steps, high, color="black", lw=0.7, ls="--")


def _pca_panels(axes: list[Axes], x_real: np.ndarray, draws, names: list[str], seed: int) -> None:
    """Real vs each method's sequences on the first two principal components of real."""
    mean, sd = x_real.mean(axis=(0, 1)), x_real.std(axis=(0, 1))
    sd = np.where(sd > 0, sd, 1.0)

    def flat(x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, float) - mean) / sd).reshape(len(x), -1)

    def subsample(x: np.ndarray) -> np.ndarray:
        return x[np.sort(rng.choice(len(x), 500, replace=False))] if len(x) > 500 else x

    pca = PCA(n_components=2, random_state=seed).fit(flat(x_real))
    rng = np.random.default_rng(seed)
    real_points = pca.transform(flat(subsample(x_real)))
    share = pca.explained_variance_ratio_
    for ax, method in zip(axes, names, strict=True):
        x = subsample(np.asarray(draws[method][0], float))
        if len(x):
            points = pca.transform(flat(x))
            ax.scatter(*points.T, s=6, color=colour(method), alpha=0.45, lw=0)
        ax.scatter(*real_points.T, s=8, facecolors="none", edgecolors="black", alpha=0.5,
                   lw=0.5, label="real train (PCA)")  # fmt: skip
        ax.set(xlabel=f"PC1 ({share[0]:.0%} of real variance)",
               ylabel=f"PC2 ({share[1]:.0%})")  # fmt: skip
        ax.set_title(f"PCA: real train vs {method}", fontsize=9)
