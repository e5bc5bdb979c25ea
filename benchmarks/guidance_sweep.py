"""Guidance-scale sweep (paper Fig. 3, left): mean sample influence and shift/sigma against w.

Needs the classifier, influence and diffusion stages of one dataset x task, as the workflow run of
``--config`` wrote them (under the config's ``results_dir``, ``results/`` for the default config;
paths from :class:`tardiff.layout.Layout`). Generates ``--n`` samples per scale with the config's
generation settings (train class ratio), w over ``--values`` points from -``--span``·w* to
+``--span``·w* (w* = the median |scale| of the method's grid in the config), and prints w, the
mean sample influence G·∇φℓ (class 0, class 1, all) and the mean shift_rms / sigma.
Outputs go to ``{results_dir}/{dataset}/{task}/sweep/{method}/w{w}/``.

    python benchmarks/guidance_sweep.py --config config/config.yaml --dataset D --task T
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from tardiff.config import load_config
from tardiff.generate import run_generation_stage
from tardiff.layout import Layout, SyntheticFiles
from tardiff.runtime import setup_logging
from tardiff.settings import GenerationSettings


def sweep_files(layout: Layout, dataset: str, task: str, method: str, w: float, seed: int):
    """The generation outputs of one scale: ``<task>/sweep/<method>/w<w>/seed<seed>.*``."""
    folder = f"{layout.task_dir(dataset, task)}/sweep/{method}/w{w:+.4g}"
    names = (f"seed{seed}.parquet", f"seed{seed}.json", f"seed{seed}_diagnostics.csv")
    return SyntheticFiles(*(f"{folder}/{name}" for name in names))


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
    rows = []
    for w in np.linspace(-args.span * w_star, args.span * w_star, args.values):
        info = run_generation_stage(
            **layout.generation_inputs(args.dataset, args.task),
            task=args.task,
            method=args.method,
            scale=float(w),
            seed=args.seed,
            out=sweep_files(layout, args.dataset, args.task, args.method, w, args.seed),
            settings=dataclasses.replace(settings, n_samples=args.n),
            device=config["device"],
        )
        infl = info["mean_sample_influence"]
        rows.append((w, infl.get("0"), infl.get("1"), infl["all"], info["mean_shift_ratio"]))

    print(f"{args.dataset}/{args.task} {args.method}, n={args.n} per scale, w*={w_star:g}")
    print(f"{'w':>10}{'infl y=0':>14}{'infl y=1':>14}{'infl all':>14}{'shift/sigma':>13}")
    for w, i0, i1, ia, ratio in rows:
        cells = "".join(f"{v:>14.4g}" if v is not None else f"{'-':>14}" for v in (i0, i1, ia))
        print(f"{w:>10.4g}{cells}{ratio:>13.4g}")


if __name__ == "__main__":
    main()
