"""eICU-CRD v2.0: first unit stay of each hospitalisation, vital signs on a regular grid.

Choices:

- One sample per unit stay with ``unitvisitnumber = 1``. Excluded: later unit visits, age < 18
  (age '> 89' -> 90; '' or other text -> unknown and kept), a missing label
  (hospitaldischargestatus not Alive/Expired; unitdischargeoffset empty), and (in the cohort
  step) no target value in the first ``hours``.
- subject_id = dense rank of ``uniquepid`` over the patient table (eICU patient ids are strings).
- mortality = hospitaldischargestatus = 'Expired'; icu_stay = unitdischargeoffset / 1440 >
  threshold_days.
- Times are minute offsets from unit admission: step = observationoffset // resolution_minutes,
  window 0 <= offset < hours * 60.
- Features come from the (table, column) sources of :mod:`tardiff.variables`, cleaned to the eICU
  valid ranges and averaged per bin. A feature with several sources (blood pressure: invasive
  ``systemic*`` from vitalPeriodic first, non-invasive from vitalAperiodic as fallback) takes, per
  bin, the first source that has a value there.
"""

from __future__ import annotations

import logging

import duckdb

from tardiff.extract import cleaning
from tardiff.extract.tables import (
    ExtractError,
    Extraction,
    check_cast,
    first_row,
    open_table,
    run_scan,
)
from tardiff.settings import DatasetSettings

_PATIENT = [
    "patientunitstayid",
    "gender",
    "age",
    "hospitaldischargestatus",
    "unitvisitnumber",
    "unitdischargeoffset",
    "uniquepid",
]
_VITAL_TYPES = {"patientunitstayid": "BIGINT", "observationoffset": "INTEGER"}


def feature_sources(features: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per eICU table, the (feature, column) pairs to read, tables in first-use order."""
    sources: dict[str, list[tuple[str, str]]] = {}
    for name in features:
        var = cleaning.variable(name)
        if not var.eicu:
            raise ExtractError(f"feature {name!r} has no eICU source")
        for table, column in var.eicu:
            sources.setdefault(table, []).append((name, column))
    return sources


def tables(features: list[str]) -> list[str]:
    """Every raw table extraction reads for ``features``."""
    return ["patient", *feature_sources(features)]


def extract(
    con: duckdb.DuckDBPyConnection, entry: DatasetSettings, raw_dir: str, log: logging.Logger
) -> Extraction:
    """Candidate stays with labels; fills table ``binned`` from the vital-sign tables."""
    sources = feature_sources(entry.features)
    patient = open_table(raw_dir, "patient", _PATIENT)
    vitals = {
        name: open_table(raw_dir, name, [*_VITAL_TYPES, *(c for _, c in pairs)])
        for name, pairs in sources.items()
    }
    result = Extraction(stays=None)
    types = {"patientunitstayid": "BIGINT"}
    result.rows_scanned["patient"] = run_scan(
        con,
        f"CREATE TEMP TABLE patient AS SELECT * FROM {patient.scan(types)}",
        patient,
        [("patientunitstayid", "BIGINT", "TRUE")],
    )
    check_cast(con, patient, "patient", "unitdischargeoffset", "INTEGER")
    dup = first_row(
        con, "SELECT patientunitstayid FROM patient GROUP BY 1 HAVING count(*) > 1 LIMIT 1"
    )
    if dup is not None:
        raise ExtractError(f"{patient.path}: duplicate patientunitstayid {dup[0]}")
    result.stays = _stays(con, entry)
    _exclusions(result, entry)
    con.register("kept_ids", result.stays[["stay_id"]])
    con.execute("CREATE TEMP TABLE cohort AS SELECT stay_id FROM kept_ids")
    con.unregister("kept_ids")
    for k, (name, table) in enumerate(vitals.items()):
        log.info("eICU: %d candidate stays; scanning %s", len(result.stays), table.path)
        means = ", ".join(
            f'{cleaning.mean(_clean(column, feature))} AS "{feature}"'
            for feature, column in sources[name]
        )
        sql = f"""
            CREATE TEMP TABLE bins_{k} AS
            SELECT patientunitstayid AS stay_id,
                   CAST(observationoffset // {int(entry.resolution_minutes)} AS INTEGER) AS step,
                   {means}
            FROM {table.scan(_VITAL_TYPES)}
            WHERE observationoffset >= 0 AND observationoffset < {60 * int(entry.hours)}
              AND patientunitstayid IN (SELECT stay_id FROM cohort)
            GROUP BY 1, 2
        """
        checks = [(c, t, "TRUE") for c, t in _VITAL_TYPES.items()]
        result.rows_scanned[name] = run_scan(con, sql, table, checks)
    _combine(con, entry.features, list(vitals))
    result.stays = result.stays[["stay_id", "subject_id", "age", "sex", *entry.tasks]]
    return result


def _clean(column: str, feature: str) -> str:
    var = cleaning.variable(feature)
    return cleaning.in_range(f"TRY_CAST({column} AS DOUBLE)", var.eicu_valid or var.valid)


def _stays(con: duckdb.DuckDBPyConnection, entry: DatasetSettings):
    """All unit stays with age, sex and labels (NaN where unknown), sorted by stay_id."""
    stays = con.execute(
        f"""
        SELECT patientunitstayid AS stay_id,
               dense_rank() OVER (ORDER BY coalesce(uniquepid, 'stay ' || patientunitstayid))
                   AS subject_id,
               TRY_CAST(unitvisitnumber AS INTEGER) AS visit,
               {cleaning.eicu_age("age")} AS age_years,
               TRY_CAST(unitdischargeoffset AS DOUBLE) / 1440 AS los,
               CASE lower(trim(hospitaldischargestatus)) WHEN 'expired' THEN 1.0
                    WHEN 'alive' THEN 0.0 END AS expire,
               gender
        FROM patient ORDER BY stay_id
        """
    ).df()
    return cleaning.add_static_and_labels(stays, entry.tasks)


def _exclusions(result: Extraction, entry: DatasetSettings) -> None:
    result.exclude(result.stays["visit"] != 1, "not the first unit stay (unitvisitnumber != 1)")
    result.exclude(result.stays["age_years"] < 18, "age < 18")
    why = {
        "mortality": "hospitaldischargestatus missing",
        "icu_stay": "unitdischargeoffset missing",
    }
    for task in entry.tasks:
        result.exclude(result.stays[task].isna(), f"no {task} label ({why[task]})")


def _combine(con: duckdb.DuckDBPyConnection, features: list[str], tables: list[str]) -> None:
    """Table ``binned``: per bin and feature, the value of its first source with one there."""
    n_tables = len(tables)
    if n_tables == 1:
        con.execute("ALTER TABLE bins_0 RENAME TO binned")
        return
    union = " UNION ALL BY NAME ".join(
        f"SELECT {k} AS source, * FROM bins_{k}" for k in range(n_tables)
    )
    picks = []
    for f in features:
        order = [table for table, _ in cleaning.variable(f).eicu]
        prio = " ".join(
            f"WHEN {k} THEN {order.index(t)}" for k, t in enumerate(tables) if t in order
        )
        picks.append(
            f'arg_min("{f}", CASE source {prio} END) FILTER (WHERE "{f}" IS NOT NULL) AS "{f}"'
        )
    con.execute(
        f"CREATE TEMP TABLE binned AS SELECT stay_id, step, {', '.join(picks)} "
        f"FROM ({union}) GROUP BY stay_id, step"
    )
