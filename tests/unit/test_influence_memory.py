"""Memory-bounded per-sample gradients: equal to the vmap reference, chunked by a budget."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from tardiff.guidance.influence import influence_vector
from tardiff.guidance.per_sample import (
    MAX_CHUNK,
    detached_params,
    influence_chunk,
    influence_memory_mb,
    per_sample_grads,
    per_sample_loss,
)
from tardiff.models.classifier import build_classifier, unrolled_rnn

TOL = {"rtol": 1e-4, "atol": 1e-6}


def _vmap_reference(model, x, y):
    """The former implementation: vmap(grad) over single samples, all at once."""
    params = detached_params(model)

    def one(p, xi, yi):
        return per_sample_loss(functional_call(model, p, (xi[None],)), yi[None]).sum()

    with unrolled_rnn():
        grads = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g.reshape(len(x), -1) for g in grads.values()], dim=1)


def _data(n=11, t=7, c=3):
    torch.manual_seed(1)
    return torch.randn(n, t, c), torch.randint(0, 2, (n,))


def _model(arch):
    torch.manual_seed(0)
    return build_classifier(arch, 3, 6, 2, 0.5).eval()


class _Convs(nn.Module):
    """Conv1d with stride, padding, dilation and 'same' padding (what the TCN does not use)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv1d(3, 4, 3, stride=2, padding=2, dilation=2)
        self.b = nn.Conv1d(4, 5, 4, padding="same", dilation=2, bias=False)
        self.out = nn.Linear(5, 1)

    def forward(self, x):
        h = self.b(torch.tanh(self.a(x.transpose(1, 2))))
        return self.out(torch.tanh(h).mean(2)).squeeze(-1)


@pytest.mark.parametrize("arch", ["gru", "tcn", "convs"])
def test_per_sample_grads_equal_vmap_reference(arch):
    model = _Convs().eval() if arch == "convs" else _model(arch)
    x, y = _data()
    torch.testing.assert_close(per_sample_grads(model, x, y), _vmap_reference(model, x, y), **TOL)


@pytest.mark.parametrize("arch", ["gru", "tcn"])
def test_chunked_influence_equals_unchunked(arch):
    model, (x, y) = _model(arch), _data()
    include = torch.tensor([True, False, True] * 3 + [False, True])
    budget = influence_memory_mb(model, (7, 3), 3)
    assert influence_chunk(model, (7, 3), budget) == 3  # 11 samples in 4 chunks
    G, norms = influence_vector(model, x, y, normalize="none", include=include, memory_mb=budget)
    G_all, norms_all = influence_vector(model, x, y, normalize="none", include=include)
    ref = _vmap_reference(model, x, y)
    torch.testing.assert_close(G, G_all, **TOL)
    torch.testing.assert_close(norms, norms_all, **TOL)
    torch.testing.assert_close(G, ref[include].sum(0), **TOL)
    torch.testing.assert_close(norms, ref.norm(dim=1), **TOL)


def test_chunk_respects_the_budget():
    model = _model("gru")
    for t in (7, 50):
        for budget in (18.0, 25.0, 60.0):
            chunk = influence_chunk(model, (t, 3), budget)
            assert 1 <= chunk <= MAX_CHUNK
            assert influence_memory_mb(model, (t, 3), chunk) <= budget
            assert chunk == MAX_CHUNK or influence_memory_mb(model, (t, 3), chunk + 1) > budget
    assert influence_chunk(model, (7, 3), 1e6) == MAX_CHUNK
    # the estimate grows with the chunk and the sequence length
    assert influence_memory_mb(model, (7, 3), 20) < influence_memory_mb(model, (14, 3), 20)
    assert influence_memory_mb(model, (7, 3), 10) < influence_memory_mb(model, (7, 3), 20)


def test_too_small_budget_raises():
    model, (x, y) = _model("gru"), _data()
    with pytest.raises(ValueError, match=r"one sample of shape \(7, 3\) needs about .* MiB"):
        influence_chunk(model, (7, 3), 1.0)
    with pytest.raises(ValueError, match="more than the budget of 1.0 MiB"):
        influence_vector(model, x, y, memory_mb=1.0)


class _Scaled(nn.Module):
    def __init__(self, time_major=False):
        super().__init__()
        self.lin, self.scale = nn.Linear(3, 1), nn.Parameter(torch.ones(1))
        self.time_major = time_major

    def forward(self, x):
        if self.time_major:  # a linear on (T, N, C): its batch is not the first dimension
            return self.lin(x.transpose(0, 1)).mean(0).squeeze(-1)
        return self.lin(x * self.scale).mean(1).squeeze(-1)


def test_unsupported_models_and_losses_raise():
    x, y = _data()
    with pytest.raises(ValueError, match="reads parameter 'scale'"):
        per_sample_grads(_Scaled(), x, y)
    with pytest.raises(ValueError, match="is no batch"):
        per_sample_grads(_Scaled(time_major=True), x, y)
    with pytest.raises(ValueError, match="one value per sample"):
        per_sample_grads(_model("tcn"), x, y, loss=lambda out, t: per_sample_loss(out, t).mean())
