"""Evaluation-model training throughput: one by one against the batched ensemble, side by side.

Trains ``--models`` downstream evaluation models per series shape (24 x 7 MIMIC-like, 24 x 3 and 96
x 3 eICU-like) with ``tardiff.evaluate.downstream.ensemble.train_models``, once one by one and once
batched, on training sets like the harness's: real train (2400 stays) and real train plus α·2400
synthetic stays (α cycling through ``ALPHAS``, one seed per round), all rows of one pool of seeded
random series with a learnable label. Prints models/s of both paths, the speed-up and, on 1000
held-out stays, the largest |AUROC difference| and |logit difference| between the two paths' models
(they should agree up to float rounding). The recipe is the schema's default (GRU, hidden 32, 1
layer, batch 128, 600 steps); ``--steps`` and ``--models`` shorten a run. The load average is
printed beside each row: other processes on the cores distort timings.

    python benchmarks/evaluation.py [--models 16] [--steps 600] [--threads 2] [--arch gru]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from tardiff.config import load_config
from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.runtime import adamw
from tardiff.settings import EvaluationModelSettings

SHAPES = [(24, 7), (24, 3), (96, 3)]
N_REAL, N_HELD_OUT = 2400, 1000
ALPHAS = (0.0, 0.2, 0.6, 1.0)


def series(rng: np.random.Generator, n: int, seq_len: int, channels: int, shift: float = 0.0):
    """Random series (N, T, C) and 0/1 labels (~25 % positive) learnable from their trends."""
    x = rng.standard_normal((n, seq_len, channels)).astype(np.float32)
    x += np.linspace(-1, 1, seq_len, dtype=np.float32)[None, :, None] * rng.normal(
        shift, 0.5, (n, 1, channels)
    ).astype(np.float32)
    late = x[:, seq_len // 2 :, 0].mean(1) - x[:, : seq_len // 2, 0].mean(1)
    score = 2.0 * late + 0.5 * x[:, :, -1].mean(1) + 0.5 * rng.standard_normal(n)
    return x, (score > np.quantile(score, 0.75)).astype(np.int64)


def training_sets(n_models: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """Pool rows of each model (real train, then real + α·2400 synthetic) and its seed."""
    members, seeds = [], []
    for k in range(n_models):
        alpha = ALPHAS[k % len(ALPHAS)]
        synthetic = N_REAL + rng.permutation(N_REAL)[: int(alpha * N_REAL)]
        members.append(np.concatenate([np.arange(N_REAL), synthetic]))
        seeds.append(k // len(ALPHAS))
    return members, seeds


def run(n_models: int, settings, batched: bool, data) -> tuple[float, np.ndarray]:
    """(models/s, held-out logits (K, N)) of one path."""
    pool_x, pool_y, members, seeds, held_x = data
    start = time.perf_counter()
    ensemble = train_models(
        pool_x, pool_y, members, seeds, settings, device=torch.device("cpu"), batched=batched
    )
    rate = n_models / (time.perf_counter() - start)
    return rate, ensemble.predict(held_x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=16, help="models per shape")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default 600)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", choices=["gru", "tcn"], default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    section = load_config("config/config.yaml")["evaluation"]["model"]
    section |= {k: v for k, v in (("steps", args.steps), ("arch", args.arch)) if v is not None}
    settings = EvaluationModelSettings.from_config(section)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.models} models per shape, "
          f"{settings}")  # fmt: skip
    adamw([torch.zeros(1, requires_grad=True)], 1e-3)  # first use imports torch._dynamo
    columns = ["series", "one by one (models/s)", "batched (models/s)", "speed-up", "mean AUROC"]
    columns += ["max abs ΔAUROC", "max abs Δlogit", "load avg"]
    print("| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    for seq_len, channels in SHAPES:
        rng = np.random.default_rng(seq_len * 10 + channels)
        real_x, real_y = series(rng, N_REAL + N_HELD_OUT, seq_len, channels)
        synth_x, synth_y = series(rng, N_REAL, seq_len, channels, shift=0.2)
        pool_x = np.concatenate([real_x[:N_REAL], synth_x])
        pool_y = np.concatenate([real_y[:N_REAL], synth_y])
        members, seeds = training_sets(args.models, rng)
        data = (pool_x, pool_y, members, seeds, real_x[N_REAL:])
        single, single_logits = run(args.models, settings, False, data)
        batched, batched_logits = run(args.models, settings, True, data)
        held_y = real_y[N_REAL:]
        auroc = [
            [roc_auc_score(held_y, row) for row in lg] for lg in (single_logits, batched_logits)
        ]
        d_auroc = np.abs(np.subtract(*auroc)).max()
        d_logit = np.abs(single_logits - batched_logits).max()
        print(
            f"| {seq_len} x {channels} | {single:.3f} | {batched:.3f} | {batched / single:.2f}x | "
            f"{np.mean(auroc[1]):.3f} | {d_auroc:.1e} | {d_logit:.1e} | {os.getloadavg()[0]:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
