r"""The sampler's guidance hook: the shift added to the denoiser's clean-sample estimate x̂0.

At a guided reverse step the sampler calls ``Guidance(x0_hat, x_t, y, t, sigma)`` and adds the
returned shift, times the step's noise weight (:func:`~tardiff.diffusion.steppers.shift_weights`),
to x̂0. The hook computes J (:mod:`tardiff.guidance.terms`) at x̂0 (``evaluate_on`` ``x0``, the
default: the classifier saw clean data) or at the noisy x_t, then

1. ``preserve`` (tardiff only): ``none`` keeps J; ``project`` removes from each sample's J its
   component along the logit gradient ∇_x f, J_i ← J_i - (J_i·∇f_i / ‖∇f_i‖²) ∇f_i, so a step
   along it leaves the classifier's logit, hence the sample's predicted label, unchanged to
   first order: the guidance can change *how* a sample informs the classifier, not which class
   it looks like (label noise is what the unprojected term produces: survivors pushed across
   the boundary keep the survivor label);
2. ``normalize``:

   - ``none``: w · J (w in units of J);
   - ``rms``: w · J / rms_c(J), rms_c the root mean square of J over all elements of the batch
     samples of class c: w is a per-element step in z-units, but a vanishing J is scaled back to
     full size and a sample's step depends on its batch-mates;
   - ``reference``: w · J / c with one scale c fixed once per run, c = sqrt(mean over elements of
     J² on a reference batch of real training samples) (:func:`reference_rms`; J after step 1):
     w is the RMS step, in z-units, of a typical real sample; a vanishing J stays vanishing;
   - ``capped``: w · J_i / max(c, rms(J_i)), rms(J_i) the RMS over sample i's elements:
     ``reference`` with each sample's RMS step capped at w.

A reference scale c = 0 (e.g. G = 0) gives a zero shift. A non-finite J or logit raises a
``FloatingPointError`` naming the guidance kind (the sampler adds the step, the generation the
batch, method and seed); nothing non-finite reaches the sample. After every call
:attr:`Guidance.last_flip_share` holds the share of the batch whose x̂0 the classifier assigns to
the other label (logit > 0 ↔ label 1), before the shift (the sampler records it at the guided
steps only: measuring it elsewhere would cost a classifier forward per step).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tardiff.guidance.per_sample import Loss, detached_params, per_sample_loss, require_eval
from tardiff.guidance.terms import (
    FD_EPS,
    FDProbe,
    TermParts,
    classifier_term_from,
    fd_parts,
    fd_probe,
    logit_parts,
    project_out,
    tardiff_term,
)

#: ``normalize`` options scaled by the reference batch's RMS of J
REFERENCE_SCALED = ("reference", "capped")
#: ``preserve`` options (label-preserving transforms of the tardiff term)
PRESERVE = ("none", "project")


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


def _flips(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Share of samples whose logit points to the other label."""
    return float(((logits > 0).long() != y.long()).float().mean()) if len(y) else 0.0


class Guidance:
    """Sampler hook ``(x0_hat, x_t, y, t, sigma) -> shift`` (see the module docstring).

    ``loss`` is the classifier's per-sample training loss (G must be built with the same one).
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
        loss: Loss = per_sample_loss,
        preserve: str = "none",
    ):
        require_eval(classifier)
        if kind == "tardiff" and G is None:
            raise ValueError("tardiff guidance needs the influence vector G")
        if preserve not in PRESERVE:
            raise ValueError(f"preserve must be one of {PRESERVE}, got {preserve!r}")
        device = next(classifier.parameters()).device
        self.kind, self.classifier, self.scale = kind, classifier, float(scale)
        self.G = None if G is None else G.detach().to(device=device, dtype=torch.float32)
        self.evaluate_on, self.jacobian, self.normalize = evaluate_on, jacobian, normalize
        self.fd_eps, self.loss, self.preserve = float(fd_eps), loss, preserve
        self._probe: tuple[tuple, FDProbe] | None = None
        self.ref_scale: float | None = None
        self.last_flip_share: float | None = None
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

    def parts(self, x: torch.Tensor, y: torch.Tensor) -> TermParts:
        """J (label-preserving transform applied) with the logits and logit gradients."""
        if self.kind == "tardiff" and self.jacobian == "finite_difference":
            parts = fd_parts(self.classifier, self.probe(), x, y, self.loss)
        else:
            logits, grad = logit_parts(self.classifier, detached_params(self.classifier), x)
            if self.kind == "classifier":  # from the same pass: one forward, one backward
                J = classifier_term_from(logits, grad, y, self.loss)
            else:
                J = tardiff_term(self.classifier, self.G, x, y, self.jacobian, self.loss)
            parts = TermParts(J, logits, grad)
        if self.kind == "tardiff" and self.preserve == "project":
            parts = TermParts(
                project_out(parts.J, parts.logit_grad), parts.logits, parts.logit_grad
            )
        return parts

    def term(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """J of :meth:`parts` alone (the reference batch's scale is taken on it)."""
        return self.parts(x, y).J

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
        parts = self.parts(x.detach().float(), y)  # .float() is a no-op on float32
        if not bool(torch.isfinite(parts.J).all() & torch.isfinite(parts.logits).all()):
            raise FloatingPointError(
                f"non-finite guidance term J ({self.kind} guidance): J or logit"
            )
        self.last_flip_share = _flips(parts.logits, y)
        return self._normalized(parts.J, y).mul_(self.scale).to(x0_hat.dtype)
