"""MIMIC-III v1.4: adult ICU stays and CHARTEVENTS vitals on a regular grid.

Choices (see also :mod:`tardiff.extract.cleaning`):

- One sample per ICU stay. Excluded, in this order: FIRST_CAREUNIT = NICU, INTIME missing, no
  PATIENTS row or DOB, age < 18 (age from DOB to INTIME; ~300 for shifted > 89-year-olds,
  clipped to 90), a missing label, and (in the cohort step) no target value in the first
  ``hours``. Short stays are kept: their grid just ends with NaN.
- BP "120/80" strings: parsed under every configured systolic/diastolic item (a superset of
  ``variables.BP_STRING_ITEMS``), systolic items taking the first part and diastolic items the
  second; no second row is made (a systolic item's string does not also give a DBP value).
- mortality = ADMISSIONS.HOSPITAL_EXPIRE_FLAG = 1; icu_stay = ICUSTAYS.LOS > threshold_days
  (LOS from OUTTIME - INTIME when LOS is empty).
- CHARTEVENTS is streamed once: the item filter and ERROR = 1 are applied in the scan; rows with
  an ICUSTAY_ID go to that stay, rows without are recovered by SUBJECT_ID (and HADM_ID when
  present) with INTIME <= CHARTTIME <= OUTTIME; only rows in [INTIME, INTIME + hours) are kept.
- GCS: CareVue total (198) as charted; MetaVision total = sum of eye, motor and verbal charted at
  the same CHARTTIME (all three present). CareVue components are not summed (198 exists there).
- Item ids per feature from :mod:`tardiff.variables`, replaced by ``entry.item_ids[feature]``.
"""

from __future__ import annotations

import logging

import duckdb
import pandas as pd

from tardiff.extract import cleaning
from tardiff.extract.tables import (
    ExtractError,
    Extraction,
    Table,
    check_cast,
    first_row,
    open_table,
    run_scan,
)
from tardiff.settings import DatasetSettings
from tardiff.variables import GCS_COMPONENTS

_GCS_PART = -1  # feature code of MetaVision GCS components before they are summed

