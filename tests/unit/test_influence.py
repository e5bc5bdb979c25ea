import numpy as np
import pandas as pd
import pytest
import torch
from tiny_cohort import write_cohort

from tardiff.config import validate_config
from tardiff.guidance.influence import (
    influence_vector,
    minority_label,
    per_sample_grads,
    run_influence_stage,
    select_source,
)
from tardiff.io import load_checkpoint, read_json
from tardiff.models.classifier import build_classifier
from tardiff.models.train_classifier import run_classifier_stage


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
    G, norms = influence_vector(model, x, y, batch_size=4, normalize="none", include=include)
    torch.testing.assert_close(G, ref[include].sum(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(norms, ref.norm(dim=1), rtol=1e-5, atol=1e-6)
    G_l2, _ = influence_vector(model, x, y, batch_size=4, normalize="l2", include=include)
    torch.testing.assert_close(G_l2, G / G.norm())
    G_mean, _ = influence_vector(model, x, y, batch_size=4, normalize="mean", include=include)
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
    with pytest.raises(ValueError, match="influence.source"):
        select_source(y, "both", 1)


def test_stage_outputs(tmp_path):
    cohort = write_cohort(tmp_path / "c")
    config = validate_config(
        {
            "datasets": {"d": {"source": "mimic3"}},
            "device": "cpu",
            "classifier": {"hidden": 6, "max_epochs": 1},
            "influence": {"source": "minority", "normalize": "none", "batch_size": 3},
        }
    )
    run_classifier_stage(cohort, "mortality", tmp_path / "clf", config)
    summary = run_influence_stage(
        cohort, "mortality", tmp_path / "clf" / "model.pt", tmp_path / "inf", config
    )
    ckpt = load_checkpoint(tmp_path / "inf" / "G.pt")
    norms = pd.read_csv(tmp_path / "inf" / "grad_norms.csv")
    n_pos = int((norms["label"] == 1).sum())
    assert ckpt["source"] == "minority" and ckpt["minority_label"] == 1
    assert ckpt["n_guide"] == n_pos and ckpt["n_guide_total"] == len(norms)
    assert ckpt["G"].numel() == sum(int(np.prod(s)) for s in ckpt["shapes"])
    assert read_json(tmp_path / "inf" / "summary.json") == summary
    by_class = summary["grad_norm_by_class"]
    assert by_class["1"]["n"] == n_pos
    assert by_class["0"]["mean_grad_norm"] == pytest.approx(
        norms.grad_norm[norms.label == 0].mean()
    )
