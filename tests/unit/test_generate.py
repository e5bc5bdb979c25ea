import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_cohort import FEATURES, write_cohort

from tardiff.data import prepare, sample_labels
from tardiff.diffusion.train import run_diffusion_stage
from tardiff.generate import run_generation_stage
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
    else:
        assert (diag["shift_rms"] > 0).all()
    if method == "tardiff":
        # rms-normalised shift: w per element for each class, so the batch RMS is w
        np.testing.assert_allclose(diag["shift_rms"], 0.2, rtol=1e-4)
        assert info["guidance_source"] == "all" and info["jacobian"] == "finite_difference"


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
