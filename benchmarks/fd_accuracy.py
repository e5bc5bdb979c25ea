"""Finite-difference J against double backprop on a run's trained guidance classifiers.

For each dataset and task of a finished run, J = ∇x [G · ∇φ ℓ] on real training series, by the
central finite difference along G (``generation.fd_eps``) and by double backprop (the
reference); prints the relative error of the batch and per sample (median, 95th percentile over
samples whose reference J is not vanishing), for several steps:

    python benchmarks/fd_accuracy.py --results results --pairs mimic3_demo/mortality ...
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from tardiff.data import prepare
from tardiff.guidance.influence import load_influence
from tardiff.guidance.terms import double_backprop, finite_difference
from tardiff.layout import Layout
from tardiff.models.train_classifier import load_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default="results", help="results_dir of a finished run")
    parser.add_argument("--pairs", nargs="+", required=True, help="dataset/task of that run")
    parser.add_argument("--eps", nargs="+", type=float, default=[1e-3, 3e-4, 1e-4])
    parser.add_argument("--n", type=int, default=256, help="training series per pair")
    args = parser.parse_args()
    torch.set_num_threads(1)
    layout = Layout(args.results)
    print("| pair | fd_eps | relative error (batch) | per sample: median | 95th percentile |")
    print("|---|---|---|---|---|")
    for pair in args.pairs:
        dataset, task = pair.split("/")
        cohort = layout.cohort(dataset)
        prepared = prepare(cohort.stays, cohort.timeseries, task, splits=("train",))
        model, _ = load_classifier(layout.classifier(dataset, task).model)
        G = load_influence(layout.influence(dataset, task).G, model)["G"]
        x = torch.as_tensor(prepared.x["train"][: args.n])
        y = torch.as_tensor(prepared.y["train"][: args.n])
        ref = double_backprop(model, G, x, y)
        norms = ref.flatten(1).norm(dim=1)
        kept = norms > 1e-3 * norms.median()
        for eps in args.eps:
            fd = finite_difference(model, G, x, y, rel_eps=eps)
            batch = float((fd - ref).norm() / ref.norm())
            per = ((fd - ref).flatten(1).norm(dim=1) / norms.clamp_min(1e-12))[kept].numpy()
            print(f"| {pair} | {eps:g} | {batch:.1e} | {np.median(per):.1e} | "
                  f"{np.quantile(per, 0.95):.1e} |")  # fmt: skip


if __name__ == "__main__":
    main()
