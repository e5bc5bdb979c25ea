"""Label fidelity: does a synthetic sample look like its own label to an independent judge?

Guidance can move a sample of label 0 towards what the guidance classifier calls 1 while it keeps
label 0 (label noise). A **judge** measures this, independently of the guidance classifier:

- model: the ``fidelity.judge`` recipe (a GRU by default) trained by the evaluation models' trainer
  (:func:`tardiff.evaluate.downstream.ensemble.train_models`: unweighted BCE, no pos_weight, a fixed
  number of AdamW steps) on the **real train split only**, model seed ``seed + seed_offset`` (the
  guidance classifier uses ``seed``, the evaluation models ``0..seeds-1``);
- threshold (:func:`balanced_threshold`): on validation ``select`` only, the logit threshold t
  that maximises balanced accuracy (TPR + TNR) / 2 of "label 1 where logit > t", i.e. Youden's
  J = TPR − FPR, so both classes count alike. Candidates: the midpoints between consecutive
  distinct select logits, and one below and one above them all; a tie goes to the candidate
  nearest 0 (the model's own boundary);
- **own-label share** of class c (:meth:`Judge.own_label_share`): the share of a set's label-c
  samples that the judge labels c (on real data: its recall of class c). Inputs are normalised
  (N, T, C) arrays, z-units of the real-train transform. A class without samples is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tardiff.data import Prepared
from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.settings import JudgeSettings

LABELS = (0, 1)
#: the ``reference`` of the label-share rows of ``fidelity.csv``
REFERENCE = "judge trained on real train (threshold on select)"


def metric_name(label: int) -> str:
    """The ``fidelity.csv`` metric (and sweep column) of a label's own-label share."""
    return f"label_share_{label}"


@dataclass(frozen=True)
class Judge:
    """A label classifier (``logits``: (N, T, C) -> (N,) logits) and its logit threshold."""

    logits: Callable[[np.ndarray], np.ndarray]
    threshold: float

    def flags(self, x_norm: np.ndarray) -> np.ndarray:
        """The judged label of each sample (int64: 1 where the logit exceeds the threshold)."""
        x = np.asarray(x_norm, dtype=np.float32)
        if x.ndim != 3 or not np.isfinite(x).all():
            raise ValueError(f"the judge needs a finite (N, T, C) array, got shape {x.shape}")
        logit = np.asarray(self.logits(x), dtype=np.float64)
        if logit.shape != (len(x),) or not np.isfinite(logit).all():
            raise ValueError(f"the judge gave {logit.shape} logits for {len(x)} samples, or NaN")
        return (logit > self.threshold).astype(np.int64)

    def own_label_share(self, x_norm: np.ndarray, y: np.ndarray) -> dict[int, float]:
        """Per label c present in ``y``: the share of its samples judged c (module docstring)."""
        y = np.asarray(y)
        if y.shape != (len(x_norm),) or not np.isin(y, LABELS).all():
            raise ValueError(f"need one label in {LABELS} per sample, got shape {y.shape}")
        judged = self.flags(x_norm)
        return {c: float(np.mean(judged[y == c] == c)) for c in LABELS if (y == c).any()}

    def records(self, x_norm: np.ndarray, y: np.ndarray) -> list[dict]:
        """``fidelity.csv`` records {metric, feature, value, reference} of the own-label shares."""
        shares = self.own_label_share(x_norm, y)
        return [
            {"metric": metric_name(c), "feature": "all", "value": v, "reference": REFERENCE}
            for c, v in shares.items()
        ]


def balanced_threshold(logits: np.ndarray, y: np.ndarray) -> float:
    """The logit threshold of maximal balanced accuracy on (``logits``, ``y``) (module
    docstring); ValueError unless both labels occur and the logits are finite."""
    s, y = np.asarray(logits, dtype=np.float64), np.asarray(y)
    if s.shape != y.shape or s.ndim != 1 or not np.isfinite(s).all():
        raise ValueError(f"need finite 1-d logits, one per label: {s.shape} vs {y.shape}")
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    if not len(pos) or not len(neg) or len(pos) + len(neg) != len(y):
        raise ValueError("the judge's threshold needs labels 0 and 1 (and nothing else)")
    u = np.unique(s)
    candidates = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2, u[-1] + 1.0]
    tp = len(pos) - np.searchsorted(pos, candidates, side="right")
    fp = len(neg) - np.searchsorted(neg, candidates, side="right")
    j = tp * len(neg) - fp * len(pos)  # Youden's J times n_pos * n_neg: exact integer ties
    best = candidates[j == j.max()]
    return float(best[np.argmin(np.abs(best))])


def train_judge(
    prepared: Prepared,
    settings: JudgeSettings,
    seed: int,
    device,
    *,
    mem_mb: float | None = None,
) -> Judge:
    """The judge of ``prepared`` (module docstring): reads its ``train`` and ``select`` splits
    only; ``mem_mb`` bounds the trainer's working memory."""
    prepared.require_both_classes(("train", "select"))
    x, y = prepared.x["train"], prepared.y["train"].astype(np.float32)
    model_seed = seed + settings.seed_offset
    ensemble = train_models(
        x, y, [np.arange(len(x))], [model_seed], settings, device=device, mem_mb=mem_mb
    )

    def logits(x_norm: np.ndarray) -> np.ndarray:
        return ensemble.predict(x_norm)[0]

    return Judge(logits, balanced_threshold(logits(prepared.x["select"]), prepared.y["select"]))
