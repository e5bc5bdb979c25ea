"""Cleaning rules as DuckDB SQL expressions (applied inside the streaming queries).

Rules (``shared/reference/ehr-sources.md``):

- MIMIC-III rows with ``ERROR = 1`` are dropped (:func:`not_error`).
- A value is VALUENUM when present, else the leading number of VALUE when VALUE is a number
  optionally followed by text ("4 Spontaneously" -> 4, "1.0 ET/Trach" -> 1.0); other text -> NULL.
- Blood pressure strings "120/80": under a systolic item the first part, under a diastolic item
  the second part; a slash string under any other item is not a number.
- SpO2 <= 1 is a fraction: x 100.
- Temperature items charted in °F, and values >= 79 under a °C item, are °F: (F - 32) / 1.8.
- Values outside the variable's valid range (after conversion) are dropped.
- Lab values: 'ERROR' and other text -> NULL; censored '<0.1' / '>500' -> the bound.
- Bin means are exact fixed-point means (:func:`mean`), so they do not depend on the order
  in which parallel threads add values up: the output is byte-identical run to run.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from tardiff.extract.tables import ExtractError
from tardiff.settings import TaskSettings
from tardiff.variables import VARIABLES, Variable

_NUMBER = r"^\s*([-+]?[0-9]*\.?[0-9]+)(\s.*)?$"
_BP = r"^\s*([0-9]*\.?[0-9]+)\s*/\s*([0-9]*\.?[0-9]+)\s*$"
_CENSORED = r"^\s*[<>]=?\s*([0-9]*\.?[0-9]+)\s*$"

#: Fixed-point scale of the exact bin means (1e-6 is below float32 resolution at clinical scale).
MEAN_SCALE = 1_000_000


def variable(name: str) -> Variable:
    """The variable called ``name``; :class:`ExtractError` naming it and the known ones."""
    if name not in VARIABLES:
        known = ", ".join(sorted(VARIABLES))
        raise ExtractError(f"unknown feature {name!r} (known features: {known})")
    return VARIABLES[name]


def id_list(items: Iterable[int]) -> str:
    """Item ids as a SQL list body, e.g. ``211, 220045``."""
    return ", ".join(str(int(i)) for i in sorted(set(items)))


def not_error(error: str) -> str:
    """Keep rows whose ERROR flag is not 1 (MIMIC-III CHARTEVENTS)."""
    return f"coalesce(TRY_CAST({error} AS DOUBLE), 0) <> 1"


def number(text: str) -> str:
    """Leading number of a text value ("4 Spontaneously" -> 4), NULL for other text."""
    return f"TRY_CAST(regexp_extract({text}, '{_NUMBER}', 1) AS DOUBLE)"


def bp_part(text: str, part: int) -> str:
    """Part 1 (systolic) or 2 (diastolic) of a "120/80" string, NULL if not such a string."""
    return f"TRY_CAST(NULLIF(regexp_extract({text}, '{_BP}', {part}), '') AS DOUBLE)"


def chart_value(valuenum: str, value: str, bp: int | None = None) -> str:
    """Numeric value of a chart row; ``bp`` = 1/2 takes that part of a "120/80" VALUE first."""
    plain = f"coalesce(TRY_CAST({valuenum} AS DOUBLE), {number(value)})"
    return plain if bp is None else f"coalesce({bp_part(value, bp)}, {plain})"


def lab_value(valuenum: str, value: str) -> str:
    """Numeric lab value: VALUENUM, else a plain or censored number in VALUE ('<0.1' -> 0.1)."""
    censored = f"TRY_CAST(NULLIF(regexp_extract({value}, '{_CENSORED}', 1), '') AS DOUBLE)"
    return f"coalesce(TRY_CAST({valuenum} AS DOUBLE), {number(value)}, {censored})"


def spo2_percent(x: str) -> str:
    """SpO2 in percent: fractions (<= 1) are multiplied by 100."""
    return f"CASE WHEN {x} <= 1 THEN {x} * 100 ELSE {x} END"


def celsius(x: str, itemid: str, fahrenheit_items: Iterable[int]) -> str:
    """Temperature in °C: °F items, and values >= 79 under °C items, are converted from °F."""
    items = id_list(fahrenheit_items)
    is_f = f"{itemid} IN ({items}) OR {x} >= 79" if items else f"{x} >= 79"
    return f"CASE WHEN {is_f} THEN ({x} - 32) / 1.8 ELSE {x} END"


def in_range(x: str, valid: tuple[float, float]) -> str:
    """``x`` if inside the closed valid range, else NULL."""
    lo, hi = valid
    return f"CASE WHEN {x} BETWEEN {float(lo)!r} AND {float(hi)!r} THEN {x} END"


def fixed(x: str) -> str:
    """``x`` as an integer count of 1e-6 units, so that sums are exact and order-independent."""
    return f"CAST(round({x} * {MEAN_SCALE}) AS BIGINT)"


def mean_of(total: str, count: str) -> str:
    """Mean as FLOAT from an exact sum of :func:`fixed` values and a count."""
    return f"CAST(CAST({total} AS DOUBLE) / {count} / {MEAN_SCALE} AS FLOAT)"


def mean(x: str, cond: str = "TRUE") -> str:
    """Order-independent mean of ``x`` over a group (rows where ``cond``), as FLOAT."""
    return mean_of(f"sum({fixed(x)}) FILTER (WHERE {cond})", f"count({x}) FILTER (WHERE {cond})")


def eicu_age(age: str) -> str:
    """eICU age string in years: '> 89' -> 90, '' or other text -> NULL."""
    return f"CASE WHEN trim({age}) LIKE '>%' THEN 90.0 ELSE TRY_CAST(trim({age}) AS DOUBLE) END"


def finite(x: str) -> str:
    """``x`` with NaN and infinities as NULL (Parquet inputs carry NaN for 'not measured')."""
    return f"CASE WHEN isfinite({x}) THEN {x} END"


def sex_code(gender: pd.Series) -> pd.Series:
    """'F'/'M' from gender strings ('F', 'Female', 'male', ...); None when unknown."""
    first = gender.astype("string").str.strip().str[:1].str.upper()
    known = first.isin(["F", "M"]).fillna(False).to_numpy(bool)
    return pd.Series(np.where(known, first.astype(object), None), index=gender.index, dtype=object)


def add_static_and_labels(stays: pd.DataFrame, tasks: dict[str, TaskSettings]) -> pd.DataFrame:
    """Add ``age`` (clipped to 90), ``sex`` and one label column per task to candidate stays.

    Needs columns ``age_years``, ``gender``, ``expire`` (1 = died in hospital, null = unknown)
    and ``los`` (days); labels stay null where their source value is unknown.
    """
    stays["age"] = stays["age_years"].clip(upper=90).astype("float32")
    stays["sex"] = sex_code(stays["gender"])
    for task, spec in tasks.items():
        if task == "mortality":
            stays[task] = (stays["expire"] == 1).where(stays["expire"].notna())
        else:
            stays[task] = (stays["los"] > spec.threshold_days).where(stays["los"].notna())
    return stays
