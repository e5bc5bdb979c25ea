"""The paper's guidance studies on the pairs of ``studies.pairs``.

- **Scale sweep** (Fig. 3, ``scale_sweep.csv``): every scale of each guided method's grid, the
  extra ``studies.sweep_scales`` (negative ones included) for the methods of
  ``studies.sweep_methods``, and 0 (the conditional draw), each for the selection seeds
  (``evaluation.selection_seeds``). Per scale:
  the mean sample influence G·∇φℓ of each class (from the generation stage, mean over seeds), TSRTR
  at α = 1 scored on validation ``select`` (AUROC and AUPRC: mean, min and max over seeds; the
  selection's protocol and models) and the real-vs-synthetic discriminator AUROC of seed 0's draw
  (:func:`tardiff.evaluate.quality.fidelity.discriminative_scores`) and the label judge's own-label
  share of each class (:mod:`tardiff.evaluate.quality.label_fidelity`, the fidelity stage's judge:
  real train, threshold on ``select``; each draw whole, mean over seeds). Nothing here reads test
  data.
- **Guidance set** (Fig. 4 and Table 5, ``guidance.csv``): ``tardiff`` at the study scale with G
  built from a stratified share of the guide part (``studies.guide_fractions``) or from another
  guidance source (``studies.guide_sources``), beside the main G. The study scale is the one chosen
  for ``tardiff`` on validation, or, when that is 0, its best non-zero grid scale on validation.
  Each variant's draws (every selection seed, ``evaluation.selection_seeds``) are scored by
  TSRTR at α = 1 on real test
  (AUROC, AUPRC, minority F1 with the threshold chosen on ``select``, 95 % bootstrap intervals):
  a final evaluation of variants fixed in the config, from which nothing is chosen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tardiff.data import prepare, prepare_memory_mb
from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.evaluate.downstream.metrics import auroc, average_precision
from tardiff.evaluate.downstream.selection import candidate_plan
from tardiff.evaluate.downstream.sets import (
    Draw,
    DrawKey,
    Plan,
    add_protocols,
    class_orders,
    load_draw,
    ratio_counts,
    take,
    training_budget_mb,
)
from tardiff.evaluate.downstream.utility import utility_table
from tardiff.evaluate.quality.fidelity import discriminative_scores
from tardiff.evaluate.quality.label_fidelity import LABELS, Judge, metric_name, train_judge
from tardiff.io import read_json, write_csv
from tardiff.methods import scale_guided
from tardiff.names import study_variant
from tardiff.runtime import check_memory, pick_device
from tardiff.settings import EvaluationSettings, FidelitySettings, ScaleGrids, StudySettings

log = logging.getLogger(__name__)

SWEEP_COLUMNS = [
    "dataset",
    "task",
    "method",
    "scale",
    "n_seeds",
    "influence_0",
    "influence_1",
    *(f"{m}{s}" for m in ("auroc", "auprc") for s in ("", "_min", "_max")),
    "disc_auroc",
    "disc_auroc_lo",
    "disc_auroc_hi",
    *(metric_name(c) for c in LABELS),
]
GUIDANCE_COLUMNS = [
    "dataset",
    "task",
    "study",
    "variant",
    "source",
    "fraction",
    "n_guide",
    "scale",
    "seed",
    *(f"{m}{s}" for m in ("auroc", "auprc", "minority_f1") for s in ("", "_lo", "_hi")),
]
#: the variant name of the main G in ``guidance.csv``
MAIN = "main"


def sweep_draws(
    methods: tuple[str, ...],
    scales: ScaleGrids,
    extra: Sequence[float],
    extended: Sequence[str],
    seeds: int,
) -> list[DrawKey]:
    """Draws of the sweep: the conditional one and every guided method at each grid scale, and
    the methods of ``extended`` at the ``extra`` scales too; all seeds."""
    guided = [m for m in methods if scale_guided(m)]
    keys: list[DrawKey] = [("conditional", 0.0, k) for k in range(seeds)] if guided else []
    for method in guided:
        grid = sorted({*scales.of(method), *(extra if method in extended else ())})
        keys += [(method, float(w), k) for w in grid for k in range(seeds)]
    return keys


def _select_scores(
    train, select, draws: Sequence[Draw], settings: EvaluationSettings, device, mem_mb, data_mb
) -> dict[DrawKey, tuple[float, float]]:
    """(AUROC, AUPRC) on ``select`` of TSRTR at α = 1 for every draw."""
    plan = candidate_plan(*train, draws)
    pool_x, pool_y = plan.pool()
    budget = training_budget_mb(mem_mb, data_mb, pool_x, "scale sweep")
    ensemble = train_models(
        pool_x, pool_y, plan.members, plan.seeds, settings.model, device=device, mem_mb=budget
    )
    logits = ensemble.predict(select[0])
    y = np.broadcast_to(select[1], logits.shape)
    scores = zip(auroc(y, logits), average_precision(y, logits), strict=True)
    return {(r["method"], r["scale"], r["seed"]): s for r, s in zip(plan.rows, scores, strict=True)}


def _disc_aurocs(
    real: tuple[np.ndarray, np.ndarray],
    draws: Sequence[Draw],
    settings: FidelitySettings,
    seed: int,
    device,
    mem_mb,
) -> dict[tuple[str, float], tuple[float, float, float]]:
    """Discriminator AUROC of each draw's ``|real|`` samples at the real class ratio, by
    (method, scale)."""
    sets = [d.x[take(class_orders(d.y, d.key[2]), ratio_counts(real[1], 1.0), str(d.key))]
            for d in draws]  # fmt: skip
    scores = discriminative_scores(real[0], sets, [seed] * len(sets), settings.discriminator,
                                   settings.runs, device=device, mem_mb=mem_mb)  # fmt: skip
    return {
        d.key[:2]: (s["disc_auroc"].mean, s["disc_auroc"].low, s["disc_auroc"].high)
        for d, s in zip(draws, scores, strict=True)
    }


def _label_shares(judge: Judge, draws: Sequence[Draw]) -> dict[DrawKey, dict[int, float]]:
    """The judge's own-label share of each class in each draw (ValueError if a class is absent)."""
    shares = {d.key: judge.own_label_share(d.x, d.y) for d in draws}
    for key, share in shares.items():
        if set(share) != set(LABELS):
            raise ValueError(f"label shares: draw {key} lacks a class ({sorted(share)} present)")
    return shares


