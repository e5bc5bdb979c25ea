import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from nan_denoiser import NaNAfter
from tiny_cohort import FEATURES, write_cohort

from tardiff import generate as gen_mod
from tardiff.data import prepare, sample_labels
from tardiff.diffusion.train import run_diffusion_stage
from tardiff.evaluate.downstream.sets import load_draw
from tardiff.generate import reference_batch, run_generation_stage, top_influence
from tardiff.guidance.influence import run_influence_stage
from tardiff.io import load_checkpoint, read_parquet, save_checkpoint
from tardiff.layout import Layout
from tardiff.models.train_classifier import run_classifier_stage
from tardiff.settings import (
    ClassifierSettings,
    DiffusionSettings,
    GenerationSettings,
    InfluenceSettings,
)

TASK = "mortality"


@pytest.fixture(scope="module")
def stages(tmp_path_factory, tiny_config):
    """Classifier, influence vector and diffusion model trained once on a tiny cohort."""
    root = tmp_path_factory.mktemp("gen")
    cohort = write_cohort(root / "cohort", n=48, seq_len=8)
    config = tiny_config(
        classifier={"hidden": 6, "max_epochs": 1},
        diffusion={"timesteps": 20, "train_steps": 3, "warmup_steps": 1, "batch_size": 16},
        generation={"steps": 4, "batch_size": 16, "n_samples": None},
    )
    layout = Layout(str(root / "results"))
    data = {"stays": cohort.stays, "timeseries": cohort.timeseries, "task": TASK}
    run_classifier_stage(
        **data, out=layout.classifier("d", TASK), seed=config["seed"], device=config["device"],
        settings=ClassifierSettings.from_config(config["classifier"]),
    )  # fmt: skip
    run_influence_stage(
        **data, classifier=layout.classifier("d", TASK).model, out=layout.influence("d", TASK),
        settings=InfluenceSettings.from_config(config["influence"]), device=config["device"],
    )  # fmt: skip
    run_diffusion_stage(
        **data, out=layout.diffusion("d", TASK), seed=config["seed"], device=config["device"],
        settings=DiffusionSettings.from_config(config["diffusion"]),
    )  # fmt: skip
    return layout, cohort, config


def _run(stages, method, out_dir, classifier=None, seed=3, scale=None, **gen):
    """Run the generation stage into ``out_dir`` with generation settings changed by ``gen``
    (scale: 0 for conditional, 0.2 for the guided methods unless given)."""
    layout, cohort, config = stages
    settings = replace(GenerationSettings.from_config(config["generation"]), **gen)
    scale = (0.0 if method == "conditional" else 0.2) if scale is None else scale
    return run_generation_stage(
        stays=cohort.stays, timeseries=cohort.timeseries,
        diffusion=layout.diffusion("d", TASK).model,
        classifier=classifier or layout.classifier("d", TASK).model,
        influence=layout.influence("d", TASK).G, task=TASK, method=method, scale=scale,
        seeds=[seed], outs=[Layout(str(out_dir)).synthetic("d", TASK, method, scale, seed)],
        settings=settings,
        device=config["device"],
    )[0]  # fmt: skip


def test_sample_labels_follow_train_counts():
    y = np.array([0] * 7 + [1] * 3)
    labels = sample_labels(y, None, seed=0)
    assert np.bincount(labels).tolist() == [7, 3] and not np.array_equal(labels, np.sort(labels))
    assert np.bincount(sample_labels(y, 20, seed=0)).tolist() == [14, 6]
    # minority-only augmentation up to 2x the real minority tops the minority class up
    assert np.bincount(sample_labels(y, None, seed=0, minority_multiple=2)).tolist() == [7, 6]
    assert np.bincount(sample_labels(1 - y, None, seed=0, minority_multiple=2.5)).tolist() == [8, 7]
    # n_samples below the train size keeps the train ratio (no silent minority top-up)
    assert np.bincount(sample_labels(y, 5, seed=0)).tolist() == [3, 2]
    assert np.bincount(sample_labels(y, 5, seed=0, minority_multiple=2)).tolist() == [3, 4]


