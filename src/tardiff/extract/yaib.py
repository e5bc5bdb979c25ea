"""YAIB / ricu cohort folders: ``dyn.parquet``, ``outc.parquet``, ``sta.parquet``.

Choices:

- Features are YAIB variable names (``hr``, ``sbp``, ``dbp``, ``map``, ``resp``, ``temp``,
  ``o2sat``, ...), columns of dyn.parquet, taken as given (already cleaned); NaN = not measured.
- ``time`` is a timedelta or numeric hours since ICU admission; step = floor(minutes /
  resolution_minutes); rows with time < 0 or >= ``hours`` are dropped (YAIB's 24 h cohorts have
  25 hourly rows, 0 h ... 24 h: the 24 h row is dropped). Several rows in a bin are averaged.
- The single ``label`` of outc.parquet is the one configured task; stays without a label are
  excluded, a label other than 0/1 is an error.
- YAIB has no patient ids: subject_id = stay_id, so the split is stay-level.
- age clipped to 90; sex from 'Female'/'Male'/'F'/'M' (anything else -> null); stays without a
  sta.parquet row keep age NaN and sex null.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tardiff.extract import cleaning
from tardiff.extract.tables import ExtractError, Extraction, find_table, first_row, sql_string
from tardiff.settings import DatasetSettings

#: the cohort's Parquet files and the columns extraction needs of each
TABLES = {
    "dyn": ["stay_id", "time"],
    "outc": ["stay_id", "label"],
    "sta": ["stay_id", "age", "sex"],
}


def open_parquet(folder: str, name: str) -> tuple[Path, dict[str, pa.Field]]:
    """Path of ``<name>.parquet`` (one of :data:`TABLES`, its columns checked) and its columns:
    lower-case name -> Arrow field."""
    required = TABLES[name]
    path = find_table(folder, name, (".parquet",))
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise ExtractError(f"{path}: not a readable Parquet file ({err})") from None
    columns = {f.name.lower(): f for f in schema}
    for column in required:
        if column.lower() not in columns:
            raise ExtractError(
                f"{path}: missing column {column!r} (columns: {', '.join(schema.names)})"
            )
    return path, columns


def _col(columns: dict[str, pa.Field], name: str) -> str:
    return '"' + columns[name.lower()].name + '"'


def extract(
    con: duckdb.DuckDBPyConnection, entry: DatasetSettings, raw_dir: str, log: logging.Logger
) -> Extraction:
    """Stays with the configured task's label; fills table ``binned`` from dyn.parquet."""
    (task,) = entry.tasks
    dyn, dcols = open_parquet(raw_dir, "dyn")
    unknown = [f for f in entry.features if f.lower() not in dcols]
    if unknown:
        raise ExtractError(
            f"{dyn}: unknown feature {unknown[0]!r}, not a column (columns: "
            f"{', '.join(f.name for f in dcols.values())})"
        )
    outc, ocols = open_parquet(raw_dir, "outc")
    sta, scols = open_parquet(raw_dir, "sta")
    _check_labels_and_ids(con, task, (outc, ocols), (sta, scols))
    result = Extraction(stays=_stays(con, task, (outc, ocols), (sta, scols)))
    result.exclude(result.stays[task].isna(), f"no {task} label (outc.parquet label missing)")
    result.rows_scanned["dyn"] = first_row(con, f"SELECT count(*) FROM {_scan(dyn)}")[0]
    con.register("kept_ids", result.stays[["stay_id"]])
    con.execute("CREATE TEMP TABLE cohort AS SELECT stay_id FROM kept_ids")
    con.unregister("kept_ids")
    log.info("YAIB: %d stays with a label; reading %s", len(result.stays), dyn)
    _bin(con, entry, dyn, dcols)
    result.stays = result.stays[["stay_id", "subject_id", "age", "sex", task]]
    return result


def _scan(path: Path) -> str:
    return f"read_parquet({sql_string(str(path))})"


Source = tuple[Path, dict[str, pa.Field]]  # a parquet file and its columns by lower-case name


