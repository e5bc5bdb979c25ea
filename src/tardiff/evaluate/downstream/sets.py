"""Training sets of the utility evaluation: real train, synthetic draws and their mixes.

- A **draw** is one synthetic set (method, scale, seed) read back from the generation (or
  jitter) stage and mapped into the normalised units of the shared transform fitted on real
  train, so every evaluation model sees the same input scale.
- **TSTR** trains on the draw's subset of ``|real train|`` samples at the real class ratio (the
  labels the generator was asked for). **TSRTR** at ratio α trains on real train ∪ a subset of
  ``round(α·|real train|)`` samples at the real class ratio. **Minority-only** augmentation at
  multiple m adds ``round(m · real minority count)`` synthetic minority samples.
- Subsets are **nested**: one seeded permutation per class of each draw, and every protocol takes
  the first k samples of each class, so a smaller α is always a subset of a larger one.
- The imbalance corrections (:func:`add_corrections`) train on real train alone: class-weighted,
  or with real minority stays duplicated to each protocol's synthetic minority count.
- A :class:`Plan` pools the real and synthetic arrays once and lists, per evaluation model, the
  pool rows it trains on (repeats allowed), its seed, its class weights and what it is (method,
  protocol, ratio, scale, counts, and the fingerprint of its synthetic samples: two arms with
  equal fingerprints are the same samples, e.g. a guided method whose chosen scale is 0 and
  ``conditional``). A draw whose samples are already in the pool is not added again, so two such
  arms list the same rows; :meth:`Plan.distinct` then trains each distinct model once (same rows,
  seed and class weights: the same model, as training depends on nothing else).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tardiff.data import Transform, minority_label
from tardiff.io import read_parquet
from tardiff.methods import METHODS, scale_guided
from tardiff.runtime import check_memory
from tardiff.settings import ScaleGrids

#: (method, scale, seed) of one synthetic draw; scale is None for jitter
DrawKey = tuple[str, float | None, int]


@dataclass(frozen=True)
class Draw:
    """One synthetic set in normalised units, with its labels."""

    key: DrawKey
    x: np.ndarray
    y: np.ndarray

    @property
    def fingerprint(self) -> str:
        """Digest of the samples and labels: equal for two draws of the same samples."""
        digest = hashlib.sha256(np.ascontiguousarray(self.x).tobytes())
        digest.update(np.ascontiguousarray(self.y).tobytes())
        return digest.hexdigest()


def selection_draws(methods: tuple[str, ...], scales: ScaleGrids, seeds: int) -> list[DrawKey]:
    """Draws the scale selection scores: every scale of each scale-guided method's grid
    (:func:`~tardiff.methods.scale_guided`: ``cfg`` too) and, as the scale-0 candidate of every
    such method, the conditional draw; all seeds."""
    guided = [m for m in methods if scale_guided(m)]
    keys: list[DrawKey] = [("conditional", 0.0, k) for k in range(seeds)] if guided else []
    return keys + [(m, float(w), k) for m in guided for w in scales.of(m) for k in range(seeds)]


def unselected_methods(methods: tuple[str, ...]) -> list[str]:
    """Methods whose draws do not depend on the scale selection, so every seed of them is drawn
    at once: the unguided ones, ``conditional`` first (the scale-0 candidate of every
    scale-guided method, so drawn whenever one is listed)."""
    unguided = [m for m in methods if METHODS[m] is None and m != "conditional"]
    needed = "conditional" in methods or any(scale_guided(m) for m in methods)
    return ["conditional", *unguided] if needed else unguided


def generation_draws(
    methods: tuple[str, ...], scales: ScaleGrids, selection_seeds: int, seeds: int
) -> list[DrawKey]:
    """Every diffusion draw that does not depend on the selection: every scale of each
    scale-guided method's grid for the first ``selection_seeds`` seeds (:func:`selection_draws`
    less the conditional draws), then every seed of the :func:`unselected_methods`. The later
    seeds of the guided methods are :func:`final_draws`."""
    guided = selection_draws(methods, scales, selection_seeds)
    keys = [key for key in guided if key[0] != "conditional"]
    return keys + [(m, 0.0, k) for m in unselected_methods(methods) for k in range(seeds)]


def evaluation_draws(
    methods: tuple[str, ...], chosen: dict[str, float], seeds: int
) -> list[DrawKey]:
    """Draws the final evaluation uses: each method at its chosen scale (0 for the unguided
    ones), then the jitter baseline; all seeds. A scale-guided method whose chosen scale is 0
    uses the conditional draw (:meth:`tardiff.layout.Layout.draw`); an unguided one
    (``influence_filter``) its own draw."""
    keys: list[DrawKey] = [(m, float(chosen.get(m, 0.0)), k) for m in methods for k in range(seeds)]
    return keys + [("jitter", None, k) for k in range(seeds)]


def final_draws(
    methods: tuple[str, ...], chosen: dict[str, float], seeds: int, selection_seeds: int
) -> list[DrawKey]:
    """The diffusion draws of seeds ``selection_seeds..seeds-1`` that :func:`evaluation_draws`
    reads and :func:`generation_draws` does not hold: the scale-guided methods at their chosen
    scales, where not 0 (scale 0 reads the conditional draw)."""
    return [(m, w, k) for m, w, k in evaluation_draws(methods, chosen, seeds)
            if k >= selection_seeds and scale_guided(m) and w != 0]  # fmt: skip


def load_draw(
    path: str | Path, key: DrawKey, transform: Transform, task: str, seq_len: int
) -> Draw:
    """Read a synthetic set (cohort timeseries schema plus the label) into normalised arrays."""
    frame = read_parquet(path)
    missing = [c for c in ("stay_id", "step", task, *transform.features) if c not in frame]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    if len(frame) % seq_len or not len(frame):
        raise ValueError(f"{path}: {len(frame)} rows is not a positive multiple of {seq_len} steps")
    values = frame[transform.features].to_numpy(np.float32)
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: non-finite values in the synthetic series")
    x_phys = values.reshape(-1, seq_len, len(transform.features))
    labels = frame[task].to_numpy()[::seq_len].astype(np.int64)
    if not np.isin(labels, [0, 1]).all():
        raise ValueError(f"{path}: column '{task}' must be 0/1")
    return Draw(key, transform.transform(x_phys)[0], labels)


def class_orders(y: np.ndarray, seed: int) -> dict[int, np.ndarray]:
    """One seeded permutation of the row indices of each class (the nesting order)."""
    rng = np.random.default_rng([seed, 11])
    return {c: rng.permutation(np.flatnonzero(y == c)) for c in (0, 1)}


def ratio_counts(y_real: np.ndarray, ratio: float) -> dict[int, int]:
    """Class counts of ``round(ratio·|real|)`` samples at the real class ratio."""
    n = int(round(ratio * len(y_real)))
    n_pos = int(round(n * float(np.mean(y_real))))
    return {0: n - n_pos, 1: n_pos}


def minority_counts(y_real: np.ndarray, multiple: float) -> dict[int, int]:
    """Class counts of minority-only augmentation: ``multiple`` × the real minority count."""
    minority = minority_label(y_real)
    return {minority: int(round(multiple * np.sum(y_real == minority))), 1 - minority: 0}


def take(orders: dict[int, np.ndarray], counts: dict[int, int], what: str) -> np.ndarray:
    """The first ``counts[c]`` rows of each class order (nested subsets)."""
    for c, k in counts.items():
        if k > len(orders[c]):
            raise ValueError(
                f"{what}: needs {k} synthetic samples of class {c} but the draw has "
                f"{len(orders[c])} (raise generation.n_samples or lower the ratio/multiple)"
            )
    return np.concatenate([orders[c][: counts[c]] for c in (0, 1)])


@dataclass
class Plan:
    """A pool of arrays and the evaluation models to train on parts of it."""

    x_parts: list[np.ndarray] = field(default_factory=list)
    y_parts: list[np.ndarray] = field(default_factory=list)
    size: int = 0
    members: list[np.ndarray] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    class_weights: list[tuple[float, float]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    #: pool rows of each draw added, by fingerprint
    draw_rows: dict[str, np.ndarray] = field(default_factory=dict)

    def add_data(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Append arrays to the pool; returns their pool row indices."""
        self.x_parts.append(x)
        self.y_parts.append(y)
        self.size += len(x)
        return np.arange(self.size - len(x), self.size)

    def add_model(
        self, rows: np.ndarray, seed: int, class_weights: tuple[float, float] = (1.0, 1.0), **meta
    ) -> None:
        """A model trained on the pool ``rows`` with per-class loss weights (w0, w1)."""
        self.members.append(rows)
        self.seeds.append(seed)
        self.class_weights.append(class_weights)
        self.rows.append({**meta, "seed": seed})

    def add_draw(self, draw: Draw) -> np.ndarray:
        """Pool rows of a draw's samples, added unless the same samples are there already."""
        if draw.fingerprint not in self.draw_rows:
            self.draw_rows[draw.fingerprint] = self.add_data(draw.x, draw.y)
        return self.draw_rows[draw.fingerprint]

    def distinct(self) -> tuple[list[int], np.ndarray]:
        """(the first of each set of identical models, the index into it of every model):
        models with the same pool rows, seed and class weights train to the same weights."""
        position: dict[tuple, int] = {}
        firsts: list[int] = []
        inverse = np.empty(len(self.members), np.int64)
        for k, (rows, seed, weights) in enumerate(
            zip(self.members, self.seeds, self.class_weights, strict=True)
        ):
            key = (seed, weights, len(rows), hashlib.sha256(np.ascontiguousarray(rows)).digest())
            if key not in position:
                position[key] = len(firsts)
                firsts.append(k)
            inverse[k] = position[key]
        return firsts, inverse

    def pool(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.x_parts), np.concatenate(self.y_parts)