_ICU = ["SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "FIRST_CAREUNIT", "INTIME", "OUTTIME", "LOS"]
_SMALL = {
    "PATIENTS": (["SUBJECT_ID", "GENDER", "DOB"], ["dob"]),
    "ADMISSIONS": (["HADM_ID", "HOSPITAL_EXPIRE_FLAG"], []),
    "ICUSTAYS": (_ICU, ["intime", "outtime"]),
}
_EVENTS = [
    "SUBJECT_ID",
    "HADM_ID",
    "ICUSTAY_ID",
    "ITEMID",
    "CHARTTIME",
    "VALUE",
    "VALUENUM",
    "ERROR",
]
#: every raw table extraction reads
TABLES = (*_SMALL, "CHARTEVENTS")
_KEYS = {"PATIENTS": "subject_id", "ADMISSIONS": "hadm_id", "ICUSTAYS": "icustay_id"}
_ID_TYPES = {
    "subject_id": "BIGINT",
    "hadm_id": "BIGINT",
    "icustay_id": "BIGINT",
    "itemid": "INTEGER",
}


def feature_items(entry: DatasetSettings) -> dict[str, tuple[int, ...]]:
    """Item ids per configured feature (overrides applied); each id belongs to one feature."""
    overrides = entry.item_ids
    for name in overrides:
        if name not in entry.features:
            raise ExtractError(f"item_ids override for {name!r}, which is not a configured feature")
    items = {}
    for name in entry.features:
        default = cleaning.variable(name).mimic_items
        items[name] = tuple(overrides.get(name, default))
        if not items[name]:
            raise ExtractError(f"feature {name!r} has no MIMIC-III item ids")
    owner: dict[int, str] = {}
    extra = {"gcs components": GCS_COMPONENTS["metavision"]} if "gcs" in items else {}
    for name, ids in {**items, **extra}.items():
        for item in ids:
            if item in owner:
                raise ExtractError(f"item id {item} is mapped to both {owner[item]!r} and {name!r}")
            owner[item] = name
    return items


def extract(
    con: duckdb.DuckDBPyConnection, entry: DatasetSettings, raw_dir: str, log: logging.Logger
) -> Extraction:
    """Candidate stays with labels; fills table ``binned`` from CHARTEVENTS."""
    items = feature_items(entry)
    tables = {name: open_table(raw_dir, name, cols) for name, (cols, _) in _SMALL.items()}
    events = open_table(raw_dir, "CHARTEVENTS", _EVENTS)
    result = Extraction(stays=None)
    for name, (_, times) in _SMALL.items():
        result.rows_scanned[name] = _load_small(con, tables[name], times)
    result.stays = _stays(con, entry)
    _exclusions(result, entry)
    con.register("kept_ids", result.stays[["stay_id"]])
    con.execute(
        "CREATE TEMP TABLE cohort AS SELECT s.stay_id, s.subject_id, s.hadm_id, s.intime, "
        "s.outtime FROM stays_all s SEMI JOIN kept_ids k ON s.stay_id = k.stay_id"
    )
    con.unregister("kept_ids")
    log.info("MIMIC-III: %d candidate stays; scanning %s", len(result.stays), events.path)
    result.rows_scanned["CHARTEVENTS"] = _scan_events(con, events, items, entry)
    _bin(con, entry.features)
    result.stays = result.stays[["stay_id", "subject_id", "age", "sex", *entry.tasks]]
    return result


def _load_small(con: duckdb.DuckDBPyConnection, table: Table, times: list[str]) -> int:
    """Load a small table into a temp table of the same name; check its key and timestamps."""
    name = table.name.lower()
    types = {c: t for c, t in _ID_TYPES.items() if c in table.columns}
    sql = f"CREATE TEMP TABLE {name} AS SELECT * FROM {table.scan(types)}"
    rows = run_scan(con, sql, table, [(c, t, "TRUE") for c, t in types.items()])
    for column in times:
        check_cast(con, table, name, column, "TIMESTAMP")
    key = _KEYS[table.name]
    dup = first_row(
        con,
        f"SELECT {key} FROM {name} WHERE {key} IS NOT NULL GROUP BY {key} HAVING count(*) > 1 "
        "LIMIT 1",
    )
    if dup is not None:
        raise ExtractError(f"{table.path}: duplicate {key.upper()} {dup[0]}")
    return rows


def _stays(con: duckdb.DuckDBPyConnection, entry: DatasetSettings) -> pd.DataFrame:
    """All ICU stays with age, sex and labels (NaN where unknown), sorted by stay_id."""
    con.execute(
        """
        CREATE TEMP TABLE stays_all AS
        SELECT i.icustay_id AS stay_id, i.subject_id, i.hadm_id,
               upper(trim(i.first_careunit)) AS careunit,
               CAST(i.intime AS TIMESTAMP) AS intime, CAST(i.outtime AS TIMESTAMP) AS outtime,
               TRY_CAST(i.los AS DOUBLE) AS los, p.gender, CAST(p.dob AS TIMESTAMP) AS dob,
               TRY_CAST(a.hospital_expire_flag AS DOUBLE) AS expire
        FROM icustays i
        LEFT JOIN patients p ON p.subject_id = i.subject_id
        LEFT JOIN admissions a ON a.hadm_id = i.hadm_id
        WHERE i.icustay_id IS NOT NULL
        """
    )
    stays = con.execute(
        """
        SELECT stay_id, subject_id, careunit, intime IS NOT NULL AS has_intime,
               date_diff('day', dob, intime) / 365.2425 AS age_years,
               coalesce(los, date_diff('second', intime, outtime) / 86400.0) AS los,
               expire, gender
        FROM stays_all ORDER BY stay_id
        """
    ).df()
    return cleaning.add_static_and_labels(stays, entry.tasks)


def _exclusions(result: Extraction, entry: DatasetSettings) -> None:
    """Apply the stay-level exclusions in order, recording reasons and counts."""
    result.exclude(result.stays["careunit"] == "NICU", "neonatal ICU (FIRST_CAREUNIT = NICU)")
    result.exclude(~result.stays["has_intime"], "INTIME missing")
    result.exclude(result.stays["age_years"].isna(), "age unknown (no PATIENTS row or DOB)")
    result.exclude(result.stays["age_years"] < 18, "age < 18")
    why = {
        "mortality": "ADMISSIONS.HOSPITAL_EXPIRE_FLAG missing",
        "icu_stay": "ICUSTAYS.LOS and OUTTIME missing",
    }
    for task in entry.tasks:
        result.exclude(result.stays[task].isna(), f"no {task} label ({why[task]})")


def _scan_events(
    con: duckdb.DuckDBPyConnection, events: Table, items: dict, entry: DatasetSettings
) -> int:
    """Stream CHARTEVENTS once into ``groups``: per (stay, step, feature) the exact sum and
    count of the cleaned values in the window; MetaVision GCS components per charting time."""
    ids = cleaning.id_list(_all_items(items))
    types = {**_ID_TYPES, "charttime": "TIMESTAMP", "valuenum": "DOUBLE"}
    seconds = 60 * entry.resolution_minutes
    feature, value, clean = _cleaning_sql(items)
    parts = " ".join(
        f"WHEN {item} THEN {1 << k}" for k, item in enumerate(GCS_COMPONENTS["metavision"])
    )
    sql = f"""
        CREATE TEMP TABLE groups AS
        WITH ev AS (
            SELECT subject_id, hadm_id, icustay_id, itemid, valuenum, value, charttime AS ts
            FROM {events.scan(types)}
            WHERE itemid IN ({ids}) AND {cleaning.not_error("error")}
        ), windowed AS (
            SELECT c.stay_id, ev.itemid, ev.ts, ev.valuenum, ev.value,
                   CAST(date_diff('second', c.intime, ev.ts) // {seconds} AS INTEGER) AS step
            FROM ev JOIN cohort c ON ev.subject_id = c.subject_id AND (
                ev.icustay_id = c.stay_id OR (
                    ev.icustay_id IS NULL AND (ev.hadm_id IS NULL OR ev.hadm_id = c.hadm_id)
                    AND ev.ts BETWEEN c.intime AND c.outtime))
            WHERE ev.ts >= c.intime AND ev.ts < c.intime + INTERVAL {int(entry.hours)} HOUR
        ), x AS (
            SELECT stay_id, step, ts, itemid, {feature} AS f, {value} AS x FROM windowed
        )
        SELECT stay_id, step, f, CASE WHEN f = {_GCS_PART} THEN ts END AS gcs_time,
               sum({cleaning.fixed("v")}) AS total, count(v) AS n, count(*) AS rows,
               bit_or(CASE WHEN f = {_GCS_PART} THEN CASE itemid {parts} END
                      END) AS parts
        FROM (SELECT *, {clean} AS v FROM x)
        GROUP BY ALL
    """
    return run_scan(con, sql, events, [(c, t, "TRUE") for c, t in types.items()])


def _all_items(items: dict[str, tuple[int, ...]]) -> list[int]:
    extra = GCS_COMPONENTS["metavision"] if "gcs" in items else ()
    return [i for ids in items.values() for i in ids] + list(extra)


def _cleaning_sql(items: dict[str, tuple[int, ...]]) -> tuple[str, str, str]:
    """SQL for a chart row's feature code ``f``, its number ``x`` and cleaned value (from ``f``,
    ``x``, ``itemid``; GCS components stay raw until summed)."""
    feature_case, value_case, clean_case = [], [], []
    for i, (name, ids) in enumerate(items.items()):
        var = cleaning.variable(name)
        id_sql = cleaning.id_list(ids)
        feature_case.append(f"WHEN itemid IN ({id_sql}) THEN {i}")
        if name in ("sbp", "dbp"):
            part = cleaning.chart_value("valuenum", "value", bp=1 if name == "sbp" else 2)
            value_case.append(f"WHEN itemid IN ({id_sql}) THEN {part}")
        converted = "x"
        if name == "spo2":
            converted = cleaning.spo2_percent("x")
        if name == "temp":
            f_items = set(var.fahrenheit_items) & set(ids)
            converted = cleaning.celsius("x", "itemid", f_items)
        clean_case.append(f"WHEN {i} THEN {cleaning.in_range(converted, var.valid)}")
    if "gcs" in items:
        components = cleaning.id_list(GCS_COMPONENTS["metavision"])
        feature_case.append(f"WHEN itemid IN ({components}) THEN {_GCS_PART}")
        clean_case.append(f"WHEN {_GCS_PART} THEN x")
    value = cleaning.chart_value("valuenum", "value")
    if value_case:
        value = f"CASE {' '.join(value_case)} ELSE {value} END"
    return f"CASE {' '.join(feature_case)} END", value, f"CASE f {' '.join(clean_case)} END"


def _bin(con: duckdb.DuckDBPyConnection, features: list[str]) -> None:
    """Table ``binned``: per (stay, step) the mean of each feature (GCS totals summed first)."""
    gcs = ""
    if "gcs" in features:
        lo, hi = cleaning.variable("gcs").valid
        scale = cleaning.MEAN_SCALE
        gcs = f"""UNION ALL
            SELECT stay_id, step, {features.index("gcs")}, total, 1 FROM groups
            WHERE f = {_GCS_PART} AND n = 3 AND rows = 3 AND parts = 7
              AND total BETWEEN {int(lo * scale)} AND {int(hi * scale)}"""
    means = ", ".join(
        cleaning.mean_of(f"sum(total) FILTER (WHERE f = {i})", f"sum(n) FILTER (WHERE f = {i})")
        + f' AS "{name}"'
        for i, name in enumerate(features)
    )
    con.execute(
        f"""
        CREATE TEMP TABLE binned AS
        SELECT stay_id, step, {means}
        FROM (SELECT stay_id, step, f, total, n FROM groups WHERE f <> {_GCS_PART} {gcs})
        GROUP BY stay_id, step
        """
    )
    con.execute("DROP TABLE groups")
