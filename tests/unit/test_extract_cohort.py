"""Splits, summary, and bad input: clear errors and nothing written."""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from extract_raw import SPLIT, entry, mimic_basic

from tardiff.extract import ExtractError, MissingTableError, build_cohort
from tardiff.extract.cohort import assign_splits
from tardiff.extract.tables import find_table
from tardiff.layout import CohortFiles


def synthetic_stays(n_subjects=2000, seed=0):
    rng = np.random.default_rng(seed)
    subjects = np.repeat(np.arange(n_subjects), rng.integers(1, 4, n_subjects))
    label = (rng.random(len(subjects)) < 0.1).astype(np.int8)
    return pd.DataFrame(
        {"stay_id": np.arange(len(subjects)) + 200000, "subject_id": subjects, "mortality": label}
    )


def test_subject_level_stratified_split():
    stays = assign_splits(synthetic_stays(), "mortality", SPLIT, seed=3)
    per_subject = stays.groupby("subject_id")["split"].nunique()
    assert (per_subject == 1).all()  # no subject in two splits
    subjects = stays.drop_duplicates("subject_id")
    shares = subjects["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.01)
    assert shares["val"] == pytest.approx(0.1, abs=0.01)
    assert shares["test"] == pytest.approx(0.1, abs=0.01)
    positive = stays.groupby("subject_id")["mortality"].max()
    rate = positive.groupby(stays.groupby("subject_id")["split"].first()).mean()
    assert rate.max() - rate.min() < 0.01  # stratified by the subject label
    val = stays[stays.split == "val"]
    assert set(val.val_part) == {"guide", "select"}
    assert stays[stays.split != "val"].val_part.isna().all()
    assert (val.groupby("subject_id")["val_part"].nunique() == 1).all()
    share = val.drop_duplicates("subject_id").val_part.value_counts(normalize=True)
    assert share["guide"] == pytest.approx(0.5, abs=0.05)


def test_split_is_seeded():
    stays = synthetic_stays()
    a = assign_splits(stays, "mortality", SPLIT, seed=1)
    b = assign_splits(stays, "mortality", SPLIT, seed=1)
    c = assign_splits(stays, "mortality", SPLIT, seed=2)
    assert a.equals(b) and not a["split"].equals(c["split"])


def test_an_external_population_is_all_test_stays(tmp_path):
    mimic_basic().write(tmp_path / "raw")
    out = CohortFiles.in_dir(tmp_path / "external")
    summary = build_cohort(entry(), tmp_path / "raw", out, None, 0)
    stays = pd.read_parquet(out.stays)
    assert (stays["split"] == "test").all() and stays["val_part"].isna().all()
    assert summary["split_sizes"] == {"test": 20} and summary["val_part_sizes"] == {}
    internal = CohortFiles.in_dir(tmp_path / "internal")
    build_cohort(entry(), tmp_path / "raw", internal, SPLIT, 0)
    assert pd.read_parquet(out.timeseries).equals(pd.read_parquet(internal.timeseries))


def test_summary_contents(tmp_path):
    mimic_basic().write(tmp_path / "raw")
    out = CohortFiles.in_dir(tmp_path / "out")
    returned = build_cohort(entry(), tmp_path / "raw", out, SPLIT, 0)
    summary = json.loads(Path(out.summary).read_text())
    assert summary == returned
    assert summary["n_stays"] == 20
    assert set(summary["prevalence"]["mortality"]) == {"all", "train", "val", "test"}
    assert summary["prevalence"]["mortality"]["all"] == 0.5
    assert summary["missingness"]["hr"] == pytest.approx(1 - 1 / 24)
    assert summary["rows_scanned"] == {
        "PATIENTS": 20,
        "ADMISSIONS": 20,
        "ICUSTAYS": 20,
        "CHARTEVENTS": 20,
    }
    assert {"wall_s", "peak_rss_mb", "exclusions"} <= set(summary)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "stays.parquet",
        "summary.json",
        "timeseries.parquet",
    ]


def test_find_table_is_case_insensitive_and_prefers_gz(tmp_path):
    (tmp_path / "chartevents.csv").write_text("x\n")
    assert find_table(tmp_path, "CHARTEVENTS").name == "chartevents.csv"
    (tmp_path / "CHARTEVENTS.csv.gz").write_bytes(gzip.compress(b"x\n"))
    assert find_table(tmp_path, "CHARTEVENTS").name == "CHARTEVENTS.csv.gz"
    (tmp_path / "vitalperiodic.csv.gz").write_bytes(gzip.compress(b"x\n"))
    assert find_table(tmp_path, "vitalPeriodic").name == "vitalperiodic.csv.gz"


def rewrite(path, old, new):
    text = gzip.decompress(path.read_bytes()).decode().replace(old, new, 1)
    path.write_bytes(gzip.compress(text.encode()))


def break_missing_table(raw):
    (raw / "ICUSTAYS.csv.gz").unlink()
    return MissingTableError, "ICUSTAYS.csv.gz"


def break_renamed_column(raw):
    rewrite(raw / "CHARTEVENTS.csv.gz", '"VALUENUM"', '"VALUE_NUM"')
    return ExtractError, "CHARTEVENTS.csv.gz: missing column VALUENUM"


def break_charttime(raw):
    rewrite(raw / "CHARTEVENTS.csv.gz", "2150-03-01 08:30:00", "01/03/2150 8:30")
    return ExtractError, "CHARTEVENTS.csv.gz: column CHARTTIME .*'01/03/2150 8:30'"


def break_intime(raw):
    rewrite(raw / "ICUSTAYS.csv.gz", "2150-03-01 08:00:00", "not a time")
    return ExtractError, "ICUSTAYS.csv.gz: column INTIME .*'not a time'"


def break_dirty_id(raw):
    rewrite(raw / "CHARTEVENTS.csv.gz", ",211,", ",2x1,")
    return ExtractError, "CHARTEVENTS.csv.gz: column ITEMID .*'2x1'"


@pytest.mark.parametrize(
    "breaker",
    [break_missing_table, break_renamed_column, break_charttime, break_intime, break_dirty_id],
)
def test_bad_raw_files(tmp_path, breaker):
    raw = mimic_basic().write(tmp_path / "raw")
    error, message = breaker(raw)
    with pytest.raises(error, match=message):
        build_cohort(entry(), raw, CohortFiles.in_dir(tmp_path / "out"), SPLIT, 0)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"features": ["hr", "heart_rate"]}, "unknown feature 'heart_rate'"),
        ({"tasks": {"sepsis": {"threshold_days": 3}}}, "unknown mimic3 task 'sepsis'"),
        ({"features": ["spo2"]}, "empty cohort.*no target values in the first 24 h: 20"),
        ({"tasks": {"icu_stay": {"threshold_days": 30}}}, "task 'icu_stay': all 20 stays"),
        ({"features": ["hr", "sbp"], "item_ids": {"sbp": [211]}}, "item id 211"),
    ],
)
def test_bad_config_and_cohort(tmp_path, overrides, message):
    raw = mimic_basic().write(tmp_path / "raw")
    with pytest.raises(ExtractError, match=message):
        build_cohort(entry(**overrides), raw, CohortFiles.in_dir(tmp_path / "out"), SPLIT, 0)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_eicu_unknown_source_feature(tmp_path):
    with pytest.raises(ExtractError, match="feature 'gcs' has no eICU source"):
        out = CohortFiles.in_dir(tmp_path / "out")
        build_cohort(entry("eicu", features=["hr", "gcs"]), tmp_path, out, SPLIT, 0)