def training_budget_mb(
    mem_mb: float | None, data_mb: float, pool_x: np.ndarray, what: str
) -> float | None:
    """What a job's ``mem_mb`` leaves for training once the cohort (``data_mb``) and the pool
    are loaded (its parts and the pool are both held: twice the pool); a ``MemoryError`` if
    nothing is left."""
    if mem_mb is None:
        return None
    held = data_mb + 2 * pool_x.nbytes / 2**20
    check_memory(held, mem_mb, f"{what} (data and training pool)")
    return mem_mb - held


def add_protocols(
    plan: Plan,
    real_rows: np.ndarray,
    y_real: np.ndarray,
    draw: Draw,
    ratios: tuple[float, ...],
    multiples: tuple[float, ...],
    tstr: bool,
) -> None:
    """Add TSTR (if ``tstr``), TSRTR at every ratio and minority-only models of one draw."""
    method, scale, seed = draw.key
    rows = plan.add_draw(draw)
    orders = class_orders(draw.y, seed)
    what = f"{method} seed {seed}"
    meta = {"method": method, "scale": scale, "samples": draw.fingerprint}
    if tstr:
        synth = rows[take(orders, ratio_counts(y_real, 1.0), what)]
        plan.add_model(synth, seed, protocol="TSTR", ratio=None, **meta,
                       n_real=0, n_synthetic=len(synth))  # fmt: skip
    for protocol, levels, counts in (
        ("TSRTR", ratios, ratio_counts),
        ("minority", multiples, minority_counts),
    ):
        for level in levels:
            synth = rows[take(orders, counts(y_real, level), what)]
            plan.add_model(np.concatenate([real_rows, synth]), seed, protocol=protocol,
                           ratio=float(level), **meta, n_real=len(real_rows),
                           n_synthetic=len(synth))  # fmt: skip


