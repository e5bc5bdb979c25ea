"""Cross-validation: fold copies of a cohort (subject-level, stratified, every subject tested
once per repeat), the predictions they keep, and the paired differences pooled over them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tardiff.evaluate.downstream.folds import run_pooled_stage
from tardiff.evaluate.downstream.metrics import SAME_SAMPLES, auroc, average_precision
from tardiff.evaluate.downstream.predictions import (
    PREDICTION_COLUMNS,
    model_scores,
    predictions_table,
)
from tardiff.evaluate.downstream.resampling import (
    Scored,
    fold_seed,
    paired_difference,
    pooled_difference,
    seed_draws,
)
from tardiff.evaluate.downstream.utility import PAIRED_COLUMNS
from tardiff.folds import fold_splits, run_fold_cohort_stage
from tardiff.io import read_parquet, write_parquet
from tardiff.layout import Layout
from tardiff.names import fold_dataset, parse_dataset, parse_fold
from tardiff.settings import SplitSettings

SPLIT = SplitSettings(train=0.8, val=0.1, test=0.1, guide_fraction=0.5, folds=4, repeats=2)


def _stays(n_subjects=120, seed=0) -> pd.DataFrame:
    """Stays of ``n_subjects`` subjects (one to three stays each), about 20 % positive."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 4, n_subjects)
    subject = np.repeat(np.arange(100, 100 + n_subjects), per)
    label = (rng.random(len(subject)) < 0.1).astype(np.int8)
    return pd.DataFrame({"stay_id": np.arange(len(subject)), "subject_id": subject,
                         "split": "train", "val_part": None, "mortality": label})  # fmt: skip


def test_names_of_fold_copies():
    name = fold_dataset("yaib", 2, 3)
    assert name == "yaib-cv2.3" and parse_fold(name) == ("yaib", "r2f3")
    assert parse_dataset(name) == ("yaib", 1.0) and parse_fold("yaib") == ("yaib", None)


def test_every_subject_is_tested_once_per_repeat_in_stratified_subject_level_folds():
    stays = _stays()
    positive = stays.groupby("subject_id")["mortality"].max()
    for repeat in (1, 2):
        tested = []
        for fold in range(1, SPLIT.folds + 1):
            split = fold_splits(stays, "mortality", SPLIT, repeat, fold, seed=0)
            assert (split.groupby("subject_id")["split"].nunique() == 1).all()  # subject-level
            subjects = split.drop_duplicates("subject_id").set_index("subject_id")["split"]
            test = subjects.index[subjects == "test"]
            tested += list(test)
            n_pos = positive[test].sum()
            assert abs(n_pos - positive.sum() / SPLIT.folds) <= 1  # stratified
            train, val = (subjects == "train").sum(), (subjects == "val").sum()
            assert abs(val / (train + val) - 0.1 / 0.9) < 0.05
            parts = split[split["split"] == "val"]["val_part"]
            assert set(parts) == {"guide", "select"}
            assert split[split["split"] != "val"]["val_part"].isna().all()
        assert sorted(tested) == sorted(positive.index)  # each subject tested exactly once
    first = fold_splits(stays, "mortality", SPLIT, 1, 1, seed=0)
    assert first.equals(fold_splits(stays, "mortality", SPLIT, 1, 1, seed=0))  # seeded
    assert not first["split"].equals(fold_splits(stays, "mortality", SPLIT, 2, 1, seed=0)["split"])


def test_fold_errors_name_the_cause():
    stays = _stays(n_subjects=12)
    many = SplitSettings(**{**SPLIT.to_dict(), "folds": 11})
    with pytest.raises(ValueError, match="rarer class cannot fill split.folds = 11"):
        fold_splits(stays, "mortality", many, 1, 1, seed=0)
    with pytest.raises(ValueError, match="fold 5 of split.folds = 4"):
        fold_splits(_stays(), "mortality", SPLIT, 1, 5, seed=0)


def test_fold_cohort_stage_keeps_every_stay_and_series(tmp_path):
    stays = _stays()
    series = pd.DataFrame({"stay_id": np.repeat(stays["stay_id"].to_numpy(), 2),
                           "step": [0, 1] * len(stays)})  # fmt: skip
    write_parquet(stays, tmp_path / "stays.parquet")
    write_parquet(series, tmp_path / "ts.parquet")
    out = Layout(str(tmp_path / "r")).cohort(fold_dataset("d", 1, 2))
    summary = run_fold_cohort_stage(
        stays=tmp_path / "stays.parquet", timeseries=tmp_path / "ts.parquet", out=out,
        task="mortality", split=SPLIT, repeat=1, fold=2, seed=0,
    )  # fmt: skip
    written = read_parquet(out.stays)
    assert written.drop(columns=["split", "val_part"]).equals(
        stays.drop(columns=["split", "val_part"])
    )
    assert read_parquet(out.timeseries).equals(series)
    assert sum(summary["split_sizes"].values()) == len(stays) and summary["fold"] == 2


def _scored(per_model_delta: list[float], n_resamples=20) -> Scored:
    """Two models (arm a, arm b) whose AUPRC differs by the same Δ on the test set and in every
    resample, per seed."""
    models = []
    for d in per_model_delta:
        models += [[0.5, 0.5 + d, 0.5], [0.5, 0.5, 0.5]]
    estimate = np.array(models)
    return Scored(estimate, np.repeat(estimate[:, :, None], n_resamples, axis=2))