def test_top_influence_ranks_samples_that_keep_their_label_first():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, 9.0])
    drawn = np.array([0, 0, 0, 0, 1, 1])
    labels = np.array([0, 0, 1])
    own = np.array([False, True, True, False, True, False])
    assert gen_mod.top_influence(scores, drawn, labels).tolist() == [0, 1, 5]
    # row 0 (best score) looks like the other class: rows 1 and 2 keep their label
    assert gen_mod.top_influence(scores, drawn, labels, own).tolist() == [1, 2, 4]
    # too few keep their label: the best of the others fills the rest
    own = np.array([False, False, True, False, False, False])
    assert gen_mod.top_influence(scores, drawn, labels, own).tolist() == [0, 2, 5]


def test_an_unguided_method_refuses_a_scale(stages, tmp_path):
    with pytest.raises(ValueError, match="conditional is unguided"):
        _run(stages, "conditional", tmp_path, scale=0.1)


@pytest.mark.parametrize("method", ["conditional", "tardiff", "classifier_guidance"])
def test_generation_stage_end_to_end(stages, tmp_path, method):
    _, cohort, _ = stages
    info = _run(stages, method, tmp_path)
    scale = 0 if method == "conditional" else 0.2
    out = Layout(str(tmp_path)).synthetic("d", TASK, method, scale, 3)
    assert out.samples.endswith(f"/synthetic/{method}/w{scale:g}/seed3.parquet")
    prep = prepare(cohort.stays, cohort.timeseries, TASK)
    n_train = len(prep.y["train"])
    frame = read_parquet(out.samples)
    assert list(frame.columns) == ["stay_id", "step", *FEATURES, TASK]
    assert len(frame) == n_train * 8 and frame[FEATURES].notna().all().all()
    counts = frame.groupby("stay_id")[TASK].first().value_counts().to_dict()
    assert counts == {0: int((prep.y["train"] == 0).sum()), 1: int(prep.y["train"].sum())}
    assert json.loads(Path(out.settings).read_text()) == info
    assert set(info["mean_sample_influence"]) == {"0", "1", "all"}
    assert info["wall_s"] > 0 and info["seed"] == 3 and info["method"] == method
    diag = pd.read_csv(out.diagnostics)
    assert {"step", "t", "sigma", "shift_rms", "ratio"} <= set(diag.columns)
    np.testing.assert_allclose(diag["ratio"], diag["shift_rms"] / diag["sigma"])
    if method == "conditional":
        assert (diag["shift_rms"] == 0).all() and info["scale"] == 0
    else:  # the noise-aware schedule (default) leaves the last step unguided
        assert info["shift_schedule"] == "noise" and info["guide_skip_share"] > 0
        for _, batch in diag.groupby("batch"):
            guided = batch["shift_rms"] > 0
            assert (guided == (batch["weight"] > 0)).all() and not guided.iloc[-1]
            assert guided.any()
            # measured where the hook runs, empty elsewhere
            assert batch["flip_share"][guided].between(0, 1).all()
            assert batch["flip_share"][~guided].isna().all()
        shares = info["classifier_own_label_share"]
        assert set(shares) == {"0", "1"} and all(0 <= v <= 1 for v in shares.values())
    if method == "tardiff":
        # capped (the default): every sample's RMS step is at most w, so the batch RMS is too
        assert (diag["shift_rms"] <= 0.2 * (1 + 1e-5)).all() and info["normalize"] == "capped"
        assert info["reference_scale"] > 0
        assert info["guidance_source"] == "all" and info["jacobian"] == "finite_difference"
        assert info["preserve"] == "project"


def test_guidance_changes_samples_and_is_seeded(stages, tmp_path):
    _run(stages, "conditional", tmp_path / "a")
    _run(stages, "conditional", tmp_path / "b")
    _run(stages, "tardiff", tmp_path / "c", scale=0.0)
    _run(stages, "tardiff", tmp_path / "d", scale=1.0)
    runs = zip("abcd", ["conditional"] * 2 + ["tardiff"] * 2, [0, 0, 0, 1.0], strict=True)
    a, b, c, d = (
        read_parquet(Layout(str(tmp_path / k)).synthetic("d", TASK, m, w, 3).samples)[FEATURES]
        for k, m, w in runs
    )
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert not np.allclose(a.to_numpy(), d.to_numpy())


def test_transform_mismatch_is_an_error(stages, tmp_path):
    layout, _, _ = stages
    ckpt = load_checkpoint(layout.classifier("d", TASK).model)
    ckpt["transform"]["mean"][0] += 1.0
    save_checkpoint(ckpt, tmp_path / "clf.pt")
    with pytest.raises(ValueError, match="transform differs"):
        _run(stages, "tardiff", tmp_path / "out", classifier=tmp_path / "clf.pt", seed=0)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------- cfg, influence_filter, bounds, errors (issue 8)


