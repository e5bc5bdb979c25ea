"""Reverse-diffusion sampling with a guidance hook: one shared loop over any sampler's steps.

Each sampler is a :class:`~tardiff.diffusion.steppers.Stepper` (its timestep grid, the noise SD
of a step and the update itself, with the formulas), picked once per run from
:data:`~tardiff.diffusion.steppers.STEPPERS`. Every reverse step from ``t`` to ``s`` of
:func:`sample`:

1. ``x0_hat`` from the model output (no autograd); with ``cfg_scale = w`` the output is
   ``(1 + w) out(y) - w out(null)``; with ``clip_x0 = c``, ``x0_hat`` is clamped to ``[-c, c]``.
2. Guidance hook: ``shift = weight_t * guidance(x0_hat, x_t, y, t, sigma_t)`` (shape
   ``(B, T, C)``, computed with the callable's own autograd) and ``x0_hat <- x0_hat + shift``,
   ``weight_t`` the step's factor of the ``shift_schedule``
   (:func:`~tardiff.diffusion.steppers.shift_weights`); steps with weight 0 and the steps
   :func:`~tardiff.diffusion.steppers.guided_steps` leaves out (the smallest shares of the
   weighted move) make no guidance call.
3. The stepper's update from the final ``x0_hat``, then its noise ``sd z``, ``z ~ N(0, I)``.

``sigma_t`` given to the hook is the standard deviation of the noise the step adds; where that
is 0 (``eta = 0``, ``dpm_solver++``, the last step) it is the noise level ``sqrt(1 - ab_t)`` of
``x_t`` instead. With ``clip_x0 = c`` the returned sample is clamped to ``[-c, c]`` as well (the
last step lands on the shifted ``x0_hat``). A non-finite ``x0_hat``, shift or step output raises
a ``FloatingPointError`` naming the step (and, from :func:`generate`, the batch).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tardiff.diffusion.schedule import NoiseSchedule
from tardiff.diffusion.steppers import SAMPLERS, STEPPERS, guided_steps, shift_weights
from tardiff.runtime import progress as progress_bar

Guidance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, float], torch.Tensor]


def _randn(shape, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn on the generator's device (CPU by default), moved to device."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(shape, generator=generator, device=gen_device).to(device)


def _rms(x: torch.Tensor) -> float:
    return float(x.detach().float().pow(2).mean().sqrt())


@torch.no_grad()
def _predict_x0(
    model: torch.nn.Module,
    schedule: NoiseSchedule,
    x: torch.Tensor,
    t: int,
    y: torch.Tensor,
    cfg_scale: float,
    clip_x0: float | None,
) -> torch.Tensor:
    """``x0_hat`` from the model output, with classifier-free guidance and clipping."""
    tt = torch.full_like(y, t)
    if cfg_scale:
        null = torch.full_like(y, model.n_classes)
        both = model(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null]))
        out_c, out_u = both.chunk(2)
        out = (1 + cfg_scale) * out_c - cfg_scale * out_u
    else:
        out = model(x, tt, y)
    x0, _ = schedule.split_output(x, t, out)
    return x0 if clip_x0 is None else x0.clamp(-clip_x0, clip_x0)


def _require_finite(x: torch.Tensor, what: str, i: int, t: int) -> None:
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(f"step {i} (t={t}): non-finite {what}")


def _guide(guidance: Guidance, x0, x, y, t: int, sigma_t: float, i: int) -> torch.Tensor:
    """The hook's shift, checked for shape and finiteness (errors name the step)."""
    try:
        shift = guidance(x0, x, y, t, sigma_t).detach()
    except FloatingPointError as err:
        raise FloatingPointError(f"step {i} (t={t}): {err}") from err
    if shift.shape != x0.shape:
        raise ValueError(f"guidance returned shape {tuple(shift.shape)}, not {x0.shape}")
    _require_finite(shift, "guidance shift", i, t)
    return shift


def _diagnostics(i: int, t: int, sigma_t: float, shift, x0, coef: float, weight: float) -> dict:
    """One step's row: shift_rms, and mean_move = ``coef * shift_rms`` against ``sigma_t``."""
    shift_rms = 0.0 if shift is None else _rms(shift)
    move = abs(coef) * shift_rms
    return {"step": i, "t": t, "sigma": sigma_t, "weight": weight, "shift_rms": shift_rms,
            "x0_rms": _rms(x0), "mean_move": move, "mean_move_ratio": move / sigma_t}  # fmt: skip


def _flip_share(guidance, shift) -> dict:
    """The guidance classifier's flip share of ``x0`` (before the shift), from the hook's own
    pass: a value at a guided step, empty (None) at an unguided one; no column without one."""
    if not hasattr(guidance, "last_flip_share"):
        return {}
    return {"flip_share": guidance.last_flip_share if shift is not None else None}


