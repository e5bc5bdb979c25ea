"""Scale selection and the utility evaluation stage on a tiny cohort with hand-made draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_cohort import FEATURES, write_cohort

from tardiff.data import prepare, to_timeseries_frame
from tardiff.evaluate.downstream.external import load_external
from tardiff.evaluate.downstream.metrics import SAME_SAMPLES, f1_threshold
from tardiff.evaluate.downstream.selection import run_selection_stage
from tardiff.evaluate.downstream.sets import evaluation_draws, selection_draws
from tardiff.evaluate.downstream.utility import (
    PAIRED_COLUMNS,
    UTILITY_COLUMNS,
    run_evaluation_stage,
    utility_table,
)
from tardiff.evaluate.reporting.collect import COLLECTED_PAIRED_COLUMNS, collect_tables
from tardiff.evaluate.studies.stage import SWEEP_COLUMNS
from tardiff.io import read_json, read_parquet, write_json, write_parquet
from tardiff.layout import Layout
from tardiff.settings import EvaluationSettings, PrimarySettings, ScaleGrids

TASK = "mortality"
METHODS = ("conditional", "tardiff")
GRIDS = ScaleGrids(tardiff=(0.1, 0.5), classifier_guidance=())
SEQ = 6
PRIMARY = PrimarySettings("tardiff", "conditional", "TSRTR", 1.0, "auprc", "headline", "gru")


def _external(root, **changes):
    """A tiny external population: every stay a test stay (``changes``: other stays columns)."""
    files = write_cohort(root / "external", n=120, seq_len=SEQ, seed=5)
    stays = read_parquet(files.stays).assign(split="test", val_part=None).assign(**changes)
    write_parquet(stays, files.stays)
    return files


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_config):
    """A cohort, synthetic draws of every selection candidate and the jitter files."""
    root = tmp_path_factory.mktemp("evaluation")
    cohort = write_cohort(root / "cohort", n=160, seq_len=SEQ)
    config = tiny_config(
        evaluation={"seeds": 2, "selection_seeds": 2, "ratios": [0.5, 1.0],
                    "minority_multiples": [1], "model": {"hidden": 4, "steps": 8, "batch_size": 32},
                    "bootstrap_resamples": 100},
    )  # fmt: skip
    settings = EvaluationSettings.from_config(config["evaluation"])
    layout = Layout(str(root / "results"))
    prepared = prepare(cohort.stays, cohort.timeseries, TASK)
    y = prepared.y["train"]
    keys = selection_draws(METHODS, GRIDS, settings.seeds)
    keys += [("jitter", None, k) for k in range(settings.seeds)]
    for method, scale, seed in keys:
        rng = np.random.default_rng([seed, int(100 * (scale or 0)), method == "jitter"])
        noise = rng.normal(0, 0.3 + (scale or 0), prepared.x["train"].shape)
        x = prepared.transform.inverse(prepared.x["train"] + noise)
        frame = to_timeseries_frame(x, y, list(FEATURES), TASK)
        write_parquet(frame, layout.draw("d", TASK, method, scale, seed))
    return root, cohort, layout, settings


def _select(setup, stays=None, out="selection.json"):
    root, cohort, layout, settings = setup
    keys = selection_draws(METHODS, GRIDS, settings.selection_seeds)
    return run_selection_stage(
        stays=stays or cohort.stays, timeseries=cohort.timeseries,
        synthetic=[layout.draw("d", TASK, *k) for k in keys], dataset="d", task=TASK,
        out=root / out, methods=METHODS, scales=GRIDS, settings=settings, device="cpu",
    )  # fmt: skip


def test_selection_scores_every_scale_and_ignores_test_labels(setup, tmp_path):
    root, cohort, _, settings = setup
    selection = _select(setup)
    tardiff = selection["methods"]["tardiff"]
    assert tardiff["grid"] == [0.0, 0.1, 0.5] and len(tardiff["per_seed"]) == 3
    assert all(len(v) == settings.seeds for v in tardiff["per_seed"])
    assert tardiff["chosen"] == tardiff["grid"][int(np.argmax(tardiff["score"]))]
    assert read_json(root / "selection.json") == selection
    # scrambled test labels (and test series) leave the selection unchanged
    stays = read_parquet(cohort.stays)
    test = stays["split"] == "test"
    stays.loc[test, TASK] = np.random.default_rng(0).permutation(stays.loc[test, TASK].to_numpy())
    stays.loc[test, TASK] = 1 - stays.loc[test, TASK]
    scrambled = tmp_path / "stays.parquet"
    write_parquet(stays, scrambled)
    assert _select(setup, stays=scrambled, out="scrambled.json") == selection


def test_evaluation_stage_writes_every_model_and_pair(setup):
    root, cohort, layout, settings = setup
    selection = _select(setup)
    chosen = {m: v["chosen"] for m, v in selection["methods"].items()}
    keys = evaluation_draws(METHODS, chosen, settings.seeds)
    out = layout.evaluation("d-train0.5", TASK)
    external = _external(root)
    utility, paired = run_evaluation_stage(
        stays=cohort.stays, timeseries=cohort.timeseries, selection=root / "selection.json",
        synthetic=[layout.draw("d", TASK, *k) for k in keys], dataset="d-train0.5", task=TASK,
        out=out, methods=METHODS, settings=settings, device="cpu",
        external=(external.stays, external.timeseries),
    )  # fmt: skip
    table = pd.read_csv(out.utility)
    assert list(table.columns) == UTILITY_COLUMNS and len(table) == len(utility)
    # per seed, test set and evaluator: real and class_weight (TRTR), oversample (2 ratios + 1
    # multiple), 3 methods x (TSTR + 2 ratios + 1 multiple)
    assert len(table) == 2 * 2 * settings.seeds * (2 + 3 + 3 * 4)
    assert table.groupby(["test_set", "evaluator"]).size().eq(settings.seeds * 17).all()
    assert set(table["evaluator"]) == {"gru", "lgbm"}
    gru, lgbm = table[table.evaluator == "gru"], table[table.evaluator == "lgbm"]
    assert not np.allclose(gru["auroc"], lgbm["auroc"].to_numpy())
    weighted = table[table.method == "class_weight"]
    assert (weighted.protocol == "TRTR").all() and weighted.ratio.isna().all()
    oversampled = table[table.method == "oversample"]
    n_real = int(table.loc[table.method == "real", "n_real"].iloc[0])
    assert (oversampled.n_real > n_real).all() and (oversampled.n_synthetic == 0).all()
    internal = gru[gru.test_set == "internal"]
    outside = gru[gru.test_set == "external"]
    assert len(internal) == len(outside)
    key = ["method", "protocol", "ratio", "seed"]
    assert internal[key].equals(outside[key].set_index(internal.index))  # the same models
    assert internal["f1_threshold"].tolist() == outside["f1_threshold"].tolist()  # from select
    assert not np.allclose(internal["auroc"], outside["auroc"].to_numpy())
    assert (table["dataset"] == "d").all() and (table["fraction"] == 0.5).all()
    metrics = table[["auroc", "auprc", "minority_f1"]].to_numpy()
    assert np.isfinite(metrics).all() and (metrics >= 0).all() and (metrics <= 1).all()
    assert (table["auroc_lo"] <= table["auroc"]).all() and (
        table["auroc"] <= table["auroc_hi"]
    ).all()
    assert table.loc[table.method == "tardiff", "scale"].eq(chosen["tardiff"]).all()
    assert (
        internal["f1_threshold"].tolist()
        != lgbm.loc[lgbm.test_set == "internal", "f1_threshold"].tolist()
    )
    trtr = table[table.protocol == "TRTR"]
    assert trtr["ratio"].isna().all() and (trtr["n_synthetic"] == 0).all()
    pairs = pd.read_csv(out.paired)
    assert list(pairs.columns) == PAIRED_COLUMNS
    # per test set and evaluator, vs real: class_weight, oversample x 3 arms, 3 methods x 4 arms;
    # vs class_weight: the same less itself; vs oversample: 3 methods x 3 arms (no TSTR); vs
    # conditional: 2 methods x 4 arms; vs tardiff: jitter (not conditional, already compared the
    # other way round) x 4 arms; 2 metrics each
    per_group = (1 + 3 + 12) + (3 + 12) + 9 + 8 + 4
    assert len(pairs) == per_group * 2 * 2 * 2 and (pairs["n_seeds"] == settings.seeds).all()
    assert pairs.groupby(["test_set", "evaluator"]).size().eq(2 * per_group).all()
    assert set(pairs.loc[pairs.baseline == "tardiff", "method"]) == {"jitter"}
    assert set(pairs.loc[pairs.baseline == "oversample", "protocol"]) == {"TSRTR", "minority"}
    assert set(pairs["verdict"]) <= {"improves", "worse", "no detectable difference", SAME_SAMPLES}
    assert pairs["p_value"].between(0, 1).all() and (pairs["delta_se"] >= 0).all()
    again = layout.metrics()
    collect_tables(inputs={"utility": [out.utility, out.utility], "paired": [out.paired]},
                   out=again, primary=PRIMARY)  # fmt: skip
    assert len(pd.read_csv(again.utility)) == 2 * len(table)
    collected = pd.read_csv(again.paired)
    assert list(collected.columns) == COLLECTED_PAIRED_COLUMNS
    assert not collected["primary"].any()  # a scarcity copy (fraction 0.5) has no primary row
    assert list(pd.read_csv(again.sweep).columns) == SWEEP_COLUMNS  # no inputs: empty table
    bad = root / "bad.csv"
    pd.read_csv(out.paired).drop(columns="verdict").to_csv(bad, index=False)
    with pytest.raises(ValueError, match="bad.csv: columns"):
        collect_tables(inputs={"paired": [bad]}, out=again, primary=PRIMARY)


def test_a_method_that_chose_scale_0_is_the_same_samples_as_conditional(setup):
    root, cohort, layout, settings = setup
    write_json({"methods": {"tardiff": {"chosen": 0.0}}}, root / "zero.json")
    keys = evaluation_draws(METHODS, {"tardiff": 0.0}, settings.seeds)
    out = layout.evaluation("d", "zero")
    _, paired = run_evaluation_stage(
        stays=cohort.stays, timeseries=cohort.timeseries, selection=root / "zero.json",
        synthetic=[layout.draw("d", TASK, *k) for k in keys], dataset="d", task=TASK, out=out,
        methods=METHODS, settings=settings, device="cpu",
    )  # fmt: skip
    same = paired[paired.verdict == SAME_SAMPLES]
    assert set(zip(same.method, same.baseline, strict=True)) == {("tardiff", "conditional")}
    assert len(same) == 4 * 2 * 2  # every arm (TSTR, 2 ratios, 1 multiple), metric, evaluator
    assert (same["delta"] == 0).all() and (same["p_value"] == 1).all()
    others = paired[paired.baseline == "real"]
    assert SAME_SAMPLES not in set(others["verdict"])


def test_an_external_population_must_fit_the_dataset(setup, tmp_path):
    _, cohort, _, _ = setup
    prepared = prepare(cohort.stays, cohort.timeseries, TASK)
    good = _external(tmp_path / "good")
    x, y = load_external(good.stays, good.timeseries, prepared)
    assert x.shape == (120, SEQ, len(FEATURES)) and set(y) == {0, 1}
    assert np.isfinite(x).all()
    train = _external(tmp_path / "train", split="train")
    with pytest.raises(ValueError, match="must be a test stay"):
        load_external(train.stays, train.timeseries, prepared)
    other = write_cohort(tmp_path / "other", n=40, seq_len=SEQ + 1, seed=2)
    with pytest.raises(ValueError, match="steps, but the dataset"):
        load_external(other.stays, other.timeseries, prepared)


def test_the_scarcity_study_evaluates_trtr_and_tsrtr_at_one(setup):
    root, cohort, layout, settings = setup
    _select(setup)
    chosen = {m: v["chosen"] for m, v in read_json(root / "selection.json")["methods"].items()}
    keys = evaluation_draws(METHODS, chosen, settings.seeds)
    out = layout.evaluation("d", "scarce")
    utility, _ = run_evaluation_stage(
        stays=cohort.stays, timeseries=cohort.timeseries, selection=root / "selection.json",
        synthetic=[layout.draw("d", TASK, *k) for k in keys], dataset="d", task=TASK,
        out=out, methods=METHODS, settings=settings, study="scarcity", device="cpu",
    )  # fmt: skip
    assert set(zip(utility.protocol, utility.ratio.fillna(-1), strict=True)) == {
        ("TRTR", -1),
        ("TSRTR", 1.0),
    }
    with pytest.raises(ValueError, match="expected"):
        run_evaluation_stage(
            stays=cohort.stays, timeseries=cohort.timeseries, selection=root / "selection.json",
            synthetic=[], dataset="d", task=TASK, out=out, methods=METHODS, settings=settings,
        )  # fmt: skip


def test_the_f1_threshold_comes_from_validation_only():
    rng = np.random.default_rng(0)
    y = {"select": rng.integers(0, 2, 60), "test": rng.integers(0, 2, 80)}
    y["select"][:2], y["test"][:2] = [0, 1], [0, 1]
    logits = {"select": rng.standard_normal((2, 60)), "test": rng.standard_normal((2, 80))}
    rows = [{"method": "real"}, {"method": "conditional"}]
    table = utility_table(rows, logits, y, resamples=100, seed=0)
    assert (table["auroc_lo"] <= table["auroc_hi"]).all()
    for i in range(2):
        assert table["f1_threshold"][i] == f1_threshold(y["select"], logits["select"][i])
    shuffled = {**y, "test": rng.permutation(y["test"])}
    again = utility_table(rows, {**logits, "test": -logits["test"]}, shuffled, 100, 0)
    assert again["f1_threshold"].tolist() == table["f1_threshold"].tolist()