def _samples(tmp_path, method, scale, seed=3):
    return read_parquet(Layout(str(tmp_path)).synthetic("d", TASK, method, scale, seed).samples)


def test_cfg_at_scale_0_is_conditional_sampling(stages, tmp_path):
    _run(stages, "conditional", tmp_path / "a")
    info = _run(stages, "cfg", tmp_path / "b", scale=0.0)
    _run(stages, "cfg", tmp_path / "c", scale=1.0)
    a = _samples(tmp_path / "a", "conditional", 0)
    pd.testing.assert_frame_equal(a, _samples(tmp_path / "b", "cfg", 0))
    assert not np.array_equal(a[FEATURES], _samples(tmp_path / "c", "cfg", 1.0)[FEATURES])
    assert info["method"] == "cfg" and info["normalize"] is None and info["jacobian"] is None


def test_top_influence_keeps_the_top_per_class():
    drawn = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    scores = np.array([0.5, 2.0, 0.9, -1.0, 0.9, 3.0, -2.0, 2.0])
    labels = np.array([1, 0, 0, 1])
    # class 0: 0.9 (row 2) and 0.9 (row 4, tie -> earlier row first); class 1: 3.0, 2.0 (row 1)
    assert top_influence(scores, drawn, labels).tolist() == [1, 2, 4, 5]
    with pytest.raises(ValueError, match="class 1: 5 samples needed"):
        top_influence(scores, drawn, np.ones(5, np.int64))


def test_influence_filter_keeps_the_top_samples_per_class(stages, tmp_path, monkeypatch):
    """Stub sampler (sample i is the constant i/100) and stub influence with known scores."""
    _, cohort, _ = stages
    drawn = []

    def fake_generate(model, schedule, labels, seq_len, n_features, **kw):
        drawn.append(labels.copy())
        x = np.arange(len(labels), dtype=np.float32)[:, None, None] / 100
        row = {"step": 0, "t": 0, "sigma": 1.0, "shift_rms": 0.0, "x0_rms": 0.0,
               "mean_move": 0.0, "mean_move_ratio": 0.0}  # fmt: skip
        return np.broadcast_to(x, (len(labels), seq_len, n_features)).copy(), [row]

    def score(i):
        return (i * 7) % 5  # many ties

    def fake_influence(model, G, x, y, batch_size=512, loss=None):
        return torch.as_tensor(score(torch.round(x[:, 0, 0] * 100).long()), dtype=torch.float32)

    def fake_logits(model, x, device):  # every drawn sample looks like its own label
        return 2.0 * drawn[0][np.round(x[:, 0, 0] * 100).astype(int)] - 1.0

    monkeypatch.setattr(gen_mod, "generate", fake_generate)
    monkeypatch.setattr(gen_mod, "sample_influence", fake_influence)
    monkeypatch.setattr(gen_mod, "predict_logits", fake_logits)
    info = _run(stages, "influence_filter", tmp_path, scale=0.0, filter_factor=3)
    prep = prepare(cohort.stays, cohort.timeseries, TASK)
    labels = sample_labels(prep.y["train"], None, 3)
    assert len(drawn) == 1 and np.array_equal(drawn[0], np.tile(labels, 3))
    path = Layout(str(tmp_path)).synthetic("d", TASK, "influence_filter", 0, 3).samples
    assert path.endswith("/synthetic/influence_filter/w0/seed3.parquet")
    draw = load_draw(path, ("influence_filter", 0.0, 3), prep.transform, TASK, 8)
    kept = np.round(draw.x[:, 0, 0] * 100).astype(int)
    assert np.array_equal(draw.y, labels) and np.array_equal(drawn[0][kept], labels)
    for c in (0, 1):  # exactly the top-s rows of the class, by score then row, in drawn order
        pool = sorted(np.flatnonzero(drawn[0] == c), key=lambda i: (-score(i), i))
        assert kept[labels == c].tolist() == sorted(pool[: int((labels == c).sum())])
    assert info["filter_factor"] == 3 and info["n_drawn"] == 3 * len(labels)
    for c in ("0", "1"):
        assert info["mean_sample_influence"][c] >= info["drawn_mean_sample_influence"][c]


