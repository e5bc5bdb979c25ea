"""Labels -> splits -> cohort tables (stays, timeseries) and summary, written all-or-nothing.

- Stays without any target value in the first ``hours`` are excluded (reported); an empty cohort
  or a task with a single class is an error naming it.
- Split: subject-level, stratified by the first task (a subject is positive if any of its stays
  is), seeded; validation subjects are split again into ``guide``/``select`` by
  ``guide_fraction``, stratified the same way. Stratum sizes are rounded half up.
- Grid: exactly T = hours * 60 / resolution_minutes rows per stay, NaN where nothing was
  measured; bin means are exact fixed-point means, so the tables are byte-identical for the same
  input and seed whatever the thread scheduling.
- DuckDB runs with ``MEMORY_LIMIT`` (spilling to a folder inside the staging area), all cores and
  ``preserve_insertion_order = false``; every event table is streamed, never loaded into pandas.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tardiff.extract import eicu, mimic3, yaib
from tardiff.extract.tables import ExtractError, Extraction, first_row
from tardiff.io import atomic_path, write_json, write_parquet
from tardiff.layout import CohortFiles
from tardiff.runtime import peak_rss_mb
from tardiff.settings import DatasetSettings, SplitSettings

log = logging.getLogger(__name__)

#: Labels defined from raw MIMIC-III / eICU tables (a YAIB cohort brings its own label).
RAW_TASKS = ("mortality", "icu_stay")
EXTRACTORS = {"mimic3": mimic3.extract, "eicu": eicu.extract, "yaib": yaib.extract}
# Measured (benchmarks/extraction.py): at 1 GB peak RSS stays flat at ~1.2 GB from 20M to 40M
# CHARTEVENTS rows and throughput is no lower than at 2.5 GB (which grows to ~2.6 GB).
MEMORY_LIMIT = "1GB"
ROW_GROUP = 1 << 20


def build_cohort(
    entry: DatasetSettings,
    raw: str | Path,
    out: CohortFiles,
    split: SplitSettings | None,
    seed: int,
) -> dict:
    """Extract a dataset entry's cohort from ``raw`` (folder or YAIB folder); return the summary.
    ``split`` None: an external test population (every stay in the ``test`` split).

    Writes ``out.stays``, ``out.timeseries`` and ``out.summary`` together: they are built in a
    staging folder next to them and moved in only when all three are complete.
    """
    if entry.source not in EXTRACTORS:
        raise ExtractError(f"unknown source {entry.source!r} (known: {', '.join(EXTRACTORS)})")
    unknown = [t for t in entry.tasks if t not in RAW_TASKS]
    if entry.source != "yaib" and unknown:
        raise ExtractError(
            f"unknown {entry.source} task {unknown[0]!r} (known: {', '.join(RAW_TASKS)})"
        )
    start = time.perf_counter()
    folder = Path(out.stays).parent
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=folder))
    staged = CohortFiles(*(str(staging / Path(target).name) for target in out))
    try:
        con = connect(staging / "spill")
        try:
            result = EXTRACTORS[entry.source](con, entry, str(raw), log)
            stays = _final_stays(con, result, entry)
            stays = assign_splits(stays, next(iter(entry.tasks)), split, seed)
            write_parquet(_stays_table(stays, entry), staged.stays)
            con.register("final_ids", stays[["stay_id"]])
            con.execute("CREATE TEMP TABLE final AS SELECT stay_id FROM final_ids")
            write_timeseries(con, entry, staged.timeseries)
            missing = _missingness(con, entry, len(stays))
        finally:
            con.close()
        summary = _summary(entry, stays, result, missing, time.perf_counter() - start)
        write_json(summary, staged.summary)
        for done, target in zip(staged, out, strict=True):
            os.replace(done, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "cohort: %d stays, %.1f s, peak RSS %.0f MiB",
        summary["n_stays"],
        summary["wall_s"],
        summary["peak_rss_mb"],
    )
    return summary


def connect(spill: Path) -> duckdb.DuckDBPyConnection:
    """In-memory DuckDB with bounded memory, all cores, spilling to ``spill``."""
    con = duckdb.connect(
        config={
            "memory_limit": MEMORY_LIMIT,
            "threads": os.cpu_count() or 1,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
    )
    con.execute("PRAGMA enable_profiling = 'no_output'")
    return con


def _final_stays(
    con: duckdb.DuckDBPyConnection, result: Extraction, entry: DatasetSettings
) -> pd.DataFrame:
    """Drop stays without any value in the window; check the cohort and its labels."""
    measured = " OR ".join(f'"{f}" IS NOT NULL' for f in entry.features)
    ids = con.execute(f"SELECT DISTINCT stay_id FROM binned WHERE {measured}").df()["stay_id"]
    result.exclude(
        ~result.stays["stay_id"].isin(ids), f"no target values in the first {entry.hours} h"
    )
    stays = result.stays.sort_values("stay_id").reset_index(drop=True)
    if stays.empty:
        reasons = "; ".join(f"{e['reason']}: {e['count']}" for e in result.exclusions)
        raise ExtractError(f"empty cohort after exclusions ({reasons})")
    for task in entry.tasks:
        values = stays[task].unique()
        if len(values) < 2:
            raise ExtractError(
                f"task {task!r}: all {len(stays)} stays have label {int(values[0])}; "
                "a task needs both classes"
            )
        stays[task] = stays[task].astype(np.int8)
    return stays


def split_groups(
    labels: np.ndarray, fractions: list[float], rng: np.random.Generator
) -> np.ndarray:
    """Part index per item: each label stratum shuffled and cut by ``fractions``."""
    part = np.zeros(len(labels), dtype=np.int64)
    for value in np.unique(labels):
        idx = np.flatnonzero(labels == value)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.floor(np.cumsum(fractions)[:-1] * len(idx) + 0.5).astype(int)
        for k, chunk in enumerate(np.split(idx, cuts)):
            part[chunk] = k
    return part


def assign_splits(
    stays: pd.DataFrame, task: str, split: SplitSettings | None, seed: int
) -> pd.DataFrame:
    """Subject-level train/val/test (and guide/select within val), stratified by ``task``.

    A subject is positive if any of its stays is; the split is seeded and deterministic.
    ``split`` None puts every stay in ``test`` (an external test population).
    """
    if split is None:
        return stays.assign(split="test", val_part=None)
    subjects = stays.groupby("subject_id", sort=True)[task].max()
    rng = np.random.default_rng([seed, 0])
    names = np.array(["train", "val", "test"])
    parts = split_groups(subjects.to_numpy(), [split.train, split.val, split.test], rng)
    subject_split = pd.Series(names[parts], index=subjects.index)
    rng = np.random.default_rng([seed, 1])
    return with_subject_splits(stays, subject_split, subjects, split.guide_fraction, rng)


def with_subject_splits(
    stays: pd.DataFrame,
    subject_split: pd.Series,
    labels: pd.Series,
    guide_fraction: float,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """``stays`` with ``split`` from ``subject_split`` (subject -> train / val / test) and
    ``val_part``: the val subjects cut into guide and select, stratified by ``labels`` (one per
    subject), by ``rng``; None outside val."""
    val = labels[subject_split == "val"]
    shares = [guide_fraction, 1 - guide_fraction]
    val_parts = np.array(["guide", "select"])[split_groups(val.to_numpy(), shares, rng)]
    subject_part = pd.Series(val_parts, index=val.index, dtype=object)
    stays = stays.copy()
    stays["split"] = stays["subject_id"].map(subject_split).astype(object)
    stays["val_part"] = stays["subject_id"].map(subject_part).astype(object)
    stays["val_part"] = stays["val_part"].where(stays["val_part"].notna(), None)
    return stays


def _stays_table(stays: pd.DataFrame, entry: DatasetSettings) -> pa.Table:
    columns = {
        "stay_id": pa.array(stays["stay_id"].to_numpy(np.int64)),
        "subject_id": pa.array(stays["subject_id"].to_numpy(np.int64)),
        "split": pa.array(stays["split"].tolist(), pa.string()),
        "val_part": pa.array(stays["val_part"].tolist(), pa.string()),
    }
    for task in entry.tasks:
        columns[task] = pa.array(stays[task].to_numpy(np.int8))
    columns["age"] = pa.array(stays["age"].to_numpy(np.float32))
    columns["sex"] = pa.array(stays["sex"].tolist(), pa.string())
    return pa.table(columns)


def write_timeseries(con: duckdb.DuckDBPyConnection, entry: DatasetSettings, path: Path) -> None:
    """Stream the dense grid (T rows per stay, NaN where unmeasured) into Parquet.

    Row groups have a fixed size, so the same data gives the same bytes.
    """
    features = entry.features
    steps = entry.steps
    values = ", ".join(f'coalesce(b."{f}", CAST(\'NaN\' AS FLOAT)) AS "{f}"' for f in features)
    reader = con.sql(
        f"""
        SELECT s.stay_id, CAST(g.step AS SMALLINT) AS step, {values}
        FROM final s CROSS JOIN range({steps}) g(step)
        LEFT JOIN binned b ON b.stay_id = s.stay_id AND b.step = g.step
        ORDER BY s.stay_id, g.step
        """
    ).to_arrow_reader(ROW_GROUP)
    schema = pa.schema(
        [("stay_id", pa.int64()), ("step", pa.int16())] + [(f, pa.float32()) for f in features]
    )
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        pending: list[pa.Table] = []
        rows = 0
        for batch in reader:
            pending.append(pa.Table.from_batches([batch]).cast(schema))
            rows += batch.num_rows
            while rows >= ROW_GROUP:
                table = pa.concat_tables(pending)
                writer.write_table(table.slice(0, ROW_GROUP), row_group_size=ROW_GROUP)
                pending = [table.slice(ROW_GROUP)]
                rows -= ROW_GROUP
        if rows:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)


def _missingness(
    con: duckdb.DuckDBPyConnection, entry: DatasetSettings, n_stays: int
) -> dict[str, float]:
    """Share of grid cells without a value, per feature."""
    cells = n_stays * entry.steps
    counts = ", ".join(f'count(b."{f}")' for f in entry.features)
    row = first_row(con, f"SELECT {counts} FROM binned b SEMI JOIN final s USING (stay_id)")
    return {f: round(1 - n / cells, 6) for f, n in zip(entry.features, row, strict=True)}


def _summary(
    entry: DatasetSettings, stays: pd.DataFrame, result: Extraction, missing: dict, seconds: float
) -> dict:
    prevalence = {}
    for task in entry.tasks:
        by_split = stays.groupby("split")[task].mean()
        prevalence[task] = {
            "all": round(float(stays[task].mean()), 6),
            **{k: round(float(v), 6) for k, v in by_split.items()},
        }
    rows = sum(result.rows_scanned.values())
    return {
        "source": entry.source,
        "n_stays": len(stays),
        "n_subjects": int(stays["subject_id"].nunique()),
        "steps": entry.steps,
        "hours": entry.hours,
        "resolution_minutes": entry.resolution_minutes,
        "features": list(entry.features),
        "split_sizes": {k: int(v) for k, v in stays["split"].value_counts().sort_index().items()},
        "val_part_sizes": {
            k: int(v) for k, v in stays["val_part"].value_counts().sort_index().items()
        },
        "prevalence": prevalence,
        "missingness": missing,
        "exclusions": result.exclusions,
        "rows_scanned": result.rows_scanned,
        "wall_s": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
