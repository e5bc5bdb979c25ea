"""Process-level helpers: device choice, seeding, logging, resource measurement."""

from __future__ import annotations

import logging
import random
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np


def pick_device(preference: str = "auto"):
    """Return a torch device: CUDA when available and allowed (``auto``/``cuda``), else CPU."""
    import torch

    if preference not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"config key 'device' must be auto, cpu or cuda, got {preference!r}")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device' is 'cuda' but CUDA is not available")
    if preference != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


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


@dataclass
class Stopwatch:
    """Wall time and peak memory of a block; fill ``extra`` with anything worth reporting."""

    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    extra: dict = field(default_factory=dict)


@contextmanager
def measured() -> Iterator[Stopwatch]:
    """Measure wall time and peak RSS of the enclosed block."""
    watch = Stopwatch()
    start = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - start
        watch.peak_rss_mb = peak_rss_mb()


def setup_logging(log_file: str | None = None, level: int = logging.INFO) -> logging.Logger:
    """Log to stderr and, when given, to ``log_file`` (the rule's log)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    return logging.getLogger("tardiff")
