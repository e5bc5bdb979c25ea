"""Efficiency table: what each stage of a run cost, and what sampling costs per sample.

- **Stages**: Snakemake's benchmark file of every job (``<dataset>/benchmarks/[<task>/]<job>.tsv``:
  wall seconds ``s`` and peak resident memory ``max_rss`` in MB), summed (wall) and maxed
  (memory) over the jobs of one stage, dataset and task. Jobs of one rule with different
  wildcards (``generate_<method>_w<scale>``, and ``generate_<method>_w<scale>_final`` for a
  guided method's seeds after the selection seeds) count as one stage per method.
- **Influence vector G**: the influence stage's own timing (its ``summary.json``): the one-time
  cost of guidance, paid once per dataset and task.
- **Sampling**: from the generation stage's per-seed records: samples per second (total samples
  over total sampling seconds), denoiser evaluations per sample (the reverse steps the sampler
  took, twice for ``cfg``, times the filter factor for ``influence_filter``) and, for guided
  methods, the time per sample relative to ``conditional`` of the same dataset and task (the
  overhead of guidance).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tardiff.evaluate.reporting.study_figures import efficiency_table
from tardiff.io import read_json
from tardiff.layout import TableFiles

COLUMNS = ["stage", "dataset", "task", "jobs", "wall_s", "max_rss_mb", "note"]
_GENERATE = re.compile(r"generate_(?P<method>.+?)_w(?P<scale>[^_]+)(_final)?$")


def _job(path: Path) -> tuple[str, str, str]:
    """(stage, dataset, task) of a benchmark file ``<dataset>/benchmarks/[<task>/]<job>.tsv``."""
    parts = path.parts
    if "benchmarks" not in parts[:-1]:
        raise ValueError(f"{path}: not under a dataset's benchmarks/ folder")
    at = len(parts) - 1 - parts[::-1].index("benchmarks")
    dataset, task = parts[at - 1], parts[at + 1] if len(parts) - at == 3 else ""
    match = _GENERATE.match(path.stem)
    return (f"generate ({match['method']})" if match else path.stem), dataset, task


def _record_pair(path: Path) -> tuple[str, str]:
    """(dataset, task) of a generation record ``<dataset>/<task>/synthetic/.../seed<k>.json``."""
    parts = path.parts
    if "synthetic" not in parts[2:-1]:
        raise ValueError(f"{path}: not under a pair's synthetic/ folder")
    at = len(parts) - 1 - parts[::-1].index("synthetic")
    return parts[at - 2], parts[at - 1]


def stage_rows(benchmarks: Sequence[str | Path]) -> pd.DataFrame:
    """Wall time and peak memory per stage, dataset and task from benchmark files."""
    rows = []
    for path in map(Path, benchmarks):
        frame = pd.read_csv(path, sep="\t")
        missing = {"s", "max_rss"} - set(frame.columns)
        if missing or frame.empty:
            raise ValueError(f"{path}: not a Snakemake benchmark file (missing {sorted(missing)})")
        stage, dataset, task = _job(path)
        rss = pd.to_numeric(frame["max_rss"], errors="coerce").max()
        rows.append(
            {
                "stage": stage,
                "dataset": dataset,
                "task": task,
                "wall_s": float(frame["s"].mean()),
                "max_rss_mb": rss,
            }
        )
    table = pd.DataFrame(rows, columns=["stage", "dataset", "task", "wall_s", "max_rss_mb"])
    grouped = table.groupby(["stage", "dataset", "task"], as_index=False)
    return grouped.agg(
        jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), max_rss_mb=("max_rss_mb", "max")
    ).assign(note="")


def influence_rows(summaries: dict[tuple[str, str], str | Path]) -> pd.DataFrame:
    """The one-time cost of G per dataset and task (``summary.json`` of the influence stage)."""
    rows = []
    for (dataset, task), path in summaries.items():
        s = read_json(path)
        rows.append(
            {
                "stage": "influence vector G (one-time)",
                "dataset": dataset,
                "task": task,
                "jobs": 1,
                "wall_s": s["wall_s"],
                "max_rss_mb": s["peak_rss_mb"],
                "note": f"{s['n_guide']} guidance stays, {s['n_params']} parameters",
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _evaluations(method: str, grid_steps: int, runs: pd.DataFrame) -> str:
    """Denoiser evaluations per kept sample: one per reverse step taken; ``cfg`` runs the
    denoiser twice per step (with and without the label); ``influence_filter`` samples
    ``filter_factor`` times what it keeps."""
    per_step = f"{grid_steps:g}"
    factor = {"cfg": 2}.get(method, 1)
    if method == "influence_filter" and "filter_factor" in runs:
        factor = runs.loc[runs["method"] == method, "filter_factor"].iloc[0]
    times = "" if factor == 1 else f"{factor:g} x "
    return f"{times}{per_step} denoiser evaluations per sample"


def sampling_rows(records: dict[tuple[str, str], Sequence[str | Path]]) -> pd.DataFrame:
    """Samples per second, denoiser evaluations per sample and the guidance overhead per
    method, from the generation stage's per-seed JSON records of each dataset and task."""
    rows = []
    for (dataset, task), paths in records.items():
        runs = pd.DataFrame([read_json(p) for p in paths])
        per = runs.groupby("method").agg(
            n=("n_samples", "sum"),
            wall=("wall_s", "sum"),
            grid_steps=("grid_steps", "first"),
            sampler=("sampler", "first"),
            peak=("peak_rss_mb", "max"),
        )
        base = per.loc["conditional"] if "conditional" in per.index else None
        for method, r in per.iterrows():
            note = f"{r['n'] / r['wall']:.1f} samples/s, {r['sampler']}, "
            note += _evaluations(method, r["grid_steps"], runs)
            if base is not None and method != "conditional":
                overhead = (r["wall"] / r["n"]) / (base["wall"] / base["n"])
                note += f", {overhead:.2f}x the time per sample of conditional"
            rows.append(
                {
                    "stage": f"sampling ({method})",
                    "dataset": dataset,
                    "task": task,
                    "jobs": len(runs[runs["method"] == method]),
                    "wall_s": r["wall"],
                    "max_rss_mb": r["peak"],
                    "note": note,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def run_efficiency_stage(
    *,
    benchmarks: Sequence[str | Path],
    pairs: Sequence[str],
    influence: Sequence[str | Path],
    records: Sequence[str | Path],
    out: TableFiles,
) -> pd.DataFrame:
    """Write the efficiency table (Markdown and CSV) of a run. ``pairs`` names each
    ``<dataset>/<task>``; ``influence`` holds one summary per pair, in that order; ``records``
    the generation records of the pairs (``<dataset>/<task>/synthetic/...`` paths)."""
    if len(influence) != len(pairs):
        raise ValueError(f"{len(pairs)} pairs but {len(influence)} influence summaries")
    keys = [tuple(p.split("/")) for p in pairs]
    generation: dict[tuple, list] = {k: [] for k in keys}
    for path in records:
        pair = _record_pair(Path(path))
        if pair not in generation:
            raise ValueError(f"{path}: not a generation record of the pairs {', '.join(pairs)}")
        generation[pair].append(path)
    parts = [
        stage_rows(benchmarks),
        influence_rows(dict(zip(keys, influence, strict=True))),
        sampling_rows({k: v for k, v in generation.items() if v}),
    ]
    table = pd.concat([p for p in parts if len(p)], ignore_index=True)[COLUMNS]
    efficiency_table(efficiency=table, md=out.md, csv=out.csv)
    return table
