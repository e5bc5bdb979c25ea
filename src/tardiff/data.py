"""Cohort loading, normalisation/imputation and split arrays for models.

Cohort contract (written by the extraction stage):

- ``stays.parquet``: one row per stay: ``stay_id``, ``subject_id``, ``split`` in
  {train, val, test}, ``val_part`` in {guide, select} for val rows, one int8 column per task,
  static columns.
- ``timeseries.parquet``: ``stay_id``, ``step`` (0..T-1, exactly T rows per stay, sorted), one
  float32 column per feature in physical units, NaN where not measured.

Normalisation choice: per-feature mean and SD are computed over the *observed* values of the
train split only (imputed values would shrink the SD); imputation is a forward fill along time,
then the train median (physical units) for gaps before the first measurement. Missingness masks
(True = observed) are kept alongside the imputed, normalised arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from tardiff.io import read_parquet

SPLITS = ("train", "val", "test", "guide", "select")
#: Resident memory of a stage process with torch and the package imported (MiB, measured).
BASE_MB = 400
_KEYS = ("stay_id", "step")


@dataclass
class Cohort:
    """A loaded cohort: stays table and the physical time series as an (N, T, C) array."""

    stays: pd.DataFrame
    x: np.ndarray
    features: list[str]
    task: str

    @property
    def seq_len(self) -> int:
        return self.x.shape[1]


def load_cohort(stays_path: str | Path, ts_path: str | Path, task: str) -> Cohort:
    """Read and check the stays and timeseries tables; rows follow the ``stays`` order."""
    stays = read_parquet(stays_path)
    for col in ("stay_id", "subject_id", "split", "val_part", task):
        if col not in stays.columns:
            what = f"task column '{task}'" if col == task else f"column '{col}'"
            raise ValueError(f"{stays_path}: missing {what}")
    if stays["stay_id"].duplicated().any():
        raise ValueError(f"{stays_path}: duplicate stay_id values")
    bad = set(stays["split"].unique()) - {"train", "val", "test"}
    if bad:
        raise ValueError(f"{stays_path}: column 'split' has unknown values {sorted(bad)}")
    val = stays["split"] == "val"
    if not stays.loc[val, "val_part"].isin(["guide", "select"]).all():
        raise ValueError(f"{stays_path}: column 'val_part' must be guide or select for val rows")
    labels = stays[task]
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise ValueError(f"{stays_path}: task column '{task}' must be 0/1 without nulls")

    ts = read_parquet(ts_path)
    for col in _KEYS:
        if col not in ts.columns:
            raise ValueError(f"{ts_path}: missing column '{col}'")
    features = [c for c in ts.columns if c not in _KEYS]
    if not features:
        raise ValueError(f"{ts_path}: no feature columns")
    counts = ts.groupby("stay_id", sort=False).size()
    seq_len = int(counts.iloc[0]) if len(counts) else 0
    if not (counts == seq_len).all():
        raise ValueError(f"{ts_path}: every stay must have the same number of steps")
    order = np.lexsort((ts["step"].to_numpy(), ts["stay_id"].to_numpy()))
    if not np.array_equal(order, np.arange(len(ts))):
        raise ValueError(f"{ts_path}: rows must be sorted by stay_id, step")
    steps = ts["step"].to_numpy().reshape(-1, seq_len)
    if not (steps == np.arange(seq_len)).all():
        raise ValueError(f"{ts_path}: column 'step' must run 0..{seq_len - 1} for every stay")
    ts_ids = ts["stay_id"].to_numpy()[::seq_len]
    if set(ts_ids.tolist()) != set(stays["stay_id"].tolist()):
        raise ValueError(f"{ts_path}: stay_id values differ from those of {stays_path}")
    x = ts[features].to_numpy(dtype=np.float32).reshape(len(ts_ids), seq_len, len(features))
    position = pd.Series(np.arange(len(ts_ids)), index=ts_ids)
    x = x[position.loc[stays["stay_id"].to_numpy()].to_numpy()]
    return Cohort(stays=stays.reset_index(drop=True), x=x, features=features, task=task)


@dataclass(eq=False)
class Transform:
    """Per-feature z-scoring plus forward-fill/median imputation (see module docstring)."""

    features: list[str]
    mean: np.ndarray
    sd: np.ndarray
    median: np.ndarray

    @classmethod
    def fit(cls, x_train: np.ndarray, features: list[str]) -> Transform:
        """Fit on the physical train array (N, T, C); NaN = not observed."""
        flat = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64)
        never = [f for f, n in zip(features, np.isfinite(flat).sum(0), strict=True) if n == 0]
        if never:
            raise ValueError(f"features never observed in the train split: {never}")
        mean, sd, median = np.nanmean(flat, 0), np.nanstd(flat, 0), np.nanmedian(flat, 0)
        sd = np.where(sd > 0, sd, 1.0)
        return cls(list(features), mean, sd, median)

    def transform(self, x_phys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Physical (N, T, C) with NaN -> (normalised imputed float32, observed mask bool)."""
        mask = np.isfinite(x_phys)
        steps = np.arange(x_phys.shape[1])[None, :, None]
        last_seen = np.maximum.accumulate(np.where(mask, steps, -1), axis=1)
        filled = np.take_along_axis(x_phys.astype(np.float64), np.maximum(last_seen, 0), axis=1)
        filled = np.where(last_seen >= 0, filled, self.median)
        return ((filled - self.mean) / self.sd).astype(np.float32), mask

    def inverse(self, x_norm: np.ndarray) -> np.ndarray:
        """Normalised (N, T, C) -> physical units (float32)."""
        return (x_norm.astype(np.float64) * self.sd + self.mean).astype(np.float32)

    def state_dict(self) -> dict:
        return {
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "sd": self.sd.tolist(),
            "median": self.median.tolist(),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Transform:
        arr = {k: np.asarray(state[k], dtype=np.float64) for k in ("mean", "sd", "median")}
        return cls(list(state["features"]), **arr)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transform):
            return NotImplemented
        return self.features == other.features and all(
            np.array_equal(getattr(self, k), getattr(other, k)) for k in ("mean", "sd", "median")
        )


