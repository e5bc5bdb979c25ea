"""Utility evaluation stage: TRTR / TSTR / TSRTR / minority-only models, scored on real test.

Per evaluation seed k (``evaluation.seeds``): one ``real`` model on real train (TRTR), the imbalance
corrections of ``evaluation.baselines`` (``class_weight`` at TRTR, ``oversample`` at every TSRTR
ratio and minority multiple; :func:`~tardiff.evaluate.downstream.sets.add_corrections`) and, for
every method's draw of seed k (each guided method at the scale chosen on validation, see
:mod:`tardiff.evaluate.downstream.selection`, and the ``jitter`` baseline), TSTR, TSRTR at each
ratio α and minority-only augmentation at each multiple (:mod:`tardiff.evaluate.downstream.sets`).
Every model of seed k starts from the same initialisation and sees the same real data, so methods
compare pair by pair. The scarcity study (a dataset whose train split was subsampled) evaluates TRTR
and TSRTR at α = 1 only.

Every training set is learnt by each evaluator of ``evaluation.evaluators`` (``gru``: the small GRU
of :mod:`tardiff.evaluate.downstream.ensemble`; ``lgbm``: gradient-boosted trees on summary
features, :mod:`tardiff.evaluate.downstream.trees`) and scored on the internal test split and, where
the dataset has one, on its external test population (:mod:`tardiff.evaluate.downstream.external`);
the ``evaluator`` and ``test_set`` columns say which. Paired differences compare arms of the same
evaluator.

Outputs: ``utility.csv``, one row per model, evaluator and test set (AUROC, AUPRC,
minority-class F1 at the threshold that maximises it on validation ``select``, each with a 95 %
stratified bootstrap interval over test stays, :mod:`tardiff.evaluate.downstream.resampling`) and
``paired.csv``, the paired differences of every method, protocol and ratio against ``real`` and
``class_weight`` (TRTR of the same seed) and against ``oversample``, ``conditional`` and
``tardiff`` (same protocol and ratio), pooled over seeds with a seed-and-stay bootstrap, with a
p-value; two arms trained on the same synthetic samples read "same samples"; and
``predictions.parquet``, every model's scores on the internal test stays
(:mod:`tardiff.evaluate.downstream.predictions`). On a cross-validation fold copy
(:mod:`tardiff.folds`) the internal test split is the ``fold`` test set and ``fold`` names it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tardiff.data import Prepared, prepare, prepare_memory_mb
from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.evaluate.downstream.external import load_external
from tardiff.evaluate.downstream.metrics import SAME_SAMPLES, f1_threshold
from tardiff.evaluate.downstream.predictions import predictions_table
from tardiff.evaluate.downstream.resampling import Scored, pooled_difference, score_models
from tardiff.evaluate.downstream.sets import (
    Draw,
    Plan,
    add_corrections,
    add_protocols,
    evaluation_draws,
    load_draw,
    training_budget_mb,
)
from tardiff.evaluate.downstream.trees import predict_trees, summary_features, train_trees
from tardiff.io import read_json, write_csv, write_parquet
from tardiff.layout import EvaluationFiles
from tardiff.methods import BASELINES, REAL_ONLY, compared
from tardiff.names import parse_dataset, parse_fold
from tardiff.runtime import check_memory, pick_device
from tardiff.settings import EvaluationSettings

log = logging.getLogger(__name__)

#: column name of each metric in the tables (``f1`` is the minority-class F1)
COLUMNS = {"auroc": "auroc", "auprc": "auprc", "f1": "minority_f1"}
UTILITY_COLUMNS = [
    "dataset", "task", "test_set", "evaluator", "method", "protocol", "ratio", "fraction", "fold",
    "seed", "scale",
    *(f"{c}{s}" for c in COLUMNS.values() for s in ("", "_lo", "_hi")),
    "f1_threshold", "n_real", "n_synthetic",
]  # fmt: skip
PAIRED_COLUMNS = [
    "dataset", "task", "test_set", "evaluator", "method", "baseline", "protocol", "ratio",
    "fraction", "metric", "delta", "delta_lo", "delta_hi", "delta_se", "share_positive", "n_seeds",
    "p_value", "verdict",
]  # fmt: skip
#: columns the stage adds to the per-test-set tables before writing them
_KEYS = ("dataset", "task", "test_set", "evaluator", "fraction")
#: the test set of a cross-validation fold copy (its own test split)
FOLD = "fold"


def evaluation_plan(
    prepared: Prepared, draws: Sequence[Draw], settings: EvaluationSettings, study: str
) -> Plan:
    """Every evaluation model of the stage (module docstring)."""
    main = study == "main"
    ratios = settings.ratios if main else (1.0,)
    multiples = settings.minority_multiples if main else ()
    plan = Plan()
    y_real = prepared.y["train"]
    real_rows = plan.add_data(prepared.x["train"], y_real)
    for k in range(settings.seeds):
        plan.add_model(real_rows, k, method="real", scale=None, protocol="TRTR", ratio=None,
                       samples=None, n_real=len(real_rows), n_synthetic=0)  # fmt: skip
        add_corrections(plan, real_rows, y_real, k, settings.baselines, ratios, multiples)
    for draw in draws:
        add_protocols(plan, real_rows, y_real, draw, ratios, multiples, tstr=main)
    return plan


def evaluator_scores(
    evaluator: str,
    plan: Plan,
    pool: tuple[np.ndarray, np.ndarray],
    inputs: dict[str, np.ndarray],
    settings: EvaluationSettings,
    device: torch.device,
    mem_mb: float | None,
) -> dict[str, np.ndarray]:
    """Train the plan's distinct models (:meth:`Plan.distinct`) with ``evaluator`` (``gru``:
    :mod:`~tardiff.evaluate.downstream.ensemble`, ``lgbm``:
    :mod:`~tardiff.evaluate.downstream.trees`) on ``pool`` (:meth:`Plan.pool`); every model's
    scores (K, n) on each of ``inputs``."""
    pool_x, pool_y = pool
    firsts, inverse = plan.distinct()
    members = [plan.members[k] for k in firsts]
    seeds = [plan.seeds[k] for k in firsts]
    weights = [plan.class_weights[k] for k in firsts]
    log.info("%s: training %d evaluation models (%d of them distinct) on a pool of %d sequences",
             evaluator, len(plan.rows), len(firsts), len(pool_x))  # fmt: skip
    if evaluator == "lgbm":
        features = summary_features(pool_x)
        boosters = train_trees(features, pool_y, members, seeds, weights, settings.trees,
                               torch.get_num_threads())  # fmt: skip
        return {name: predict_trees(boosters, summary_features(x))[inverse]
                for name, x in inputs.items()}  # fmt: skip
    ensemble = train_models(pool_x, pool_y, members, seeds, settings.model, device=device,
                            mem_mb=mem_mb, class_weights=weights)  # fmt: skip
    return {name: ensemble.predict(x)[inverse] for name, x in inputs.items()}


def f1_thresholds(y_select: np.ndarray, logits_select: np.ndarray) -> np.ndarray:
    """Each model's minority-F1 threshold, chosen on validation ``select`` (never on test)."""
    return np.array([f1_threshold(y_select, s) for s in logits_select])


