"""Guidance-scale selection on the validation ``select`` part, never on test.

For every guided method the candidates are 0 (the conditional draw) and each scale of its grid
(``generation.scales``). Each candidate's draw of every selection seed (the first
``evaluation.selection_seeds`` evaluation seeds) is scored by TSRTR at α = 1:
an evaluation model (the fixed recipe of :mod:`tardiff.evaluate.downstream.ensemble`, seed = the
evaluation seed) trained on real train ∪ |real train| synthetic samples at the real class ratio,
scored by AUPRC (average precision) on ``select``. The chosen scale maximises the mean over seeds;
ties go to the smaller |scale| (less guidance).

By construction the stage never holds test data: it builds the train and ``select`` arrays only
(:func:`tardiff.data.prepare` with ``splits``), and :func:`select_scales` receives arrays, not
files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tardiff.data import prepare, prepare_memory_mb
from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.evaluate.downstream.metrics import average_precision
from tardiff.evaluate.downstream.sets import (
    Draw,
    Plan,
    add_protocols,
    load_draw,
    selection_draws,
    training_budget_mb,
)
from tardiff.io import write_json
from tardiff.runtime import check_memory, pick_device
from tardiff.settings import EvaluationSettings, ScaleGrids

log = logging.getLogger(__name__)


def candidate_plan(x_train: np.ndarray, y_train: np.ndarray, draws: Sequence[Draw]) -> Plan:
    """TSRTR at α = 1 of every candidate draw (the evaluation's own protocol code)."""
    plan = Plan()
    real_rows = plan.add_data(x_train, y_train)
    for draw in draws:
        add_protocols(plan, real_rows, y_train, draw, ratios=(1.0,), multiples=(), tstr=False)
    return plan


def select_scales(
    train: tuple[np.ndarray, np.ndarray],
    select: tuple[np.ndarray, np.ndarray],
    draws: Sequence[Draw],
    scales: ScaleGrids,
    settings: EvaluationSettings,
    *,
    device,
    mem_mb: float | None = None,
    data_mb: float = 0.0,
) -> dict[str, Any]:
    """Score every candidate draw on ``select`` and choose each guided method's scale
    (``mem_mb``: the job's memory, of which the loaded data take ``data_mb``)."""
    plan = candidate_plan(*train, draws)
    pool_x, pool_y = plan.pool()
    budget = training_budget_mb(mem_mb, data_mb, pool_x, "scale selection")
    ensemble = train_models(pool_x, pool_y, plan.members, plan.seeds, settings.model,
                            device=device, mem_mb=budget)  # fmt: skip
    auprc = average_precision(np.broadcast_to(select[1], (len(plan.rows), len(select[1]))),
                              ensemble.predict(select[0]))  # fmt: skip
    score = {
        (r["method"], r["scale"], r["seed"]): float(a)
        for r, a in zip(plan.rows, auprc, strict=True)
    }
    seeds = range(settings.selection_seeds)
    methods = {}
    for method in sorted({m for m, _, _ in score} - {"conditional"}):
        grid = sorted([0.0, *scales.of(method)], key=lambda w: (abs(w), w))
        per_seed = [
            [score[("conditional" if w == 0 else method, w, k)] for k in seeds] for w in grid
        ]
        means = [float(np.mean(v)) for v in per_seed]
        chosen = grid[int(np.argmax(means))]
        methods[method] = {"grid": grid, "score": means, "per_seed": per_seed, "chosen": chosen}
        log.info("%s: AUPRC on select by scale %s -> chosen %g", method,
                 dict(zip(grid, np.round(means, 4), strict=True)), chosen)  # fmt: skip
    return {"metric": "auprc", "protocol": "TSRTR", "ratio": 1.0, "part": "select",
            "seeds": settings.selection_seeds, "methods": methods}  # fmt: skip


def run_selection_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    synthetic: Sequence[str | Path],
    dataset: str,
    task: str,
    out: str | Path,
    methods: tuple[str, ...],
    scales: ScaleGrids,
    settings: EvaluationSettings,
    device: str = "auto",
    mem_mb: float | None = None,
) -> dict[str, Any]:
    """Choose the guidance scales of ``dataset``/``task`` and write ``selection.json``.

    ``synthetic`` lists the samples files of
    :func:`~tardiff.evaluate.downstream.sets.selection_draws`, in that order.
    """
    keys = selection_draws(methods, scales, settings.selection_seeds)
    if len(keys) != len(synthetic):
        raise ValueError(
            f"expected {len(keys)} synthetic files for the selection, got {len(synthetic)}"
        )
    check_memory(prepare_memory_mb(timeseries), mem_mb, "scale selection (data)")
    prepared = prepare(stays, timeseries, task, splits=("train", "select"))
    prepared.require_both_classes(("train", "select"))
    draws = [
        load_draw(path, key, prepared.transform, task, prepared.seq_len)
        for path, key in zip(synthetic, keys, strict=True)
    ]
    result = {"dataset": dataset, "task": task}
    if draws:
        x, y = prepared.x, prepared.y
        result |= select_scales(
            (x["train"], y["train"]), (x["select"], y["select"]), draws, scales, settings,
            device=pick_device(device), mem_mb=mem_mb, data_mb=prepare_memory_mb(timeseries),
        )  # fmt: skip
    else:
        result["methods"] = {}
    write_json(result, out)
    return result