@dataclass
class Prepared:
    """Model-ready arrays per split (train, val, test, guide, select)."""

    task: str
    features: list[str]
    seq_len: int
    transform: Transform
    x: dict[str, np.ndarray] = field(default_factory=dict)
    mask: dict[str, np.ndarray] = field(default_factory=dict)
    y: dict[str, np.ndarray] = field(default_factory=dict)
    stay_id: dict[str, np.ndarray] = field(default_factory=dict)

    def require_both_classes(self, splits: tuple[str, ...]) -> None:
        """Raise if any of ``splits`` holds a single class."""
        for split in splits:
            if len(np.unique(self.y[split])) < 2:
                raise ValueError(f"task {self.task} has only one class in split {split}")


def minority_label(y: np.ndarray) -> int:
    """The rarer label (1 on a tie): the class of minority-only augmentation and minority F1."""
    return int((y == 1).sum() <= (y == 0).sum())


def sample_labels(
    y_train: np.ndarray, n_samples: int | None, seed: int, minority_multiple: float = 1.0
) -> np.ndarray:
    """``n_samples`` labels (default ``len(y_train)``) with the train class ratio, the minority
    class topped up to ``minority_multiple`` times its count at that ratio (with the default
    ``n_samples``, its train count), shuffled."""
    n = len(y_train) if n_samples is None else int(n_samples)
    n_pos = int(round(n * float(np.mean(y_train))))
    counts = [n - n_pos, n_pos]
    minority = minority_label(y_train)
    counts[minority] = int(np.ceil(max(1.0, minority_multiple) * counts[minority] - 1e-9))
    labels = np.r_[np.zeros(counts[0], np.int64), np.ones(counts[1], np.int64)]
    return np.random.default_rng(seed).permutation(labels)


def prepare_memory_mb(ts_path: str | Path) -> float:
    """Estimated peak memory (MiB) of :func:`prepare` on a timeseries table, from its metadata:
    the pandas frame and the float64 working copies of the transform, plus the interpreter."""
    meta = pq.read_metadata(ts_path)
    return BASE_MB + meta.num_rows * meta.num_columns * 8 * 6 / 2**20


def prepare(
    stays_path: str | Path, ts_path: str | Path, task: str, splits: tuple[str, ...] = SPLITS
) -> Prepared:
    """Load a cohort and build normalised, imputed arrays for ``splits`` (default: all).

    The transform is always fitted on train; splits not asked for are not built at all (the
    scale selection asks for train and select only, so it never holds test data).
    Deterministic: rows keep the ``stays`` order and nothing here draws random numbers.
    """
    cohort = load_cohort(stays_path, ts_path, task)
    stays = cohort.stays
    selectors = {
        "train": stays["split"] == "train",
        "val": stays["split"] == "val",
        "test": stays["split"] == "test",
        "guide": (stays["split"] == "val") & (stays["val_part"] == "guide"),
        "select": (stays["split"] == "val") & (stays["val_part"] == "select"),
    }
    if not selectors["train"].any():
        raise ValueError(f"{stays_path}: the train split is empty")
    transform = Transform.fit(cohort.x[selectors["train"].to_numpy()], cohort.features)
    out = Prepared(task, cohort.features, cohort.seq_len, transform)
    for split in splits:
        rows = selectors[split].to_numpy()
        out.x[split], out.mask[split] = transform.transform(cohort.x[rows])
        out.y[split] = stays.loc[rows, task].to_numpy(np.int64)
        out.stay_id[split] = stays.loc[rows, "stay_id"].to_numpy(np.int64)
    return out


def to_timeseries_frame(
    x_phys: np.ndarray, labels: np.ndarray, features: list[str], task: str
) -> pd.DataFrame:
    """Synthetic (N, T, C) physical samples as a cohort ``timeseries`` frame plus the label column.

    Synthetic ``stay_id`` values are 0..N-1 (they identify samples within this file only).
    """
    n, seq_len, n_features = x_phys.shape
    if n_features != len(features):
        raise ValueError(f"x has {n_features} features but {len(features)} names were given")
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    frame = pd.DataFrame(
        {
            "stay_id": np.repeat(np.arange(n, dtype=np.int64), seq_len),
            "step": np.tile(np.arange(seq_len, dtype=np.int64), n),
        }
    )
    values = x_phys.reshape(n * seq_len, n_features).astype(np.float32)
    for j, name in enumerate(features):
        frame[name] = values[:, j]
    frame[task] = np.repeat(labels.astype(np.int8), seq_len)
    return frame
