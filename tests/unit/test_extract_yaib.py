"""YAIB cohort folders: time formats, window, label mapping, bad input."""

import numpy as np
import pandas as pd
import pytest
from extract_raw import SPLIT, entry

from tardiff.extract import ExtractError, MissingTableError, build_cohort
from tardiff.layout import CohortFiles


def write_yaib(folder, n=30, timedelta=True, label_values=None):
    """n stays with 25 hourly rows (0 h ... 24 h), hr = 60 + hour, sbp all NaN."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, n + 1)
    hours = np.tile(np.arange(25), n)
    dyn = pd.DataFrame(
        {
            "stay_id": np.repeat(ids, 25),
            "time": pd.to_timedelta(hours, unit="h") if timedelta else hours.astype(float),
            "hr": 60.0 + hours,
            "sbp": np.nan,
            "o2sat": 97.0,
            "temp": 37.0,
        }
    )
    dyn.to_parquet(folder / "dyn.parquet")
    labels = ids % 2 if label_values is None else label_values
    pd.DataFrame({"stay_id": ids, "label": labels}).to_parquet(folder / "outc.parquet")
    pd.DataFrame(
        {
            "stay_id": ids,
            "age": 50.0 + ids,
            "sex": np.where(ids % 2, "Female", "Male"),
            "height": 170.0,
            "weight": 70.0,
        }
    ).to_parquet(folder / "sta.parquet")
    return folder


@pytest.mark.parametrize("timedelta", [True, False])
def test_yaib_grid_and_labels(tmp_path, timedelta):
    folder = write_yaib(tmp_path / "cohort", timedelta=timedelta)
    out = CohortFiles.in_dir(tmp_path / "out")
    summary = build_cohort(entry("yaib"), folder, out, SPLIT, 0)
    stays = pd.read_parquet(out.stays)
    ts = pd.read_parquet(out.timeseries)
    assert list(stays.columns) == [
        "stay_id",
        "subject_id",
        "split",
        "val_part",
        "mortality24",
        "age",
        "sex",
    ]
    assert (stays.subject_id == stays.stay_id).all()
    assert stays.set_index("stay_id").loc[1, "mortality24"] == 1
    assert stays.set_index("stay_id").loc[2, "sex"] == "M"
    assert (ts.groupby("stay_id").size() == 24).all()  # the 24 h row is dropped
    assert np.array_equal(ts[ts.stay_id == 3]["hr"], 60.0 + np.arange(24))
    assert summary["missingness"]["sbp"] == 1.0 and summary["missingness"]["hr"] == 0.0
    assert summary["rows_scanned"]["dyn"] == 30 * 25


def test_yaib_unknown_feature_and_bad_label(tmp_path):
    folder = write_yaib(tmp_path / "cohort")
    out = CohortFiles.in_dir(tmp_path / "out")
    with pytest.raises(
        ExtractError,
        match="unknown feature 'glucose'.*dyn.parquet|dyn.parquet.*unknown feature 'glucose'",
    ):
        build_cohort(entry("yaib", features=["hr", "glucose"]), folder, out, SPLIT, 0)
    folder = write_yaib(tmp_path / "bad", label_values=np.full(30, 2))
    with pytest.raises(ExtractError, match="label.*mortality24.*0/1"):
        build_cohort(entry("yaib"), folder, out, SPLIT, 0)
    (folder / "sta.parquet").unlink()
    with pytest.raises(MissingTableError, match="sta.parquet"):
        build_cohort(entry("yaib"), folder, out, SPLIT, 0)
    assert not any((tmp_path / "out").iterdir())
