"""Fig. 5 (:func:`samples_figure`): real train vs each method's synthetic set.

Per feature and class the mean and 10–90 % band over stays per time step, and a PCA of whole
sequences fitted on real (synthetic points should cover the real cloud: neither collapse nor
stray). Written as PNG and PDF with the conventions of :mod:`tardiff.evaluate.plotting`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from tardiff.evaluate.plotting import METHOD_ORDER, colour, finish, placeholder, rank, style


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
        n_features, width = x_real.shape[2], len(classes) * len(names)
        fig = Figure(figsize=(max(3.2 * len(classes), 3.0 * len(names)) + 0.6,
                              1.8 * n_features + 4.2), layout="constrained")  # fmt: skip
        spec = fig.add_gridspec(n_features + 1, width, height_ratios=[1] * n_features + [1.7])
        for col, label in enumerate(classes):
            for d in range(n_features):
                ax = fig.add_subplot(spec[d, col * len(names) : (col + 1) * len(names)])
                _trajectories(ax, (x_real, y_real), draws, names, label, d)
                ax.set_ylabel(f"{features[d]} [{units[d]}]" if units[d] else features[d])
                ax.set_xlabel("time step" if d == n_features - 1 else "")
                if d == 0:
                    ax.set_title(f"class {label} (real n = {(y_real == label).sum()})", fontsize=9)
        pca_axes = [fig.add_subplot(spec[n_features, k * len(classes) : (k + 1) * len(classes)])
                    for k in range(len(names))]  # fmt: skip
        _pca_panels(pca_axes, x_real, draws, names, seed)
        note = (
            f"{title}. Top: line: mean over stays; band: 10–90 % of stays, per time step (real "
            "black/grey). Bottom: PCA of whole sequences (features standardised with the real "
            "mean/SD), fitted on real; at most 500 points per set."
        )
        finish(fig, note, png, pdf)


def _trajectories(ax: Axes, real, draws, names: list[str], label: int, d: int) -> None:
    """Mean and 10–90 % band of feature ``d`` of class ``label``: real, then each method."""
    sets = [("real train", real, "black", "grey", 0.35)]
    sets += [(m, draws[m], colour(m), colour(m), 0.12) for m in names]
    for name, (x, y), line, band, alpha in sets:
        values = np.asarray(x, float)[np.asarray(y) == label][:, :, d]
        if not len(values):
            continue
        steps = np.arange(values.shape[1])
        low, high = np.percentile(values, [10, 90], axis=0)
        ax.fill_between(steps, low, high, color=band, alpha=alpha, lw=0)
        ax.plot(steps, values.mean(axis=0), color=line, lw=1.2, label=f"{name}: mean, 10–90 %")


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
        ax.scatter(*real_points.T, s=5, color="black", alpha=0.35, lw=0, label="real train")
        x = subsample(np.asarray(draws[method][0], float))
        if len(x):
            points = pca.transform(flat(x))
            ax.scatter(*points.T, s=5, color=colour(method), alpha=0.35, lw=0, label=method)
        ax.set(xlabel=f"PC1 ({share[0]:.0%} of real variance)",
               ylabel=f"PC2 ({share[1]:.0%})")  # fmt: skip
        ax.set_title(f"PCA: real train vs {method}", fontsize=9)
