"""MIMIC-III extraction: cohort, labels, grid, stay recovery, file conventions."""

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from extract_raw import SPLIT, T0, entry, mimic_basic

from tardiff.extract import build_cohort
from tardiff.layout import CohortFiles


def run(tmp_path, m, **overrides):
    m.write(tmp_path / "raw")
    out = CohortFiles.in_dir(tmp_path / "out")
    summary = build_cohort(entry(**overrides), tmp_path / "raw", out, SPLIT, 0)
    stays = pd.read_parquet(out.stays).set_index("stay_id")
    ts = pd.read_parquet(out.timeseries)
    return summary, stays, ts


def test_labels_static_and_schema(tmp_path):
    m = mimic_basic()
    m.stay(300001, subject_id=9001, age=300.2, gender="M", expire=1, los=3.5)  # > 89: DOB shifted
    m.event(300001, 211, 0, 90)
    summary, stays, ts = run(tmp_path, m)
    row = stays.loc[300001]
    assert (row.mortality, row.icu_stay, row.sex) == (1, 1, "M")
    assert row.age == np.float32(90)
    assert stays.loc[200001].icu_stay == 1 and stays.loc[200002].icu_stay == 0  # LOS 5 vs 1
    assert stays.loc[200002].mortality == 1 and stays.loc[200003].mortality == 0
    assert stays.loc[200005].age == pytest.approx(44, abs=0.01)
    assert str(ts.dtypes["stay_id"]) == "int64" and str(ts.dtypes["step"]) == "int16"
    assert all(str(ts.dtypes[f]) == "float32" for f in entry().features)
    assert str(stays.dtypes["mortality"]) == "int8" and str(stays.dtypes["age"]) == "float32"
    assert summary["n_stays"] == 21 and summary["rows_scanned"]["CHARTEVENTS"] == 21


def test_grid_alignment_and_exact_rows(tmp_path):
    m = mimic_basic(hr_minutes=90)  # INTIME + 90 min -> step 1 at hourly resolution
    m.event(200001, 211, -10, 50)  # before INTIME: dropped
    m.event(200001, 211, 24 * 60, 50)  # at INTIME + 24 h: outside [0, 24 h)
    m.event(200001, 211, 24 * 60 - 1, 60)  # last minute of the window: step 23
    _, _, ts = run(tmp_path, m)
    assert (ts.groupby("stay_id").size() == 24).all()
    assert (ts.groupby("stay_id")["step"].apply(list) == [list(range(24))] * 20).all()
    first = ts[ts.stay_id == 200001].set_index("step")["hr"]
    assert first[1] == 70 and first[23] == 60 and first.notna().sum() == 2
    assert ts.sort_values(["stay_id", "step"]).index.equals(ts.index)


def test_half_hour_resolution(tmp_path):
    _, _, ts = run(tmp_path, mimic_basic(hr_minutes=90), resolution_minutes=30, hours=6)
    assert (ts.groupby("stay_id").size() == 12).all()
    assert ts[ts.stay_id == 200001].set_index("step")["hr"][3] == 70


def test_null_icustay_id_recovered_by_subject_and_time(tmp_path):
    m = mimic_basic()
    m.event(200001, 211, 150, 101, icustay=False)  # HADM_ID still there
    m.event(200001, 211, 210, 102, icustay=False, hadm=False)
    # a later stay of the same subject: its rows must not land in the first stay
    m.stay(200101, subject_id=1, hadm_id=100101, intime=T0 + timedelta(days=10), los=1.0)
    m.event(200101, 211, 30, 55, icustay=False, hadm=False)
    _, _, ts = run(tmp_path, m)
    first = ts[ts.stay_id == 200001].set_index("step")["hr"]
    assert first[2] == 101 and first[3] == 102 and first.notna().sum() == 3
    assert ts[ts.stay_id == 200101].set_index("step")["hr"][0] == 55


def test_exclusions_reported(tmp_path):
    m = mimic_basic()
    m.stay(300001, subject_id=9001, careunit="NICU", age=0.01)
    m.stay(300002, subject_id=9002, age=16)
    m.stay(300003, subject_id=9003)  # no chart rows at all
    m.stay(300004, subject_id=9004)
    m.event(300004, 211, 25 * 60, 80)  # only after the window
    m.stay(300005, subject_id=9005, los=0.1)  # short stay: kept, its grid just ends
    m.event(300005, 211, 10, 80)
    for stay_id in (300001, 300002):
        m.event(stay_id, 211, 10, 80)
    summary, stays, _ = run(tmp_path, m)
    counts = {e["reason"]: e["count"] for e in summary["exclusions"]}
    assert counts["neonatal ICU (FIRST_CAREUNIT = NICU)"] == 1
    assert counts["age < 18"] == 1
    assert counts["no target values in the first 24 h"] == 2
    assert 300005 in stays.index and not {300001, 300002, 300003, 300004} & set(stays.index)


def test_lowercase_headers_and_plain_csv(tmp_path):
    m = mimic_basic()
    m.write(tmp_path / "raw", gz=False, lower=True)
    assert (tmp_path / "raw" / "chartevents.csv").exists()
    out = CohortFiles.in_dir(tmp_path / "out")
    summary = build_cohort(entry(), tmp_path / "raw", out, SPLIT, 0)
    assert summary["n_stays"] == 20
    ts = pd.read_parquet(out.timeseries)
    assert ts[ts.stay_id == 200001].set_index("step")["hr"][0] == 70


def test_same_seed_gives_identical_bytes(tmp_path):
    m = mimic_basic(40)
    rng = np.random.default_rng(1)
    for k in range(400):
        m.event(
            200001 + k % 40,
            [211, 455, 646, 678][k % 4],
            int(rng.integers(0, 1440)),
            round(float(rng.normal(80, 10)), 1),
        )
    m.write(tmp_path / "raw")
    outputs = []
    for name in ("a", "b"):
        out = CohortFiles.in_dir(tmp_path / name)
        build_cohort(entry(), tmp_path / "raw", out, SPLIT, 7)
        outputs.append([Path(f).read_bytes() for f in (out.stays, out.timeseries)])
    assert outputs[0] == outputs[1]
