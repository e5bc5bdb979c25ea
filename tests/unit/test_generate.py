import json

import numpy as np
import pandas as pd
import pytest
from tiny_cohort import FEATURES, write_cohort

from tardiff.config import validate_config
from tardiff.data import prepare
from tardiff.diffusion.train import run_diffusion_stage
from tardiff.generate import run_generation_stage, sample_labels
from tardiff.guidance.influence import run_influence_stage
from tardiff.io import load_checkpoint, read_parquet, save_checkpoint
from tardiff.models.train_classifier import run_classifier_stage


@pytest.fixture(scope="module")
def stages(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    cohort = write_cohort(root / "cohort", n=48, seq_len=8)
    config = validate_config(
        {
            "datasets": {"d": {"source": "mimic3"}},
            "device": "cpu",
            "classifier": {"hidden": 6, "max_epochs": 1},
            "diffusion": {
                "base_channels": 8, "channel_mults": [1, 2], "num_res_blocks": 1,
                "timesteps": 20, "train_steps": 3, "warmup_steps": 1, "batch_size": 16,
            },
            "generation": {"steps": 4, "batch_size": 16, "scale": 0.2},
        }
    )  # fmt: skip
    run_classifier_stage(cohort, "mortality", root / "clf", config)
    run_influence_stage(cohort, "mortality", root / "clf" / "model.pt", root / "inf", config)
    run_diffusion_stage(str(cohort), "mortality", str(root / "diff"), config)
    return root, cohort, config


def _run(stages, method, out, **gen):
    root, cohort, config = stages
    config = {**config, "generation": {**config["generation"], **gen}}
    return run_generation_stage(
        cohort, "mortality", method, 3, root / "diff" / "model.pt", root / "clf" / "model.pt",
        root / "inf" / "G.pt", out, config,
    )  # fmt: skip


def test_sample_labels_follow_train_counts():
    y = np.array([0] * 7 + [1] * 3)
    labels = sample_labels(y, None, seed=0)
    assert np.bincount(labels).tolist() == [7, 3] and not np.array_equal(labels, np.sort(labels))
    assert np.bincount(sample_labels(y, 20, seed=0)).tolist() == [14, 6]


@pytest.mark.parametrize("method", ["conditional", "tardiff", "classifier_guidance"])
def test_generation_stage_end_to_end(stages, tmp_path, method):
    root, cohort, _ = stages
    info = _run(stages, method, tmp_path)
    prep = prepare(cohort, "mortality")
    n_train = len(prep.y["train"])
    frame = read_parquet(tmp_path / "seed3.parquet")
    assert list(frame.columns) == ["stay_id", "step", *FEATURES, "mortality"]
    assert len(frame) == n_train * 8 and frame[FEATURES].notna().all().all()
    counts = frame.groupby("stay_id")["mortality"].first().value_counts().to_dict()
    assert counts == {0: int((prep.y["train"] == 0).sum()), 1: int(prep.y["train"].sum())}
    assert json.loads((tmp_path / "seed3.json").read_text()) == info
    assert set(info["mean_sample_influence"]) == {"0", "1", "all"}
    diag = pd.read_csv(tmp_path / "seed3_diagnostics.csv")
    assert {"step", "t", "sigma", "shift_rms", "ratio"} <= set(diag.columns)
    np.testing.assert_allclose(diag["ratio"], diag["shift_rms"] / diag["sigma"])
    if method == "conditional":
        assert (diag["shift_rms"] == 0).all() and info["scale"] is None
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
    a, b, c, d = (read_parquet(tmp_path / k / "seed3.parquet")[FEATURES] for k in "abcd")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert not np.allclose(a.to_numpy(), d.to_numpy())


def test_transform_mismatch_is_an_error(stages, tmp_path):
    root, cohort, config = stages
    ckpt = load_checkpoint(root / "clf" / "model.pt")
    ckpt["transform"]["mean"][0] += 1.0
    save_checkpoint(ckpt, tmp_path / "clf.pt")
    with pytest.raises(ValueError, match="transform differs"):
        run_generation_stage(
            cohort, "mortality", "tardiff", 0, root / "diff" / "model.pt", tmp_path / "clf.pt",
            root / "inf" / "G.pt", tmp_path, config,
        )  # fmt: skip
