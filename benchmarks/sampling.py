"""Sampling cost: samples/s of DDPM-1000, DDIM-50, DDIM-20 and the config's sampler, unguided vs
influence-guided.

The models have the sizes of ``--config`` (default ``config/config.yaml``): its 1-D U-Net
(``diffusion`` base channels, mults, res blocks) on ``--seq-len`` x ``--features`` inputs,
trained for a few steps on smooth random series so that sampling stays in range, and a random
GRU guidance classifier (``classifier.hidden``) with a random unit-norm G. Guidance is TarDiff
with the config's settings (finite-difference J and its ``fd_eps``, evaluated on x0_hat, the
config's ``normalize``, ``preserve``, ``shift_schedule`` and ``guide_skip_share``). Prints, in
one run:

- seconds of one guidance call on a batch (best of ``--term-repeat``) for the three J
  implementations (finite difference, double-backprop reference, jvp) and classifier guidance,
  with the GRU recurrence each runs (fused nn.GRU or unrolled plain ops);
- samples/s of unguided vs FD-guided sampling per sampler at equal steps (best of ``--repeat``
  runs each, the two alternating), and the double-backprop reference with the config's sampler.

    python benchmarks/sampling.py [--n 256] [--batch 64] [--skip-ddpm] [--repeat 2]
        [--seq-len 288 --features 3] [--config-sampler-only]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from tardiff.config import load_config
from tardiff.diffusion.samplers import generate
from tardiff.diffusion.schedule import NoiseSchedule
from tardiff.diffusion.train import train_diffusion
from tardiff.guidance.hook import REFERENCE_SCALED, Guidance
from tardiff.guidance.terms import RNN_PATHS
from tardiff.models.classifier import build_classifier
from tardiff.settings import DiffusionSettings, GenerationSettings


def _models(args, config):
    """Denoiser briefly trained on smooth random series (an untrained one diverges), GRU, G."""
    rng = np.random.default_rng(0)
    walk = rng.standard_normal((512, args.seq_len, args.features)).cumsum(axis=1)
    x = ((walk - walk.mean()) / walk.std()).astype(np.float32)
    settings = dataclasses.replace(
        DiffusionSettings.from_config(config["diffusion"]), timesteps=args.timesteps,
        train_steps=args.train_steps, warmup_steps=10, batch_size=64,
    )  # fmt: skip
    model, _ = train_diffusion(x, rng.integers(0, 2, len(x)), settings, "cpu", seed=0)
    model.requires_grad_(False)
    torch.manual_seed(0)
    c = config["classifier"]
    arch = args.arch or c["arch"]
    classifier = build_classifier(arch, args.features, c["hidden"], c["layers"], 0.1).eval()
    G = torch.randn(sum(p.numel() for p in classifier.parameters()))
    schedule = NoiseSchedule.from_settings(settings)
    return model, schedule, classifier, G / G.norm()


def _seconds(model, schedule, labels, args, sampler, steps, guidance) -> float:
    """Seconds of one sampling run of ``labels``."""
    start = time.perf_counter()
    generate(
        model, schedule, labels, args.seq_len, args.features, batch_size=args.batch,
        sampler=sampler, steps=steps, eta=1.0, guidance=guidance, seed=0, progress=False,
        guide_skip_share=args.guide_skip_share, shift_schedule=args.shift_schedule,
        shift_cutoff=args.shift_cutoff,
    )  # fmt: skip
    return time.perf_counter() - start


def _rates(model, schedule, labels, args, sampler, steps, hooks) -> list[float]:
    """Samples per second with each of ``hooks`` (None: unguided), best of ``args.repeat`` runs;
    the runs alternate between the hooks, so a busy spell on the (shared) machine slows all."""
    best = [float("inf")] * len(hooks)
    for _ in range(args.repeat):
        for k, hook in enumerate(hooks):
            secs = _seconds(model, schedule, labels, args, sampler, steps, hook)
            best[k] = min(best[k], secs)
    return [len(labels) / b for b in best]


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
    parser.add_argument("--config", default="config/config.yaml", help="model sizes, sampler")
    parser.add_argument("--arch", choices=["gru", "tcn"], help="classifier (default: config's)")
    parser.add_argument("--guide-skip-share", type=float, help="default: the config's")
    parser.add_argument("--n", type=int, default=256, help="samples per setting")
    parser.add_argument("--batch", type=int, help="default: the config's generation.batch_size")
    parser.add_argument("--seq-len", type=int, default=24)
    parser.add_argument("--features", type=int, default=7)
    parser.add_argument("--timesteps", type=int, default=1000)
    parser.add_argument("--train-steps", type=int, default=150, help="denoiser warm-up training")
    parser.add_argument("--repeat", type=int, default=1, help="sampling runs per setting (best)")
    parser.add_argument("--term-repeat", type=int, default=5, help="timed calls per J (best)")
    parser.add_argument("--skip-ddpm", action="store_true", help="leave out DDPM-1000")
    parser.add_argument("--config-sampler-only", action="store_true",
                        help="time the config's sampler only (no DDPM / DDIM rows)")  # fmt: skip
    args = parser.parse_args()

    config = load_config(args.config)
    gen = GenerationSettings.from_config(config["generation"])
    if args.guide_skip_share is None:
        args.guide_skip_share = gen.guide_skip_share
    if args.batch is None:
        args.batch = gen.batch_size
    args.shift_schedule, args.shift_cutoff = gen.shift_schedule, gen.shift_cutoff
    model, schedule, classifier, G = _models(args, config)
    labels = np.random.default_rng(0).permutation(np.arange(args.n) % 2)
    # normalize: reference / capped need a reference scale; a random GRU has no real data, so
    # its RMS of J on a random batch stands in (the cost is the same)
    ref = torch.randn(64, args.seq_len, args.features), torch.as_tensor(labels[:64])
    fd = Guidance("tardiff", classifier, G, 0.1, normalize=gen.normalize, fd_eps=gen.fd_eps,
                  reference=ref if gen.normalize in REFERENCE_SCALED else None,
                  preserve=gen.preserve)  # fmt: skip
    hooks = {
        "finite_difference": fd,
        "double_backprop": Guidance("tardiff", classifier, G, 0.1, jacobian="double_backprop"),
        "jvp": Guidance("tardiff", classifier, G, 0.1, jacobian="jvp"),
        "classifier": Guidance("classifier", classifier, None, 0.1),
    }
    settings = [("ddim", 50), ("ddim", 20), (gen.sampler, gen.steps)]
    if args.config_sampler_only:
        settings = settings[-1:]
    elif not args.skip_ddpm:
        settings.insert(0, ("ddpm", args.timesteps))
    threads = torch.get_num_threads()
    d = config["diffusion"]
    print(f"torch {torch.__version__}, {threads} threads, n={args.n}, batch={args.batch}, "
          f"{args.seq_len} x {args.features}, U-Net base {d['base_channels']} mults "
          f"{d['channel_mults']} x {d['num_res_blocks']} res blocks, "
          f"{args.arch or config['classifier']['arch']} classifier hidden "
          f"{config['classifier']['hidden']}, normalize {gen.normalize}, "
          f"preserve {gen.preserve}, shift_schedule {gen.shift_schedule}, "
          f"guide_skip_share {args.guide_skip_share:g}")  # fmt: skip
    one_batch = min(args.batch, args.n)  # the batch a run of n samples actually takes
    x = torch.randn(one_batch, args.seq_len, args.features)
    y = torch.as_tensor(labels[:one_batch])
    secs = {k: _term_seconds(h, x, y, args.term_repeat) for k, h in hooks.items()}
    paths = {**RNN_PATHS, "classifier": "fused"}
    print(f"guidance call on one batch of {one_batch} (GRU path, where the classifier is a GRU; "
          f"best of {args.term_repeat}):")  # fmt: skip
    for k, s in secs.items():
        print(f"  {k:<18}{s * 1e3:>8.1f} ms  ({paths[k]} GRU)")
    db, fd, jv = secs["double_backprop"], secs["finite_difference"], secs["jvp"]
    print(f"  FD is {db / fd:.2f}x faster than double backprop, {jv / fd:.2f}x faster than jvp")
    print(f"{'sampler':<12}{'unguided/s':>12}{'guided FD/s':>13}{'guided/unguided':>17}")
    for sampler, steps in settings:
        plain, guided = _rates(
            model, schedule, labels, args, sampler, steps, [None, hooks["finite_difference"]]
        )
        name = f"{sampler.upper()}-{steps}"
        print(f"{name:<12}{plain:>12.2f}{guided:>13.2f}{plain / guided:>16.2f}x")
    (reference,) = _rates(model, schedule, labels, args, *settings[-1], [hooks["double_backprop"]])
    print(
        f"{name} double-backprop reference: {reference:.2f} samples/s "
        f"({plain / reference:.2f}x unguided time); finite difference is "
        f"{guided / reference:.2f}x faster"
    )


if __name__ == "__main__":
    main()
