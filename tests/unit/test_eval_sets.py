"""Training-set mixing (nested, stratified subsets), the jitter baseline and the scarcity copy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tiny_cohort import FEATURES, write_cohort

from tardiff.data import Transform, prepare, to_timeseries_frame
from tardiff.evaluate.downstream.sets import (
    Draw,
    Plan,
    add_corrections,
    add_protocols,
    balanced_weights,
    class_orders,
    evaluation_draws,
    final_draws,
    generation_draws,
    load_draw,
    minority_counts,
    ratio_counts,
    selection_draws,
    take,
    training_budget_mb,
)
from tardiff.io import read_json, read_parquet, write_parquet
from tardiff.jitter import jitter_samples, run_jitter_stage, time_warp
from tardiff.layout import CohortFiles, Layout
from tardiff.scarcity import kept_train_stays, run_scarcity_cohort_stage
from tardiff.settings import JitterSettings, ScaleGrids

TASK = "mortality"


def _draw(n0=80, n1=20, seed=0, method="tardiff"):
    y = np.r_[np.zeros(n0, int), np.ones(n1, int)]
    x = np.random.default_rng(seed).standard_normal((n0 + n1, 4, 2)).astype(np.float32)
    return Draw((method, 0.1, seed), x, y)


def test_ratio_and_minority_counts():
    y_real = np.r_[np.zeros(90, int), np.ones(10, int)]
    assert ratio_counts(y_real, 0.2) == {0: 18, 1: 2}
    assert ratio_counts(y_real, 1.0) == {0: 90, 1: 10}
    assert minority_counts(y_real, 2) == {1: 20, 0: 0}
    assert minority_counts(1 - y_real, 1.5) == {0: 15, 1: 0}  # the minority is label 0


def test_subsets_are_nested_stratified_and_checked():
    draw = _draw()
    orders = class_orders(draw.y, seed=3)
    y_real = np.r_[np.zeros(80, int), np.ones(20, int)]
    subsets = [take(orders, ratio_counts(y_real, a), "x") for a in (0.2, 0.6, 1.0)]
    for small, large in zip(subsets, subsets[1:], strict=False):
        assert set(small) < set(large)
    for a, rows in zip((0.2, 0.6, 1.0), subsets, strict=True):
        assert np.bincount(draw.y[rows], minlength=2).tolist() == [80 * a, 20 * a]
    assert np.array_equal(class_orders(draw.y, 3)[1], orders[1])  # seeded
    with pytest.raises(
        ValueError, match="needs 40 synthetic samples of class 1 but the draw has 20"
    ):
        take(orders, minority_counts(y_real, 2), "tardiff seed 0")


def test_protocol_plan_counts_and_members():
    plan = Plan()
    y_real = np.r_[np.zeros(40, int), np.ones(10, int)]
    real_rows = plan.add_data(np.zeros((50, 4, 2), np.float32), y_real)
    draw = _draw(80, 20)
    add_protocols(plan, real_rows, y_real, draw, ratios=(0.5, 1.0), multiples=(1, 2), tstr=True)
    table = pd.DataFrame(plan.rows)
    assert table["protocol"].tolist() == ["TSTR", "TSRTR", "TSRTR", "minority", "minority"]
    assert table["n_synthetic"].tolist() == [50, 25, 50, 10, 20]
    assert table["n_real"].tolist() == [0, 50, 50, 50, 50]
    pool_x, pool_y = plan.pool()
    assert len(pool_x) == 150
    minority2 = plan.members[-1]
    assert (pool_y[minority2[50:]] == 1).all() and np.array_equal(minority2[:50], real_rows)
    assert set(plan.seeds) == {0}


def test_the_same_samples_twice_are_pooled_once_and_their_models_trained_once():
    from tardiff.evaluate.downstream.ensemble import train_models
    from tardiff.settings import EvaluationModelSettings

    plan = Plan()
    y_real = np.r_[np.zeros(40, int), np.ones(10, int)]
    rng = np.random.default_rng(0)
    real_rows = plan.add_data(rng.standard_normal((50, 4, 2)).astype(np.float32), y_real)
    draw = _draw(80, 20)
    for key in (("conditional", 0.0, 0), ("tardiff", 0.0, 0), ("conditional", 0.0, 1)):
        twin = Draw(key, draw.x, draw.y)  # tardiff at scale 0: conditional's samples
        add_protocols(plan, real_rows, y_real, twin, ratios=(1.0,), multiples=(), tstr=True)
    assert len(plan.pool()[0]) == 150  # the draw's samples pooled once
    firsts, inverse = plan.distinct()
    assert firsts == [0, 1, 4, 5] and inverse.tolist() == [0, 1, 0, 1, 2, 3]  # seed 1 differs
    plan.add_model(real_rows, 0, (1.0, 4.0))
    plan.add_model(real_rows, 0, (1.0, 1.0))
    assert plan.distinct()[1].tolist()[-2:] == [4, 5]  # other class weights: another model
    settings = EvaluationModelSettings.from_config(
        {"arch": "gru", "hidden": 4, "layers": 1, "lr": 0.01, "weight_decay": 0.0,
         "batch_size": 16, "steps": 5}
    )  # fmt: skip
    x, y = plan.pool()
    every = train_models(x, y, plan.members, plan.seeds, settings, device="cpu",
                         class_weights=plan.class_weights).predict(x)  # fmt: skip
    once = train_models(x, y, [plan.members[k] for k in firsts[:4]], plan.seeds[:1] * 2 + [1, 1],
                        settings, device="cpu").predict(x)  # fmt: skip
    assert np.allclose(every[:6], once[inverse[:6]], atol=1e-6)  # training: rows and seed alone


def test_corrections_weight_real_train_and_duplicate_its_minority():
    assert balanced_weights(np.r_[np.zeros(30, int), np.ones(10, int)]) == (40 / 60, 40 / 20)
    with pytest.raises(ValueError, match="both classes"):
        balanced_weights(np.zeros(5, int))
    plan = Plan()
    y_real = np.r_[np.zeros(40, int), np.ones(10, int)]
    real_rows = plan.add_data(np.zeros((50, 4, 2), np.float32), y_real)
    baselines = ("class_weight", "oversample")
    add_corrections(plan, real_rows, y_real, 3, baselines, ratios=(0.4, 1.0), multiples=(2,))
    table = pd.DataFrame(plan.rows)
    assert table["method"].tolist() == ["class_weight"] + ["oversample"] * 3
    assert table["protocol"].tolist() == ["TRTR", "TSRTR", "TSRTR", "minority"]
    assert plan.class_weights == [(50 / 80, 50 / 20), (1.0, 1.0), (1.0, 1.0), (1.0, 1.0)]
    # the synthetic minority counts of TSRTR 0.4 and 1.0 (4, 10) and of minority x2 (20)
    assert table["n_real"].tolist() == [50, 54, 60, 70] and set(plan.seeds) == {3}
    extras = [m[50:] for m in plan.members[1:]]
    assert all((y_real[e] == 1).all() for e in extras)  # real minority rows only
    assert np.array_equal(extras[1][:4], extras[0]) and np.array_equal(extras[2][:10], extras[1])
    assert len(set(extras[2])) < 10  # drawn with replacement
    again = Plan()
    again.add_data(np.zeros((50, 4, 2), np.float32), y_real)
    add_corrections(again, real_rows, y_real, 3, ("oversample",), (0.4, 1.0), (2,))
    assert all(np.array_equal(a, b) for a, b in zip(again.members, plan.members[1:], strict=True))


def test_draw_lists_pair_with_the_layout():
    grids = ScaleGrids(tardiff=(0.1, 0.3), classifier_guidance=(0.2,))
    keys = selection_draws(("conditional", "tardiff", "classifier_guidance"), grids, seeds=2)
    assert keys[:2] == [("conditional", 0.0, 0), ("conditional", 0.0, 1)]
    assert len(keys) == 2 * (1 + 2 + 1)
    assert selection_draws(("conditional",), grids, seeds=2) == []
    final = evaluation_draws(("conditional", "tardiff"), {"tardiff": 0.0}, seeds=2)
    assert final[-2:] == [("jitter", None, 0), ("jitter", None, 1)]
    layout = Layout("r")
    # tardiff at a chosen scale of 0 reads the conditional samples
    assert layout.draw("d", "t", *final[2]) == layout.draw("d", "t", *final[0])


def test_cfg_is_scale_selected_and_influence_filter_has_its_own_draw():
    grids = ScaleGrids(tardiff=(0.1,), classifier_guidance=(), cfg=(0.5, 2.0))
    methods = ("conditional", "tardiff", "cfg", "influence_filter")
    keys = selection_draws(methods, grids, seeds=1)
    assert keys == [("conditional", 0.0, 0), ("tardiff", 0.1, 0), ("cfg", 0.5, 0), ("cfg", 2.0, 0)]
    # the guided grids at the selection seeds, then every seed of the unguided methods
    default = ("conditional", "tardiff", "classifier_guidance")
    conditional = [("conditional", 0.0, k) for k in range(3)]
    assert generation_draws(default, grids, 1, 3) == [("tardiff", 0.1, 0), *conditional]
    extra = [("influence_filter", 0.0, k) for k in range(3)]
    assert generation_draws(methods, grids, 1, 3) == [*keys[1:], *conditional, *extra]
    # the conditional draw is the scale-0 candidate even where not listed
    assert generation_draws(("tardiff",), grids, 1, 2) == [("tardiff", 0.1, 0), *conditional[:2]]
    assert generation_draws(("influence_filter",), grids, 1, 2) == extra[:2]
    final = evaluation_draws(methods, {"tardiff": 0.1, "cfg": 0.0}, seeds=1)
    assert final[:4] == [("conditional", 0.0, 0), ("tardiff", 0.1, 0), ("cfg", 0.0, 0),
                         ("influence_filter", 0.0, 0)]  # fmt: skip
    layout = Layout("r")
    paths = [layout.draw("d", "t", *key) for key in final[:4]]
    assert paths[2] == paths[0]  # cfg at a chosen scale of 0: the conditional draw
    assert paths[3] == "r/d/t/synthetic/influence_filter/w0/seed0.parquet"


def test_final_draws_are_the_later_seeds_of_the_guided_methods_at_the_chosen_scales():
    methods = ("conditional", "tardiff", "classifier_guidance", "influence_filter")
    chosen = {"tardiff": 0.0, "classifier_guidance": 0.1}
    keys = final_draws(methods, chosen, seeds=4, selection_seeds=2)
    # tardiff chose 0 (the conditional draw, drawn for every seed); no jitter (its own rule)
    assert keys == [("classifier_guidance", 0.1, 2), ("classifier_guidance", 0.1, 3)]
    assert final_draws(methods, chosen, seeds=2, selection_seeds=2) == []
    # with the draws that need no selection they are every diffusion file the evaluation reads
    grids = ScaleGrids(tardiff=(0.1,), classifier_guidance=(0.03, 0.1))
    layout = Layout("r")
    first = generation_draws(methods, grids, 2, 4)
    written = {layout.draw("d", "t", *k) for k in first + keys}
    read = {layout.draw("d", "t", *k) for k in evaluation_draws(methods, chosen, 4)[:-4]}
    assert read <= written and len(read) == 3 * 4
    assert len(written) == len(first) + len(keys)  # no file drawn twice


def test_load_draw_maps_physical_units_back(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(80, 10, (6, 5, len(FEATURES))).astype(np.float32)
    transform = Transform.fit(x, list(FEATURES))
    labels = np.array([0, 1, 0, 1, 0, 0])
    path = tmp_path / "s.parquet"
    write_parquet(to_timeseries_frame(x, labels, list(FEATURES), TASK), path)
    draw = load_draw(path, ("conditional", 0.0, 0), transform, TASK, 5)
    np.testing.assert_allclose(draw.x, transform.transform(x)[0])
    assert draw.y.tolist() == labels.tolist()
    bad = to_timeseries_frame(x, labels, list(FEATURES), TASK)
    bad.loc[3, FEATURES[0]] = np.nan
    write_parquet(bad, path)
    with pytest.raises(ValueError, match="non-finite"):
        load_draw(path, ("conditional", 0.0, 0), transform, TASK, 5)
    with pytest.raises(ValueError, match="missing columns"):
        load_draw(path, ("conditional", 0.0, 0), transform, "icu_stay", 5)


def test_time_warp_keeps_values_in_range_and_zero_warp_is_identity():
    x = np.cumsum(np.ones((3, 12, 2), np.float32), axis=1)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(time_warp(x, 0.0, rng), x)
    warped = time_warp(x, 0.2, rng)
    assert warped.min() >= x.min() and warped.max() <= x.max()
    assert (np.diff(warped, axis=1) >= 0).all()  # a monotone warp keeps a rising series rising
    assert not np.allclose(warped, x)


def test_jitter_copies_the_requested_classes():
    x = np.stack([np.full((6, 2), c, np.float32) for c in (0, 0, 0, 5)])
    y = np.array([0, 0, 0, 1])
    labels = np.array([1, 1, 0, 1, 0])
    out = jitter_samples(x, y, labels, JitterSettings(noise_sd=0.0, warp=0.1), seed=0)
    assert (out[labels == 1] == 5).all() and (out[labels == 0] == 0).all()
    noisy = jitter_samples(x, y, labels, JitterSettings(noise_sd=0.5, warp=0.0), seed=0)
    assert 0.3 < np.std(noisy[labels == 0]) < 0.7
    assert np.array_equal(noisy, jitter_samples(x, y, labels, JitterSettings(0.5, 0.0), seed=0))


def test_jitter_stage_writes_the_cohort_schema(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", n=40, seq_len=6)
    out = Layout(str(tmp_path)).jitter("d", TASK, 1)
    info = run_jitter_stage(stays=cohort.stays, timeseries=cohort.timeseries, task=TASK, seeds=[1],
                            outs=[out], settings=JitterSettings(0.1, 0.1))[0]  # fmt: skip
    frame = read_parquet(out.samples)
    prepared = prepare(cohort.stays, cohort.timeseries, TASK)
    assert list(frame.columns) == ["stay_id", "step", *FEATURES, TASK]
    assert len(frame) == 6 * len(prepared.y["train"]) and frame[FEATURES].notna().all().all()
    assert (
        info["n_per_class"] == {str(c): int((prepared.y["train"] == c).sum()) for c in (0, 1)}
        and read_json(out.settings) == info
    )


def test_scarcity_copy_keeps_val_and_test_and_a_stratified_share_of_train(tmp_path):
    cohort = write_cohort(tmp_path / "cohort", n=200, seq_len=4)
    out = CohortFiles.in_dir(tmp_path / "reduced")
    summary = run_scarcity_cohort_stage(stays=cohort.stays, timeseries=cohort.timeseries,
                                        out=out, fraction=0.25, tasks=[TASK], seed=0)  # fmt: skip
    full, reduced = read_parquet(cohort.stays), read_parquet(out.stays)
    for split in ("val", "test"):
        assert set(full.loc[full.split == split, "stay_id"]) == set(
            reduced.loc[reduced.split == split, "stay_id"]
        )
    train_full, train = full[full.split == "train"], reduced[reduced.split == "train"]
    assert set(train.stay_id) < set(train_full.stay_id)
    for c in (0, 1):
        assert (train[TASK] == c).sum() == max(1, round(0.25 * (train_full[TASK] == c).sum()))
    assert summary["n_train"] == len(train)
    prepared = prepare(out.stays, out.timeseries, TASK)  # a valid cohort
    assert len(prepared.y["train"]) == len(train)
    again = kept_train_stays(full, 0.25, [TASK], seed=0)
    assert set(full.loc[again, "stay_id"]) == set(train.stay_id)
    with pytest.raises(ValueError, match="missing task columns"):
        kept_train_stays(full, 0.5, ["los"], seed=0)


def test_training_budget_is_what_the_data_and_pool_leave():
    pool = np.zeros(2**18, np.float32)  # 1 MiB, held twice while the pool is built
    assert training_budget_mb(100, 50, pool, "evaluation") == 48
    assert training_budget_mb(None, 50, pool, "evaluation") is None
    with pytest.raises(MemoryError, match="evaluation \\(data and training pool\\)"):
        training_budget_mb(51, 50, pool, "evaluation")
