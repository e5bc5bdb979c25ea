"""Guidance-scale sweep (paper Fig. 3, left): influence, saturation and step size against w.

Needs the classifier, influence and diffusion stages of one dataset x task, as the workflow run of
``--config`` wrote them (under the config's ``results_dir``, ``results/`` for the default config;
paths from :class:`tardiff.layout.Layout`). Generates ``--n`` samples per scale with the config's
generation settings (train class ratio), w over ``--values`` points from -``--span``·w* to
+``--span``·w* (w* = the median |scale| of the method's grid in the config), and prints per w:
the mean sample influence G·∇φℓ by class and over all samples; per class the share of saturated
samples (the guidance classifier confidently right, |σ(f) − y| < 1e-3, where ∇φℓ and so the
influence vanish) and the mean margin (2y − 1)·f of the classifier's logit f; the mean
move of the step mean caused by guidance over the step's noise SD (``mean_move_ratio``); and
the samples' SD and max |x| in normalised z-units (bounded samples).
Outputs go to ``{results_dir}/{dataset}/{task}/sweep/{method}/w{w}/``.

    python benchmarks/guidance_sweep.py --config config/config.yaml --dataset D --task T
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from tardiff.config import load_config
from tardiff.evaluate.downstream.sets import load_draw
from tardiff.generate import run_generation_stage
from tardiff.layout import Layout, SyntheticFiles
from tardiff.models.train_classifier import checkpoint_transform, load_classifier
from tardiff.runtime import setup_logging
from tardiff.settings import GenerationSettings


def sweep_files(layout: Layout, dataset: str, task: str, method: str, w: float, seed: int):
    """The generation outputs of one scale: ``<task>/sweep/<method>/w<w>/seed<seed>.*``."""
    folder = f"{layout.task_dir(dataset, task)}/sweep/{method}/w{w:+.4g}"
    names = (f"seed{seed}.parquet", f"seed{seed}.json", f"seed{seed}_diagnostics.csv")
    return SyntheticFiles(*(f"{folder}/{name}" for name in names))


@torch.no_grad()
def saturation(classifier, transform, files: SyntheticFiles, task: str, seq_len: int):
    """Per class: share of samples with |σ(f) − y| < 1e-3 and the mean margin (2y − 1)·f; and
    the samples' SD and max |x| (normalised z-units, all elements)."""
    draw = load_draw(files.samples, ("sweep", 0.0, 0), transform, task, seq_len)
    logits = classifier(torch.as_tensor(draw.x)).reshape(-1).numpy()
    error = np.abs(1 / (1 + np.exp(-logits)) - draw.y)
    margin = (2 * draw.y - 1) * logits
    per_class = {c: (float(np.mean(error[draw.y == c] < 1e-3)), float(np.mean(margin[draw.y == c])))
                 for c in (0, 1) if (draw.y == c).any()}  # fmt: skip
    return per_class, float(draw.x.std()), float(np.abs(draw.x).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--method", default="tardiff", choices=["tardiff", "classifier_guidance"])
    parser.add_argument("--n", type=int, default=256, help="samples per scale")
    parser.add_argument("--values", type=int, default=9, help="number of scales")
    parser.add_argument("--span", type=float, default=4.0, help="w from -span*w* to +span*w*")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    setup_logging()
    config = load_config(args.config)
    layout = Layout.from_config(config)
    settings = GenerationSettings.from_config(config["generation"])
    w_star = float(np.median(np.abs(settings.scales.of(args.method))))
    classifier, ckpt = load_classifier(layout.classifier(args.dataset, args.task).model)
    transform = checkpoint_transform(ckpt)
    seq_len = config["datasets"][args.dataset]["hours"] * 60
    seq_len //= config["datasets"][args.dataset]["resolution_minutes"]
    rows = []
    for w in np.linspace(-args.span * w_star, args.span * w_star, args.values):
        files = sweep_files(layout, args.dataset, args.task, args.method, w, args.seed)
        (info,) = run_generation_stage(
            **layout.generation_inputs(args.dataset, args.task),
            task=args.task,
            method=args.method,
            scale=float(w),
            seeds=[args.seed],
            outs=[files],
            settings=dataclasses.replace(settings, n_samples=args.n),
            device=config["device"],
        )
        sat, sd, max_abs = saturation(classifier, transform, files, args.task, seq_len)
        rows.append((w, info["mean_sample_influence"], sat, info["mean_move_ratio"], sd, max_abs))

    print(f"{args.dataset}/{args.task} {args.method}, n={args.n} per scale, w*={w_star:g}, "
          f"normalize {settings.normalize}, {settings.sampler}-{settings.steps}")  # fmt: skip
    print("| w | influence y=0 | influence y=1 | influence all | saturated y=0 | saturated y=1 "
          "| margin y=0 | margin y=1 | mean move / sigma | SD | max abs x |")  # fmt: skip
    print("|---" * 11 + "|")
    for w, infl, sat, move, sd, max_abs in rows:
        cells = [infl.get("0"), infl.get("1"), infl["all"]]
        cells += [sat.get(c, (None, None))[0] for c in (0, 1)]
        cells += [sat.get(c, (None, None))[1] for c in (0, 1)]
        text = " | ".join("-" if v is None else f"{v:.4g}" for v in [*cells, move, sd, max_abs])
        print(f"| {w:.4g} | {text} |")


if __name__ == "__main__":
    main()
