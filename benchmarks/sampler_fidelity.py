"""Sampler x steps on a trained demo model: SD ratio to real, discriminator AUROC, samples/s.

The exact-Gaussian oracle (``benchmarks/sampler_bias.py``) isolates a sampler's own bias; this
script measures what a user gets from a trained denoiser of a finished run (default: the default
config's ``results/``). For each sampler setting it draws ``conditional`` samples (no guidance)
at the real train class counts and compares them with the real imputed training grids of the
same pair, in normalised units:

- **SD ratio**: per class and feature, SD over samples and time steps of synthetic / real;
  the minimum and median over the class x feature cells (issue 8: ``>= 0.9``);
- **disc AUROC**: the fidelity stage's discriminator (``fidelity`` section of the config: GRU,
  runs with their own 80/20 splits), mean over runs; 0.5 is indistinguishable;
- **samples/s** and the reverse steps taken (network evaluations per sample).

    python benchmarks/sampler_fidelity.py [--results results] [--pair mimic3_demo/mortality]
        [--settings ddim:20:1 dpm_solver++:25] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from tardiff.config import load_config
from tardiff.data import prepare
from tardiff.diffusion.samplers import generate
from tardiff.diffusion.train import load_diffusion
from tardiff.evaluate.quality.fidelity import discriminative_score
from tardiff.layout import Layout
from tardiff.settings import FidelitySettings

DEFAULT_SETTINGS = ["ddim:20:1", "ddim:50:1", "ddim:50:0", "dpm_solver++:15", "dpm_solver++:25"]


def parse_setting(text: str) -> tuple[str, int, float]:
    """``sampler:steps[:eta]`` -> (sampler, steps, eta); eta defaults to 1."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise SystemExit(f"--settings: expected sampler:steps[:eta], got {text!r}")
    return parts[0], int(parts[1]), float(parts[2]) if len(parts) == 3 else 1.0


def sd_ratios(real: np.ndarray, y_real: np.ndarray, syn: np.ndarray, y_syn: np.ndarray):
    """(class, feature) grid of SD(synthetic) / SD(real), pooled over samples and steps."""
    return np.array(
        [
            syn[y_syn == c].reshape(-1, syn.shape[-1]).std(0)
            / real[y_real == c].reshape(-1, real.shape[-1]).std(0)
            for c in (0, 1)
        ]
    )


def pair_arguments(description: str) -> argparse.ArgumentParser:
    """The options every demo-model benchmark shares: config, finished run, pair, seed, threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--results", default=None, help="a finished run (default: the config's)")
    parser.add_argument("--pair", default="mimic3_demo/mortality", help="dataset/task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser


def load_pair(args: argparse.Namespace):
    """(config, layout, real train grids, labels) of ``--pair`` in the finished run; sets the
    thread count."""
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    if args.results:
        config["results_dir"] = args.results
    layout = Layout.from_config(config)
    cohort = layout.cohort(args.pair.split("/")[0])
    prepared = prepare(cohort.stays, cohort.timeseries, args.pair.split("/")[1], ("train",))
    return config, layout, prepared.x["train"], prepared.y["train"]


def main() -> None:
    parser = pair_arguments(__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    config, layout, real, y_real = load_pair(args)
    dataset, task = args.pair.split("/")
    model, schedule, _ = load_diffusion(layout.diffusion(dataset, task).model, "cpu")
    fidelity = FidelitySettings.from_config(config["fidelity"])
    labels = np.random.default_rng(args.seed).permutation(y_real)
    print(f"{args.pair}: {len(labels)} samples per setting ({real.shape[1]} x {real.shape[2]}), "
          f"discriminator {fidelity.runs} runs x {fidelity.discriminator.steps} steps, "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")  # fmt: skip
    print()
    print("| sampler | steps | η | steps taken | SD ratio min | SD ratio median | "
          "disc AUROC | samples/s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for text in args.settings:
        sampler, steps, eta = parse_setting(text)
        start = time.perf_counter()
        x, diag = generate(
            model, schedule, labels, real.shape[1], real.shape[2], args.batch, sampler=sampler,
            steps=steps, eta=eta, seed=args.seed, progress=False,
        )  # fmt: skip
        rate = len(labels) / (time.perf_counter() - start)
        taken = sum(d["batch"] == 0 for d in diag)
        ratio = sd_ratios(real, y_real, x, labels)
        disc = discriminative_score(
            real, x, fidelity.discriminator, fidelity.runs, args.seed, device=torch.device("cpu")
        )["disc_auroc"]
        eta_cell = f"{eta:g}" if sampler == "ddim" else "–"
        print(f"| {sampler} | {steps} | {eta_cell} | {taken} | {ratio.min():.3f} | "
              f"{np.median(ratio):.3f} | {disc.mean:.3f} | {rate:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