def _check_labels_and_ids(con: duckdb.DuckDBPyConnection, task: str, outc: Source, sta: Source):
    """Labels are 0/1 (or null); outc and sta have one row per stay."""
    label = _col(outc[1], "label")
    bad = first_row(
        con,
        f"SELECT {label} FROM {_scan(outc[0])} WHERE {label} IS NOT NULL "
        f"AND TRY_CAST({label} AS DOUBLE) NOT IN (0, 1) LIMIT 1",
    )
    if bad is not None:
        raise ExtractError(
            f"{outc[0]}: column 'label' of task {task!r} must be 0/1, found {bad[0]!r}"
        )
    for path, cols in (outc, sta):
        dup = first_row(
            con,
            f"SELECT {_col(cols, 'stay_id')} FROM {_scan(path)} GROUP BY 1 "
            "HAVING count(*) > 1 LIMIT 1",
        )
        if dup is not None:
            raise ExtractError(f"{path}: duplicate stay_id {dup[0]}")


def _stays(con: duckdb.DuckDBPyConnection, task: str, outc: Source, sta: Source) -> pd.DataFrame:
    """One row per outc stay: label, age (clipped at 90) and sex from sta."""
    (outc_path, ocols), (sta_path, scols) = outc, sta
    stays = con.execute(
        f"""
        SELECT CAST(o.{_col(ocols, "stay_id")} AS BIGINT) AS stay_id,
               CAST(o.{_col(ocols, "label")} AS DOUBLE) AS "{task}",
               CAST(s.{_col(scols, "age")} AS DOUBLE) AS age_years,
               CAST(s.{_col(scols, "sex")} AS VARCHAR) AS gender
        FROM {_scan(outc_path)} o LEFT JOIN {_scan(sta_path)} s
          ON s.{_col(scols, "stay_id")} = o.{_col(ocols, "stay_id")}
        ORDER BY stay_id
        """
    ).df()
    stays["subject_id"] = stays["stay_id"]
    stays["age"] = stays["age_years"].clip(upper=90).astype("float32")
    stays["sex"] = cleaning.sex_code(stays["gender"])
    return stays


def _bin(
    con: duckdb.DuckDBPyConnection, entry: DatasetSettings, dyn: Path, dcols: dict[str, pa.Field]
) -> None:
    """Table ``binned``: per cohort stay and grid step, the mean of each feature."""
    features = entry.features
    minutes = _minutes(dyn, _col(dcols, "time"), dcols["time"])
    values = ", ".join(
        f'{cleaning.finite(f"CAST({_col(dcols, f)} AS DOUBLE)")} AS "{f}"' for f in features
    )
    means = ", ".join(cleaning.mean(f'"{f}"') + f' AS "{f}"' for f in features)
    con.execute(
        f"""
        CREATE TEMP TABLE binned AS
        SELECT stay_id, CAST(floor(minutes / {int(entry.resolution_minutes)}) AS INTEGER)
                   AS step, {means}
        FROM (SELECT CAST({_col(dcols, "stay_id")} AS BIGINT) AS stay_id, {minutes} AS minutes,
                     {values} FROM {_scan(dyn)})
        WHERE minutes >= 0 AND minutes < {60 * int(entry.hours)}
          AND stay_id IN (SELECT stay_id FROM cohort)
        GROUP BY 1, 2
        """
    )


def _minutes(path: Path, column: str, field: pa.Field) -> str:
    """SQL for minutes since admission from a timedelta or numeric-hours ``time`` column."""
    if pa.types.is_duration(field.type):  # DuckDB reads Parquet durations as integer counts
        per_minute = 60 * {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[field.type.unit]
        return f"CAST({column} AS DOUBLE) / {per_minute}"
    if pa.types.is_integer(field.type) or pa.types.is_floating(field.type):
        return f"CAST({column} AS DOUBLE) * 60"
    raise ExtractError(
        f"{path}: column 'time' must be a timedelta or numeric hours, found type {field.type}"
    )
