"""Distance-based privacy of a synthetic set against the real training records.

Inputs are normalised (z-units of the real-train transform) (N, L, D) arrays, each sequence
flattened to a vector of L·D values. The **distance** between two sequences is the Euclidean
distance divided by √(L·D), i.e. the root-mean-square difference per element in z-units, so it
does not grow with the sequence length or the number of features.

- **DCR** (distance to closest record) of a sequence: its distance to the nearest real *training*
  record (``sklearn.neighbors.NearestNeighbors``), computed for every synthetic and every holdout
  sequence. For an equal-size comparison both sets are subsampled without replacement to
  m = min(N_synthetic, N_holdout) (``np.random.default_rng(seed)``, synthetic first, then
  holdout). ``dcr_share``: the share of those m synthetic sequences whose DCR is strictly below
  the median DCR of the m holdout sequences (≈ 0.5 when the synthetic set is as far from train as
  unseen real data is; → 1 for copies of training records). ``dcr_p5_synthetic``,
  ``dcr_p5_holdout``: the 5th percentiles of the two subsampled DCR sets.
- **Membership inference**: members are N_m = min(N_train, N_holdout) training records and
  non-members N_m holdout records (whichever set is larger is subsampled without replacement, by
  the same generator after the DCR subsampling). The attacker scores a candidate by minus its
  distance to the nearest synthetic sequence (full synthetic set): training records the generator
  memorised lie closer. ``attack_auc`` is the AUROC of members (1) vs non-members (0) under that
  score (0.5 = no leak, 1 = every member closer than every non-member), ``attack_auc_lo``,
  ``attack_auc_hi`` its 95 % label-stratified bootstrap interval
  (:func:`tardiff.evaluate.downstream.metrics.metric_interval`, ``resamples`` resamples, seeded).
- ``near_copies``: the number of synthetic sequences (full set) whose DCR is strictly below
  ``near_copy_distance``; ``n_synthetic``, ``n_holdout``, ``n_members``: the set sizes
  (full synthetic and holdout sets, N_m).
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from tardiff.evaluate.downstream.metrics import metric_interval


def _flat(a: np.ndarray) -> np.ndarray:
    """(N, L, D) -> (N, L·D) float64, scaled by 1/√(L·D) so Euclidean distances are RMS."""
    flat = a.reshape(len(a), -1).astype(np.float64)
    return flat / np.sqrt(flat.shape[1])


def _nearest(reference: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Distance of every query row to its nearest reference row."""
    return NearestNeighbors(n_neighbors=1).fit(reference).kneighbors(queries)[0][:, 0]


def _check(arrays: dict[str, np.ndarray]) -> None:
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    if any(len(s) != 3 or 0 in s for s in shapes.values()):
        raise ValueError(f"privacy metrics need non-empty (N, L, D) arrays, got {shapes}")
    if len({s[1:] for s in shapes.values()}) > 1:
        raise ValueError(f"privacy metrics need one (L, D) for all arrays, got {shapes}")
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            raise ValueError(f"privacy metrics: {name} has non-finite values")


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` of range(n) without replacement (all of them, in order, if size >= n)."""
    return rng.choice(n, size, replace=False) if size < n else np.arange(n)


def privacy_metrics(
    train: np.ndarray,
    holdout: np.ndarray,
    synthetic: np.ndarray,
    *,
    near_copy_distance: float,
    resamples: int,
    seed: int,
) -> dict[str, float]:
    """DCR share and percentiles, membership-inference AUC with its interval and near copies
    (module docstring); normalised inputs."""
    _check({"train": train, "holdout": holdout, "synthetic": synthetic})
    x_train, x_hold, x_syn = _flat(train), _flat(holdout), _flat(synthetic)
    dcr_syn, dcr_hold = _nearest(x_train, x_syn), _nearest(x_train, x_hold)
    rng = np.random.default_rng(seed)
    m = min(len(x_syn), len(x_hold))
    syn_eq = dcr_syn[_sample(len(x_syn), m, rng)]
    hold_eq = dcr_hold[_sample(len(x_hold), m, rng)]
    n_members = min(len(x_train), len(x_hold))
    if n_members < 2:
        raise ValueError(
            f"membership inference needs >= 2 members and non-members, got {n_members}"
        )
    members = x_train[_sample(len(x_train), n_members, rng)]
    non_members = x_hold[_sample(len(x_hold), n_members, rng)]
    y = np.concatenate([np.ones(n_members, int), np.zeros(n_members, int)])
    score = -_nearest(x_syn, np.concatenate([members, non_members]))
    auc = metric_interval(y, score, "auroc", threshold=0.0, seed=seed, n_resamples=resamples)
    out = {
        "dcr_share": float(np.mean(syn_eq < np.median(hold_eq))),
        "dcr_p5_synthetic": float(np.percentile(syn_eq, 5)),
        "dcr_p5_holdout": float(np.percentile(hold_eq, 5)),
        "attack_auc": auc.estimate,
        "attack_auc_lo": auc.low,
        "attack_auc_hi": auc.high,
        "near_copies": int(np.sum(dcr_syn < near_copy_distance)),
        "n_synthetic": len(x_syn),
        "n_holdout": len(x_hold),
        "n_members": n_members,
    }
    bad = [k for k, v in out.items() if not np.isfinite(v)]
    if bad:
        raise ValueError(f"privacy metrics not finite: {bad}")
    return out
