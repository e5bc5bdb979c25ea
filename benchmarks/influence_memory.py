"""Influence stage memory: peak RSS and wall time of the influence vector G, new vs former.

The default demo classifier (GRU, hidden 64, 1 layer, eval mode), random inputs, for the eICU
demo shape (T = 288 steps, 3 features) and the MIMIC shape (T = 24, 7 features). Each case runs
in a fresh subprocess and reports that process's whole peak RSS (``ru_maxrss``: the torch import
and the data included, about 300-400 MB on their own) and the wall time of the computation:

- ``bounded``: ``influence_vector`` with the memory budget ``--budget`` (MiB): chunks sized by
  ``influence_chunk``, per-sample gradients from one batched backward per chunk;
- ``former``: the implementation this replaced, ``vmap(grad(...))`` over the unrolled GRU in
  batches of 256. Its memory grows with T² per sample, so it is first probed on 4 samples (a
  fresh subprocess) and skipped where the extrapolation to a batch exceeds ``--limit-gb``.

    python benchmarks/influence_memory.py [--budget 512] [--limit-gb 8] [--skip-former]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from torch.func import functional_call, grad, vmap

from tardiff.guidance.influence import influence_vector
from tardiff.guidance.per_sample import (
    detached_params,
    influence_chunk,
    influence_memory_mb,
    per_sample_loss,
)
from tardiff.models.classifier import build_classifier, unrolled_rnn

CASES = [(288, 3, 2000), (24, 7, 144), (24, 7, 2000)]  # (T, features, guidance stays)
FORMER_BATCH = 256


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _former(model, x, y, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The replaced influence_vector: vmap(grad) per batch; G (sum) and per-sample norms."""
    params = detached_params(model)

    def one(p, xi, yi):
        return per_sample_loss(functional_call(model, p, (xi[None],)), yi[None]).sum()

    total, norms = 0, []
    for i in range(0, len(x), batch):
        xb, yb = x[i : i + batch], y[i : i + batch]
        with unrolled_rnn():
            grads = vmap(grad(one), in_dims=(None, 0, 0))(params, xb, yb)
        g = torch.cat([t.reshape(len(xb), -1) for t in grads.values()], 1)
        norms.append(g.norm(dim=1))
        total = total + g.sum(0)
    return total, torch.cat(norms)


def worker(method: str, seq_len: int, features: int, n: int, budget: float, batch: int) -> None:
    """One case in this (fresh) process; prints a JSON line."""
    torch.manual_seed(0)
    model = build_classifier("gru", features, 64, 1, 0.1).eval()
    x, y = torch.randn(n, seq_len, features), torch.randint(0, 2, (n,))
    before = _peak_mb()
    start = time.perf_counter()
    if method == "bounded":
        influence_vector(model, x, y, normalize="none", memory_mb=budget)
    else:
        _former(model, x, y, batch)
    wall = time.perf_counter() - start
    print(json.dumps({"peak_mb": _peak_mb(), "before_mb": before, "wall_s": wall}))


def _run(*args) -> dict:
    cmd = [sys.executable, __file__, "--worker", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _former_row(seq_len, features, n, args) -> tuple[str, str, str]:
    """The former implementation, or why it was skipped (probe on 4 samples, extrapolated)."""
    batch = min(n, FORMER_BATCH)
    probe = _run("former", seq_len, features, 4, 0, 4)
    predicted_gb = (probe["before_mb"] + (probe["peak_mb"] - probe["before_mb"]) * batch / 4) / 1024
    if args.skip_former or predicted_gb > args.limit_gb:
        return "-", "-", f"skipped: ~{predicted_gb:.1f} GB predicted for a batch of {batch}"
    res = _run("former", seq_len, features, n, 0, batch)
    if "error" in res:
        return "-", "-", f"failed: {res['error']}"
    return f"{res['peak_mb']:.0f}", f"{res['wall_s']:.2f}", f"batch {batch}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=512, help="memory_mb of influence_vector")
    parser.add_argument("--limit-gb", type=float, default=8, help="skip former cases above this")
    parser.add_argument("--skip-former", action="store_true", help="only the bounded version")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, *nums = args.worker
        seq_len, features, n, budget, batch = (float(v) for v in nums)
        return worker(method, int(seq_len), int(features), int(n), budget, int(batch))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, GRU hidden 64, "
          f"budget {args.budget:.0f} MiB; peak RSS = the whole process")  # fmt: skip
    head = f"{'T':>4}{'C':>3}{'N':>6}  {'method':<8}{'chunk':>6}{'est MiB':>9}"
    print(f"{head}{'peak RSS MB':>13}{'wall s':>9}{'ms/stay':>9}  note")
    for seq_len, features, n in CASES:
        model = build_classifier("gru", features, 64, 1, 0.1).eval()
        chunk = min(n, influence_chunk(model, (seq_len, features), args.budget))
        est = influence_memory_mb(model, (seq_len, features), chunk)
        res = _run("bounded", seq_len, features, n, args.budget, 0)
        ms = res["wall_s"] / n * 1e3
        print(f"{seq_len:>4}{features:>3}{n:>6}  {'bounded':<8}{chunk:>6}{est:>9.0f}"
              f"{res['peak_mb']:>13.0f}{res['wall_s']:>9.2f}{ms:>9.2f}  "
              f"before the computation {res['before_mb']:.0f} MB")  # fmt: skip
        peak, wall, note = _former_row(seq_len, features, n, args)
        ms = f"{float(wall) / n * 1e3:.2f}" if wall != "-" else "-"
        print(f"{seq_len:>4}{features:>3}{n:>6}  {'former':<8}{'':>6}{'':>9}"
              f"{peak:>13}{wall:>9}{ms:>9}  {note}")  # fmt: skip


if __name__ == "__main__":
    main()
