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

import json
import time

import numpy as np
import torch
from sampler_fidelity import load_pair, pair_arguments, sd_ratios

from tardiff.diffusion.samplers import generate
from tardiff.diffusion.schedule import NoiseSchedule
from tardiff.diffusion.train import train_diffusion
from tardiff.evaluate.quality.fidelity import discriminative_score
from tardiff.settings import DiffusionSettings, FidelitySettings, GenerationSettings


def main() -> None:
    parser = pair_arguments(__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs="+", default=["{}"], help="JSON diffusion overrides")
    args = parser.parse_args()
    config, _, real, y = load_pair(args)
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
