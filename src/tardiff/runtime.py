"""Process-level helpers: device choice, threads, seeding, logging, progress, memory checks.

Library functions log to ``logging.getLogger(__name__)`` and never configure logging; the
Snakemake adapters and the ``tardiff`` command call :func:`setup_logging` once per process.
"""

from __future__ import annotations

import logging
import os
import random
import resource
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from tqdm.auto import tqdm

T = TypeVar("T")


def pick_device(preference: str = "auto"):
    """Return a torch device: CUDA when available and allowed (``auto``/``cuda``), else CPU."""
    import torch

    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but CUDA is not available")
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def adamw(params, lr: float, weight_decay: float = 0.0):
    """AdamW (Adam where ``weight_decay`` is 0) as one fused kernel per step: on CPU about 5 %
    more steps/s than the default per-tensor loop for the demo denoiser, measured side by side
    (docs/performance.md, "The whole default run")."""
    import torch

    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (legacy global state used by libraries)
    torch.manual_seed(seed)


def peak_rss_mb() -> float:
    """Peak resident set size of this process (MiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0


#: How torch's idle OpenMP workers wait for work. ``PASSIVE``: they sleep at once instead of
#: spinning (libgomp's default spins about 3 ms), so a waiting worker never holds a core that
#: another process, or a descheduled worker of its own job, needs. Measured (benchmarks/threads.py,
#: 2 cores, docs/performance.md): with a busy process beside it, a 2-thread diffusion training ran
#: at 0.17-0.39x its speed without it when its workers spun, at 0.55-0.66x when they slept (its
#: share of the cores: 2/3); one-thread jobs are unaffected; trained weights are bit-identical.
OMP_WAIT_POLICY = "PASSIVE"


def quiet_thread_waits() -> None:
    """Set :data:`OMP_WAIT_POLICY` for this process and every process it starts, unless the
    environment sets it already (on a dedicated node, ``GOMP_SPINCOUNT=300000`` brings back
    libgomp's spinning, up to 8-27 % faster for multi-thread jobs on an idle machine).

    OpenMP reads it when torch loads: call this before ``import torch`` (the workflow sets it in
    the Snakemake process, whose jobs inherit it; the ``tardiff`` command in ``main``).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, as Snakemake's ``--cores all``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def training_threads(cores: int, pairs: int) -> int:
    """Threads of a diffusion-training job (the one that dominates a run): the cores shared by
    the config's ``pairs`` (dataset, task) pairs, which train side by side, so a one-pair config
    uses every core and parallel jobs do not oversubscribe them. The other torch jobs are short
    and take one thread, so they run side by side.

    It depends on the config and the cores given to the run only, never on the targets asked for
    or the machine's load: torch's CPU results depend on the thread count, and ``dvc repro`` (one
    dataset per stage) must give the same numbers as ``snakemake --cores all``. Measured
    (benchmarks/threads.py, 2 cores, docs/performance.md): on an idle machine 2 threads train
    1.3-1.7x faster than 1; on a busy one they cost about the share of cores lost once their
    idle workers sleep (:func:`quiet_thread_waits`), a multiple of it if they spin.
    """
    return max(1, cores // max(1, min(pairs, cores)))


def use_threads(threads: int | None) -> None:
    """Let torch use ``threads`` CPU threads (the rule's ``threads``; None keeps torch's choice)
    and log the thread count and the OpenMP wait policy the job runs with."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    logging.getLogger(__name__).info(
        "torch CPU threads: %d; OMP_WAIT_POLICY=%s",
        torch.get_num_threads(),
        os.environ.get("OMP_WAIT_POLICY", "unset"),
    )


@dataclass
class Stopwatch:
    """Wall time (``wall_s``) and peak memory of a block."""

    wall_s: float = 0.0
    peak_rss_mb: float = 0.0


@contextmanager
def measured() -> Iterator[Stopwatch]:
    """Measure wall time and peak RSS of the enclosed block."""
    watch = Stopwatch()
    start = time.perf_counter()
    try:
        yield watch
    finally:
        watch.wall_s = time.perf_counter() - start
        watch.peak_rss_mb = peak_rss_mb()


def setup_logging(log_file: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to stderr and, when given, to ``log_file`` (the rule's log). For entry points only.

    With a log file, an uncaught exception is logged there too, so a failed job's log says why.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    log = logging.getLogger("tardiff")
    if log_file:

        def log_uncaught(kind, value, tb):
            log.critical("failed: %s: %s", kind.__name__, value, exc_info=(kind, value, tb))

        sys.excepthook = log_uncaught
    return log


def available_mem_mb() -> int:
    """Memory available to new processes on this machine (MiB)."""
    import psutil

    return int(psutil.virtual_memory().available / 2**20)


def check_memory(estimate_mb: float, limit_mb: float | None, what: str) -> None:
    """Log a memory estimate; fail before allocating when it exceeds ``limit_mb`` (the rule's
    ``mem_mb``; None = no limit), so a job that cannot fit says why instead of being killed."""
    log = logging.getLogger(__name__)
    if limit_mb is None:
        log.info("%s: estimated peak memory %.0f MiB", what, estimate_mb)
        return
    log.info("%s: estimated peak memory %.0f MiB of %.0f MiB allowed", what, estimate_mb, limit_mb)
    if estimate_mb > limit_mb:
        raise MemoryError(
            f"{what} needs an estimated {estimate_mb:.0f} MiB but the rule allows {limit_mb:.0f} "
            "MiB (resources: mem_mb); raise it with --set-resources RULE:mem_mb=N or shrink the "
            "inputs"
        )


def progress(
    iterable: Iterable[T], total: int, desc: str, unit: str = "it", every_s: float = 30.0
) -> Iterator[T]:
    """Iterate with a tqdm bar on stderr and, every ``every_s`` seconds and at the end, a log line
    with the count, rate, elapsed time and the estimated time left (the rule's log shows it)."""
    log = logging.getLogger(__name__)
    bar = tqdm(iterable, total=total, desc=desc, unit=unit, disable=None, mininterval=1.0)
    start = last = time.perf_counter()
    done = 0
    for done, item in enumerate(bar, 1):
        yield item
        now = time.perf_counter()
        if now - last >= every_s or done == total:
            last = now
            elapsed = now - start
            rate = done / elapsed if elapsed > 0 else float("inf")
            left = (total - done) / rate if rate > 0 else 0.0
            log.info(
                "%s: %d/%d %s (%.0f%%), %.2f %s/s, elapsed %s, left ~%s",
                desc, done, total, unit, 100 * done / total, rate, unit,
                tqdm.format_interval(elapsed), tqdm.format_interval(left),
            )  # fmt: skip
    bar.close()
