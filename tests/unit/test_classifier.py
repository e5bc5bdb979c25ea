import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from tiny_cohort import write_cohort

from tardiff.data import prepare
from tardiff.io import read_json, read_parquet, write_parquet
from tardiff.layout import Layout
from tardiff.models.classifier import build_classifier, rnn_path, unrolled_rnn
from tardiff.models.train_classifier import (
    load_classifier,
    predict_logits,
    run_classifier_stage,
    train_classifier,
)
from tardiff.settings import ClassifierSettings

SMALL = {"hidden": 8, "max_epochs": 6, "patience": 2, "batch_size": 16, "dropout": 0.0}


@pytest.fixture(scope="module")
def settings(tiny_config):
    """Classifier settings of the tiny config with ``SMALL`` and the given keys changed."""

    def make(**classifier):
        config = tiny_config(classifier={**SMALL, **classifier})
        return ClassifierSettings.from_config(config["classifier"])

    return make


@pytest.mark.parametrize("arch", ["gru", "tcn"])
def test_shapes(arch):
    torch.manual_seed(0)
    model = build_classifier(arch, 3, 8, 2, 0.0).eval()
    assert model(torch.randn(5, 7, 3)).shape == (5,)


def _out_and_input_grad(model, x):
    x = x.clone().requires_grad_(True)
    out = model(x)
    return out.detach(), torch.autograd.grad(out.square().sum(), x)[0]


@pytest.mark.parametrize("layers", [1, 2])
def test_gru_fused_and_unrolled_paths_agree(layers):
    torch.manual_seed(0)
    model = build_classifier("gru", 3, 8, layers, 0.3).eval()
    # one parameter set, in nn.GRU layout
    names = [
        f"{w}_l{k}" for k in range(layers) for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    ]
    assert [n for n in model.state_dict() if n.startswith("rnn.")] == [f"rnn.{n}" for n in names]
    x = torch.randn(6, 9, 3)
    assert rnn_path() == "fused"
    fused = _out_and_input_grad(model, x)
    with unrolled_rnn():
        assert rnn_path() == "unrolled"
        unrolled = _out_and_input_grad(model, x)
        with unrolled_rnn(False):
            assert rnn_path() == "fused"
    assert rnn_path() == "fused"
    for a, b in zip(fused, unrolled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # the recurrences themselves, against a fresh nn.GRU with the same weights
    ref = torch.nn.GRU(3, 8, num_layers=layers, batch_first=True)
    ref.load_state_dict({n: getattr(model.rnn, n) for n in names})
    for path in (False, True):
        with unrolled_rnn(path):
            h = model.recurrence(x).transpose(0, 1)
        torch.testing.assert_close(h, ref(x)[0], rtol=1e-5, atol=1e-6)


def test_gru_paths_agree_in_training_mode_without_dropout():
    torch.manual_seed(0)
    model = build_classifier("gru", 3, 8, 2, 0.0).train()
    x = torch.randn(4, 5, 3)
    fused = _out_and_input_grad(model, x)
    with unrolled_rnn():
        unrolled = _out_and_input_grad(model, x)
    for a, b in zip(fused, unrolled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_tcn_is_causal():
    torch.manual_seed(0)
    model = build_classifier("tcn", 2, 4, 2, 0.0).eval()
    x = torch.randn(1, 10, 2)
    x2 = x.clone()
    x2[:, 6:] += 1.0
    h1 = model.blocks(model.inp(x.transpose(1, 2)))
    h2 = model.blocks(model.inp(x2.transpose(1, 2)))
    torch.testing.assert_close(h1[..., :6], h2[..., :6])
    assert not torch.allclose(h1[..., 6:], h2[..., 6:])


def test_early_stopping_restores_best(tmp_path, settings):
    # no signal: the select AUPRC peaks early, so the restored state is not the last one
    cohort = write_cohort(tmp_path / "c", n=120, effect=0.0)
    prep = prepare(cohort.stays, cohort.timeseries, "mortality")
    cfg = settings(loss="weighted_bce", max_epochs=8, patience=2)
    model, metrics = train_classifier(prep, cfg, torch.device("cpu"), seed=0)
    assert not model.training
    hist = metrics["history"]
    best = int(np.argmax([h["auprc"] for h in hist])) + 1
    assert metrics["best_epoch"] == best < len(hist) == best + cfg.patience
    auprc = average_precision_score(
        prep.y["select"], predict_logits(model, prep.x["select"], "cpu")
    )
    assert auprc == pytest.approx(metrics["val_auprc"]) == pytest.approx(hist[best - 1]["auprc"])
    assert auprc != pytest.approx(hist[-1]["auprc"])
    n_pos = prep.y["train"].sum()
    assert metrics["pos_weight"] == (len(prep.y["train"]) - n_pos) / n_pos


def test_one_class_error(cohort, settings):
    stays = read_parquet(cohort.stays)
    stays.loc[stays["split"] == "train", "mortality"] = 0
    write_parquet(stays, cohort.stays)
    prep = prepare(cohort.stays, cohort.timeseries, "mortality")
    with pytest.raises(ValueError, match="task mortality has only one class in split train"):
        train_classifier(prep, settings(), "cpu", seed=0)


def test_stage_writes_and_reloads(cohort, tmp_path, settings):
    out = Layout(str(tmp_path / "results")).classifier("d", "mortality")
    config = settings(arch="tcn", max_epochs=2, loss="bce")
    metrics = run_classifier_stage(
        stays=cohort.stays, timeseries=cohort.timeseries, task="mortality", out=out,
        settings=config, seed=0, device="cpu",
    )  # fmt: skip
    assert metrics["pos_weight"] is None and metrics["task"] == "mortality"
    assert metrics["wall_s"] > 0 and metrics["peak_rss_mb"] > 0
    assert read_json(out.metrics)["val_auprc"] == metrics["val_auprc"]
    model, ckpt = load_classifier(out.model)
    assert not model.training and ckpt["features"] == ["hr", "sbp", "spo2"]
    assert ckpt["config"] == config.to_dict() and ckpt["arch"]["arch"] == "tcn"
    prep = prepare(cohort.stays, cohort.timeseries, "mortality")
    assert ckpt["transform"] == prep.transform.state_dict()
    auprc = average_precision_score(
        prep.y["select"], predict_logits(model, prep.x["select"], "cpu")
    )
    assert auprc == pytest.approx(metrics["val_auprc"])


def test_stage_checks_memory_before_training(cohort, tmp_path, settings):
    out = Layout(str(tmp_path / "results")).classifier("d", "mortality")
    with pytest.raises(MemoryError, match="classifier needs an estimated"):
        run_classifier_stage(
            stays=cohort.stays, timeseries=cohort.timeseries, task="mortality", out=out,
            settings=settings(), seed=0, device="cpu", mem_mb=1,
        )  # fmt: skip
    assert not (tmp_path / "results").exists()
