"""The reverse step of each sampler (ancestral DDPM, DDIM, DPM-Solver++(2M)) as a :class:`Stepper`.

A step goes from ``t`` to ``s`` (``s = -1`` means the clean end, ``ab_{-1} = 1``) given the final
``x0_hat``; where needed the noise estimate is recomputed from it, ``eps_hat = (x_t - sqrt(ab_t)
x0_hat) / sqrt(1 - ab_t)``, so both stay consistent. Then noise ``sd z`` with ``z ~ N(0, I)`` is
added (by :func:`tardiff.diffusion.samplers.sample`):

- ``ddpm``: ``x_{t-1} = c1_t x0_hat + c2_t x_t + sqrt(beta~_t) z`` (posterior of ``q``), so a
  shift moves the mean by ``c1_t * shift``, ``c1_t = sqrt(ab_{t-1}) beta_t / (1 - ab_t)``.
- ``ddim``: ``x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma z`` with
  ``sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)``. With ``k = T`` steps and
  ``eta = 1`` this is exactly the ``ddpm`` step.
- ``dpm_solver++``: deterministic 2nd-order multistep update in ``x0`` space (Lu et al. 2022),
  first order at the first and last step; its history is per-run stepper state.

A shift of ``x0_hat`` moves the step mean by ``c1 * shift``, ``c1`` = :meth:`Stepper.x0_coef`,
the coefficient of ``x0_hat`` in the mean (ddpm: ``c1_t``; ddim: ``sqrt(ab_s) - sqrt(1 - ab_s -
sigma^2) sqrt(ab_t / (1 - ab_t))``; dpm_solver++: ``-sqrt(ab_s) expm1(-h)`` times ``1 + 1/(2r)``
at second order, 1 into the clean end; its later effect through the multistep history is not
counted). :func:`guided_steps` leaves guidance out of the steps that carry the smallest share
of the summed ``|c1|`` (times the shift schedule's weight, :func:`shift_weights`).

The ``ddim`` grid has ``k`` steps ``t_j = round((k - j) T / k) - 1``, ``j = 0..k-1``
("trailing" spacing): it starts at ``T - 1`` and ``k = T`` gives every step. The
``dpm_solver++`` grid is uniform in log-SNR over the range where the data's signal is between
1/50 and 50 times the noise (:func:`~tardiff.diffusion.schedule.logsnr_grid`, Lu et al.'s
spacing; points that round to the same timestep are merged, so a run takes at most ``k``
network evaluations). Where it ends matters: the jump into the clean end returns ``x0_hat =
E[x0 | x_t]``, whose spread is below the data's by the noise left at ``t``; from the trailing
DDIM grid's last step (``t = T/k - 1``) that cost 8 % of the SD of a narrow (SD 0.2) Gaussian at
``k = 20``, from the log-SNR grid's (noise 2 % of the signal) 0.5 %
(``benchmarks/sampler_bias.py``).
"""

from __future__ import annotations

import numpy as np
import torch

from tardiff.diffusion.schedule import NoiseSchedule, logsnr_grid, timestep_grid


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
        """Uniform in log-SNR where data and noise are within a factor 50 (:func:`logsnr_grid`)."""
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


def guided_steps(moves: list[float], skip_share: float) -> list[bool]:
    """Which steps to guide: all but the steps with the smallest moves (``|c1|`` times the shift
    schedule's weight; ties: the noisier step first) that together carry at most ``skip_share``
    of the run's total move; 0 guides every step. With the constant schedule these are the first
    (noisiest) steps; with ``noise`` also the last ones, where the weight has faded."""
    if skip_share <= 0:
        return [True] * len(moves)
    budget, spent, guided = skip_share * sum(moves), 0.0, [True] * len(moves)
    for i in sorted(range(len(moves)), key=lambda i: (moves[i], i)):
        if spent + moves[i] > budget:
            break
        spent, guided[i] = spent + moves[i], False
    return guided


#: ``generation.shift_schedule`` options (:func:`shift_weights`)
SHIFT_SCHEDULES = ("constant", "no_final", "cutoff", "noise")


def shift_weights(
    schedule: NoiseSchedule, grid: list[int], mode: str, cutoff: float = 0.0
) -> list[float]:
    """The factor on the guidance shift at each step of ``grid`` (the last step goes into the
    clean end, where no later denoiser call can repair what the shift does to the sample):

    - ``constant``: 1 at every step;
    - ``no_final``: 1, but 0 at the last step;
    - ``cutoff``: 1 where the noise level ``sqrt(1 - ab_t)`` of ``x_t`` is at least ``cutoff``,
      else 0 (the low-noise end of the run is unguided);
    - ``noise``: ``min(1, (1 - ab_t) / sqrt(ab_t))`` (``sigma_t^2 / alpha_t``, the factor that
      turns an x_t-space classifier gradient into an x0-space shift in classifier guidance),
      0 at the last step: the full shift while noise dominates, fading as the noise goes.
    """
    if mode not in SHIFT_SCHEDULES:
        raise ValueError(f"shift schedule must be one of {SHIFT_SCHEDULES}, got {mode!r}")
    weights = []
    for i, t in enumerate(grid):
        ab = float(schedule.alphas_cumprod[t])
        last = i == len(grid) - 1
        if mode == "constant":
            weights.append(1.0)
        elif mode == "no_final":
            weights.append(0.0 if last else 1.0)
        elif mode == "cutoff":
            weights.append(1.0 if (1 - ab) ** 0.5 >= cutoff else 0.0)
        else:
            weights.append(0.0 if last else min(1.0, (1 - ab) / ab**0.5))
    return weights
