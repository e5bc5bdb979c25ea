"""Sampler bias on an exact-Gaussian oracle: sample SD / data SD per sampler x steps.

Data ``x0 ~ N(0, s^2)`` i.i.d. per element has the analytic posterior mean
``E[x0 | x_t] = g_t x_t``, ``g_t = sqrt(ab_t) s^2 / (ab_t s^2 + 1 - ab_t)``, for any noise
schedule. The oracle "denoiser" returns the eps or v prediction consistent with that ``x0_hat``
(computed in float64, returned in the sampler's dtype), so it makes no error of its own: any
shrinkage of the sample SD is the sampler's bias. Samples come from the project's
:func:`tardiff.diffusion.samplers.generate` (float32, one batch, seeded), with the project's
default schedule (cosine, ``T = 1000``, v-prediction unless ``--prediction eps``).

Columns: network evaluations per sample (counted by the oracle), the sample SD ratio
``SD(samples) / s`` (Monte Carlo; standard error about ``0.7 / sqrt(N x 72)``, 0.13 % at
N = 4096 and shape 24 x 3) and the exact SD ratio of the same steppers (the run propagated in
float64 as a linear map of the initial noise and each step's noise, no sampling error), for
``s = 1.0`` and ``s = 0.2``; "meets" is the target of issue 20: the sampled ratio within 3 % of 1
for both ``s`` at <= 12 network evaluations.

    python benchmarks/sampler_bias.py [--n 4096] [--prediction v|eps] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tardiff.diffusion.samplers import generate
from tardiff.diffusion.schedule import BETAS, NoiseSchedule
from tardiff.diffusion.steppers import SAMPLERS, STEPPERS

#: (sampler, eta, steps); eta None: the sampler has no eta (passes the default)
GRID = [
    ("ddpm", None, [None]),  # None: all T timesteps
    ("ddim", 1.0, [10, 20, 50, 100]),
    ("ddim", 0.0, [10, 20, 50, 100]),
    ("dpm_solver++", None, [8, 10, 12, 15, 20, 25]),
]
TARGET_BIAS, TARGET_NFE = 0.03, 12


class GaussianOracle(torch.nn.Module):
    """Exact eps- or v-predictor for data ``x0 ~ N(0, sd^2)`` i.i.d. per element (any label).

    ``rows`` counts the batch rows evaluated (network evaluations summed over samples).
    """

    def __init__(self, schedule: NoiseSchedule, sd: float, n_classes: int = 2):
        super().__init__()
        self.schedule, self.sd, self.n_classes, self.rows = schedule, sd, n_classes, 0

    def gain(self, t: int) -> float:
        """``g_t`` of ``E[x0 | x_t] = g_t x_t``."""
        ab = float(self.schedule.alphas_cumprod[t])
        return ab**0.5 * self.sd**2 / (ab * self.sd**2 + 1 - ab)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        x64 = x.double()
        a = self.schedule.at(self.schedule.sqrt_alphas_cumprod, t, x64)
        b = self.schedule.at(self.schedule.sqrt_one_minus_alphas_cumprod, t, x64)
        x0 = a * self.sd**2 / (a**2 * self.sd**2 + b**2) * x64
        eps = (x64 - a * x0) / b
        out = eps if self.schedule.prediction == "eps" else a * eps - b * x0
        return out.to(x.dtype)


def exact_sd(oracle: GaussianOracle, sampler: str, steps: int, eta: float) -> float:
    """SD of the samplers' output, exactly: every step is linear in ``x_t`` and adds independent
    noise, so ``x`` is held as its coefficients on the standard normals drawn so far (initial
    noise, then each step's noise) and run through the project's own stepper in float64."""
    stepper = STEPPERS[sampler](oracle.schedule, eta)
    grid, state = stepper.grid(steps), stepper.new_state()
    x = torch.ones(1, 1, 1, dtype=torch.float64)
    for i, t in enumerate(grid):
        s = grid[i + 1] if i + 1 < len(grid) else -1
        x, sd = stepper.step(x, oracle.gain(t) * x, t, s, state)
        if sd > 0:
            x = torch.cat([x, x.new_full((1, 1, 1), sd)], dim=-1)
    return float(x.pow(2).sum().sqrt())


def run(schedule, sampler, steps, eta, sd, args) -> tuple[float, float, float]:
    """(network evaluations per sample, sampled SD ratio, exact SD ratio)."""
    oracle = GaussianOracle(schedule, sd)
    labels = np.arange(args.n) % 2
    kwargs = {} if eta is None else {"eta": eta}
    x, _ = generate(
        oracle, schedule, labels, args.seq_len, args.features, batch_size=args.n,
        sampler=sampler, steps=steps, seed=args.seed, progress=False, **kwargs,
    )  # fmt: skip
    exact = exact_sd(oracle, sampler, steps, 1.0 if eta is None else eta)
    return oracle.rows / args.n, float(x.astype(np.float64).std()) / sd, exact / sd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="samples per setting")
    parser.add_argument("--seq-len", type=int, default=24)
    parser.add_argument("--features", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--schedule", default="cosine", choices=sorted(BETAS))
    parser.add_argument("--prediction", default="v", choices=["v", "eps"])
    parser.add_argument("--sds", type=float, nargs="+", default=[1.0, 0.2], help="data SDs s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    schedule = NoiseSchedule(BETAS[args.schedule](args.timesteps), args.prediction)
    listed = {name for name, _, _ in GRID}
    grid = GRID + [(name, None, [10, 20, 50]) for name in SAMPLERS if name not in listed]
    print(
        f"exact-Gaussian oracle, {args.schedule} T={args.timesteps}, "
        f"{args.prediction}-prediction, N={args.n} x ({args.seq_len}, {args.features}), "
        f"seed {args.seed}, torch {torch.__version__}"
    )
    print()
    sds = args.sds
    head = ["sampler", "steps", "η", "NFE/sample"]
    head += [f"SD ratio s={s:g}" for s in sds] + [f"exact s={s:g}" for s in sds]
    head += [f"≤{TARGET_BIAS:.0%} at ≤{TARGET_NFE} NFE"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 4) + [":---:"]) + "|")
    start = time.perf_counter()
    for sampler, eta, steps_list in grid:
        for steps in steps_list:
            k = args.timesteps if steps is None else steps
            rows = [run(schedule, sampler, k, eta, s, args) for s in sds]
            nfe = rows[0][0]
            ok = nfe <= TARGET_NFE and all(abs(r[1] - 1) <= TARGET_BIAS for r in rows)
            cells = [sampler, str(k), "–" if eta is None else f"{eta:g}", f"{nfe:g}"]
            cells += [f"{r[1]:.3f}" for r in rows] + [f"{r[2]:.3f}" for r in rows]
            cells += ["yes" if ok else "no"]
            print("| " + " | ".join(cells) + " |", flush=True)
    print()
    print(f"{time.perf_counter() - start:.0f} s, {torch.get_num_threads()} thread(s)")


if __name__ == "__main__":
    main()
