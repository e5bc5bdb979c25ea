r"""Guidance terms added to the denoiser's clean-sample estimate at every reverse step.

TarDiff term (per sample i; ℓ = plain per-sample BCE, φ* the trained classifier, G the
influence vector):

    s_i(x)  = G · ∇φ ℓ(f_φ(x_i), y_i)                     (sample influence, ``sample_influence``)
    J_i     = ∇_{x_i} s_i = ∇_{x_i} Σ_j G · ∇φ ℓ(f_φ(x_j), y_j)

The sum over the batch (never a mean) gives every sample its own gradient in one pass: x_i only
enters ℓ_i (the classifier is in eval mode, no batch coupling). Since G · ∇φ ℓ is the directional
derivative of ℓ along G in parameter space, J = ∇_x d/dε ℓ(x; φ + εG)|_{ε=0}, computed by

- ``double_backprop``: autograd through ∇φ ℓ with ``create_graph`` (reference, test oracle);
- ``finite_difference``: (∇_x Σℓ(x; φ + εĜ) - ∇_x Σℓ(x; φ - εĜ)) / (2ε) · ‖G‖ with Ĝ = G/‖G‖
  and ε = ``rel_eps`` · ‖φ‖ (default 1e-3): relative to the parameter norm so the float32
  rounding of φ ± εĜ (≈ u‖φ‖ per direction) stays ~1e-4 of the step while the O(ε²)
  truncation error stays small; two ordinary backward passes;
- ``jvp``: forward-mode (``torch.func.jvp`` over φ, along G) of the reverse-mode ∇_x.

Classifier guidance (baseline): J_i = ∇_{x_i} log p(y_i | x_i) = -∇_{x_i} ℓ(f_φ(x_i), y_i).

Shift returned to the sampler (which adds it to x̂0 and recomputes ε̂):
``normalize="none"``: w · J;  ``normalize="rms"``: w · J / rms_c(J) where rms_c is the root mean
square of J over all elements of the batch samples of class c (each class separately), so w is a
per-element step in z-units of the normalised data. ``evaluate_on`` picks where the classifier
is queried: the denoiser's x̂0 (default, the classifier saw clean data) or the noisy x_t.
The classifier must be in eval mode; its parameters are used detached, so no ``.grad`` builds up.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, jvp

from tardiff.guidance.influence import detached_params, per_sample_loss, require_eval, unflatten

JACOBIANS = ("double_backprop", "finite_difference", "jvp")
KINDS = ("tardiff", "classifier")


def _loss_sum(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return per_sample_loss(functional_call(model, params, (x,)), y).sum()


def _grad_x(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        return torch.autograd.grad(_loss_sum(model, params, x, y), x)[0]


def double_backprop(model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """J via double backprop (create_graph) — the reference."""
    params = {n: p.requires_grad_(True) for n, p in detached_params(model).items()}
    tangents = unflatten(G, params)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        grads = torch.autograd.grad(
            _loss_sum(model, params, x, y), list(params.values()), create_graph=True
        )
        dot = sum((g * tangents[n]).sum() for n, g in zip(params, grads, strict=True))
        return torch.autograd.grad(dot, x)[0]


def finite_difference(
    model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor, rel_eps: float = 1e-3
):
    """J via a central difference along Ĝ in parameter space (two ordinary backward passes)."""
    params = detached_params(model)
    g_norm = G.norm()
    if g_norm == 0:
        return torch.zeros_like(x)
    direction = unflatten(G / g_norm, params)
    eps = rel_eps * torch.sqrt(sum(p.pow(2).sum() for p in params.values()))
    plus = {n: p + eps * direction[n] for n, p in params.items()}
    minus = {n: p - eps * direction[n] for n, p in params.items()}
    diff = _grad_x(model, plus, x, y) - _grad_x(model, minus, x, y)
    return diff * (g_norm / (2 * eps))


def jvp_term(model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """J via forward-mode AD over φ (along G) of the reverse-mode input gradient."""
    params = detached_params(model)
    x = x.detach()

    def grad_x(p):
        return torch.func.grad(lambda xx: _loss_sum(model, p, xx, y))(x)

    return jvp(grad_x, (params,), (unflatten(G, params),))[1]


TERMS = {
    "double_backprop": double_backprop,
    "finite_difference": finite_difference,
    "jvp": jvp_term,
}


def classifier_term(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_x log p(y | x) per sample (= -∇_x of the summed per-sample BCE)."""
    return -_grad_x(model, detached_params(model), x, y)