def scored_table(rows: list[dict], scored: Scored, thresholds: np.ndarray) -> pd.DataFrame:
    """One row per model: its metrics on one test set with intervals, and its F1 threshold."""
    out = []
    for i, row in enumerate(rows):
        record = {**row, "f1_threshold": float(thresholds[i])}
        for metric, column in COLUMNS.items():
            iv = scored.interval(i, metric)
            record |= {column: iv.estimate, f"{column}_lo": iv.low, f"{column}_hi": iv.high}
        out.append(record)
    return pd.DataFrame(out)


def utility_table(
    rows: list[dict],
    logits: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    resamples: int,
    seed: int,
) -> pd.DataFrame:
    """:func:`scored_table` on the internal test split (``logits``/``y`` by split)."""
    thresholds = f1_thresholds(y["select"], logits["select"])
    scored = score_models(y["test"], logits["test"], thresholds, resamples, seed)
    return scored_table(rows, scored, thresholds)


def _arm(table: pd.DataFrame, method: str, protocol: str, ratio) -> pd.DataFrame:
    same_ratio = (
        table["ratio"].isna() if ratio is None or pd.isna(ratio) else table["ratio"] == ratio
    )
    return table[(table["method"] == method) & (table["protocol"] == protocol) & same_ratio]


def paired_table(folds: Sequence[tuple[pd.DataFrame, Scored]], seed: int) -> pd.DataFrame:
    """Paired differences (AUROC, AUPRC) of each method/protocol/ratio against ``BASELINES``
    where :func:`~tardiff.methods.compared`, pooled over ``folds`` (one entry for a single test
    set; :func:`~tardiff.evaluate.downstream.resampling.pooled_difference`). Each fold's table
    holds each model's ``model`` index in its ``Scored`` and its ``samples`` fingerprint (equal
    fingerprints in every fold: "same samples")."""
    out = []
    tables = [t for t, _ in folds]
    arms = pd.concat([t[t["method"] != "real"] for t in tables])[["method", "protocol", "ratio"]]
    for method, protocol, ratio in arms.drop_duplicates().itertuples(index=False):
        for baseline in (b for b in BASELINES if compared(method, b)):
            parts, same, n_seeds = [], True, 0
            for table, scored in folds:
                a = _arm(table, method, protocol, ratio).set_index("seed")
                b = (_arm(table, baseline, "TRTR", None) if baseline in REAL_ONLY
                     else _arm(table, baseline, protocol, ratio)).set_index("seed")  # fmt: skip
                seeds = sorted(set(a.index) & set(b.index))
                if seeds:
                    fa, fb = a.loc[seeds, "samples"], b.loc[seeds, "samples"]
                    same &= bool((fa.notna() & (fa == fb)).all())
                    n_seeds = max(n_seeds, len(seeds))
                    parts.append((scored, a.loc[seeds, "model"].to_numpy(),
                                  b.loc[seeds, "model"].to_numpy()))  # fmt: skip
            for metric in ("auroc", "auprc") if parts else ():
                d = pooled_difference(parts, metric, seed)
                out.append({
                    "method": method, "baseline": baseline, "protocol": protocol, "ratio": ratio,
                    "metric": metric, "delta": d.interval.estimate, "delta_lo": d.interval.low,
                    "delta_hi": d.interval.high, "delta_se": d.se,
                    "share_positive": d.share_positive, "n_seeds": n_seeds,
                    "p_value": d.p_value, "verdict": SAME_SAMPLES if same else d.interval.verdict,
                })  # fmt: skip
    return pd.DataFrame(out, columns=[c for c in PAIRED_COLUMNS if c not in _KEYS])


