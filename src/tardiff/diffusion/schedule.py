"""Noise schedules and the Gaussian forward/posterior algebra of DDPM.

Notation (index ``t`` in ``0 .. T-1``): ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps`` with
``ab_t = prod_{s<=t} (1 - beta_s)``. The denoiser predicts either ``eps`` or
``v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0`` (Salimans & Ho); :meth:`NoiseSchedule.split_output`
turns either into the pair ``(x0_hat, eps_hat)``.

All tables are float64 and are cast to the dtype/device of the tensor they are applied to.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from tardiff.settings import DiffusionSettings

PREDICTIONS = ("eps", "v")
Timestep = torch.Tensor | int  # (B,) long tensor, or one int for the whole batch


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) cosine schedule: ``ab(t) ∝ cos²((t/T + s)/(1 + s) · π/2)``."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def linear_betas(timesteps: int) -> torch.Tensor:
    """Ho et al. (2020) linear schedule, rescaled so any ``T`` spans the same noise range."""
    scale = 1000 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)


#: diffusion.schedule -> betas (the schema lists the same names; a test checks they agree)
BETAS = {"cosine": cosine_betas, "linear": linear_betas}


class NoiseSchedule:
    """Diffusion tables for ``T`` steps and the model's prediction type (``eps`` or ``v``)."""

    def __init__(self, betas: torch.Tensor, prediction: str = "eps"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be a 1-D tensor with values in (0, 1)")
        self.prediction = prediction
        self.betas = betas
        self.alphas = 1 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, 0)
        self.alphas_cumprod_prev = torch.cat([betas.new_ones(1), self.alphas_cumprod[:-1]])
        ab, ab_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        self.sqrt_alphas_cumprod = ab.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1 - ab).sqrt()
        self.posterior_variance = betas * (1 - ab_prev) / (1 - ab)
        self.posterior_mean_coef1 = betas * ab_prev.sqrt() / (1 - ab)
        self.posterior_mean_coef2 = (1 - ab_prev) * self.alphas.sqrt() / (1 - ab)

    @classmethod
    def from_settings(cls, settings: DiffusionSettings) -> NoiseSchedule:
        """Build from the diffusion settings (timesteps, schedule, prediction)."""
        return cls(BETAS[settings.schedule](settings.timesteps), settings.prediction)

    @property
    def timesteps(self) -> int:
        """Number of diffusion steps ``T``."""
        return len(self.betas)

    def at(self, table: torch.Tensor, t: Timestep, like: torch.Tensor) -> torch.Tensor | float:
        """``table[t]`` shaped ``(B, 1, 1)`` in ``like``'s dtype and device; a float for int ``t``.

        Samplers pass an int (one timestep for the whole batch), which avoids device syncs.
        """
        if isinstance(t, Integral):
            return float(table[t])
        values = table[t.cpu()].to(device=like.device, dtype=like.dtype)
        return values.reshape(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: Timestep, noise: torch.Tensor) -> torch.Tensor:
        """Draw ``x_t`` given ``x0`` and standard normal ``noise``."""
        return (
            self.at(self.sqrt_alphas_cumprod, t, x0) * x0
            + self.at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    def target(self, x0: torch.Tensor, t: Timestep, noise: torch.Tensor) -> torch.Tensor:
        """Regression target of the denoiser: ``eps`` or ``v``."""
        if self.prediction == "eps":
            return noise
        a = self.at(self.sqrt_alphas_cumprod, t, x0)
        b = self.at(self.sqrt_one_minus_alphas_cumprod, t, x0)
        return a * noise - b * x0

    def split_output(
        self, x_t: torch.Tensor, t: Timestep, output: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0_hat, eps_hat)`` from the model output (eps- or v-prediction)."""
        a = self.at(self.sqrt_alphas_cumprod, t, x_t)
        b = self.at(self.sqrt_one_minus_alphas_cumprod, t, x_t)
        if self.prediction == "eps":
            return (x_t - b * output) / a, output
        return a * x_t - b * output, b * x_t + a * output

    def eps_from_x0(self, x_t: torch.Tensor, t: Timestep, x0: torch.Tensor) -> torch.Tensor:
        """Noise consistent with ``x_t`` and ``x0``: ``(x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)``."""
        a = self.at(self.sqrt_alphas_cumprod, t, x_t)
        b = self.at(self.sqrt_one_minus_alphas_cumprod, t, x_t)
        return (x_t - a * x0) / b

    def posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: Timestep
    ) -> tuple[torch.Tensor, torch.Tensor | float]:
        """Mean and variance of ``q(x_{t-1} | x_t, x0)``; variance is 0 at ``t = 0``."""
        mean = (
            self.at(self.posterior_mean_coef1, t, x_t) * x0
            + self.at(self.posterior_mean_coef2, t, x_t) * x_t
        )
        return mean, self.at(self.posterior_variance, t, x_t)


def timestep_grid(timesteps: int, steps: int) -> list[int]:
    """Descending timesteps of a ``steps``-step sampler; always starts at ``timesteps - 1``."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in 1..{timesteps}, got {steps}")
    return [round((steps - j) * timesteps / steps) - 1 for j in range(steps)]


#: The log-SNR grid spans the half log-SNR λ = log(α_t / σ_t) where the signal of z-scored data
#: (SD 1 per feature: α_t · 1) is between 1/``SNR_BOUND`` and ``SNR_BOUND`` times the noise σ_t,
#: i.e. λ ∈ [-ln 50, ln 50] ≈ [-3.9, 3.9] (clipped to the schedule's own range). Below it the
#: data are under 2 % of the noise (x_t is the N(0, I) the run starts from, to within that); above
#: it the noise is under 2 % of the data's SD and the jump into the clean end removes it. The
#: cosine schedule's T - 1 = 999 has λ = -9.9 (its last β clamped to 0.999): a grid from there
#: spent 7 of 20 evaluations at t ≥ 969, where nothing of the data is left
#: (``benchmarks/sampler_bias.py``).
SNR_BOUND = 50.0


def logsnr_grid(schedule: NoiseSchedule, steps: int, bound: float = SNR_BOUND) -> list[int]:
    """Descending timesteps nearest to ``steps`` points uniform in half log-SNR over
    [-ln ``bound``, ln ``bound``] (:data:`SNR_BOUND`) within the schedule's range, duplicates
    merged (so at most ``steps`` of them)."""
    timesteps = schedule.timesteps
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be in 1..{timesteps}, got {steps}")
    ab = schedule.alphas_cumprod.double().numpy()
    lam = 0.5 * np.log(ab / (1 - ab))
    edge = float(np.log(bound))
    targets = np.linspace(max(lam[-1], -edge), min(lam[0], edge), steps)
    nearest = np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)
    return sorted({int(t) for t in nearest}, reverse=True)