def sample(
    model: torch.nn.Module,
    schedule: NoiseSchedule,
    y: torch.Tensor,
    seq_len: int,
    n_features: int,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 1.0,
    guidance: Guidance | None = None,
    generator: torch.Generator | None = None,
    diagnostics: list | None = None,
    cfg_scale: float = 0.0,
    clip_x0: float | None = None,
    guide_skip_share: float = 0.0,
    shift_schedule: str = "constant",
    shift_cutoff: float = 0.0,
) -> torch.Tensor:
    """Draw ``(B, seq_len, n_features)`` samples of classes ``y`` (runs on ``y``'s device).

    ``model(x, t, y)`` must be in eval mode and expose ``n_classes`` (its null label). Noise comes
    from ``generator`` (drawn on its device, then moved). If ``diagnostics`` is a list, one dict
    per step is appended: step, t, sigma, shift_rms (0 without guidance), x0_rms (of the model's
    ``x0_hat``, before the shift), mean_move (``|c1| * shift_rms``, the RMS move of the step mean
    caused by guidance) and mean_move_ratio (mean_move / sigma), weight (the shift schedule's
    factor) and, for a hook with a classifier (``last_flip_share``), flip_share: the share of the
    batch whose ``x0_hat`` the classifier assigns to the other label, at guided steps (None at the
    others: no classifier call there). ``shift_schedule`` and
    ``shift_cutoff`` weight the shift by step (:func:`shift_weights`); ``guide_skip_share``
    leaves the guidance out of the steps with the smallest moves that together move the mean by
    at most that share of the run's summed ``|c1| * weight`` (:func:`guided_steps`; 0 guides
    every step).
    """
    if sampler not in STEPPERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    stepper = STEPPERS[sampler](schedule, eta)
    grid, state = stepper.grid(steps), stepper.new_state()
    weights = shift_weights(schedule, grid, shift_schedule, shift_cutoff)
    coefs = [0.0] * len(grid) if guidance is None else stepper.x0_coefs(grid)
    moves = [c * w for c, w in zip(coefs, weights, strict=True)]
    guided = [False] * len(grid) if guidance is None else guided_steps(moves, guide_skip_share)
    guided = [g and w > 0 for g, w in zip(guided, weights, strict=True)]
    x = _randn((len(y), seq_len, n_features), generator, y.device)
    for i, t in enumerate(grid):
        s = grid[i + 1] if i + 1 < len(grid) else -1
        x0 = _predict_x0(model, schedule, x, t, y, cfg_scale, clip_x0)
        _require_finite(x0, "x0_hat (denoiser output)", i, t)
        noise_sd = stepper.noise_sd(t, s)
        sigma_t = noise_sd if noise_sd > 0 else float(schedule.sqrt_one_minus_alphas_cumprod[t])
        shift = _guide(guidance, x0, x, y, t, sigma_t, i) * weights[i] if guided[i] else None
        if diagnostics is not None:
            row = _diagnostics(i, t, sigma_t, shift, x0, coefs[i], weights[i] * guided[i])
            diagnostics.append({**row, **_flip_share(guidance, shift)})
        with torch.no_grad():
            x, sd = stepper.step(x, x0 if shift is None else x0 + shift, t, s, state)
            if sd > 0:
                x = x + sd * _randn(x.shape, generator, x.device)
        _require_finite(x, "sample (step output)", i, t)
    return x if clip_x0 is None else x.clamp(-clip_x0, clip_x0)


def generate(
    model: torch.nn.Module,
    schedule: NoiseSchedule,
    labels: np.ndarray,
    seq_len: int,
    n_features: int,
    batch_size: int,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 1.0,
    guidance: Guidance | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    cfg_scale: float = 0.0,
    clip_x0: float | None = None,
    guide_skip_share: float = 0.0,
    shift_schedule: str = "constant",
    shift_cutoff: float = 0.0,
) -> tuple[np.ndarray, list[dict]]:
    """Sample one series per entry of ``labels`` in mini-batches; returns float32 ``(N, T, C)``.

    ``progress`` shows a tqdm bar and logs the count, rate and time left every 30 s (the rule's
    log shows them).

    Deterministic for a given ``seed`` and ``batch_size``: one CPU generator seeded from ``seed``
    feeds all batches in order. ``device`` defaults to the model's device. Diagnostics are the
    per-step dicts of :func:`sample` with the batch index added as ``batch``; a non-finite value
    raises a ``FloatingPointError`` naming the batch and step.
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    labels = np.asarray(labels, dtype=np.int64)
    chunks, diagnostics = [], []
    starts = range(0, len(labels), batch_size)
    if progress:
        starts = progress_bar(starts, len(starts), f"sampling ({sampler})", "batch")
    for b, start in enumerate(starts):
        y = torch.as_tensor(labels[start : start + batch_size], device=device)
        steps_diag: list[dict] = []
        try:
            x = sample(
                model, schedule, y, seq_len, n_features, sampler, steps, eta,
                guidance=guidance, generator=generator, diagnostics=steps_diag,
                cfg_scale=cfg_scale, clip_x0=clip_x0, guide_skip_share=guide_skip_share,
                shift_schedule=shift_schedule, shift_cutoff=shift_cutoff,
            )  # fmt: skip
        except FloatingPointError as err:
            raise FloatingPointError(f"batch {b}, {err}") from err
        chunks.append(x.float().cpu().numpy())
        diagnostics.extend({"batch": b, **d} for d in steps_diag)
    x = np.concatenate(chunks) if chunks else np.zeros((0, seq_len, n_features), np.float32)
    return x, diagnostics
