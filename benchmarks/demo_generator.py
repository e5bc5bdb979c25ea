"""Demo denoiser recipes: train with config overrides, then SD ratio and discriminator AUROC.

Trains the diffusion model of one dataset x task on its real train split (the cohort a finished
run of ``--config`` extracted) once per ``--variant`` (a JSON object of ``diffusion`` overrides,
``{}`` = the config as is), draws ``conditional`` samples at the train labels with the config's
sampler and with DDIM-20 (eta 1), and prints per variant: training seconds, the mean loss of the
last 200 steps, and per sampler the per-(class, feature) SD ratio to the real grids (min and
median; :func:`sampler_fidelity.sd_ratios`) and the fidelity stage's discriminator AUROC.

    python benchmarks/demo_generator.py --variant '{}' '{"base_channels": 48}' [--pair D/T]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sampler_fidelity import sd_ratios

from tardiff.config import load_config
from tardiff.data import prepare
from tardiff.diffusion.samplers import generate
from tardiff.diffusion.schedule import NoiseSchedule
from tardiff.diffusion.train import train_diffusion
from tardiff.evaluate.fidelity import discriminative_score
from tardiff.layout import Layout
from tardiff.settings import DiffusionSettings, FidelitySettings, GenerationSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--results", default=None, help="a finished run (default: the config's)")
    parser.add_argument("--pair", default="mimic3_demo/mortality", help="dataset/task")
    parser.add_argument("--variant", nargs="+", default=["{}"], help="JSON diffusion overrides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = load_config(args.config)
    if args.results:
        config["results_dir"] = args.results
    dataset, task = args.pair.split("/")
    cohort = Layout.from_config(config).cohort(dataset)
    prepared = prepare(cohort.stays, cohort.timeseries, task, splits=("train",))
    real, y = prepared.x["train"], prepared.y["train"]
    labels = np.random.default_rng(args.seed).permutation(y)
    fidelity = FidelitySettings.from_config(config["fidelity"])
    gen = GenerationSettings.from_config(config["generation"])
    samplers = [(gen.sampler, gen.steps, gen.eta), ("ddim", 20, 1.0)]
    cpu = torch.device("cpu")
    print(f"{args.pair}: {len(y)} train series ({real.shape[1]} x {real.shape[2]}), "
          f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")  # fmt: skip
    print()
    head = ["variant", "train s", "loss (last 200)"]
    head += [f"{s}-{k} {what}" for s, k, _ in samplers for what in ("SD min / median", "disc")]
    print("| " + " | ".join(head) + " |")
    print("|---" * len(head) + "|")
    for text in args.variant:
        settings = DiffusionSettings.from_config({**config["diffusion"], **json.loads(text)})
        start = time.perf_counter()
        model, history = train_diffusion(real, y, settings, "cpu", args.seed)
        cells = [text, f"{time.perf_counter() - start:.0f}"]
        cells.append(f"{np.mean([loss for _, loss in history[-200:]]):.4f}")
        schedule = NoiseSchedule.from_settings(settings)
        for sampler, steps, eta in samplers:
            x, _ = generate(
                model, schedule, labels, real.shape[1], real.shape[2], 256, sampler=sampler,
                steps=steps, eta=eta, seed=args.seed, progress=False,
            )  # fmt: skip
            ratio = sd_ratios(real, y, x, labels)
            disc = discriminative_score(
                real, x, fidelity.discriminator, fidelity.runs, args.seed, device=cpu
            )["disc_auroc"]
            cells += [f"{ratio.min():.3f} / {np.median(ratio):.3f}", f"{disc.mean:.3f}"]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
