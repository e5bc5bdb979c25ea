"""Utility evaluation stage: TRTR / TSTR / TSRTR / minority-only models, scored on real test.

Per evaluation seed k (``evaluation.seeds``): one ``real`` model on real train (TRTR) and, for
every method's draw of seed k (each guided method at the scale chosen on validation, see
:mod:`tardiff.evaluate.selection`, and the ``jitter`` baseline), TSTR, TSRTR at each ratio α and
minority-only augmentation at each multiple (:mod:`tardiff.evaluate.sets`). Every model of seed k
starts from the same initialisation and sees the same real data, so methods compare pair by pair.
The scarcity study (a dataset whose train split was subsampled) evaluates TRTR and TSRTR at
α = 1 only.

Outputs: ``utility.csv``, one row per model (AUROC, AUPRC, minority-class F1 at the threshold that
maximises it on validation ``select``, each with a 95 % stratified bootstrap interval over test
stays, :mod:`tardiff.evaluate.metrics`) and ``paired.csv``, the paired differences of every method,
protocol and ratio against ``real`` (TRTR of the same seed) and against ``conditional`` and
``tardiff`` (same protocol and ratio), pooled over seeds with a seed-and-stay bootstrap.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tardiff.data import Prepared, prepare, prepare_memory_mb
from tardiff.evaluate.ensemble import train_models
from tardiff.evaluate.metrics import f1_threshold, metric_interval, paired_difference
from tardiff.evaluate.sets import (
    Draw,
    Plan,
    add_protocols,
    evaluation_draws,
    load_draw,
    training_budget_mb,
)
from tardiff.io import read_json, write_csv
from tardiff.layout import EvaluationFiles, parse_dataset
from tardiff.runtime import check_memory, pick_device
from tardiff.settings import EvaluationSettings

log = logging.getLogger(__name__)

#: column name of each metric in the tables (``f1`` is the minority-class F1)
COLUMNS = {"auroc": "auroc", "auprc": "auprc", "f1": "minority_f1"}
UTILITY_COLUMNS = [
    "dataset", "task", "method", "protocol", "ratio", "fraction", "seed", "scale",
    *(f"{c}{s}" for c in COLUMNS.values() for s in ("", "_lo", "_hi")),
    "f1_threshold", "n_real", "n_synthetic",
]  # fmt: skip
#: methods every other method is compared with, in ``paired.csv`` (where they were evaluated)
BASELINES = ("real", "conditional", "tardiff")
PAIRED_COLUMNS = [
    "dataset", "task", "method", "baseline", "protocol", "ratio", "fraction", "metric",
    "delta", "delta_lo", "delta_hi", "share_positive", "n_seeds", "verdict",
]  # fmt: skip


def evaluation_plan(
    prepared: Prepared, draws: Sequence[Draw], settings: EvaluationSettings, study: str
) -> Plan:
    """Every evaluation model of the stage (module docstring)."""
    main = study == "main"
    plan = Plan()
    y_real = prepared.y["train"]
    real_rows = plan.add_data(prepared.x["train"], y_real)
    for k in range(settings.seeds):
        plan.add_model(real_rows, k, method="real", scale=None, protocol="TRTR", ratio=None,
                       n_real=len(real_rows), n_synthetic=0)  # fmt: skip
    for draw in draws:
        add_protocols(
            plan, real_rows, y_real, draw,
            ratios=settings.ratios if main else (1.0,),
            multiples=settings.minority_multiples if main else (),
            tstr=main,
        )  # fmt: skip
    return plan


def utility_table(
    rows: list[dict],
    logits: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    resamples: int,
    seed: int,
) -> pd.DataFrame:
    """One row per model: test metrics with intervals, the F1 threshold chosen on ``select``."""
    out = []
    for i, row in enumerate(rows):
        threshold = f1_threshold(y["select"], logits["select"][i])
        record = {**row, "f1_threshold": threshold}
        for metric, column in COLUMNS.items():
            iv = metric_interval(y["test"], logits["test"][i], metric, threshold, seed, resamples)
            record |= {column: iv.estimate, f"{column}_lo": iv.low, f"{column}_hi": iv.high}
        out.append(record)
    return pd.DataFrame(out)


def _arm(table: pd.DataFrame, method: str, protocol: str, ratio) -> pd.DataFrame:
    same_ratio = (
        table["ratio"].isna() if ratio is None or pd.isna(ratio) else table["ratio"] == ratio
    )
    return table[(table["method"] == method) & (table["protocol"] == protocol) & same_ratio]


def paired_table(
    table: pd.DataFrame, test_logits: np.ndarray, y_test: np.ndarray, resamples: int, seed: int
) -> pd.DataFrame:
    """Paired differences (AUROC, AUPRC) of each method/protocol/ratio against ``BASELINES``
    (a baseline method is not compared with a later baseline: that difference is the reverse of
    one already in the table)."""
    out = []
    arms = table[table["method"] != "real"][["method", "protocol", "ratio"]].drop_duplicates()
    for method, protocol, ratio in arms.itertuples(index=False):
        a = _arm(table, method, protocol, ratio).set_index("seed")
        for i, baseline in enumerate(BASELINES):
            if method in BASELINES[: i + 1]:
                continue
            b = (_arm(table, "real", "TRTR", None) if baseline == "real"
                 else _arm(table, baseline, protocol, ratio)).set_index("seed")  # fmt: skip
            seeds = sorted(set(a.index) & set(b.index))
            if not seeds:
                continue
            rows_a, rows_b = a.loc[seeds, "model"].to_numpy(), b.loc[seeds, "model"].to_numpy()
            zeros = (np.zeros(len(seeds)), np.zeros(len(seeds)))
            for metric in ("auroc", "auprc"):
                d = paired_difference(y_test, test_logits[rows_a], test_logits[rows_b], metric,
                                      zeros, seed, resamples)  # fmt: skip
                out.append({
                    "method": method, "baseline": baseline, "protocol": protocol, "ratio": ratio,
                    "metric": metric, "delta": d.interval.estimate, "delta_lo": d.interval.low,
                    "delta_hi": d.interval.high, "share_positive": d.share_positive,
                    "n_seeds": len(seeds), "verdict": d.interval.verdict,
                })  # fmt: skip
    return pd.DataFrame(out)


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
    study: str = "main",
    seed: int = 0,
    device: str = "auto",
    mem_mb: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and score every evaluation model of ``dataset``/``task``; write ``out``.

    ``synthetic`` lists the samples files of :func:`~tardiff.evaluate.sets.evaluation_draws`
    for the scales in ``selection``, in that order; ``seed`` seeds the bootstrap.
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
    draws = [load_draw(p, key, prepared.transform, task, prepared.seq_len)
             for p, key in zip(synthetic, keys, strict=True)]  # fmt: skip
    plan = evaluation_plan(prepared, draws, settings, study)
    pool_x, pool_y = plan.pool()
    log.info("training %d evaluation models on a pool of %d sequences", len(plan.rows), len(pool_x))
    budget = training_budget_mb(mem_mb, prepare_memory_mb(timeseries), pool_x, "evaluation")
    ensemble = train_models(pool_x, pool_y, plan.members, plan.seeds, settings.model,
                            device=pick_device(device), mem_mb=budget)  # fmt: skip
    logits = {part: ensemble.predict(prepared.x[part]) for part in ("select", "test")}
    table = pd.DataFrame(plan.rows).assign(model=np.arange(len(plan.rows)))
    utility = utility_table(plan.rows, logits, prepared.y, settings.bootstrap_resamples, seed)
    paired = paired_table(
        table, logits["test"], prepared.y["test"], settings.bootstrap_resamples, seed
    )
    what = f"evaluation of {dataset}/{task}"
    require_finite(utility, [f"{c}{s}" for c in COLUMNS.values() for s in ("", "_lo", "_hi")], what)
    require_finite(paired, ["delta", "delta_lo", "delta_hi"] if len(paired) else [], what)
    base, fraction = parse_dataset(dataset)
    keys_front = {"dataset": base, "task": task}
    utility = utility.assign(**keys_front, fraction=fraction)
    paired = paired.assign(**keys_front, fraction=fraction)
    write_csv(utility[UTILITY_COLUMNS], out.utility)
    write_csv(
        paired[PAIRED_COLUMNS] if len(paired) else pd.DataFrame(columns=PAIRED_COLUMNS), out.paired
    )
    return utility, paired
