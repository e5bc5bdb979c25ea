"""Evaluation-model ensembles: batched = one by one, seeds, learning, chunking, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.func import functional_call, grad, stack_module_state, vmap
from torch.nn import functional as F

from tardiff.evaluate.downstream.ensemble import initial_model, train_models, training_memory_mb
from tardiff.evaluate.downstream.stacked_gru import Workspace, stacked_gru
from tardiff.models.classifier import unrolled_rnn
from tardiff.settings import EvaluationModelSettings

CPU = torch.device("cpu")
T, C = 6, 3


def _settings(arch: str = "gru", **changes) -> EvaluationModelSettings:
    recipe = dict(hidden=8, layers=1, lr=0.01, weight_decay=1e-4, batch_size=16, steps=20)
    return EvaluationModelSettings(arch=arch, **{**recipe, **changes})


def _pool(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Series whose label is the sign of channel 0's mean (plus a little label noise)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, T, C)).astype(np.float32)
    y = (x[:, :, 0].mean(1) + 0.1 * rng.standard_normal(n) > 0).astype(np.int64)
    return x, y


def _members(n: int) -> list[np.ndarray]:
    """Sets of different sizes, one smaller than a batch, with repeated rows."""
    rng = np.random.default_rng(1)
    return [rng.integers(0, n, 40), rng.integers(0, n, 10), np.arange(n), np.repeat([1, 2, 3], 5)]


@pytest.mark.parametrize(("arch", "layers"), [("gru", 1), ("gru", 2), ("tcn", 2)])
def test_batched_matches_one_by_one(arch, layers):
    x, y = _pool(60)
    held_out = _pool(30, seed=5)[0]
    settings = _settings(arch, layers=layers)
    args = (x, y, _members(60), [0, 1, 2, 0], settings)
    batched = train_models(*args, device=CPU).predict(held_out)
    single = train_models(*args, device=CPU, batched=False).predict(held_out)
    assert batched.shape == (4, 30) and batched.dtype == np.float64
    np.testing.assert_allclose(batched, single, rtol=0, atol=1e-4)
    assert np.abs(batched[0] - batched[3]).max() > 1e-3  # same seed, other data: other model


def test_class_weights_scale_each_rows_loss_on_both_paths():
    x, y = _pool(60)
    held_out = _pool(30, seed=5)[0]
    args = (x, y, _members(60), [0, 1, 2, 0], _settings())
    plain = train_models(*args, device=CPU).predict(held_out)
    ones = train_models(*args, device=CPU, class_weights=[(1.0, 1.0)] * 4).predict(held_out)
    np.testing.assert_array_equal(plain, ones)  # weights of 1 change nothing, bit for bit
    weights = [(1.0, 1.0), (0.5, 3.0), (1.0, 1.0), (2.0, 0.25)]
    batched = train_models(*args, device=CPU, class_weights=weights).predict(held_out)
    single = train_models(*args, device=CPU, batched=False, class_weights=weights)
    np.testing.assert_allclose(batched, single.predict(held_out), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(batched[[0, 2]], plain[[0, 2]])  # the others are untouched
    assert batched[1].mean() > plain[1].mean() + 0.1  # positives weighted up: higher scores
    with pytest.raises(ValueError, match="4 positive"):
        train_models(*args, device=CPU, class_weights=[(1.0, 0.0)] * 4)


@pytest.mark.parametrize("layers", [1, 2])
def test_stacked_gru_gradients_match_autograd(layers):
    settings = _settings(layers=layers)
    models = [initial_model(C, settings, seed) for seed in range(3)]
    params, buffers = stack_module_state(models)
    x, y = torch.randn(3, 5, T, C), torch.rand(3, 5).round()

    def loss(p, b, xk, yk):
        return F.binary_cross_entropy_with_logits(functional_call(models[0], (p, b), (xk,)), yk)

    with unrolled_rnn():
        expected = vmap(grad(loss))(params, buffers, x, y)
    logits = stacked_gru(params, x, [Workspace() for _ in range(layers)])
    got = torch.autograd.grad(
        F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(1).sum(),
        list(params.values()),
    )
    for name, g in zip(params, got, strict=True):
        torch.testing.assert_close(g, expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_same_seed_and_data_give_the_same_model_whatever_the_rest():
    x, y = _pool(60)
    settings = _settings()
    members = _members(60)
    held_out = _pool(20, seed=5)[0]
    first = train_models(x, y, members, [3, 4, 5, 6], settings, device=CPU).predict(held_out)
    again = train_models(x, y, members, [3, 4, 5, 6], settings, device=CPU).predict(held_out)
    np.testing.assert_array_equal(first, again)
    # model 0 again, among other models and with more rows in the pool
    x2, y2 = np.concatenate([x, _pool(20, seed=9)[0]]), np.concatenate([y, np.ones(20, int)])
    others = [members[0], np.arange(60, 80), members[1]]
    for batched in (True, False):
        ens = train_models(x2, y2, others, [3, 7, 8], settings, device=CPU, batched=batched)
        np.testing.assert_allclose(ens.predict(held_out)[0], first[0], rtol=0, atol=1e-6)


def test_initial_weights_depend_on_the_seed_only():
    settings = _settings()
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a = initial_model(C, settings, 7).state_dict()
    torch.rand(5)  # other global RNG state
    b = initial_model(C, settings, 7).state_dict()
    c = initial_model(C, settings, 8).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    assert any(not torch.equal(a[name], c[name]) for name in a)
    torch.manual_seed(123)
    initial_model(C, settings, 7)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched


@pytest.mark.parametrize("arch", ["gru", "tcn"])
def test_models_learn_a_separable_problem(arch):
    x, y = _pool(400)
    held_x, held_y = _pool(200, seed=3)
    members = [np.arange(0, 200), np.arange(200, 400), np.arange(400)]
    settings = _settings(arch, steps=60, batch_size=32)
    logits = train_models(x, y, members, [0, 1, 2], settings, device=CPU).predict(held_x)
    for k, row in enumerate(logits):
        assert roc_auc_score(held_y, row) > 0.9, k


def test_chunks_give_the_same_models_as_one_chunk(caplog):
    x, y = _pool(60)
    held_out = _pool(20, seed=5)[0]
    settings = _settings()
    members = [*_members(60), np.arange(30)]
    seeds = [0, 1, 2, 3, 4]
    whole = train_models(x, y, members, seeds, settings, device=CPU)
    mem_mb = 2.5 * training_memory_mb(settings, T, C, 1)
    with caplog.at_level(logging.INFO, logger="tardiff.evaluate.downstream.ensemble"):
        chunked = train_models(x, y, members, seeds, settings, device=CPU, mem_mb=mem_mb)
    assert "3 chunk(s) of <= 2" in caplog.text
    assert [len(p["head.0.bias"]) for p, _ in chunked.chunks] == [2, 2, 1]
    assert len(chunked) == 5
    logits = chunked.predict(held_out)
    np.testing.assert_allclose(logits, whole.predict(held_out), rtol=0, atol=1e-6)
    # prediction in batches of a few rows gives the same logits
    few_rows = chunked.predict(held_out, batch_size=3)
    np.testing.assert_allclose(few_rows, logits, rtol=0, atol=1e-6)
    assert chunked.predict(held_out[:0]).shape == (5, 0)


def test_memory_bound_below_one_model_fails():
    x, y = _pool(20)
    with pytest.raises(MemoryError, match="evaluation models"):
        train_models(x, y, [np.arange(20)], [0], _settings(), device=CPU, mem_mb=1e-3)


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([np.arange(5), np.array([0, 20])], "model 1: member index out of range"),
        ([np.arange(5), np.array([-1, 2])], "model 1: member index out of range"),
        ([np.arange(5), np.arange(3), np.array([], int)], "model 2: members must be non-empty"),
        ([np.arange(5), np.array([0.0, 1.0])], "model 1: .*integer"),
    ],
)
def test_bad_members_name_the_model(members, message):
    x, y = _pool(20)
    seeds = list(range(len(members)))
    with pytest.raises(ValueError, match=message):
        train_models(x, y, members, seeds, _settings(), device=CPU)


def test_one_seed_per_model():
    x, y = _pool(20)
    with pytest.raises(ValueError, match="one seed per model"):
        train_models(x, y, [np.arange(5)], [0, 1], _settings(), device=CPU)


@pytest.mark.parametrize("layers", [1, 2])
def test_stacked_gru_prediction_matches_the_classifier(layers):
    """The stacked no-grad recurrence of ``predict`` against each trained model as a module."""
    x, y = _pool(60)
    held_out = _pool(300, seed=5)[0]
    models = train_models(x, y, _members(60), [0, 1, 2, 0], _settings(layers=layers), device=CPU)
    scores = models.predict(held_out, batch_size=64)  # several row batches
    params, buffers = models.chunks[0]
    for k in range(4):
        one = initial_model(C, _settings(layers=layers), 0).eval()
        one.load_state_dict({**{n: p[k] for n, p in params.items()},
                             **{n: b[k] for n, b in buffers.items()}})  # fmt: skip
        with torch.no_grad():
            expected = one(torch.as_tensor(held_out)).double().numpy()
        np.testing.assert_allclose(scores[k], expected, rtol=0, atol=1e-5)