def sweep_table(
    keys: Sequence[DrawKey],
    scores: dict[DrawKey, tuple[float, float]],
    influence: dict[DrawKey, dict[str, float]],
    disc: dict[tuple[str, float], tuple[float, float, float]],
    shares: dict[DrawKey, dict[int, float]],
) -> pd.DataFrame:
    """One row per guided method and scale (0 = the conditional draw, in each method's rows)."""
    rows = []
    guided = sorted({m for m, _, _ in keys} - {"conditional"})
    for method in guided:
        for scale in sorted({w for m, w, _ in keys if m == method} | {0.0}):
            source = "conditional" if scale == 0 else method
            mine = [k for k in keys if k[0] == source and k[1] == scale]
            au = np.array([scores[k] for k in mine])
            row = {"method": method, "scale": scale, "n_seeds": len(mine)}
            for c in ("0", "1"):
                row[f"influence_{c}"] = float(np.mean([influence[k].get(c, np.nan) for k in mine]))
            for j, name in enumerate(("auroc", "auprc")):
                row |= {
                    name: au[:, j].mean(),
                    f"{name}_min": au[:, j].min(),
                    f"{name}_max": au[:, j].max(),
                }
            lo_hi = disc.get((source, scale), (np.nan,) * 3)
            row |= dict(zip(("disc_auroc", "disc_auroc_lo", "disc_auroc_hi"), lo_hi, strict=True))
            row |= {metric_name(c): float(np.mean([shares[k][c] for k in mine])) for c in LABELS}
            rows.append(row)
    return pd.DataFrame(rows)


def run_sweep_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    synthetic: Sequence[str | Path],
    records: Sequence[str | Path],
    dataset: str,
    task: str,
    out: str | Path,
    keys: Sequence[DrawKey],
    evaluation: EvaluationSettings,
    fidelity: FidelitySettings,
    seed: int = 0,
    device: str = "auto",
    mem_mb: float | None = None,
) -> pd.DataFrame:
    """Write ``scale_sweep.csv``; ``synthetic`` and ``records`` (the generation's seed JSONs)
    list the draws of :func:`sweep_draws` (``keys``), in that order."""
    if not len(keys) == len(synthetic) == len(records):
        raise ValueError(f"{len(keys)} sweep draws but {len(synthetic)} / {len(records)} files")
    data_mb = prepare_memory_mb(timeseries)
    check_memory(data_mb, mem_mb, "scale sweep (data)")
    prepared = prepare(stays, timeseries, task, splits=("train", "select"))
    prepared.require_both_classes(("train", "select"))
    draws = [
        load_draw(p, k, prepared.transform, task, prepared.seq_len)
        for p, k in zip(synthetic, keys, strict=True)
    ]
    influence = {
        k: read_json(r)["mean_sample_influence"] for k, r in zip(keys, records, strict=True)
    }
    torch_device = pick_device(device)
    x, y = prepared.x, prepared.y
    scores = _select_scores(
        (x["train"], y["train"]),
        (x["select"], y["select"]),
        draws,
        evaluation,
        torch_device,
        mem_mb,
        data_mb,
    )
    budget = None if mem_mb is None else mem_mb - data_mb
    real = (x["train"], y["train"])
    disc = _disc_aurocs(
        real, [d for d in draws if d.key[2] == 0], fidelity, seed, torch_device, budget
    )
    judge = train_judge(prepared, fidelity.judge, seed, torch_device, mem_mb=budget)
    shares = _label_shares(judge, draws)
    table = sweep_table(keys, scores, influence, disc, shares).assign(dataset=dataset, task=task)
    write_csv(table[SWEEP_COLUMNS], out)
    return table


