"""Diffusion-training throughput against torch threads, OpenMP wait policy and CPU contention.

Chooses the ``threads:`` of the torch rules and the wait policy of their OpenMP workers: trains
the default config's denoiser on random data shaped like each dataset of a config for a fixed
number of steps, once per case, each run in a fresh process (so one run's thread pool cannot
affect the next and the wait policy is read when torch loads), and prints steps/s (the median
of ``--repeat`` runs, taken round robin, and their range), the ratio to the series' first case
(by default the idle one-thread run), the job's CPU use (CPU seconds per wall second: spinning
workers show as CPU use beyond the work done) and the machine's 1-minute load average after
each run (other users' processes show there). It ends by checking that the trained weights
are the same, bit for bit, for every wait policy and hog count at a given thread count.

A case is threads x wait policy x hogs: ``--hog N`` starts N busy-loop processes beside the job
(a shared machine), killed after the case. Wait policies: ``default`` (OMP_WAIT_POLICY and
GOMP_SPINCOUNT unset: libgomp spins a while, then sleeps), ``PASSIVE`` / ``ACTIVE`` (set in the
child's environment), ``spin=N`` (GOMP_SPINCOUNT=N: libgomp spins N rounds, then sleeps) and
``runtime`` (unset, and the child calls
:func:`tardiff.runtime.quiet_thread_waits` before it imports torch, as the workflow's jobs and
the ``tardiff`` command do: checks that the setting takes effect).

    python benchmarks/threads.py [--steps 30] [--threads 1 2] [--policy default PASSIVE]
        [--hog 0 1] [--only mimic3] [--repeat 1] [--extra-steps 288]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

CHILD = """
import hashlib, json, os, sys, time
threads, steps, seq_len, n_features = map(int, sys.argv[1:5])
if sys.argv[5] == "runtime":
    from tardiff.runtime import quiet_thread_waits
    quiet_thread_waits()
import numpy as np, torch
from tardiff.config import load_config
from tardiff.diffusion.train import train_diffusion
from tardiff.settings import DiffusionSettings
torch.set_num_threads(threads)
section = dict(load_config("config/config.yaml")["diffusion"], train_steps=steps, warmup_steps=1)
x = np.random.default_rng(0).standard_normal((512, seq_len, n_features)).astype(np.float32)
y = (np.arange(512) % 10 == 0).astype(np.int64)
start, cpu = time.perf_counter(), time.process_time()
model, _ = train_diffusion(x, y, DiffusionSettings.from_config(section), "cpu", 0)
wall = time.perf_counter() - start
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters()))
print(json.dumps({"steps_per_s": steps / wall, "cpu_per_wall": (time.process_time() - cpu) / wall,
                  "policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
                  "weights": digest.hexdigest()}))
"""

HOG = "while True: pass"
#: environment variables that change how OpenMP workers wait (cleared for every case)
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


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


def child_env(policy: str) -> dict[str, str]:
    """This process's environment without the wait variables, plus ``policy``'s."""
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS}
    if policy in ("PASSIVE", "ACTIVE"):
        env["OMP_WAIT_POLICY"] = policy
    elif policy.startswith("spin="):
        env["GOMP_SPINCOUNT"] = policy.removeprefix("spin=")
    return env


def wait_policy(text: str) -> str:
    """A ``--policy`` value: default, PASSIVE, ACTIVE, runtime or spin=N."""
    if text in ("default", "PASSIVE", "ACTIVE", "runtime"):
        return text
    if text.startswith("spin=") and text.removeprefix("spin=").isdigit():
        return text
    raise argparse.ArgumentTypeError(f"unknown wait policy {text!r}")


@contextmanager
def hogs(n: int):
    """``n`` busy-loop processes for the enclosed block (killed, by process id, after it)."""
    procs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def run_case(threads: int, policy: str, steps: int, shape: tuple[int, int]) -> dict:
    """One training run in a fresh process: steps/s, CPU per wall second, policy seen."""
    argv = [str(v) for v in (threads, steps, *shape)] + [policy]
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        capture_output=True,
        text=True,
        check=True,
        env=child_env(policy),
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--policy",
        nargs="+",
        type=wait_policy,
        default=["default", "PASSIVE"],
        help="OpenMP wait policies: default, PASSIVE, ACTIVE, runtime, spin=N (module docstring)",
    )
    parser.add_argument("--hog", type=int, nargs="+", default=[0, 1], help="busy processes beside")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (median shown)")
    parser.add_argument("--config", default="config/config.yaml", help="datasets to mimic")
    parser.add_argument("--only", default=None, help="only the series whose name contains this")
    parser.add_argument("--extra-steps", type=int, nargs="*", default=[], help="more T (C=3)")
    return parser.parse_args()


def measure(args, cases: dict[str, tuple[int, int]]) -> dict[tuple, list[dict]]:
    """Every case ``--repeat`` times, round robin (so a change in the machine's other load
    spreads over all cases instead of biasing some); each run as it ends on stderr."""
    keys = [(name, n_hogs, threads, policy) for name in cases for n_hogs in args.hog
            for threads in args.threads for policy in args.policy]  # fmt: skip
    runs: dict[tuple, list[dict]] = {key: [] for key in keys}
    for _ in range(args.repeat):
        for key in keys:
            name, n_hogs, threads, policy = key
            with hogs(n_hogs):
                run = run_case(threads, policy, args.steps, cases[name])
            runs[key].append({**run, "load1": os.getloadavg()[0]})
            print(f"{key}: {run['steps_per_s']:.2f} steps/s", file=sys.stderr, flush=True)
    return runs


def main() -> None:
    args = parse_args()
    cases = {**shapes(args.config), **{f"T={t} x 3": (t, 3) for t in args.extra_steps}}
    cases = {k: v for k, v in cases.items() if args.only is None or args.only in k}
    print(f"load average before: {loadavg()} ({os.cpu_count()} cores)", flush=True)
    runs = measure(args, cases)
    print(f"load average after: {loadavg()}\n")
    print("| series | hogs | threads | wait policy | steps/s (range) | vs idle 1 thread | "
          "CPU/wall | load (1 min) |\n|---|---|---|---|---|---|---|---|")  # fmt: skip
    for key, found in runs.items():
        first = (key[0], args.hog[0], args.threads[0], args.policy[0])  # idle, 1 thread
        print(row(key, found, statistics.median(r["steps_per_s"] for r in runs[first])))
    print()
    for name in cases:
        for threads in args.threads:
            digests = {r["weights"] for (n, _, t, _), found in runs.items() for r in found
                       if (n, t) == (name, threads)}  # fmt: skip
            same = "identical" if len(digests) == 1 else f"{len(digests)} different results"
            print(f"{name}, {threads} thread(s): trained weights {same} over policies and hogs")


def row(key: tuple, found: list[dict], base: float) -> str:
    """One line of the table: medians over the runs of a case, and their range."""
    name, n_hogs, threads, policy = key
    rates = [r["steps_per_s"] for r in found]
    rate, cpu = statistics.median(rates), statistics.median(r["cpu_per_wall"] for r in found)
    spread = f" ({min(rates):.2f}-{max(rates):.2f})" if len(rates) > 1 else ""
    load = "-".join(sorted({f"{r['load1']:.1f}" for r in found}, key=float))
    return (f"| {name} | {n_hogs} | {threads} | {policy} ({found[0]['policy']}) | "
            f"{rate:.2f}{spread} | {rate / base:.2f}x | {cpu:.2f} | {load} |")  # fmt: skip


if __name__ == "__main__":
    main()
