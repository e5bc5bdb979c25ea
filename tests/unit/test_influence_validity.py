"""Core functions of ``benchmarks/influence_validity.py`` on tiny seeded models and matrices."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from tardiff.guidance.per_sample import loss_for
from tardiff.models.classifier import build_classifier

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "influence_validity.py"
_SPEC = importlib.util.spec_from_file_location("influence_validity", _PATH)
iv = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(iv)


def test_predicted_influence_tracks_one_sgd_step():
    torch.manual_seed(0)
    model = build_classifier("gru", 3, 8, 1, dropout=0.1).eval()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 6, 3)).astype(np.float32)
    y = (rng.random(90) < 0.4).astype(np.int64)
    samples = (x[30:60], y[30:60], x[60:], y[60:])
    frame = iv.sanity_check(model, loss_for(2.5), (x[:30], y[:30]), samples, [1e-4], 40, 0)
    table = iv.sanity_table(frame)
    assert len(frame) == 40
    assert (table.spearman > 0.9).all(), table
    assert (table.median_rel_err < 0.05).all(), table


def test_lanczos_and_conjugate_gradient():
    eig = torch.linspace(-1.0, 5.0, 12)
    basis = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(1)))[0]
    A = basis @ torch.diag(eig) @ basis.T
    top, low = iv.lanczos_extremes(lambda v: A @ v, 12, 12, 0)
    assert abs(top - 5.0) < 1e-4 and abs(low + 1.0) < 1e-4
    b = torch.randn(12, generator=torch.Generator().manual_seed(2))
    v, info = iv.conjugate_gradient(lambda u: A @ u + 2.0 * u, b, 50)
    assert info["cg_stop"] == "converged"
    torch.testing.assert_close(v, torch.linalg.solve(A + 2.0 * torch.eye(12), b), atol=1e-4, rtol=0)
    _, info = iv.conjugate_gradient(lambda u: A @ u, b, 50)  # indefinite
    assert info["cg_stop"] in ("negative curvature", "converged")


def test_quintiles_within_class_and_random_group():
    score = np.arange(20.0)
    y = np.arange(20) % 2
    groups = iv.quintiles(score, y)
    assert sorted(groups["top"]) == [16, 17, 18, 19]
    assert sorted(groups["bottom"]) == [0, 1, 2, 3]
    assert sorted(groups["middle"]) == [8, 9, 10, 11]
    rows = iv.random_group(y, groups["top"], seed=3)
    assert np.bincount(y[rows]).tolist() == [2, 2]
    assert np.array_equal(rows, iv.random_group(y, groups["top"], seed=3))
