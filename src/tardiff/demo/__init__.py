"""Embedded demo: raw MIMIC-III / eICU tables or a YAIB cohort folder written from a seeded
patient simulator."""

from __future__ import annotations

import logging
import os
import time

from tardiff.io import atomic_dir

#: added to the master seed to seed the simulator of a demo dataset's external population
EXTERNAL_SEED_OFFSET = 104_729


def external_seed(seed: int) -> int:
    """Simulator seed of a demo dataset's external test population: derived from the master
    seed and never equal to it, so its stays are an independent draw of the same process."""
    return seed + EXTERNAL_SEED_OFFSET


def write_demo(source: str, out_dir: str | os.PathLike, n_stays: int, seed: int, log=None) -> dict:
    """Write the raw tables of ``n_stays`` simulated ICU stays of ``source`` into ``out_dir``.

    ``source`` is ``mimic3`` (``<TABLE>.csv.gz``), ``eicu`` (``<name>.csv.gz``) or ``yaib``
    (``dyn``/``outc``/``sta.parquet``, :mod:`tardiff.demo.yaib`). The folder is
    written as a set: into a temporary sibling renamed at the end, so a killed job leaves none.
    Same seed, same bytes. Returns rows per table, label prevalence among adult stays and wall
    time (``wall_s``).
    """
    from tardiff.demo import eicu, mimic3, yaib

    writers = {"mimic3": mimic3.write, "eicu": eicu.write, "yaib": yaib.write}
    if source not in writers:
        raise ValueError(f"unknown demo source {source!r}; expected one of {sorted(writers)}")
    if n_stays < 1:
        raise ValueError(f"n_stays must be positive, got {n_stays}")
    log = log or logging.getLogger("tardiff.demo")
    start = time.perf_counter()
    with atomic_dir(out_dir) as tmp:
        summary = writers[source](tmp, n_stays, seed)
    summary.update(
        source=source, n_stays=n_stays, seed=seed, wall_s=round(time.perf_counter() - start, 2)
    )
    log.info(
        "demo %s: %d stays, rows %s, prevalence %.3f, %.1f s",
        source,
        n_stays,
        summary["rows"],
        summary["prevalence"],
        summary["wall_s"],
    )
    return summary