def balanced_weights(y: np.ndarray) -> tuple[float, float]:
    """Inverse-class-frequency loss weights n / (2 n_c) of labels ``y`` (scikit-learn's and
    YAIB's "balanced"); the weighted classes contribute equally to the loss."""
    counts = np.bincount(np.asarray(y, np.int64), minlength=2)
    if (counts == 0).any():
        raise ValueError(f"class weights need both classes; class counts are {counts.tolist()}")
    w0, w1 = len(y) / (2 * counts)
    return float(w0), float(w1)


def add_corrections(
    plan: Plan,
    real_rows: np.ndarray,
    y_real: np.ndarray,
    seed: int,
    baselines: tuple[str, ...],
    ratios: tuple[float, ...],
    multiples: tuple[float, ...],
) -> None:
    """The imbalance corrections of seed ``seed`` (``evaluation.baselines``).

    - ``class_weight``: real train with :func:`balanced_weights` (protocol TRTR);
    - ``oversample``: real train plus real minority stays drawn with replacement, as many as the
      synthetic minority samples of each TSRTR ratio and minority multiple (nested: every level
      takes the first draws of one seeded sequence).
    """
    meta = {"scale": None, "samples": None, "n_synthetic": 0}
    if "class_weight" in baselines:
        plan.add_model(real_rows, seed, balanced_weights(y_real), method="class_weight",
                       protocol="TRTR", ratio=None, **meta, n_real=len(real_rows))  # fmt: skip
    if "oversample" not in baselines:
        return
    minority = minority_label(y_real)
    levels = [("TSRTR", r, ratio_counts(y_real, r)[minority]) for r in ratios]
    levels += [("minority", m, minority_counts(y_real, m)[minority]) for m in multiples]
    pool = real_rows[y_real == minority]
    drawn = np.random.default_rng([seed, 13]).choice(pool, max(n for *_, n in levels))
    for protocol, level, n in levels:
        rows = np.concatenate([real_rows, drawn[:n]])
        plan.add_model(rows, seed, method="oversample", protocol=protocol, ratio=float(level),
                       **meta, n_real=len(rows))  # fmt: skip
