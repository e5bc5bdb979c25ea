"""eICU extraction: cohort rules, labels, offset grid, blood-pressure source priority."""

import numpy as np
import pandas as pd
import pytest
from extract_raw import SPLIT, eicu_basic, entry

from tardiff.extract import ExtractError, build_cohort
from tardiff.layout import CohortFiles


def run(tmp_path, e, **overrides):
    e.write(tmp_path / "raw")
    out = CohortFiles.in_dir(tmp_path / "out")
    summary = build_cohort(entry("eicu", **overrides), tmp_path / "raw", out, SPLIT, 0)
    stays = pd.read_parquet(out.stays).set_index("stay_id")
    ts = pd.read_parquet(out.timeseries)
    return summary, stays, ts


def test_cohort_rules_and_labels(tmp_path):
    e = eicu_basic()
    e.stay(
        5000, uniquepid="002-1", age="> 89", gender="Male", status="Expired", los_minutes=4 * 1440
    )
    e.stay(5001, uniquepid="002-1", visit=2)  # second unit stay: excluded
    e.stay(5002, age="12")
    e.stay(5003, status="")  # missing discharge status: excluded
    e.stay(5004, age="")  # unknown age: kept
    for stay_id in range(5000, 5005):
        e.vital(stay_id, 0, heartrate=80)
    summary, stays, ts = run(tmp_path, e)
    counts = {x["reason"]: x["count"] for x in summary["exclusions"]}
    assert counts["not the first unit stay (unitvisitnumber != 1)"] == 1
    assert counts["age < 18"] == 1
    assert counts["no mortality label (hospitaldischargestatus missing)"] == 1
    assert set(stays.index) == set(range(1000, 1020)) | {5000, 5004}
    row = stays.loc[5000]
    assert (row.age, row.sex, row.mortality, row.icu_stay) == (90, "M", 1, 1)
    assert np.isnan(stays.loc[5004].age)
    assert stays.loc[1001].mortality == 1 and stays.loc[1001].icu_stay == 0
    assert stays.subject_id.is_unique  # one stay per patient here
    assert (ts.groupby("stay_id").size() == 288).all()


def test_offset_grid_ranges_and_hourly(tmp_path):
    e = eicu_basic()
    e.vital(1000, 7, heartrate=90, sao2=99)  # offset 7 min -> step 1 at 5 min
    e.vital(1000, 8, heartrate=100, sao2=101)  # SpO2 > 100: dropped
    e.vital(1000, 20, heartrate=300)  # HR outside 25-225: dropped
    e.vital(1000, -5, heartrate=60)  # before admission
    e.vital(1000, 1440, heartrate=60)  # at 24 h: outside the window
    _, _, ts = run(tmp_path, e)
    row = ts[ts.stay_id == 1000].set_index("step")
    assert row.loc[2, "hr"] == 70 and row.loc[1, "hr"] == 95 and row.loc[1, "spo2"] == 99
    assert row["hr"].notna().sum() == 2
    _, _, hourly = run(tmp_path, e, resolution_minutes=60)
    row = hourly[hourly.stay_id == 1000].set_index("step")
    assert len(row) == 24 and row.loc[0, "hr"] == pytest.approx((70 + 90 + 100) / 3)


def test_invasive_blood_pressure_first_then_noninvasive(tmp_path):
    e = eicu_basic()
    e.vital(1000, 0, systemicsystolic=130, systemicmean=90)
    e.nibp(1000, 2, noninvasivesystolic=110, noninvasivediastolic=70, noninvasivemean=83)
    e.nibp(1000, 12, noninvasivesystolic=115)
    _, _, ts = run(tmp_path, e, features=["hr", "sbp", "dbp", "mbp"])
    row = ts[ts.stay_id == 1000].set_index("step")
    assert (row.loc[0, "sbp"], row.loc[0, "dbp"], row.loc[0, "mbp"]) == (130, 70, 90)
    assert row.loc[2, "sbp"] == 115


def test_unparsable_offset_names_file_column_and_value(tmp_path):
    e = eicu_basic()
    e.vital(1000, "1O", heartrate=80)
    with pytest.raises(ExtractError, match="vitalPeriodic.csv.gz: column observationoffset .*'1O'"):
        run(tmp_path, e)
    assert not any((tmp_path / "out").iterdir())