def test_pooled_difference_is_the_mean_over_folds_and_one_fold_is_the_paired_difference():
    one, two = _scored([0.1, 0.3]), _scored([0.5, 0.5])
    a, b = np.array([0, 2]), np.array([1, 3])
    d = pooled_difference([(one, a, b), (two, a, b)], "auprc", seed=0)
    assert d.interval.estimate == pytest.approx((0.2 + 0.5) / 2)
    assert d.per_seed == pytest.approx((0.1, 0.3, 0.5, 0.5)) and d.share_positive == 1.0
    # every resample: the mean over folds of each fold's mean over its drawn seeds
    drawn = seed_draws(2, 20, fold_seed(0, 0))
    expected = (np.array([0.1, 0.3])[drawn].mean(1) + 0.5) / 2
    assert d.interval.low == pytest.approx(np.percentile(expected, 2.5))
    assert d.interval.high == pytest.approx(np.percentile(expected, 97.5))
    rng = np.random.default_rng(0)
    noisy = Scored(rng.random((4, 3)), rng.random((4, 3, 20)))
    single, pooled = (
        paired_difference(noisy, a, b, "auroc", 3),
        pooled_difference([(noisy, a, b)], "auroc", 3),
    )
    assert single == pooled
    assert fold_seed(7, 0) == 7 and fold_seed(7, 2) == (7, 2)
    assert not np.array_equal(seed_draws(3, 50, fold_seed(7, 1)), seed_draws(3, 50, 7))


def _fold_predictions(rng, n_stays, samples) -> pd.DataFrame:
    """One evaluator's predictions of real (TRTR), conditional and tardiff (TSRTR α=1) for two
    seeds; tardiff's draws are conditional's where ``samples`` says so."""
    y = (rng.random(n_stays) < 0.3).astype(int)
    y[:2], y[2:4] = 1, 0
    rows, scores = [], []
    for seed in (0, 1):
        arms = (("real", "TRTR", np.nan, None), ("conditional", "TSRTR", 1.0, f"c{seed}"),
                ("tardiff", "TSRTR", 1.0, samples.format(seed=seed)))  # fmt: skip
        for method, protocol, ratio, fp in arms:
            rows.append({"method": method, "protocol": protocol, "ratio": ratio, "seed": seed,
                         "scale": np.nan, "samples": fp})  # fmt: skip
            scores.append((1.5 if method == "tardiff" else 1.0) * y + rng.standard_normal(n_stays))
    models = pd.DataFrame(rows).assign(model=np.arange(len(rows)))
    stays = np.arange(1000, 1000 + n_stays)
    return predictions_table(models, "gru", np.zeros(len(rows)), stays, y, np.stack(scores))


def test_predictions_round_trip_and_the_pooled_stage(tmp_path):
    rng = np.random.default_rng(0)
    table = _fold_predictions(rng, 60, "t{seed}")
    assert list(table.columns) == PREDICTION_COLUMNS and len(table) == 6 * 60
    models, thresholds, y, scores = model_scores(table.sample(frac=1.0, random_state=0))
    assert models["model"].tolist() == list(range(6)) and scores.shape == (6, 60)
    assert np.allclose(scores, table["score"].to_numpy().reshape(6, 60)) and len(thresholds) == 6
    folds = [_fold_predictions(rng, n, "t{seed}") for n in (60, 80)]
    folds.append(_fold_predictions(rng, 70, "c{seed}"))  # tardiff chose 0 in this fold only
    paths = []
    for k, fold in enumerate(folds):
        paths.append(tmp_path / f"f{k}.parquet")
        write_parquet(fold, paths[-1])
    out = tmp_path / "pooled.csv"
    pooled = run_pooled_stage(predictions=paths, dataset="d", task="mortality", out=out,
                              resamples=50, seed=0)  # fmt: skip
    assert list(pooled.columns) == PAIRED_COLUMNS and (pooled["test_set"] == "fold").all()
    assert pd.read_csv(out).shape == pooled.shape
    row = pooled[(pooled.method == "tardiff") & (pooled.baseline == "conditional")
                 & (pooled.metric == "auroc")].iloc[0]  # fmt: skip
    per_fold = []
    for fold in folds:
        _, _, y, s = model_scores(fold)
        per_fold.append(np.mean([auroc(y, s[3 * k + 2]) - auroc(y, s[3 * k + 1]) for k in (0, 1)]))
    assert row["delta"] == pytest.approx(np.mean(per_fold)) and row["verdict"] != SAME_SAMPLES
    assert row["n_seeds"] == 2
    real = pooled[(pooled.method == "conditional") & (pooled.baseline == "real")
                  & (pooled.metric == "auprc")].iloc[0]  # fmt: skip
    per_fold = [np.mean([average_precision(y, s[3 * k + 1]) - average_precision(y, s[3 * k])
                         for k in (0, 1)]) for _, _, y, s in map(model_scores, folds)]  # fmt: skip
    assert real["delta"] == pytest.approx(np.mean(per_fold))
    same = _fold_predictions(rng, 50, "c{seed}")
    write_parquet(same, tmp_path / "same.parquet")
    both = run_pooled_stage(predictions=[tmp_path / "same.parquet"] * 2, dataset="d",
                            task="mortality", out=tmp_path / "same.csv", resamples=20)  # fmt: skip
    tardiff = both[(both.method == "tardiff") & (both.baseline == "conditional")]
    assert (tardiff["verdict"] == SAME_SAMPLES).all()
    with pytest.raises(ValueError, match="two folds or more"):
        run_pooled_stage(predictions=paths[:1], dataset="d", task="mortality", out=out,
                         resamples=10)  # fmt: skip
