"""Generation methods and how each one uses its scale (imported by layout and generation).

``METHODS`` maps a method to its guidance kind:

- ``None``: unguided, generated at scale 0 only, at its own path (``conditional``;
  ``influence_filter``: conditional draws filtered by sample influence);
- ``"tardiff"``, ``"classifier"``: a classifier-gradient guidance kind of
  :class:`tardiff.guidance.hook.Guidance` (``GRADIENT_KINDS``);
- ``"cfg"``: classifier-free guidance, the scale being its strength.

A *scale-guided* method (kind not None) has a scale grid (``generation.scales``) chosen on
validation, and its scale 0 is the conditional draw.

The evaluation compares every method pair by pair with the :data:`BASELINES` (:func:`compared`):
real-data-only training, the two imbalance corrections of ``evaluation.baselines`` and the two
main generators.
"""

from __future__ import annotations

#: method -> guidance kind (None = unguided); the schema's method names
METHODS: dict[str, str | None] = {
    "conditional": None,
    "tardiff": "tardiff",
    "classifier_guidance": "classifier",
    "cfg": "cfg",
    "influence_filter": None,
}
#: kinds computed from a classifier's input gradient (the Guidance hook)
GRADIENT_KINDS = ("tardiff", "classifier")


def scale_guided(method: str) -> bool:
    """Whether ``method`` has a scale grid whose scale 0 is the conditional draw."""
    return METHODS.get(method) is not None


#: evaluation arms built from real train alone, no generator (``evaluation.baselines``):
#: ``class_weight`` (TRTR with a class-weighted loss) and ``oversample`` (real minority stays
#: duplicated); ``jitter`` is the third non-generative arm (perturbed real stays)
CORRECTIONS = ("class_weight", "oversample")
#: downstream evaluators (``evaluation.evaluators``), in table order
EVALUATORS = ("gru", "lgbm")
#: arms trained on real train only, without added samples (paired at TRTR)
REAL_ONLY = ("real", "class_weight")
#: methods every other method is compared with in the paired differences, in this order
BASELINES = ("real", *CORRECTIONS, "conditional", "tardiff")


def compared(method: str, baseline: str) -> bool:
    """Whether the paired differences hold ``method`` − ``baseline``: never a baseline against
    itself or an earlier baseline (``conditional`` − ``tardiff`` is ``tardiff`` − ``conditional``
    read backwards)."""
    return method != "real" and method not in BASELINES[: BASELINES.index(baseline) + 1]
