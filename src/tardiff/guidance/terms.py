r"""Guidance terms J: input gradients of the classifier that steer the reverse steps.

TarDiff term (per sample i; ℓ the per-sample loss the classifier was trained with, by default
BCE with its ``pos_weight`` (:func:`~tardiff.guidance.per_sample.loss_for`), φ* the trained
classifier, G the influence vector built with the same loss):

    s_i(x)  = G · ∇φ ℓ(f_φ(x_i), y_i)                     (sample influence, ``sample_influence``)
    J_i     = ∇_{x_i} s_i = ∇_{x_i} Σ_j G · ∇φ ℓ(f_φ(x_j), y_j)

The sum over the batch (never a mean) gives every sample its own gradient in one pass: x_i only
enters ℓ_i (the classifier is in eval mode, no batch coupling). Since G · ∇φ ℓ is the directional
derivative of ℓ along G in parameter space, J = ∇_x d/dε ℓ(x; φ + εG)|_{ε=0}, computed by

- ``double_backprop``: autograd through ∇φ ℓ with ``create_graph`` (reference, test oracle);
- ``finite_difference``: (ℓ'(f₊) ∇_x f₊ - ℓ'(f₋) ∇_x f₋) / (2ε) · ‖G‖ with f± the logits at
  φ ± εĜ, Ĝ = G/‖G‖ and ε = ``rel_eps`` · ‖φ‖ (``generation.fd_eps``, default 3e-4): relative
  to the parameter norm so the float32 rounding of φ ± εĜ (≈ u‖φ‖ per direction) stays small
  against the step while the O(ε²) truncation error stays small (on a trained GRU(7→32),
  relative error to double backprop 1.8e-3 at 1e-3, 2.6e-5 at 1e-4, rounding-dominated 1.5e-4
  at 1e-5). The two forwards read two copies of x, so one backward of Σf₊ + Σf₋ gives ∇_x f₊
  and ∇_x f₋ apart; their mean is ∇_x f(φ*) and (f₊ + f₋)/2 the logit, both to O(ε²), at no
  extra cost (:class:`TermParts`, used by the label-preserving projection and the flip share).
  The two parameter sets (each one contiguous buffer) and the factor ‖G‖/(2ε) are a
  :class:`FDProbe`, built once per (classifier, G) by the sampler hook;
- ``jvp``: forward-mode (``torch.func.jvp`` over φ, along G) of the reverse-mode ∇_x.

GRU path (see ``tardiff.models.classifier``): ``finite_difference`` and classifier guidance only
need first-order input gradients and run the fused ``nn.GRU`` (C++ / cuDNN recurrence);
``double_backprop``, ``jvp`` and ``sample_influence`` run the unrolled plain-op recurrence
(:func:`~tardiff.models.classifier.unrolled_rnn`), the one path that supports double backward
under cuDNN and forward-mode AD — the reference is thus the same computation on every device.

Classifier guidance (baseline): J_i = ∇_{x_i} log p(y_i | x_i) = -∇_{x_i} ℓ(f_φ(x_i), y_i).
The classifier must be in eval mode; its parameters are used detached, so no ``.grad`` builds up.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, jvp

from tardiff.guidance.per_sample import (
    Loss,
    detached_params,
    per_sample_loss,
    require_eval,
    unflatten,
)
from tardiff.models.classifier import unrolled_rnn

#: default relative finite-difference step (``generation.fd_eps``; the schema's default agrees)
FD_EPS = 3e-4
# which GRU recurrence each implementation runs (tardiff.models.classifier)
RNN_PATHS = {"double_backprop": "unrolled", "finite_difference": "fused", "jvp": "unrolled"}


def _loss_sum(model: nn.Module, params: dict, x, y, loss: Loss = per_sample_loss) -> torch.Tensor:
    return loss(functional_call(model, params, (x,)), y).sum()


def double_backprop(model: nn.Module, G, x, y, loss: Loss = per_sample_loss) -> torch.Tensor:
    """J via double backprop (create_graph) — the reference; unrolled GRU recurrence."""
    params = {n: p.requires_grad_(True) for n, p in detached_params(model).items()}
    tangents = unflatten(G, params)
    with torch.enable_grad(), unrolled_rnn():
        x = x.detach().requires_grad_(True)
        grads = torch.autograd.grad(
            _loss_sum(model, params, x, y, loss), list(params.values()), create_graph=True
        )
        dot = sum((g * tangents[n]).sum() for n, g in zip(params, grads, strict=True))
        return torch.autograd.grad(dot, x)[0]


@dataclass(frozen=True)
class FDProbe:
    """φ ± εĜ and the factor ‖G‖/(2ε) of the central difference (``plus`` is None if G = 0)."""

    plus: dict[str, torch.Tensor] | None
    minus: dict[str, torch.Tensor] | None
    scale: float


@dataclass(frozen=True)
class TermParts:
    """J with the classifier's logits f(x) (B,) and logit gradients ∇_x f(x) at φ*."""

    J: torch.Tensor
    logits: torch.Tensor
    logit_grad: torch.Tensor


def fd_probe(model: nn.Module, G: torch.Tensor, rel_eps: float = FD_EPS) -> FDProbe:
    """The perturbed parameter sets of :func:`finite_difference` (one host sync, for ε)."""
    params = detached_params(model)
    g_norm = float(G.norm())
    if g_norm == 0:
        return FDProbe(None, None, 0.0)
    flat = torch.cat([p.reshape(-1) for p in params.values()])
    eps = rel_eps * float(flat.norm())
    step = G.to(flat) * (eps / g_norm)
    return FDProbe(
        unflatten(flat + step, params), unflatten(flat - step, params), g_norm / (2 * eps)
    )


