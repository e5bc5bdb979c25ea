"""Cleaning rules: SQL expressions on crafted values and end to end on crafted CHARTEVENTS."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from extract_raw import SPLIT, entry, mimic_basic

from tardiff.extract import build_cohort, cleaning
from tardiff.layout import CohortFiles

STAY = 200002  # a stay of mimic_basic() whose HR is charted at minute 30 (step 0)


def evaluate(expr: str, **columns) -> list:
    """Evaluate a SQL expression over columns given as Python lists."""
    frame = pd.DataFrame(columns)
    con = duckdb.connect()
    con.register("t", frame)
    return [row[0] for row in con.execute(f"SELECT {expr} FROM t").fetchall()]


def test_chart_value_prefers_valuenum_then_leading_number():
    out = evaluate(
        cleaning.chart_value("valuenum", "value"),
        valuenum=[72.0, None, None, None, None, None],
        value=["72", "4 Spontaneously", "1.0 ET/Trach", "No Response", "120/80", None],
    )
    assert out == [72.0, 4.0, 1.0, None, None, None]


def test_bp_string_parts():
    values = ["120/80", " 95 / 60 ", "120", "abc"]
    assert evaluate(cleaning.bp_part("value", 1), value=values) == [120.0, 95.0, None, None]
    assert evaluate(cleaning.bp_part("value", 2), value=values) == [80.0, 60.0, None, None]
    sbp = cleaning.chart_value("valuenum", "value", bp=1)
    assert evaluate(sbp, valuenum=[None, 120.0], value=["120/80", "120"]) == [120.0, 120.0]


def test_lab_values():
    out = evaluate(
        cleaning.lab_value("valuenum", "value"),
        valuenum=[1.5, None, None, None, None],
        value=["1.5", "ERROR", "<0.1", ">500", "7.2"],
    )
    assert out == [1.5, None, 0.1, 500.0, 7.2]


def test_spo2_temperature_range_and_error():
    assert evaluate(cleaning.spo2_percent("x"), x=[0.95, 1.0, 97.0]) == [95.0, 100.0, 97.0]
    temp = cleaning.celsius("x", "itemid", [678])
    out = evaluate(temp, x=[98.6, 37.0, 99.5], itemid=[678, 676, 676])
    assert np.allclose(out, [37.0, 37.0, 37.5])
    assert evaluate(cleaning.in_range("x", (0, 300)), x=[-1.0, 0.0, 300.0, 301.0]) == [
        None,
        0.0,
        300.0,
        None,
    ]
    keep = cleaning.not_error("error")
    assert evaluate(keep, error=["1", "0", None, "1.0"]) == [False, True, True, False]


def test_eicu_age_and_sex():
    assert evaluate(cleaning.eicu_age("age"), age=["> 89", "", "45", "abc"]) == [
        90.0,
        None,
        45.0,
        None,
    ]
    sex = cleaning.sex_code(pd.Series(["Female", "male", "F", "Unknown", None, ""]))
    assert sex.tolist() == ["F", "M", "F", None, None, None]


def test_mean_is_order_independent():
    values = list(np.random.default_rng(0).normal(37, 1, 1000))
    a = evaluate(cleaning.mean("x"), x=values)[0]
    b = evaluate(cleaning.mean("x"), x=values[::-1])[0]
    assert a == b and abs(a - np.mean(values)) < 1e-5


def extract_one(
    tmp_path, add, features=("hr", "sbp", "dbp", "mbp", "rr", "temp", "spo2"), **overrides
):
    """Build mimic_basic() plus ``add(m)`` rows; return the step-0..2 rows of STAY."""
    m = mimic_basic()
    add(m)
    m.write(tmp_path / "raw")
    out = CohortFiles.in_dir(tmp_path / "out")
    build_cohort(entry(features=list(features), **overrides), tmp_path / "raw", out, SPLIT, 0)
    ts = pd.read_parquet(out.timeseries)
    return ts[ts.stay_id == STAY].set_index("step")


def test_end_to_end_cleaning_rules(tmp_path):
    def add(m):
        m.event(STAY, 211, 30, 999, error=1)  # ERROR = 1: dropped
        m.event(STAY, 455, 30, "120/80", valuenum=None)  # systolic item: 120
        m.event(STAY, 8441, 30, "118/76", valuenum=None)  # diastolic item: 76
        m.event(STAY, 456, 30, "120/80", valuenum=None)  # mean item: not a number
        m.event(STAY, 646, 30, 0.95)  # fraction: 95
        m.event(STAY, 678, 30, 98.6)  # °F item: 37
        m.event(STAY, 676, 90, 100.4)  # >= 79 under a °C item: °F, 38
        m.event(STAY, 618, 30, 95)  # RR outside 0-70: dropped
        m.event(STAY, 618, 90, "18 breaths", valuenum=None)  # VALUE parsed: 18

    row = extract_one(tmp_path, add)
    assert row.loc[0, "hr"] == 71  # mimic_basic's value only
    assert row.loc[0, "sbp"] == 120 and row.loc[0, "dbp"] == 76
    assert np.isnan(row.loc[0, "mbp"])
    assert row.loc[0, "spo2"] == pytest.approx(95)
    assert row.loc[0, "temp"] == pytest.approx(37, abs=1e-5)
    assert row.loc[1, "temp"] == pytest.approx(38, abs=1e-5)
    assert np.isnan(row.loc[0, "rr"]) and row.loc[1, "rr"] == 18


def test_several_values_in_a_bin_are_averaged(tmp_path):
    def add(m):
        m.event(STAY, 211, 10, 80)
        m.event(STAY, 220045, 50, 90)  # MetaVision item of the same feature

    assert extract_one(tmp_path, add).loc[0, "hr"] == pytest.approx((71 + 80 + 90) / 3)


def test_gcs_carevue_total_and_metavision_sum(tmp_path):
    def add(m):
        m.event(STAY, 198, 30, 14)  # CareVue total
        m.event(STAY, 220739, 90, "4 Spontaneously", valuenum=4)  # eye
        m.event(STAY, 223901, 90, "6 Obeys Commands", valuenum=6)  # motor
        m.event(STAY, 223900, 90, "1.0 ET/Trach", valuenum=None)  # verbal, number from VALUE
        m.event(STAY, 220739, 150, 3)  # incomplete set: no total

    row = extract_one(tmp_path, add, features=("hr", "gcs"))
    assert row.loc[0, "gcs"] == 14 and row.loc[1, "gcs"] == 11
    assert np.isnan(row.loc[2, "gcs"])


def test_item_ids_override(tmp_path):
    def add(m):
        m.event(STAY, 224167, 30, 130)  # not a default SBP item

    row = extract_one(tmp_path, add, features=("hr", "sbp"), item_ids={"sbp": [224167]})
    assert row.loc[0, "sbp"] == 130
