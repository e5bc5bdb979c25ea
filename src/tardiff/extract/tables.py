"""Locate raw CSV tables, check their headers and scan them with DuckDB.

File names are matched case-insensitively (``CHARTEVENTS.csv.gz``, ``chartevents.csv``,
``vitalPeriodic.csv.gz``), ``.csv.gz`` preferred over ``.csv``. Column names are compared
case-insensitively and exposed to SQL in lower case.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd


class ExtractError(ValueError):
    """Bad raw input; the message names the file, column or task at fault."""


class MissingTableError(FileNotFoundError):
    """A raw table file is missing; the message names the expected file and folder."""


@dataclass
class Extraction:
    """What a source extractor hands to the cohort builder.

    ``stays``: one row per candidate stay (stay_id, subject_id, age, sex, one column per task);
    the DuckDB connection holds table ``binned`` (stay_id, step, one FLOAT column per feature:
    the bin mean) with a row for each bin that has a value.
    """

    stays: pd.DataFrame
    exclusions: list[dict] = field(default_factory=list)
    rows_scanned: dict[str, int] = field(default_factory=dict)

    def exclude(self, mask: pd.Series, reason: str) -> None:
        """Drop the stays where ``mask`` holds, recording ``reason`` and the count."""
        mask = mask.fillna(False).astype(bool)
        self.exclusions.append({"reason": reason, "count": int(mask.sum())})
        self.stays = self.stays[~mask]


def find_table(
    raw_dir: str | Path, name: str, suffixes: tuple[str, ...] = (".csv.gz", ".csv")
) -> Path:
    """Path of ``<name><suffix>`` in ``raw_dir``, any case, the first suffix found first."""
    folder = Path(raw_dir)
    if not folder.is_dir():
        raise MissingTableError(f"raw data folder not found: {folder}")
    by_lower = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    for suffix in suffixes:
        path = by_lower.get((name + suffix).lower())
        if path is not None:
            return path
    expected = " or ".join(name + suffix for suffix in suffixes)
    raise MissingTableError(f"missing table file {expected} in {folder}")


def read_header(path: Path) -> list[str]:
    """Column names of a CSV file (first row), gzip or plain."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", newline="") as fh:
            row = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError) as err:
        raise ExtractError(f"{path}: cannot read the header row ({err})") from None
    if not row:
        raise ExtractError(f"{path}: empty file, no header row")
    return [name.strip() for name in row]


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class Table:
    """A raw CSV table whose header holds the required columns."""

    name: str
    path: Path
    header: tuple[str, ...]  # column names as in the file

    @property
    def columns(self) -> tuple[str, ...]:
        """Lower-case column names in file order."""
        return tuple(c.lower() for c in self.header)

    def display(self, column: str) -> str:
        """A column's name as spelled in the file."""
        return self.header[self.columns.index(column.lower())]

    def scan(self, types: dict[str, str]) -> str:
        """SQL ``read_csv(...)`` over the file; ``types`` maps lower-case names to SQL types,
        every other column is read as VARCHAR."""
        spec = ", ".join(
            f"{sql_string(c)}: {sql_string(types.get(c, 'VARCHAR'))}" for c in self.columns
        )
        return (
            f"read_csv({sql_string(str(self.path))}, header = true, auto_detect = false, "
            f"delim = ',', quote = '\"', escape = '\"', columns = {{{spec}}})"
        )


def open_table(raw_dir: str | Path, name: str, required: list[str]) -> Table:
    """Find table ``name`` and check that its header has the ``required`` columns."""
    path = find_table(raw_dir, name)
    header = tuple(read_header(path))
    lower = [c.lower() for c in header]
    for column in required:
        if column.lower() not in lower:
            raise ExtractError(f"{path}: missing column {column} (header: {', '.join(header)})")
    return Table(name, path, header)


def first_row(con: duckdb.DuckDBPyConnection, sql: str) -> tuple | None:
    """First row of a small query (fully fetched, so the connection is free again)."""
    rows = con.execute(sql).fetchall()
    return rows[0] if rows else None


def check_cast(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    source: str,
    column: str,
    sql_type: str,
    where: str = "TRUE",
) -> None:
    """Raise :class:`ExtractError` naming file, column and an example if a value of ``column``
    in ``source`` (rows where ``where``) does not cast to ``sql_type``."""
    bad = first_row(
        con,
        f"SELECT {column} FROM {source} WHERE ({where}) AND {column} IS NOT NULL "
        f"AND TRY_CAST({column} AS {sql_type}) IS NULL LIMIT 1",
    )
    if bad is not None:
        kind = "timestamp" if sql_type == "TIMESTAMP" else sql_type.lower()
        raise ExtractError(
            f"{table.path}: column {table.display(column)} has an unparsable {kind} value "
            f"{bad[0]!r}"
        )


def run_scan(
    con: duckdb.DuckDBPyConnection, sql: str, table: Table, checks: list[tuple[str, str, str]]
) -> int:
    """Run ``sql`` (one pass over ``table``) and return the raw rows it scanned.

    On a DuckDB error, ``checks`` (column, SQL type, SQL filter) look for a value that does not
    cast, so that the message names the file, the column and an example value.
    """
    try:
        con.execute(sql)
    except duckdb.Error as err:
        source = table.scan({})
        for column, sql_type, where in checks:
            check_cast(con, table, source, column, sql_type, where)
        raise ExtractError(f"{table.path}: {str(err).splitlines()[0]}") from None
    return rows_scanned(con)


def rows_scanned(con: duckdb.DuckDBPyConnection) -> int:
    """Raw rows read by the file scans of the last query (from DuckDB's profiler)."""
    info = json.loads(con.get_profiling_information(format="json"))
    total = 0
    stack = list(info.get("operator", []))
    while stack:
        node = stack.pop()
        extra = node.get("extra_info", {})
        if isinstance(extra, dict) and str(extra.get("Function", "")).startswith("READ_"):
            total += int(node.get("rows_scanned") or node.get("operator_cardinality") or 0)
        stack.extend(node.get("children", []))
    return total
