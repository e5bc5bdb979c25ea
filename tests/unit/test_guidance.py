import pytest
import torch
from torch import nn

from tardiff.guidance.per_sample import per_sample_grads
from tardiff.guidance.terms import (
    RNN_PATHS,
    TERMS,
    Guidance,
    classifier_term,
    double_backprop,
    finite_difference,
    jvp_term,
    rms_normalize,
    sample_influence,
)
from tardiff.models.classifier import build_classifier


class LogReg(nn.Module):
    """f(x) = w · vec(x) + b: J has a closed form."""

    def __init__(self, n_in: int):
        super().__init__()
        self.lin = nn.Linear(n_in, 1)

    def forward(self, x):
        return self.lin(x.flatten(1)).squeeze(-1)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _setup(arch, seed=0, batch=9):
    torch.manual_seed(seed)
    model = build_classifier(arch, 3, 8, 2, 0.3).eval()
    n_params = sum(p.numel() for p in model.parameters())
    return model, torch.randn(n_params), torch.randn(batch, 6, 3), torch.randint(0, 2, (batch,))


@pytest.mark.parametrize("arch", ["gru", "tcn"])
def test_three_jacobians_agree(arch):
    model, G, x, y = _setup(arch)
    ref = double_backprop(model, G, x, y)
    assert _rel(finite_difference(model, G, x, y), ref) <= 1e-3
    assert _rel(jvp_term(model, G, x, y), ref) <= 1e-5
    # per sample: J_i equals the gradient of sample i's own influence (no batch coupling)
    one = double_backprop(model, G, x[2:3], y[2:3])
    torch.testing.assert_close(ref[2:3], one, rtol=1e-5, atol=1e-7)


def test_closed_form_logistic_regression():
    torch.manual_seed(1)
    model = LogReg(12).eval()
    x, y = torch.randn(7, 4, 3, dtype=torch.float32), torch.tensor([0, 1, 1, 0, 1, 0, 0])
    G = torch.randn(13)
    Gw, Gb = G[:12], G[12]
    w = model.lin.weight.detach()[0]
    p = torch.sigmoid(model(x)).detach()
    # s = (p - y)(Gw·x + Gb);  ∇x s = p(1-p) w (Gw·x + Gb) + (p - y) Gw
    inner = x.flatten(1) @ Gw + Gb
    expected = (p * (1 - p) * inner)[:, None] * w + (p - y)[:, None] * Gw
    expected = expected.view_as(x)
    for fn in (double_backprop, finite_difference, jvp_term):
        assert _rel(fn(model, G, x, y), expected) <= 1e-3, fn.__name__
    torch.testing.assert_close(sample_influence(model, G, x, y), (p - y) * inner)
    torch.testing.assert_close(classifier_term(model, x, y), ((y - p)[:, None] * w).view_as(x))


@pytest.mark.parametrize("arch", ["gru", "tcn"])
def test_sample_influence_matches_per_sample_grads(arch):
    model, G, x, y = _setup(arch)
    torch.testing.assert_close(
        sample_influence(model, G, x, y, batch_size=4), per_sample_grads(model, x, y) @ G
    )


def test_rms_normalize_per_class():
    J = torch.randn(6, 4, 3)
    J[:3] *= 100.0
    y = torch.tensor([1, 1, 0, 0, 0, 1])
    out = rms_normalize(J, y)
    for c in (0, 1):
        torch.testing.assert_close(out[y == c].pow(2).mean().sqrt(), torch.tensor(1.0))
        ratio = out[y == c] / J[y == c]
        torch.testing.assert_close(ratio, ratio.flatten()[0].expand_as(ratio))
    assert torch.equal(rms_normalize(torch.zeros(2, 3), torch.tensor([0, 1])), torch.zeros(2, 3))
    # one class only in the batch, and a class whose J is all zero
    out = rms_normalize(J[:2], y[:2])
    torch.testing.assert_close(out.pow(2).mean().sqrt(), torch.tensor(1.0))
    J[y == 0] = 0.0
    out = rms_normalize(J, y)
    assert torch.equal(out[y == 0], torch.zeros_like(out[y == 0]))
    torch.testing.assert_close(out[y == 1].pow(2).mean().sqrt(), torch.tensor(1.0))


def test_finite_difference_probe_is_cached_until_the_parameters_change():
    model, G, x, y = _setup("gru")
    with torch.no_grad():
        logits = model(x)
    hook = Guidance("tardiff", model, G, scale=1.0, normalize="none")
    torch.testing.assert_close(hook(x, x, y, 0, 0.0), finite_difference(model, G, x, y))
    with torch.no_grad():  # the perturbed parameter sets were only swapped in for the calls
        assert torch.equal(model(x), logits)
    probe = hook.probe()
    assert hook.probe() is probe
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(1.5)  # an in-place update invalidates the cached probe
    assert hook.probe() is not probe
    ref = double_backprop(model, G, x, y)
    assert _rel(hook(x, x, y, 0, 0.0), ref) <= 1e-3
    assert torch.equal(finite_difference(model, torch.zeros_like(G), x, y), torch.zeros_like(x))


@pytest.mark.parametrize("kind", ["tardiff", "classifier"])
def test_guidance_hook(kind):
    model, G, x0, y = _setup("gru")
    x_t = torch.randn_like(x0)
    hook = Guidance(kind, model, G, scale=0.3, evaluate_on="x0", normalize="rms")
    with torch.no_grad():  # the sampler calls the hook inside no_grad
        shift = hook(x0, x_t, y, 10, 0.5)
    assert shift.shape == x0.shape and not shift.requires_grad
    for c in (0, 1):
        torch.testing.assert_close(shift[y == c].pow(2).mean().sqrt(), torch.tensor(0.3))
    assert all(p.grad is None for p in model.parameters())
    raw = Guidance(kind, model, G, scale=2.0, evaluate_on="xt", normalize="none")
    expected = (
        double_backprop(model, G, x_t, y) if kind == "tardiff" else classifier_term(model, x_t, y)
    )
    assert _rel(raw(x0, x_t, y, 10, 0.5), 2.0 * expected) <= 1e-3


@pytest.mark.parametrize("jacobian", sorted(TERMS))
def test_guidance_dispatches_each_jacobian(jacobian):
    assert set(RNN_PATHS) == set(TERMS)
    model, G, x, y = _setup("gru")
    hook = Guidance("tardiff", model, G, scale=1.0, jacobian=jacobian, normalize="none")
    assert _rel(hook(x, x, y, 0, 0.0), double_backprop(model, G, x, y)) <= 1e-3


def test_positive_scale_raises_sample_influence():
    model, G, x, y = _setup("tcn", batch=16)
    hook = Guidance("tardiff", model, G, scale=1e-3, normalize="rms")
    before = sample_influence(model, G, x, y)
    up = sample_influence(model, G, x + hook(x, x, y, 0, 0.0), y)
    down = sample_influence(model, G, x - hook(x, x, y, 0, 0.0), y)
    assert bool((up > before).all()) and bool((down < before).all())


def test_guidance_requires_eval_mode_and_G():
    # option names (jacobian, evaluate_on, normalize) are checked once, by the config schema
    model, G, _, _ = _setup("tcn")
    with pytest.raises(ValueError, match="eval mode"):
        Guidance("tardiff", model.train(), G, 0.1)
    model.eval()
    with pytest.raises(ValueError, match="needs the influence vector"):
        Guidance("tardiff", model, None, 0.1)
