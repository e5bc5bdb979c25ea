"""Reverse-diffusion samplers (ancestral DDPM, DDIM, DPM-Solver++(2M)) with a guidance hook.

Each sampler is a :class:`Stepper` (its timestep grid, the noise SD of a step and the update
itself), picked once per run from :data:`STEPPERS`; :func:`sample` runs one shared loop. Every
reverse step from ``t`` to ``s`` (``s = -1`` means the clean end, ``ab_{-1} = 1``):

1. ``x0_hat`` from the model output (no autograd); with ``cfg_scale = w`` the output is
   ``(1 + w) out(y) - w out(null)``; with ``clip_x0 = c``, ``x0_hat`` is clamped to ``[-c, c]``.
2. Guidance hook: ``shift = guidance(x0_hat, x_t, y, t, sigma_t)`` (shape ``(B, T, C)``, computed
   with the callable's own autograd) and ``x0_hat <- x0_hat + shift``.
3. The stepper's update from the final ``x0_hat`` (where needed the noise estimate is recomputed
   from it, ``eps_hat = (x_t - sqrt(ab_t) x0_hat) / sqrt(1 - ab_t)``, so both stay consistent),
   then noise ``sd z`` with ``z ~ N(0, I)`` is added:

   - ``ddpm``: ``x_{t-1} = c1_t x0_hat + c2_t x_t + sqrt(beta~_t) z`` (posterior of ``q``), so a
     shift moves the mean by ``c1_t * shift``, ``c1_t = sqrt(ab_{t-1}) beta_t / (1 - ab_t)``.
   - ``ddim``: ``x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma z`` with
     ``sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)``. With ``k = T`` steps and
     ``eta = 1`` this is exactly the ``ddpm`` step.
   - ``dpm_solver++``: deterministic 2nd-order multistep update in ``x0`` space (Lu et al. 2022),
     first order at the first and last step; its history is per-run stepper state.

``sigma_t`` given to the hook is the standard deviation of the noise the step adds; where that
is 0 (``eta = 0``, ``dpm_solver++``, the last step) it is the noise level ``sqrt(1 - ab_t)`` of
``x_t`` instead.

A shift moves the step mean by ``c1 * shift``, ``c1`` = :meth:`Stepper.x0_coef`, the coefficient
of ``x0_hat`` in the mean (ddpm: ``c1_t``; ddim: ``sqrt(ab_s) - sqrt(1 - ab_s - sigma^2)
sqrt(ab_t / (1 - ab_t))``; dpm_solver++: ``-sqrt(ab_s) expm1(-h)`` times ``1 + 1/(2r)`` at
second order, 1 into the clean end; its later effect through the multistep history is not
counted). With ``clip_x0 = c`` the returned sample is clamped to ``[-c, c]`` as well (the last
step lands on the shifted ``x0_hat``). A non-finite ``x0_hat``, shift or step output raises a
``FloatingPointError`` naming the step (and, from :func:`generate`, the batch).

The ``ddim`` grid has ``k`` steps ``t_j = round((k - j) T / k) - 1``, ``j = 0..k-1``
("trailing" spacing): it starts at ``T - 1`` and ``k = T`` gives every step. The
``dpm_solver++`` grid is uniform in log-SNR from ``t = T - 1`` to ``t = 0``
(:func:`~tardiff.diffusion.schedule.logsnr_grid`, Lu et al.'s spacing; points that round to
the same timestep are merged, so a run takes at most ``k`` network evaluations). Ending at
``t = 0`` matters: the jump into the clean end returns ``x0_hat = E[x0 | x_t]``, whose spread
is below the data's by the noise left at ``t``; from the trailing grid's last step
(``t = T/k - 1``) that cost 8 % of the SD of a narrow (SD 0.2) Gaussian at ``k = 20``
(``benchmarks/sampler_bias.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tardiff.diffusion.schedule import NoiseSchedule, logsnr_grid, timestep_grid
from tardiff.runtime import progress as progress_bar

Guidance = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int, float], torch.Tensor]


def ddpm_mean_std(
    schedule: NoiseSchedule, x_t: torch.Tensor, x0: torch.Tensor, t: int
) -> tuple[torch.Tensor, float]:
    """Mean and noise SD of the ancestral step ``t -> t-1`` given ``x0_hat``."""
    mean, _ = schedule.posterior(x0, x_t, t)
    return mean, float(schedule.posterior_variance[t]) ** 0.5


def ddim_sigma(schedule: NoiseSchedule, t: int, s: int, eta: float) -> float:
    """SD of the noise the DDIM step ``t -> s`` adds (``s = -1``: clean end)."""
    ab_t = float(schedule.alphas_cumprod[t])
    ab_s = float(schedule.alphas_cumprod[s]) if s >= 0 else 1.0
    return eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5


def ddim_mean_std(
    schedule: NoiseSchedule, x_t: torch.Tensor, x0: torch.Tensor, t: int, s: int, eta: float
) -> tuple[torch.Tensor, float]:
    """Mean and noise SD of the DDIM step ``t -> s`` (``s = -1``: clean end) given ``x0_hat``."""
    ab_t = float(schedule.alphas_cumprod[t])
    ab_s = float(schedule.alphas_cumprod[s]) if s >= 0 else 1.0
    sigma = ddim_sigma(schedule, t, s, eta)
    eps = (x_t - ab_t**0.5 * x0) / (1 - ab_t) ** 0.5
    mean = ab_s**0.5 * x0 + max(1 - ab_s - sigma**2, 0.0) ** 0.5 * eps
    return mean, sigma


def _half_log_snr(ab: float) -> float:
    return 0.5 * float(np.log(ab / (1 - ab)))


def dpm_solver_mean(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: int,
    s: int,
    x0s: list[torch.Tensor],
    hs: list[float],
) -> torch.Tensor:
    """DPM-Solver++(2M) step ``t -> s`` in x0 space (Lu et al. 2022).

    ``x0s`` holds the previous and current ``x0_hat`` (one at the first step), ``hs`` the previous
    log-SNR step sizes (appended to). First order at the first step and into the clean end.
    """
    if s < 0:
        return x0s[-1]
    ab_t = float(schedule.alphas_cumprod[t])
    ab_s = float(schedule.alphas_cumprod[s])
    h = _half_log_snr(ab_s) - _half_log_snr(ab_t)
    d = x0s[-1]
    if len(x0s) > 1:
        r = hs[-1] / h
        d = (1 + 1 / (2 * r)) * x0s[-1] - 1 / (2 * r) * x0s[-2]
    hs.append(h)
    return ((1 - ab_s) / (1 - ab_t)) ** 0.5 * x_t - ab_s**0.5 * float(np.expm1(-h)) * d


class Stepper:
    """One sampler's reverse update ``t -> s``, chosen once per run from :data:`STEPPERS`.

    Subclasses set the timestep grid, the SD of the noise a step adds (:meth:`noise_sd`) and the
    update itself (:meth:`step`, which returns the mean of ``x_s`` and that SD). Per-run state
    (e.g. a multistep history) comes from :meth:`new_state` and is passed back to every step.
    """

    def __init__(self, schedule: NoiseSchedule, eta: float = 1.0):
        self.schedule, self.eta = schedule, eta

    def grid(self, steps: int) -> list[int]:
        """Descending timesteps of a ``steps``-step run (:func:`timestep_grid`)."""
        return timestep_grid(self.schedule.timesteps, steps)

    def new_state(self) -> object:
        """Fresh per-run state (none by default)."""
        return None

    def noise_sd(self, t: int, s: int) -> float:
        """SD of the noise the step ``t -> s`` adds."""
        return 0.0

    def step(
        self, x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, s: int, state: object
    ) -> tuple[torch.Tensor, float]:
        """Mean of ``x_s`` given ``x0_hat`` and the SD of the noise to add to it."""
        raise NotImplementedError

    def x0_coef(self, t: int, s: int, state: object) -> float:
        """Coefficient of ``x0_hat`` in the mean of the next :meth:`step` (before it runs)."""
        raise NotImplementedError

    def x0_coefs(self, grid: list[int]) -> list[float]:
        """``|c1|`` of every step of a run on ``grid`` (they do not depend on the samples)."""
        state, coefs = self.new_state(), []
        for t, s in zip(grid, [*grid[1:], -1], strict=True):
            coefs.append(abs(self.x0_coef(t, s, state)))
            self.step(torch.zeros(1), torch.zeros(1), t, s, state)
        return coefs


class DDPMStepper(Stepper):
    """Ancestral step ``x_{t-1} = c1_t x0_hat + c2_t x_t + sqrt(beta~_t) z`` on every timestep."""

    def grid(self, steps: int) -> list[int]:
        """All ``T`` timesteps, descending (``steps`` is ignored)."""
        return list(range(self.schedule.timesteps - 1, -1, -1))

    def noise_sd(self, t: int, s: int) -> float:
        """``sqrt(beta~_t)``, the posterior SD (0 at ``t = 0``)."""
        return float(self.schedule.posterior_variance[t]) ** 0.5

    def step(self, x_t, x0_hat, t, s, state):
        """Posterior mean of ``q(x_{t-1} | x_t, x0_hat)`` and its SD (:func:`ddpm_mean_std`)."""
        return ddpm_mean_std(self.schedule, x_t, x0_hat, t)

    def x0_coef(self, t, s, state):
        """``c1_t = sqrt(ab_{t-1}) beta_t / (1 - ab_t)``."""
        return float(self.schedule.posterior_mean_coef1[t])


class DDIMStepper(Stepper):
    """``x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma z``."""

    def noise_sd(self, t: int, s: int) -> float:
        """``eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)`` (:func:`ddim_sigma`)."""
        return ddim_sigma(self.schedule, t, s, self.eta)

    def step(self, x_t, x0_hat, t, s, state):
        """DDIM mean with ``eps_hat`` recomputed from ``x0_hat``, and ``sigma``."""
        return ddim_mean_std(self.schedule, x_t, x0_hat, t, s, self.eta)

    def x0_coef(self, t, s, state):
        """``sqrt(ab_s) - sqrt(1 - ab_s - sigma^2) sqrt(ab_t / (1 - ab_t))``."""
        ab_t = float(self.schedule.alphas_cumprod[t])
        ab_s = float(self.schedule.alphas_cumprod[s]) if s >= 0 else 1.0
        c = max(1 - ab_s - self.noise_sd(t, s) ** 2, 0.0) ** 0.5
        return ab_s**0.5 - c * (ab_t / (1 - ab_t)) ** 0.5


class DPMSolverStepper(Stepper):
    """Deterministic DPM-Solver++(2M) in x0 space (:func:`dpm_solver_mean`); adds no noise."""

    def grid(self, steps: int) -> list[int]:
        """Uniform in log-SNR, ``T - 1`` down to 0 (:func:`logsnr_grid`)."""
        return logsnr_grid(self.schedule, steps)

    def new_state(self) -> tuple[list[torch.Tensor], list[float]]:
        """``(x0s, hs)``: the last two ``x0_hat`` and the log-SNR step sizes so far."""
        return [], []

    def step(self, x_t, x0_hat, t, s, state):
        """Multistep mean (first order at the first step and into the clean end), SD 0."""
        x0s, hs = state
        x0s[:] = [*x0s[-1:], x0_hat]
        return dpm_solver_mean(self.schedule, x_t, t, s, x0s, hs), 0.0

    def x0_coef(self, t, s, state):
        """``-sqrt(ab_s) expm1(-h)``, times ``1 + 1/(2r)`` at second order; 1 into the clean
        end."""
        if s < 0:
            return 1.0
        x0s, hs = state
        ab_s = float(self.schedule.alphas_cumprod[s])
        h = _half_log_snr(ab_s) - _half_log_snr(float(self.schedule.alphas_cumprod[t]))
        order2 = 1 + h / (2 * hs[-1]) if x0s else 1.0
        return -(ab_s**0.5) * float(np.expm1(-h)) * order2


STEPPERS: dict[str, type[Stepper]] = {
    "ddpm": DDPMStepper,
    "ddim": DDIMStepper,
    "dpm_solver++": DPMSolverStepper,
}
SAMPLERS = tuple(STEPPERS)


def guided_steps(coefs: list[float], skip_share: float) -> list[bool]:
    """Which steps to guide: all but the longest run of first (noisiest) steps whose ``|c1|``
    sum to at most ``skip_share`` of the run's total (the share of a constant shift's move); 0
    guides every step."""
    if skip_share <= 0:
        return [True] * len(coefs)
    budget, spent, skip = skip_share * sum(coefs), 0.0, 0
    for c in coefs:
        if spent + c > budget:
            break
        spent, skip = spent + c, skip + 1
    return [i >= skip for i in range(len(coefs))]


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


def _diagnostics(i: int, t: int, sigma_t: float, shift, x0, coef: float) -> dict:
    """One step's row: shift_rms, and mean_move = ``coef * shift_rms`` against ``sigma_t``."""
    shift_rms = 0.0 if shift is None else _rms(shift)
    move = abs(coef) * shift_rms
    return {"step": i, "t": t, "sigma": sigma_t, "shift_rms": shift_rms, "x0_rms": _rms(x0),
            "mean_move": move, "mean_move_ratio": move / sigma_t}  # fmt: skip


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
) -> torch.Tensor:
    """Draw ``(B, seq_len, n_features)`` samples of classes ``y`` (runs on ``y``'s device).

    ``model(x, t, y)`` must be in eval mode and expose ``n_classes`` (its null label). Noise comes
    from ``generator`` (drawn on its device, then moved). If ``diagnostics`` is a list, one dict
    per step is appended: step, t, sigma, shift_rms (0 without guidance), x0_rms (of the model's
    ``x0_hat``, before the shift), mean_move (``|c1| * shift_rms``, the RMS move of the step mean
    caused by guidance) and mean_move_ratio (mean_move / sigma). ``guide_skip_share`` leaves the
    guidance out of the first steps that together move the mean by at most that share of the
    run's summed ``|c1|`` (:func:`guided_steps`; 0 guides every step).
    """
    if sampler not in STEPPERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    stepper = STEPPERS[sampler](schedule, eta)
    grid, state = stepper.grid(steps), stepper.new_state()
    guided = [False] * len(grid)
    if guidance is not None:
        guided = guided_steps(stepper.x0_coefs(grid), guide_skip_share)
    x = _randn((len(y), seq_len, n_features), generator, y.device)
    for i, t in enumerate(grid):
        s = grid[i + 1] if i + 1 < len(grid) else -1
        x0 = _predict_x0(model, schedule, x, t, y, cfg_scale, clip_x0)
        _require_finite(x0, "x0_hat (denoiser output)", i, t)
        noise_sd = stepper.noise_sd(t, s)
        sigma_t = noise_sd if noise_sd > 0 else float(schedule.sqrt_one_minus_alphas_cumprod[t])
        coef = 0.0 if guidance is None else stepper.x0_coef(t, s, state)
        shift = _guide(guidance, x0, x, y, t, sigma_t, i) if guided[i] else None
        if diagnostics is not None:
            diagnostics.append(_diagnostics(i, t, sigma_t, shift, x0, coef))
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
            )  # fmt: skip
        except FloatingPointError as err:
            raise FloatingPointError(f"batch {b}, {err}") from err
        chunks.append(x.float().cpu().numpy())
        diagnostics.extend({"batch": b, **d} for d in steps_diag)
    x = np.concatenate(chunks) if chunks else np.zeros((0, seq_len, n_features), np.float32)
    return x, diagnostics
