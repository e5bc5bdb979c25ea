"""Fidelity of synthetic sequences to real ones: pure functions on (N, L, D) float arrays.

"Normalised" arrays are in z-units of the real-train transform (what the evaluation models see),
"physical" arrays in the variables' own units (:mod:`tardiff.variables`).

- **Discriminative score** (:func:`discriminative_score`, normalised): both sides are subsampled
  without replacement to n = min(N_real, N_synthetic) (``np.random.default_rng(seed)``); real is
  labelled 1, synthetic 0. Run r = 0..runs−1 splits each side 80/20 at random
  (``np.random.default_rng([seed + r, 1])``; 20 % = round(0.2 n), at least 1) and trains one
  post-hoc GRU classifier (the ``fidelity.discriminator`` recipe of
  :mod:`tardiff.evaluate.downstream.ensemble`: fixed number of AdamW steps, model seed seed + r) on
  the 80 % + 80 %. On its held-out 20 % + 20 % the run scores |0.5 − accuracy| (real predicted where
  the logit is > 0; 0 = indistinguishable, 0.5 = fully separable) and the real-vs-synthetic AUROC.
  Each is reported as the mean over runs with a 95 % Student-t interval over runs (mean ±
  t₀.₉₇₅,runs−1 · SD / √runs, clipped to the metric's range [0, 1] or [0, 0.5]; a single run gives
  low = high = mean).
- **Predictive score** (:func:`predictive_score`, normalised): a post-hoc next-step predictor
  (``nn.GRU(D → hidden)`` then ``nn.Linear(hidden → D)``) reads x[:, :-1] and predicts x[:, 1:],
  i.e. *every* feature's next value from the past of all features (the TimeGAN-era score predicts
  one feature; we predict all, so no feature is singled out). L1 loss, Adam(lr), exactly ``steps``
  steps of mini-batches of min(batch_size, N) sequences taken in order from random permutations
  (a ``torch.Generator`` seeded with ``seed``; a new permutation starts when fewer than a batch
  are left); initial weights from ``torch.manual_seed(seed)`` in a forked RNG. The score is the
  MAE (z-units) over all test sequences, steps and features. Train on synthetic, test on real
  (and the same model trained on real as the reference).
- **Marginals and dynamics** (:func:`marginal_metrics`), tidy records {metric, feature, value}:
  ``wasserstein``: per feature, the 1-Wasserstein distance (``scipy.stats.wasserstein_distance``)
  between all values pooled over sequences and steps, physical units; ``wasserstein_step``: per
  feature, the mean over time steps of the per-step 1-Wasserstein distance, physical units;
  ``sd_ratio``: per feature, SD(synthetic) / SD(real) of the values pooled over sequences and
  steps (1 = the real spread; < 1 under-dispersed; a constant real feature is an error), and
  ``sd_ratio_min`` (feature "all"): the smallest of them;
  ``autocorr_lag1_diff``: per feature, |ā_S − ā_R| where ā is the mean over sequences of the lag-1
  autocorrelation r₁ = Σₜ (xₜ − x̄)(xₜ₊₁ − x̄) / Σₜ (xₜ − x̄)² of each sequence (a constant sequence
  counts as 0); ``crosscorr_diff`` (feature "all", only when D ≥ 2): Σ_{i<j} |c_S,ij − c_R,ij| with
  c the Pearson correlation matrix of the features, values pooled over sequences and steps (a
  correlation with a constant feature counts as 0); ``mmd`` (feature "all"): the unbiased MMD² of
  the flattened normalised sequences (L·D vectors) with the Gaussian kernel
  k(x, y) = exp(−‖x − y‖² / (2σ²)), σ = the median pairwise Euclidean distance of the pooled
  sample (median heuristic), each side first subsampled to at most ``max_mmd_samples``
  (``np.random.default_rng(seed)``). Both correlations are invariant to the per-feature affine
  normalisation, so they are computed in physical units.
- **Clinical plausibility** (:func:`plausibility`, physical): ``out_of_range``: per feature, the
  share of values outside the variable's closed ``valid`` range (:mod:`tardiff.variables`, ricu
  aliases such as ``map`` resolved), and for feature "all" the share over the values of those
  features; a feature the catalogue gives no range has no ``out_of_range`` row (a warning names
  it), and without any such feature there is no "all" row either; ``bp_order_violation``
  (feature "all", only when sbp, mbp and dbp, or their aliases, are all features): the share of
  (sequence, step) pairs where not sbp ≥ mbp ≥ dbp.

Inputs must be finite; every returned value is finite (a ValueError names the metric otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from sklearn.metrics.pairwise import euclidean_distances
from torch import nn
from torch.nn import functional as F

from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.evaluate.downstream.metrics import auroc
from tardiff.runtime import adamw
from tardiff.settings import EvaluationModelSettings, PredictorSettings
from tardiff.variables import canonical_name, find_variable

log = logging.getLogger(__name__)

#: fewest sequences per side the discriminative score accepts
MIN_DISCRIMINATOR_SAMPLES = 5
#: most MiB of discriminator training pools held at once (several sets train in one call)
POOL_MB = 256


@dataclass(frozen=True)
class Summary:
    """Mean over runs with its 95 % Student-t interval over runs."""

    mean: float
    low: float
    high: float
    runs: int


def _check(arrays: dict[str, np.ndarray], same_shape: bool = False) -> None:
    """ValueError unless all arrays are non-empty, finite (N, L, D) with one (L, D) (and one N
    if ``same_shape``)."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if any(len(s) != 3 or 0 in s for s in shapes.values()):
        raise ValueError(f"need non-empty (N, L, D) arrays, got {shapes}")
    if len({s if same_shape else s[1:] for s in shapes.values()}) > 1:
        raise ValueError(f"arrays must agree in {'shape' if same_shape else '(L, D)'}: {shapes}")
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has non-finite values")