def tardiff_term(
    model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor, jacobian: str
) -> torch.Tensor:
    """J_i = ∇_{x_i} [G · ∇φ ℓ(f(x_i), y_i)] with the chosen implementation."""
    if jacobian not in TERMS:
        raise ValueError(f"config key 'generation.jacobian' must be one of {JACOBIANS}")
    return TERMS[jacobian](model, G, x, y)


@torch.no_grad()
def sample_influence(
    model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """Per-sample influence G · ∇φ ℓ(f(x_i), y_i), (N,), by batched forward-mode AD along G."""
    require_eval(model)
    params = detached_params(model)
    tangents = unflatten(G, params)

    def losses(p, xb, yb):
        return per_sample_loss(functional_call(model, p, (xb,)), yb)

    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        out.append(jvp(partial(losses, xb=xb, yb=yb), (params,), (tangents,))[1])
    return torch.cat(out)


def rms_normalize(J: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """J divided by its root mean square over the batch samples of each class (0 stays 0)."""
    out = torch.zeros_like(J)
    for c in torch.unique(y):
        sel = y == c
        rms = J[sel].pow(2).mean().sqrt()
        if rms > 0:
            out[sel] = J[sel] / rms
    return out


class Guidance:
    """Sampler hook ``(x0_hat, x_t, y, t, sigma) -> shift`` (see the module docstring)."""

    def __init__(
        self,
        kind: str,
        classifier: nn.Module,
        G: torch.Tensor | None,
        scale: float,
        evaluate_on: str = "x0",
        jacobian: str = "finite_difference",
        normalize: str = "rms",
    ):
        require_eval(classifier)
        if kind not in KINDS:
            raise ValueError(f"guidance kind must be one of {KINDS}, got {kind!r}")
        if kind == "tardiff" and G is None:
            raise ValueError("tardiff guidance needs the influence vector G")
        if kind == "tardiff" and jacobian not in TERMS:
            raise ValueError(f"config key 'generation.jacobian' must be one of {JACOBIANS}")
        if evaluate_on not in ("x0", "xt"):
            raise ValueError("config key 'generation.evaluate_on' must be x0 or xt")
        if normalize not in ("none", "rms"):
            raise ValueError("config key 'generation.normalize' must be none or rms")
        device = next(classifier.parameters()).device
        self.kind, self.classifier, self.scale = kind, classifier, float(scale)
        self.G = None if G is None else G.detach().to(device=device, dtype=torch.float32)
        self.evaluate_on, self.jacobian, self.normalize = evaluate_on, jacobian, normalize

    def term(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "classifier":
            return classifier_term(self.classifier, x, y)
        return tardiff_term(self.classifier, self.G, x, y, self.jacobian)

    def __call__(self, x0_hat, x_t, y, t, sigma) -> torch.Tensor:
        x = x0_hat if self.evaluate_on == "x0" else x_t
        J = self.term(x.detach().float(), y)
        if self.normalize == "rms":
            J = rms_normalize(J, y)
        return (self.scale * J).to(x0_hat.dtype)


def make_guidance(
    kind: str,
    classifier: nn.Module,
    G: torch.Tensor | None,
    scale: float,
    evaluate_on: str = "x0",
    jacobian: str = "finite_difference",
    normalize: str = "rms",
) -> Callable:
    """The sampler hook for ``tardiff`` (influence) or ``classifier`` guidance."""
    return Guidance(kind, classifier, G, scale, evaluate_on, jacobian, normalize)
