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
  and ε = ``rel_eps`` · ‖φ‖ (``generation.fd_eps``, default 3e-4): relative to the parameter
  norm so the float32 rounding of φ ± εĜ (≈ u‖φ‖ per direction) stays small against the step
  while the O(ε²) truncation error stays small (on a trained GRU(7→32), relative error to
  double backprop 1.8e-3 at 1e-3, 2.6e-5 at 1e-4, rounding-dominated 1.5e-4 at 1e-5). Both
  forwards feed one backward of Σℓ(φ+) - Σℓ(φ-) to x; the two parameter sets (each one
  contiguous buffer) and the factor ‖G‖/(2ε) are a :class:`FDProbe`, built once per
  (classifier, G) by :class:`Guidance` (the classifier is frozen while sampling; the probe is
  rebuilt if a parameter is modified in place);
- ``jvp``: forward-mode (``torch.func.jvp`` over φ, along G) of the reverse-mode ∇_x.

GRU path (see ``tardiff.models.classifier``): ``finite_difference`` and classifier guidance only
need first-order input gradients and run the fused ``nn.GRU`` (C++ / cuDNN recurrence);
``double_backprop``, ``jvp`` and ``sample_influence`` run the unrolled plain-op recurrence
(:func:`~tardiff.models.classifier.unrolled_rnn`), the one path that supports double backward
under cuDNN and forward-mode AD — the reference is thus the same computation on every device.

Classifier guidance (baseline): J_i = ∇_{x_i} log p(y_i | x_i) = -∇_{x_i} ℓ(f_φ(x_i), y_i).

Shift returned to the sampler (which adds it to x̂0 and recomputes ε̂), by ``normalize``:

- ``none``: w · J (w in units of J);
- ``rms``: w · J / rms_c(J), rms_c the root mean square of J over all elements of the batch
  samples of class c (labels 0/1): w is a per-element step in z-units, but a vanishing J is
  scaled back to full size and a sample's step depends on its batch-mates;
- ``reference``: w · J / c with one scale c fixed once per run, c = sqrt(mean over elements of
  J² on a reference batch of real training samples) (:func:`reference_rms`: up to 512 samples
  at the generated label distribution, J evaluated on the real data itself): w is the RMS step,
  in z-units, of a typical real sample; a vanishing J stays vanishing and no sample depends on
  its batch-mates;
- ``capped``: w · J_i / max(c, rms(J_i)) = (w/c) · J_i · min(1, c / rms(J_i)), rms(J_i) the
  RMS over sample i's elements: ``reference`` with each sample's RMS step capped at w.

A reference scale c = 0 (e.g. G = 0) gives a zero shift. A non-finite J raises a
``FloatingPointError`` naming the guidance kind (the sampler adds the step, the generation the
batch and method); nothing non-finite reaches the sample. ``evaluate_on`` picks where the
classifier is queried: the denoiser's x̂0 (default, the classifier saw clean data) or the noisy
x_t.
The classifier must be in eval mode; its parameters are used detached, so no ``.grad`` builds up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, jvp

from tardiff.guidance.per_sample import detached_params, per_sample_loss, require_eval, unflatten
from tardiff.models.classifier import unrolled_rnn

#: default relative finite-difference step (``generation.fd_eps``; the schema's default agrees)
FD_EPS = 3e-4
#: ``normalize`` options scaled by the reference batch's RMS of J
REFERENCE_SCALED = ("reference", "capped")
# which GRU recurrence each implementation runs (tardiff.models.classifier)
RNN_PATHS = {"double_backprop": "unrolled", "finite_difference": "fused", "jvp": "unrolled"}


