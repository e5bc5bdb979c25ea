"""Diffusion-training throughput against torch threads, measured side by side.

Chooses the ``threads:`` of the torch rules: trains the default config's denoiser on random data
shaped like each dataset of a config for a fixed number of steps, once per thread count, each
run in a fresh process (so one run's thread pool cannot affect the next), and prints steps/s and
the speed-up over one thread. Run it on an otherwise idle machine.

    python benchmarks/threads.py [--steps 60] [--threads 1 2] [--extra-steps 288]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, time
import numpy as np, torch
from tardiff.config import load_config
from tardiff.diffusion.train import train_diffusion
from tardiff.settings import DiffusionSettings
threads, steps, seq_len, n_features = map(int, sys.argv[1:5])
torch.set_num_threads(threads)
section = dict(load_config("config/config.yaml")["diffusion"], train_steps=steps, warmup_steps=1)
x = np.random.default_rng(0).standard_normal((512, seq_len, n_features)).astype(np.float32)
y = (np.arange(512) % 10 == 0).astype(np.int64)
start = time.perf_counter()
train_diffusion(x, y, DiffusionSettings.from_config(section), "cpu", 0)
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - start)}))
"""


def shapes(config_path: str) -> dict[str, tuple[int, int]]:
    """Series shape (T, C) of every dataset of a config."""
    from tardiff.config import load_config
    from tardiff.settings import DatasetSettings

    datasets = load_config(config_path)["datasets"]
    entries = {name: DatasetSettings.from_config(e) for name, e in datasets.items()}
    return {
        f"{name} ({e.steps} x {len(e.features)})": (e.steps, len(e.features))
        for name, e in entries.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--config", default="config/config.yaml", help="datasets to mimic")
    parser.add_argument("--extra-steps", type=int, nargs="*", default=[], help="more T (C=3)")
    args = parser.parse_args()
    cases = {**shapes(args.config), **{f"T={t} x 3": (t, 3) for t in args.extra_steps}}
    print("| series | threads | steps/s | speed-up |\n|---|---|---|---|")
    for name, (seq_len, n_features) in cases.items():
        base = None
        for threads in args.threads:
            argv = [str(v) for v in (threads, args.steps, seq_len, n_features)]
            out = subprocess.run(
                [sys.executable, "-c", CHILD, *argv], capture_output=True, text=True, check=True
            )
            rate = json.loads(out.stdout.strip().splitlines()[-1])["steps_per_s"]
            base = base or rate
            print(f"| {name} | {threads} | {rate:.2f} | {rate / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