def loss_slope(loss: Loss, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dℓ/df per sample at ``logits`` (elementwise, (B,))."""
    with torch.enable_grad():
        f = logits.detach().requires_grad_(True)
        return torch.autograd.grad(loss(f, y).sum(), f)[0]


def logit_parts(model: nn.Module, params: dict, x: torch.Tensor):
    """Logits (B,) and their input gradients ∇_x f (one forward, one backward; fused GRU)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = functional_call(model, params, (x,))
        return f.detach(), torch.autograd.grad(f.sum(), x)[0]


def _expand(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *(1,) * (like.dim() - 1))


def fd_parts(
    model: nn.Module, probe: FDProbe, x: torch.Tensor, y: torch.Tensor, loss: Loss = per_sample_loss
) -> TermParts:
    """The central difference for a prepared probe, with the logits and logit gradients at φ*
    (two forwards on two copies of x, one backward; module docstring)."""
    if probe.plus is None:
        logits, grad = logit_parts(model, detached_params(model), x)
        return TermParts(torch.zeros_like(x), logits, grad)
    with torch.enable_grad():
        xp, xm = (x.detach().clone().requires_grad_(True) for _ in range(2))
        fp = functional_call(model, probe.plus, (xp,))
        fm = functional_call(model, probe.minus, (xm,))
        gp, gm = torch.autograd.grad(fp.sum() + fm.sum(), (xp, xm))
    dp, dm = loss_slope(loss, fp, y), loss_slope(loss, fm, y)
    J = (_expand(dp, gp) * gp - _expand(dm, gm) * gm).mul_(probe.scale)
    return TermParts(J, (fp.detach() + fm.detach()) / 2, (gp + gm) / 2)


def finite_difference(
    model: nn.Module,
    G: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    rel_eps: float = FD_EPS,
    loss: Loss = per_sample_loss,
) -> torch.Tensor:
    """J via a central difference along Ĝ in parameter space (fused GRU, first order only)."""
    return fd_parts(model, fd_probe(model, G, rel_eps), x, y, loss).J


def jvp_term(model: nn.Module, G, x, y, loss: Loss = per_sample_loss) -> torch.Tensor:
    """J via forward-mode AD over φ (along G) of the reverse-mode input gradient (unrolled GRU)."""
    params = detached_params(model)
    x = x.detach()

    def grad_x(p):
        return torch.func.grad(lambda xx: _loss_sum(model, p, xx, y, loss))(x)

    with unrolled_rnn():
        return jvp(grad_x, (params,), (unflatten(G, params),))[1]


TERMS = {
    "double_backprop": double_backprop,
    "finite_difference": finite_difference,
    "jvp": jvp_term,
}


def classifier_term(model: nn.Module, x, y, loss: Loss = per_sample_loss) -> torch.Tensor:
    """∇_x log p(y | x) per sample (= -∇_x of the summed per-sample BCE)."""
    return classifier_term_from(*logit_parts(model, detached_params(model), x), y, loss)


def classifier_term_from(logits, logit_grad, y, loss: Loss = per_sample_loss) -> torch.Tensor:
    """:func:`classifier_term` from the logits and logit gradients (-ℓ'(f) ∇_x f)."""
    return -_expand(loss_slope(loss, logits, y), logit_grad) * logit_grad


def tardiff_term(
    model: nn.Module, G, x, y, jacobian: str, loss: Loss = per_sample_loss
) -> torch.Tensor:
    """J_i = ∇_{x_i} [G · ∇φ ℓ(f(x_i), y_i)] with the chosen implementation (``TERMS``)."""
    return TERMS[jacobian](model, G, x, y, loss=loss)


def project_out(J: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """J_i minus its component along ``direction_i``, per sample (a zero direction keeps J_i):
    with the logit gradient, a step along the result leaves f unchanged to first order."""
    flat_d = direction.reshape(len(J), -1)
    dd = flat_d.pow(2).sum(1)
    coef = (J.reshape(len(J), -1) * flat_d).sum(1) / dd.clamp_min(torch.finfo(dd.dtype).tiny)
    return J - _expand(torch.where(dd > 0, coef, torch.zeros_like(coef)), J) * direction


@torch.no_grad()
def sample_influence(
    model: nn.Module,
    G: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 512,
    loss: Loss = per_sample_loss,
) -> torch.Tensor:
    """Per-sample influence G · ∇φ ℓ(f(x_i), y_i), (N,), by batched forward-mode AD along G
    (unrolled GRU). A non-finite logit or influence raises a ``FloatingPointError``."""
    require_eval(model)
    params = detached_params(model)
    tangents = unflatten(G, params)

    def losses(p, xb, yb):
        logits = functional_call(model, p, (xb,))
        return loss(logits, yb), logits

    out = []
    with unrolled_rnn():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            (_, logits), (ds, _) = jvp(partial(losses, xb=xb, yb=yb), (params,), (tangents,))
            if not bool(torch.isfinite(logits).all() & torch.isfinite(ds).all()):
                raise FloatingPointError(f"non-finite logit or sample influence in rows {i}+")
            out.append(ds)
    return torch.cat(out)