def test_influence_filter_with_the_real_models(stages, tmp_path):
    info = _run(stages, "influence_filter", tmp_path, scale=0.0)
    base = _run(stages, "conditional", tmp_path)
    assert info["n_per_class"] == base["n_per_class"] and info["n_drawn"] == 4 * info["n_samples"]
    for c in ("0", "1"):
        assert info["mean_sample_influence"][c] > info["drawn_mean_sample_influence"][c]
    with pytest.raises(ValueError, match="influence_filter is unguided"):
        _run(stages, "influence_filter", tmp_path, scale=0.1)


@pytest.mark.parametrize("normalize", ["reference", "capped"])
def test_reference_scaling_and_clip_in_the_stage(stages, tmp_path, normalize):
    _, cohort, _ = stages
    info = _run(stages, "tardiff", tmp_path, normalize=normalize, clip_x0=0.5, scale=2.0)
    assert info["reference_scale"] > 0 and info["clip_x0"] == 0.5 and info["fd_eps"] == 3e-4
    prep = prepare(cohort.stays, cohort.timeseries, TASK)
    path = Layout(str(tmp_path)).synthetic("d", TASK, "tardiff", 2.0, 3).samples
    draw = load_draw(path, ("tardiff", 2.0, 3), prep.transform, TASK, 8)
    assert float(np.abs(draw.x).max()) <= 0.5 + 1e-4
    diag = pd.read_csv(Layout(str(tmp_path)).synthetic("d", TASK, "tardiff", 2.0, 3).diagnostics)
    assert {"mean_move", "mean_move_ratio"} <= set(diag.columns)


def test_reference_batch_follows_the_label_ratio():
    y = np.array([0] * 900 + [1] * 100)
    x = np.arange(1000, dtype=np.float32)[:, None, None]
    xr, yr = reference_batch(x, y, labels=np.array([0, 0, 0, 1]))  # 25 % positives wanted
    # 512 at 25 %: 384 negatives, and all 100 real positives (short of the 128 wanted)
    assert len(yr) == 484 and int(yr.sum()) == 100
    assert np.array_equal(y[xr[:, 0, 0].astype(int)], yr) and np.all(np.diff(xr[:, 0, 0]) > 0)
    xs, ys = reference_batch(x[880:920], y[880:920], labels=np.array([0, 1]))
    assert np.array_equal(xs, x[880:920])  # fewer than 512 real samples: all of them
    assert np.array_equal(reference_batch(x, y, y)[1], reference_batch(x, y, y)[1])


def test_non_finite_samples_stop_the_stage(stages, tmp_path, monkeypatch):
    load = gen_mod.load_diffusion

    def nan_model(path, device):
        model, schedule, ckpt = load(path, device)
        return NaNAfter(model, k=4 + 2), schedule, ckpt  # batch 1, step 2 (4 steps a batch)

    monkeypatch.setattr(gen_mod, "load_diffusion", nan_model)
    pattern = r"method tardiff \(scale 0.2\), seed 3: batch 1, step 2 \(t=\d+\): non-finite"
    with pytest.raises(FloatingPointError, match=pattern):
        _run(stages, "tardiff", tmp_path)
    assert not Path(Layout(str(tmp_path)).synthetic("d", TASK, "tardiff", 0.2, 3).samples).exists()


def test_a_seed_draws_the_same_samples_whichever_job_draws_it(stages, tmp_path):
    """Seeds after the selection seeds are drawn by a job of their own (generate_final): a
    seed's samples must not depend on the other seeds of its job (the reference batch included)."""
    layout, cohort, config = stages
    settings = replace(GenerationSettings.from_config(config["generation"]), normalize="reference")
    written = {}
    for name, seeds in (("together", [0, 1]), ("alone", [1])):
        out = Layout(str(tmp_path / name))
        run_generation_stage(
            stays=cohort.stays, timeseries=cohort.timeseries,
            diffusion=layout.diffusion("d", TASK).model,
            classifier=layout.classifier("d", TASK).model, influence=layout.influence("d", TASK).G,
            task=TASK, method="tardiff", scale=0.2, seeds=seeds,
            outs=[out.synthetic("d", TASK, "tardiff", 0.2, k) for k in seeds], settings=settings,
            device=config["device"],
        )  # fmt: skip
        written[name] = read_parquet(out.synthetic("d", TASK, "tardiff", 0.2, 1).samples)
    pd.testing.assert_frame_equal(written["together"], written["alone"])