def study_scale(selection: dict[str, Any]) -> float:
    """The ``tardiff`` scale of the guidance-set studies (module docstring)."""
    entry = selection["methods"].get("tardiff")
    if entry is None:
        raise ValueError("the guidance studies need the tardiff method (generation.methods)")
    if entry["chosen"] != 0:
        return float(entry["chosen"])
    candidates = [(s, w) for w, s in zip(entry["grid"], entry["score"], strict=True) if w != 0]
    return float(max(candidates)[1])


def guidance_variants(
    studies: StudySettings, main_source: str
) -> list[tuple[str, str, str, float]]:
    """(study, variant, source, fraction) of every row group of ``guidance.csv``; the variant
    ``main`` is the main G (``influence.source``, the whole guide part)."""
    rows = [("guide_size", MAIN, main_source, 1.0)]
    rows += [
        ("guide_size", study_variant(main_source, f), main_source, f)
        for f in sorted(studies.guide_fractions)
    ]
    rows += [
        ("guide_source", MAIN if s == main_source else study_variant(s, 1.0), s, 1.0)
        for s in studies.guide_sources
    ]
    return rows


def study_draws(studies: StudySettings, main_source: str) -> list[str]:
    """Variants whose G and samples the guidance studies need beyond the main ones."""
    return sorted({v for _, v, _, _ in guidance_variants(studies, main_source)} - {MAIN})


def run_guidance_study_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    selection: str | Path,
    synthetic: Sequence[str | Path],
    summaries: Sequence[str | Path],
    variants: Sequence[str],
    dataset: str,
    task: str,
    out: str | Path,
    studies: StudySettings,
    main_source: str,
    evaluation: EvaluationSettings,
    seed: int = 0,
    device: str = "auto",
    mem_mb: float | None = None,
) -> pd.DataFrame:
    """Write ``guidance.csv``. ``variants`` starts with ``main``; ``synthetic`` lists each
    variant's samples at :func:`study_scale` for every selection seed (variant by variant) and
    ``summaries`` each variant's influence summary, in that order."""
    seeds = evaluation.selection_seeds
    if len(summaries) != len(variants) or len(synthetic) != len(variants) * seeds:
        raise ValueError(
            f"{len(variants)} variants x {seeds} selection seeds, but "
            f"{len(synthetic)} samples files and {len(summaries)} summaries"
        )
    scale = study_scale(read_json(selection))
    data_mb = prepare_memory_mb(timeseries)
    check_memory(data_mb, mem_mb, "guidance studies (data)")
    prepared = prepare(stays, timeseries, task)
    prepared.require_both_classes(("train", "select", "test"))
    plan = Plan()
    real_rows = plan.add_data(prepared.x["train"], prepared.y["train"])
    for i, path in enumerate(synthetic):
        key = (variants[i // seeds], scale, i % seeds)
        draw = load_draw(path, key, prepared.transform, task, prepared.seq_len)
        add_protocols(
            plan, real_rows, prepared.y["train"], draw, ratios=(1.0,), multiples=(), tstr=False
        )
    pool_x, pool_y = plan.pool()
    budget = training_budget_mb(mem_mb, data_mb, pool_x, "guidance studies")
    ensemble = train_models(
        pool_x,
        pool_y,
        plan.members,
        plan.seeds,
        evaluation.model,
        device=pick_device(device),
        mem_mb=budget,
    )
    logits = {part: ensemble.predict(prepared.x[part]) for part in ("select", "test")}
    scored = utility_table(plan.rows, logits, prepared.y, evaluation.bootstrap_resamples, seed)
    scored = scored.rename(columns={"method": "variant"})
    n_guide = {v: read_json(p)["n_guide"] for v, p in zip(variants, summaries, strict=True)}
    groups = pd.DataFrame(
        guidance_variants(studies, main_source), columns=["study", "variant", "source", "fraction"]
    )
    table = groups.merge(scored, on="variant").assign(
        dataset=dataset, task=task, n_guide=lambda f: f["variant"].map(n_guide)
    )
    write_csv(table[GUIDANCE_COLUMNS], out)
    return table