def require_finite(table: pd.DataFrame, columns: list[str], what: str) -> None:
    """Raise, naming ``what`` and the columns, if any of ``columns`` holds NaN or inf."""
    bad = [c for c in columns if not np.isfinite(table[c].to_numpy(float)).all()]
    if bad:
        raise ValueError(f"{what}: non-finite values in columns {bad}; nothing was written")


def run_evaluation_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    selection: str | Path,
    synthetic: Sequence[str | Path],
    dataset: str,
    task: str,
    out: EvaluationFiles,
    methods: tuple[str, ...],
    settings: EvaluationSettings,
    external: tuple[str | Path, str | Path] | None = None,
    study: str = "main",
    seed: int = 0,
    device: str = "auto",
    mem_mb: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train every evaluation model of ``dataset``/``task``, score it on the internal test split
    and on ``external`` (the external population's stays and timeseries, if any); write ``out``.

    ``synthetic`` lists the samples files of
    :func:`~tardiff.evaluate.downstream.sets.evaluation_draws` for the scales in ``selection``, in
    that order; ``seed`` seeds the bootstrap.
    """
    chosen = {m: v["chosen"] for m, v in read_json(selection)["methods"].items()}
    keys = evaluation_draws(methods, chosen, settings.seeds)
    if len(keys) != len(synthetic):
        raise ValueError(
            f"expected {len(keys)} synthetic files for the evaluation, got {len(synthetic)}"
        )
    check_memory(prepare_memory_mb(timeseries), mem_mb, "evaluation (data)")
    prepared = prepare(stays, timeseries, task)
    prepared.require_both_classes(("train", "select", "test"))
    test_sets = {"internal": (prepared.x["test"], prepared.y["test"])}
    if external is not None:
        test_sets["external"] = load_external(*external, prepared, mem_mb)
    draws = [load_draw(p, key, prepared.transform, task, prepared.seq_len)
             for p, key in zip(synthetic, keys, strict=True)]  # fmt: skip
    plan = evaluation_plan(prepared, draws, settings, study)
    held = prepare_memory_mb(timeseries) + sum(x.nbytes for x, _ in test_sets.values()) / 2**20
    pool = plan.pool()
    budget = training_budget_mb(mem_mb, held, pool[0], "evaluation")
    inputs = {"select": prepared.x["select"], **{k: x for k, (x, _) in test_sets.items()}}
    table = pd.DataFrame(plan.rows).assign(model=np.arange(len(plan.rows)))
    utility, paired, predictions = [], [], []
    for evaluator in settings.evaluators:
        scores = evaluator_scores(evaluator, plan, pool, inputs, settings, pick_device(device),
                                  budget)  # fmt: skip
        thresholds = f1_thresholds(prepared.y["select"], scores["select"])
        for name, (_, y) in test_sets.items():
            scored = score_models(y, scores[name], thresholds, settings.bootstrap_resamples, seed)
            keys = {"test_set": name, "evaluator": evaluator}
            utility.append(scored_table(plan.rows, scored, thresholds).assign(**keys))
            paired.append(paired_table([(table, scored)], seed).assign(**keys))
        predictions.append(predictions_table(table, evaluator, thresholds,
                                             prepared.stay_id["test"], prepared.y["test"],
                                             scores["internal"]))  # fmt: skip
    written = _write(pd.concat(utility), pd.concat(paired), dataset, task, out)
    write_parquet(pd.concat(predictions, ignore_index=True), out.predictions)
    return written


def _write(
    utility: pd.DataFrame, paired: pd.DataFrame, dataset: str, task: str, out: EvaluationFiles
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check that every number is finite, add the key columns and write both tables (a
    cross-validation fold copy's internal test split is its ``fold`` test set)."""
    what = f"evaluation of {dataset}/{task}"
    require_finite(utility, [f"{c}{s}" for c in COLUMNS.values() for s in ("", "_lo", "_hi")], what)
    require_finite(paired, ["delta", "delta_lo", "delta_hi", "delta_se", "p_value"], what)
    base, fraction = parse_dataset(dataset)
    fold = parse_fold(dataset)[1]
    keys = {"dataset": base, "task": task, "fraction": fraction, "fold": fold}
    if fold is not None:
        utility, paired = (t.replace({"test_set": {"internal": FOLD}}) for t in (utility, paired))
    utility = utility.assign(**keys)[UTILITY_COLUMNS].reset_index(drop=True)
    paired = paired.assign(**keys)[PAIRED_COLUMNS].reset_index(drop=True)
    write_csv(utility, out.utility)
    write_csv(paired, out.paired)
    return utility, paired
