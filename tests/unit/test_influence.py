import numpy as np
import pandas as pd
import pytest
import torch

from tardiff.guidance.influence import (
    influence_vector,
    load_influence,
    minority_label,
    run_influence_stage,
    save_influence,
    select_source,
)
from tardiff.guidance.per_sample import influence_memory_mb, per_sample_grads
from tardiff.io import read_json
from tardiff.layout import Layout
from tardiff.models.classifier import build_classifier
from tardiff.models.train_classifier import load_classifier, run_classifier_stage
from tardiff.settings import ClassifierSettings, InfluenceSettings


def _one_by_one(model, x, y):
    rows = []
    for xi, yi in zip(x, y, strict=True):
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(xi[None]), yi[None].float()
        )
        loss.backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    return torch.stack(rows)


@pytest.mark.parametrize("arch", ["gru", "tcn"])
def test_G_is_sum_of_per_sample_gradients(arch):
    torch.manual_seed(0)
    model = build_classifier(arch, 3, 6, 2, 0.5).eval()
    x, y = torch.randn(11, 5, 3), torch.randint(0, 2, (11,))
    ref = _one_by_one(model, x, y)
    torch.testing.assert_close(per_sample_grads(model, x, y), ref, rtol=1e-5, atol=1e-6)
    include = torch.tensor([True, False] * 5 + [True])
    budget = influence_memory_mb(model, (5, 3), 4)  # chunks of 4: three chunks for 11 samples
    G, norms = influence_vector(model, x, y, memory_mb=budget, normalize="none", include=include)
    torch.testing.assert_close(G, ref[include].sum(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norms, ref.norm(dim=1), rtol=1e-5, atol=1e-6)
    G_l2, _ = influence_vector(model, x, y, memory_mb=budget, normalize="l2", include=include)
    torch.testing.assert_close(G_l2, G / G.norm())
    G_mean, _ = influence_vector(model, x, y, memory_mb=budget, normalize="mean", include=include)
    torch.testing.assert_close(G_mean, G / 6)


def test_influence_needs_eval_mode():
    model = build_classifier("gru", 3, 4, 1, 0.1)
    with pytest.raises(ValueError, match="eval mode"):
        influence_vector(model, torch.randn(2, 4, 3), torch.tensor([0, 1]))


def test_source_selection():
    y_train = np.array([0, 0, 0, 1])
    assert minority_label(y_train) == 1 and minority_label(1 - y_train) == 0
    y = np.array([0, 1, 1, 0, 0])
    np.testing.assert_array_equal(select_source(y, "all", 1), [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(select_source(y, "minority", 1), [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(select_source(y, "majority", 1), [1, 0, 0, 1, 1])
    np.testing.assert_array_equal(select_source(y, "minority", 0), [1, 0, 0, 1, 1])


def test_stage_outputs(cohort, tmp_path, tiny_config):
    config = tiny_config(
        classifier={"hidden": 6, "max_epochs": 1},
        influence={"source": "minority", "normalize": "none"},
    )
    layout = Layout(str(tmp_path / "results"))
    clf, out = layout.classifier("d", "mortality"), layout.influence("d", "mortality")
    paths = {"stays": cohort.stays, "timeseries": cohort.timeseries, "task": "mortality"}
    run_classifier_stage(
        **paths, out=clf, settings=ClassifierSettings.from_config(config["classifier"]),
        seed=config["seed"], device=config["device"],
    )  # fmt: skip
    summary = run_influence_stage(
        **paths, classifier=clf.model, out=out,
        settings=InfluenceSettings.from_config(config["influence"]), device=config["device"],
    )  # fmt: skip
    model, _ = load_classifier(clf.model)
    ckpt = load_influence(out.G, model)
    norms = pd.read_csv(out.norms)
    n_pos = int((norms["label"] == 1).sum())
    assert ckpt["source"] == "minority" and ckpt["minority_label"] == 1
    assert ckpt["normalize"] == "none" and ckpt["task"] == "mortality"
    assert ckpt["n_guide"] == n_pos and ckpt["n_guide_total"] == len(norms)
    assert ckpt["G"].numel() == sum(int(np.prod(s)) for s in ckpt["shapes"])
    assert read_json(out.summary) == summary
    by_class = summary["grad_norm_by_class"]
    assert by_class["1"]["n"] == n_pos
    assert by_class["0"]["mean_grad_norm"] == pytest.approx(
        norms.grad_norm[norms.label == 0].mean()
    )


def test_load_influence_checks_the_classifier(tmp_path):
    torch.manual_seed(0)
    model = build_classifier("gru", 3, 4, 1, 0.0).eval()
    G = torch.randn(sum(p.numel() for p in model.parameters()))
    save_influence(tmp_path / "G.pt", G, model, {"source": "all"})
    ckpt = load_influence(tmp_path / "G.pt", model)
    assert torch.equal(ckpt["G"], G) and ckpt["source"] == "all"
    assert ckpt["names"] == [n for n, _ in model.named_parameters()]
    with pytest.raises(ValueError, match="G.pt: G does not match"):
        load_influence(tmp_path / "G.pt", build_classifier("gru", 3, 5, 1, 0.0).eval())


@pytest.mark.parametrize("loss", ["training", "bce"])
def test_G_is_the_gradient_of_the_training_objective(cohort, tmp_path, tiny_config, loss):
    """G (normalize none, all guide samples) equals the autograd gradient of the classifier's
    training objective summed over the guide part: BCE with the train split's pos_weight
    (``weighted_bce``, the default); ``influence.loss: bce`` gives the plain-BCE gradient."""
    from tardiff.data import prepare

    config = tiny_config(classifier={"hidden": 6, "max_epochs": 1},
                         influence={"normalize": "none", "loss": loss})  # fmt: skip
    layout = Layout(str(tmp_path / "results"))
    clf, out = layout.classifier("d", "mortality"), layout.influence("d", "mortality")
    paths = {"stays": cohort.stays, "timeseries": cohort.timeseries, "task": "mortality"}
    run_classifier_stage(**paths, out=clf, seed=0, device="cpu",
                         settings=ClassifierSettings.from_config(config["classifier"]))  # fmt: skip
    run_influence_stage(**paths, classifier=clf.model, out=out, device="cpu",
                        settings=InfluenceSettings.from_config(config["influence"]))  # fmt: skip
    model, ckpt = load_classifier(clf.model)
    prepared = prepare(cohort.stays, cohort.timeseries, "mortality")
    y_train = prepared.y["train"]
    pos_weight = float((y_train == 0).sum() / (y_train == 1).sum())
    assert ckpt["pos_weight"] == pytest.approx(pos_weight)
    x, y = torch.as_tensor(prepared.x["guide"]), torch.as_tensor(prepared.y["guide"]).float()
    weight = torch.tensor(pos_weight) if loss == "training" else None
    objective = torch.nn.BCEWithLogitsLoss(pos_weight=weight, reduction="sum")(model(x), y)
    expected = torch.cat(
        [g.reshape(-1) for g in torch.autograd.grad(objective, list(model.parameters()))]
    )
    saved = load_influence(out.G, model)
    assert saved["pos_weight"] == (pytest.approx(pos_weight) if loss == "training" else None)
    torch.testing.assert_close(saved["G"], expected, rtol=1e-4, atol=1e-5)
