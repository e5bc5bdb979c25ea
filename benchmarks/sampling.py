"""Sampling cost: samples/s of DDPM-1000, DDIM-50 and DDIM-20, unguided vs influence-guided.

A demo-size model: 1-D U-Net (base 64 channels, mults 1,2,2, 2 res blocks) on 24 x 7 inputs,
trained for a few steps on smooth random series so that sampling stays in range, and a random
GRU guidance classifier (hidden 64) with a random unit-norm G. Guidance is TarDiff
(finite-difference J, evaluated on x0_hat, RMS-normalised). Also times the double-backprop
reference at DDIM-20 and reports the finite-difference speed-up over it.

    python benchmarks/sampling.py [--n 64] [--batch 64] [--skip-ddpm]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tardiff.diffusion.samplers import generate
from tardiff.diffusion.schedule import NoiseSchedule
from tardiff.diffusion.train import diffusion_settings, train_diffusion
from tardiff.guidance.terms import make_guidance
from tardiff.models.classifier import build_classifier


def _models(args):
    """Denoiser briefly trained on smooth random series (an untrained one diverges), GRU, G."""
    rng = np.random.default_rng(0)
    walk = rng.standard_normal((512, args.seq_len, args.features)).cumsum(axis=1)
    x = ((walk - walk.mean()) / walk.std()).astype(np.float32)
    cfg = {
        "base_channels": 64, "channel_mults": [1, 2, 2], "num_res_blocks": 2,
        "timesteps": args.timesteps, "train_steps": args.train_steps, "warmup_steps": 10,
        "batch_size": 64, "lr": 1e-3, "prediction": "v",
    }  # fmt: skip
    model, _ = train_diffusion(x, rng.integers(0, 2, len(x)), cfg, "cpu", seed=0)
    model.requires_grad_(False)
    torch.manual_seed(0)
    classifier = build_classifier("gru", args.features, 64, 1, 0.1).eval()
    G = torch.randn(sum(p.numel() for p in classifier.parameters()))
    schedule = NoiseSchedule.from_config(diffusion_settings(cfg))
    return model, schedule, classifier, G / G.norm()


def _rate(model, schedule, labels, args, sampler, steps, guidance) -> float:
    """Samples per second, best of ``args.repeat`` runs (the machine may be shared)."""
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        generate(
            model, schedule, labels, args.seq_len, args.features, args.batch, sampler, steps,
            eta=1.0, guidance=guidance, seed=0, progress=False,
        )  # fmt: skip
        best = min(best, time.perf_counter() - start)
    return len(labels) / best


def _term_seconds(hook, x, y, repeat: int) -> float:
    """Seconds of one guidance call on a batch, best of ``repeat``."""
    hook(x, x, y, 0, 1.0)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        hook(x, x, y, 0, 1.0)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="samples per setting")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=24)
    parser.add_argument("--features", type=int, default=7)
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--train-steps", type=int, default=150, help="denoiser warm-up training")
    parser.add_argument("--repeat", type=int, default=1, help="runs per setting (best kept)")
    parser.add_argument("--skip-ddpm", action="store_true", help="leave out DDPM-1000")
    args = parser.parse_args()

    model, schedule, classifier, G = _models(args)
    labels = np.random.default_rng(0).permutation(np.arange(args.n) % 2)
    fd = make_guidance("tardiff", classifier, G, 0.1, jacobian="finite_difference")
    db = make_guidance("tardiff", classifier, G, 0.1, jacobian="double_backprop")
    settings = [("ddim", 50), ("ddim", 20)]
    if not args.skip_ddpm:
        settings.insert(0, ("ddpm", args.timesteps))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, n={args.n}")
    x = torch.randn(args.batch, args.seq_len, args.features)
    y = torch.as_tensor(labels[: args.batch])
    jvp = make_guidance("tardiff", classifier, G, 0.1, jacobian="jvp")
    terms = {k: _term_seconds(h, x, y, 3) for k, h in [("fd", fd), ("db", db), ("jvp", jvp)]}
    print(
        f"J on one batch of {args.batch}: finite difference {terms['fd']:.3f} s, "
        f"double backprop {terms['db']:.3f} s, jvp {terms['jvp']:.3f} s "
        f"(FD {terms['db'] / terms['fd']:.2f}x faster than double backprop)"
    )
    print(f"{'sampler':<12}{'unguided/s':>12}{'guided FD/s':>13}{'guided/unguided':>17}")
    for sampler, steps in settings:
        plain = _rate(model, schedule, labels, args, sampler, steps, None)
        guided = _rate(model, schedule, labels, args, sampler, steps, fd)
        name = f"{sampler.upper()}-{steps}"
        print(f"{name:<12}{plain:>12.2f}{guided:>13.2f}{plain / guided:>16.2f}x")
    reference = _rate(model, schedule, labels, args, "ddim", 20, db)
    print(
        f"DDIM-20 double-backprop reference: {reference:.2f} samples/s; "
        f"finite difference is {guided / reference:.2f}x faster"
    )


if __name__ == "__main__":
    main()