def _finite(metric: str, value: float) -> float:
    if not np.isfinite(value):
        raise ValueError(f"{metric} is not finite ({value})")
    return float(value)


def _summary(
    metric: str, values: Sequence[float], bounds: tuple[float, float] = (-np.inf, np.inf)
) -> Summary:
    """Mean and 95 % t-interval over runs, clipped to the metric's ``bounds``."""
    v = np.asarray(values, dtype=np.float64)
    mean = _finite(metric, v.mean())
    if len(v) == 1:
        return Summary(mean, mean, mean, 1)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    low, high = np.clip([mean - half, mean + half], *bounds)
    return Summary(mean, _finite(metric, float(low)), _finite(metric, float(high)), len(v))


def discriminative_score(
    real: np.ndarray,
    synthetic: np.ndarray,
    settings: EvaluationModelSettings,
    runs: int,
    seed: int,
    *,
    device: torch.device,
    mem_mb: float | None = None,
) -> dict[str, Summary]:
    """``disc_score`` (|0.5 − accuracy|) and ``disc_auroc`` over ``runs`` post-hoc GRUs
    (module docstring); normalised inputs."""
    (out,) = discriminative_scores(
        real, [synthetic], [seed], settings, runs, device=device, mem_mb=mem_mb
    )
    return out