def _loss_sum(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return per_sample_loss(functional_call(model, params, (x,)), y).sum()


def _grad_x(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        return torch.autograd.grad(_loss_sum(model, params, x, y), x)[0]


def double_backprop(model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """J via double backprop (create_graph) — the reference; unrolled GRU recurrence."""
    params = {n: p.requires_grad_(True) for n, p in detached_params(model).items()}
    tangents = unflatten(G, params)
    with torch.enable_grad(), unrolled_rnn():
        x = x.detach().requires_grad_(True)
        grads = torch.autograd.grad(
            _loss_sum(model, params, x, y), list(params.values()), create_graph=True
        )
        dot = sum((g * tangents[n]).sum() for n, g in zip(params, grads, strict=True))
        return torch.autograd.grad(dot, x)[0]


@dataclass(frozen=True)
class FDProbe:
    """φ ± εĜ and the factor ‖G‖/(2ε) of the central difference (``plus`` is None if G = 0)."""

    plus: dict[str, torch.Tensor] | None
    minus: dict[str, torch.Tensor] | None
    scale: float


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


def fd_apply(model: nn.Module, probe: FDProbe, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The central difference for a prepared probe: two forwards, one backward to x."""
    if probe.plus is None:
        return torch.zeros_like(x)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        diff = _loss_sum(model, probe.plus, x, y) - _loss_sum(model, probe.minus, x, y)
        return torch.autograd.grad(diff, x)[0].mul_(probe.scale)


def finite_difference(
    model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor, rel_eps: float = FD_EPS
):
    """J via a central difference along Ĝ in parameter space (fused GRU, first order only)."""
    return fd_apply(model, fd_probe(model, G, rel_eps), x, y)


def jvp_term(model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
    """J via forward-mode AD over φ (along G) of the reverse-mode input gradient (unrolled GRU)."""
    params = detached_params(model)
    x = x.detach()

    def grad_x(p):
        return torch.func.grad(lambda xx: _loss_sum(model, p, xx, y))(x)

    with unrolled_rnn():
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
    """J_i = ∇_{x_i} [G · ∇φ ℓ(f(x_i), y_i)] with the chosen implementation (``TERMS``)."""
    return TERMS[jacobian](model, G, x, y)


@torch.no_grad()
def sample_influence(
    model: nn.Module, G: torch.Tensor, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> torch.Tensor:
    """Per-sample influence G · ∇φ ℓ(f(x_i), y_i), (N,), by batched forward-mode AD along G
    (unrolled GRU)."""
    require_eval(model)
    params = detached_params(model)
    tangents = unflatten(G, params)

    def losses(p, xb, yb):
        return per_sample_loss(functional_call(model, p, (xb,)), yb)

    out = []
    with unrolled_rnn():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            out.append(jvp(partial(losses, xb=xb, yb=yb), (params,), (tangents,))[1])
    return torch.cat(out)


def rms_normalize(J: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """J divided by its root mean square over the batch samples of each class (0 stays 0).

    ``y`` holds binary labels (0/1). A non-finite J raises (one host synchronisation) instead of
    silently zeroing its class.
    """
    y = y.to(device=J.device, dtype=torch.long)
    sq = J.pow(2).reshape(len(J), -1).sum(1)
    per_class = J.new_zeros(2).index_add_(0, y, sq)
    count = J.new_zeros(2).index_add_(0, y, torch.ones_like(sq))
    rms = (per_class / (count * J[0].numel())).sqrt()
    if not bool(torch.isfinite(per_class).all()):
        raise FloatingPointError("non-finite guidance term J in rms_normalize")
    rms = rms[y].view(-1, *(1,) * (J.dim() - 1))
    return torch.where(rms > 0, J / rms, torch.zeros_like(J))


def reference_rms(term, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """RMS of ``term(x, y)`` (J) over every element of a reference batch, in chunks."""
    sq, n = 0.0, 0
    for i in range(0, len(x), batch_size):
        J = term(x[i : i + batch_size], y[i : i + batch_size])
        sq, n = sq + float(J.double().pow(2).sum()), n + J.numel()
    rms = (sq / max(n, 1)) ** 0.5
    if not math.isfinite(rms):
        raise FloatingPointError("non-finite guidance term J on the reference batch")
    return rms


def capped_normalize(J: torch.Tensor, c: float) -> torch.Tensor:
    """J_i / max(c, rms(J_i)) per sample (zero for c = 0): see the module docstring."""
    if c <= 0:
        return torch.zeros_like(J)
    rms = J.pow(2).reshape(len(J), -1).mean(1).sqrt().clamp_min(c)
    return J / rms.view(-1, *(1,) * (J.dim() - 1))


class Guidance:
    """Sampler hook ``(x0_hat, x_t, y, t, sigma) -> shift`` (see the module docstring).

    ``reference`` = (x, y) of real training samples (normalised units) is required by
    ``normalize`` ``reference`` and ``capped``: their scale c (:attr:`ref_scale`) is computed
    here, once. ``fd_eps`` is the relative step of the finite difference.
    """

    def __init__(
        self,
        kind: str,
        classifier: nn.Module,
        G: torch.Tensor | None,
        scale: float,
        *,
        evaluate_on: str = "x0",
        jacobian: str = "finite_difference",
        normalize: str = "rms",
        fd_eps: float = FD_EPS,
        reference: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):
        require_eval(classifier)
        if kind == "tardiff" and G is None:
            raise ValueError("tardiff guidance needs the influence vector G")
        device = next(classifier.parameters()).device
        self.kind, self.classifier, self.scale = kind, classifier, float(scale)
        self.G = None if G is None else G.detach().to(device=device, dtype=torch.float32)
        self.evaluate_on, self.jacobian, self.normalize = evaluate_on, jacobian, normalize
        self.fd_eps = float(fd_eps)
        self._probe: tuple[tuple, FDProbe] | None = None
        self.ref_scale: float | None = None
        if normalize in REFERENCE_SCALED:
            if reference is None:
                raise ValueError(f"normalize={normalize!r} needs a reference batch")
            x_ref, y_ref = (r.to(device) for r in reference)
            self.ref_scale = reference_rms(self.term, x_ref.float(), y_ref)

    def probe(self) -> FDProbe:
        """The finite-difference probe, cached while the classifier's parameters are unchanged
        (same storage, no in-place update)."""
        key = tuple((p.data_ptr(), p._version) for p in self.classifier.parameters())
        if self._probe is None or self._probe[0] != key:
            self._probe = (key, fd_probe(self.classifier, self.G, self.fd_eps))
        return self._probe[1]

    def term(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "classifier":
            return classifier_term(self.classifier, x, y)
        if self.jacobian == "finite_difference":
            return fd_apply(self.classifier, self.probe(), x, y)
        return tardiff_term(self.classifier, self.G, x, y, self.jacobian)

    def _normalized(self, J: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.normalize == "rms":
            return rms_normalize(J, y)
        if self.normalize == "reference":
            return J.div_(self.ref_scale) if self.ref_scale > 0 else J.zero_()
        if self.normalize == "capped":
            return capped_normalize(J, self.ref_scale)
        return J

    def __call__(self, x0_hat, x_t, y, t, sigma) -> torch.Tensor:
        x = x0_hat if self.evaluate_on == "x0" else x_t
        J = self.term(x.detach().float(), y)  # .float() is a no-op on float32
        if not bool(torch.isfinite(J).all()):
            raise FloatingPointError(f"non-finite guidance term J ({self.kind} guidance)")
        return self._normalized(J, y).mul_(self.scale).to(x0_hat.dtype)