def _discriminator_data(
    real: np.ndarray, synthetic: np.ndarray, runs: int, seed: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """One set's pool (n real then n synthetic rows), training and held-out rows of each run."""
    _check({"real": real, "synthetic": synthetic})
    n = min(len(real), len(synthetic))
    if n < MIN_DISCRIMINATOR_SAMPLES:
        raise ValueError(
            f"discriminative score needs >= {MIN_DISCRIMINATOR_SAMPLES} sequences per side, "
            f"got {len(real)} real and {len(synthetic)} synthetic"
        )
    rng = np.random.default_rng(seed)
    pool = np.concatenate([a[rng.choice(len(a), n, replace=False)] for a in (real, synthetic)])
    n_test = max(1, round(0.2 * n))
    members, held_out = [], []
    for r in range(runs):
        split = np.random.default_rng([seed + r, 1])
        perms = [split.permutation(n) + offset for offset in (0, n)]
        held_out.append(np.concatenate([p[:n_test] for p in perms]))
        members.append(np.concatenate([p[n_test:] for p in perms]))
    return pool.astype(np.float32), members, held_out


def discriminative_scores(
    real: np.ndarray,
    synthetics: Sequence[np.ndarray],
    seeds: Sequence[int],
    settings: EvaluationModelSettings,
    runs: int,
    *,
    device: torch.device,
    mem_mb: float | None = None,
) -> list[dict[str, Summary]]:
    """:func:`discriminative_score` of each synthetic set against ``real`` (set k with seed
    ``seeds[k]``): the same models, the discriminators of several sets trained in one batched
    call (pools of at most ``POOL_MB`` MiB per call), at about half the time per model."""
    if settings.arch != "gru":
        raise ValueError(f"the discriminator must be a GRU, got arch {settings.arch!r}")
    if runs < 1:
        raise ValueError(f"discriminative score needs runs >= 1, got {runs}")
    if len(synthetics) != len(seeds):
        raise ValueError(f"one seed per synthetic set: {len(synthetics)} sets, {len(seeds)} seeds")
    set_mb = 8 * len(real) * real[:1].size / 2**20  # two sides of at most |real| rows, float32
    group = max(1, int(POOL_MB // max(set_mb, 1e-9)))
    return [
        score
        for i in range(0, len(seeds), group)
        for score in _scores_in_one_call(
            real, synthetics[i : i + group], seeds[i : i + group], settings, runs, device, mem_mb
        )
    ]


def _scores_in_one_call(
    real, synthetics, seeds, settings, runs, device, mem_mb
) -> list[dict[str, Summary]]:
    """:func:`discriminative_scores` of a few sets whose discriminators train together."""
    sets = [_discriminator_data(real, x, runs, s) for x, s in zip(synthetics, seeds, strict=True)]
    offsets = np.cumsum([0] + [len(pool) for pool, _, _ in sets])
    pool_x = np.concatenate([pool for pool, _, _ in sets])
    pool_y = np.concatenate([np.repeat([1.0, 0.0], len(p) // 2) for p, _, _ in sets])
    members = [rows + o for (_, m, _), o in zip(sets, offsets[:-1], strict=True) for rows in m]
    model_seeds = [s + r for s in seeds for r in range(runs)]
    ensemble = train_models(pool_x, pool_y.astype(np.float32), members, model_seeds, settings,
                            device=device, mem_mb=mem_mb)  # fmt: skip
    out = []
    for k, ((pool, _, held_out), offset) in enumerate(zip(sets, offsets[:-1], strict=True)):
        logits = ensemble.subset(range(k * runs, (k + 1) * runs)).predict(pool)
        scores, aurocs = [], []
        for r, rows in enumerate(held_out):
            y, logit = pool_y[rows + offset], logits[r, rows]
            scores.append(abs(0.5 - np.mean((logit > 0) == (y == 1))))
            aurocs.append(float(auroc(y, logit)))
        out.append({
            "disc_score": _summary("disc_score", scores, (0.0, 0.5)),
            "disc_auroc": _summary("disc_auroc", aurocs, (0.0, 1.0)),
        })  # fmt: skip
    return out


class _NextStep(nn.Module):
    """GRU over the past, linear read-out of every feature's next value."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(n_features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, n_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def _batches(n: int, size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless batches of ``size`` positions in range(n) from epoch-wise random permutations."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield from torch.randperm(n, generator=gen)[: n - n % size].split(size)


def predictive_score(
    train: np.ndarray,
    test: np.ndarray,
    settings: PredictorSettings,
    seed: int,
    *,
    device: torch.device,
) -> float:
    """Test MAE (z-units) of a next-step GRU predictor trained on ``train`` (module docstring)."""
    _check({"train": train, "test": test})
    if train.shape[1] < 2:
        raise ValueError(f"predictive score needs >= 2 time steps, got {train.shape[1]}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _NextStep(train.shape[2], settings.hidden)
    model.to(device).train()
    x = torch.as_tensor(train, dtype=torch.float32, device=device)
    opt = adamw(model.parameters(), settings.lr)
    batches = _batches(len(x), min(settings.batch_size, len(x)), seed)
    for _ in range(settings.steps):
        xb = x[next(batches).to(device)]
        loss = F.l1_loss(model(xb[:, :-1]), xb[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(test), 1024):
            xb = torch.as_tensor(test[i : i + 1024], dtype=torch.float32, device=device)
            total += float((model(xb[:, :-1]) - xb[:, 1:]).abs().double().sum())
    return _finite("predictive_score", total / (len(test) * (test.shape[1] - 1) * test.shape[2]))


def _record(metric: str, feature: str, value: float) -> dict:
    return {"metric": metric, "feature": feature, "value": _finite(metric, value)}


def _lag1_autocorr(x: np.ndarray) -> np.ndarray:
    """Lag-1 autocorrelation of each row of x (N, L); 0 for a constant row."""
    xc = x - x.mean(1, keepdims=True)
    num, den = (xc[:, 1:] * xc[:, :-1]).sum(1), (xc**2).sum(1)
    ok = (np.ptp(x, 1) > 0) & (den > 0)
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def _correlation(x: np.ndarray) -> np.ndarray:
    """Pearson correlation matrix of the columns of x (n, D); 0 with a constant column."""
    sd = x.std(0)
    z = np.where(sd > 0, (x - x.mean(0)) / np.where(sd > 0, sd, 1.0), 0.0)
    return z.T @ z / len(x)


def _mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of the rows of x and y, Gaussian kernel, median-heuristic bandwidth."""
    dist = euclidean_distances(np.concatenate([x, y]))
    sigma = np.median(dist[np.triu_indices(len(dist), 1)])
    if sigma <= 0:
        raise ValueError("mmd: the median pairwise distance is 0 (mostly identical samples)")
    k = np.exp(-(dist**2) / (2 * sigma**2))
    n, m = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    within = (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (
        m * (m - 1)
    )
    return float(within - 2 * kxy.mean())


def _subsample(a: np.ndarray, most: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``most`` rows of ``a`` (drawn without replacement), flattened to float64."""
    if len(a) > most:
        a = a[rng.choice(len(a), most, replace=False)]
    return a.reshape(len(a), -1).astype(np.float64)


def marginal_metrics(
    real_phys: np.ndarray,
    synthetic_phys: np.ndarray,
    real_norm: np.ndarray,
    synthetic_norm: np.ndarray,
    features: Sequence[str],
    *,
    max_mmd_samples: int = 1000,
    seed: int = 0,
) -> list[dict]:
    """Distribution, dynamics and MMD records {metric, feature, value} (module docstring)."""
    _check({"real_phys": real_phys, "real_norm": real_norm}, same_shape=True)
    _check({"synthetic_phys": synthetic_phys, "synthetic_norm": synthetic_norm}, same_shape=True)
    _check({"real_phys": real_phys, "synthetic_phys": synthetic_phys})
    if real_phys.shape[2] != len(features):
        raise ValueError(f"{len(features)} feature names for D = {real_phys.shape[2]}")
    if min(len(real_norm), len(synthetic_norm), max_mmd_samples) < 2:
        raise ValueError("mmd needs >= 2 sequences per side (and max_mmd_samples >= 2)")
    r, s = real_phys.astype(np.float64), synthetic_phys.astype(np.float64)
    records = []
    for j, f in enumerate(features):
        pooled = stats.wasserstein_distance(r[..., j].ravel(), s[..., j].ravel())
        records.append(_record("wasserstein", f, pooled))
    for j, f in enumerate(features):
        steps = [stats.wasserstein_distance(r[:, t, j], s[:, t, j]) for t in range(r.shape[1])]
        records.append(_record("wasserstein_step", f, np.mean(steps)))
    ratios = [s[..., j].std() / r[..., j].std() for j in range(len(features))]
    records += [_record("sd_ratio", f, v) for f, v in zip(features, ratios, strict=True)]
    records.append(_record("sd_ratio_min", "all", min(ratios)))
    for j, f in enumerate(features):
        diff = _lag1_autocorr(s[..., j]).mean() - _lag1_autocorr(r[..., j]).mean()
        records.append(_record("autocorr_lag1_diff", f, abs(diff)))
    if len(features) > 1:
        c_r, c_s = (_correlation(a.reshape(-1, a.shape[2])) for a in (r, s))
        upper = np.triu_indices(len(features), 1)
        records.append(_record("crosscorr_diff", "all", np.abs(c_s - c_r)[upper].sum()))
    rng = np.random.default_rng(seed)
    x, y = (_subsample(a, max_mmd_samples, rng) for a in (real_norm, synthetic_norm))
    records.append(_record("mmd", "all", _mmd2(x, y)))
    return records


def plausibility(synthetic_phys: np.ndarray, features: Sequence[str]) -> list[dict]:
    """Out-of-range shares and the blood-pressure ordering violation share (module docstring)."""
    _check({"synthetic_phys": synthetic_phys})
    if synthetic_phys.shape[2] != len(features):
        raise ValueError(f"{len(features)} feature names for D = {synthetic_phys.shape[2]}")
    ranges = {j: v.valid for j, f in enumerate(features) if (v := find_variable(f)) is not None}
    if len(ranges) < len(features):
        unknown = [f for j, f in enumerate(features) if j not in ranges]
        log.warning("out_of_range: no plausible range known for %s; not computed", unknown)
    records, outside = [], []
    for j, (lo, hi) in ranges.items():
        outside.append((synthetic_phys[..., j] < lo) | (synthetic_phys[..., j] > hi))
        records.append(_record("out_of_range", features[j], outside[-1].mean()))
    if outside:
        records.append(_record("out_of_range", "all", np.mean(outside)))
    names = [canonical_name(f) for f in features]
    if {"sbp", "mbp", "dbp"} <= set(names):
        sbp, mbp, dbp = (synthetic_phys[..., names.index(f)] for f in ("sbp", "mbp", "dbp"))
        records.append(
            _record("bp_order_violation", "all", np.mean(~((sbp >= mbp) & (mbp >= dbp))))
        )
    return records
