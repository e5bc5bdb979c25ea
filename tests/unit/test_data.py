import numpy as np
import pandas as pd
import pytest
from tiny_cohort import FEATURES

from tardiff.data import Transform, load_cohort, prepare, to_timeseries_frame
from tardiff.io import read_parquet, write_parquet


def test_transform_imputes_and_inverts_exactly():
    x = np.array([[[np.nan, 1.0], [2.0, np.nan], [np.nan, 3.0], [5.0, np.nan]]], dtype=np.float32)
    tr = Transform(["a", "b"], np.array([1.0, 2.0]), np.array([2.0, 4.0]), np.array([7.0, 9.0]))
    z, mask = tr.transform(x)
    assert z.dtype == np.float32 and mask.dtype == bool
    np.testing.assert_array_equal(mask, np.isfinite(x))
    # leading gap -> median 7; forward fill afterwards
    np.testing.assert_array_equal(tr.inverse(z)[0], [[7, 1], [2, 1], [2, 3], [5, 3]])
    np.testing.assert_array_equal(z[0, :, 0], (np.array([7, 2, 2, 5]) - 1.0) / 2.0)
    back = tr.inverse(z)
    np.testing.assert_array_equal(back[mask], x[mask])
    assert Transform.from_state_dict(tr.state_dict()) == tr


def test_prepare_fits_on_train_only_and_aligns_rows(cohort):
    prep = prepare(cohort.stays, cohort.timeseries, "mortality")
    stays = read_parquet(cohort.stays)
    ts = read_parquet(cohort.timeseries)
    train_ids = stays.loc[stays["split"] == "train", "stay_id"]
    train_vals = ts[ts["stay_id"].isin(train_ids)][FEATURES].to_numpy(np.float64)
    np.testing.assert_allclose(prep.transform.mean, np.nanmean(train_vals, 0))
    np.testing.assert_allclose(prep.transform.sd, np.nanstd(train_vals, 0))
    np.testing.assert_allclose(prep.transform.median, np.nanmedian(train_vals, 0))

    for split, n in [("guide", None), ("select", None), ("train", len(train_ids))]:
        assert prep.x[split].shape[1:] == (prep.seq_len, len(FEATURES))
        assert prep.x[split].dtype == np.float32 and prep.y[split].dtype == np.int64
        if n is not None:
            assert len(prep.y[split]) == n
    assert len(prep.y["guide"]) + len(prep.y["select"]) == len(prep.y["val"])
    # a row's arrays belong to its stay: compare with the raw series of one stay
    sid = prep.stay_id["test"][0]
    raw = ts[ts["stay_id"] == sid][FEATURES].to_numpy()
    phys = prep.transform.inverse(prep.x["test"][:1])[0]
    observed = prep.mask["test"][0]
    np.testing.assert_allclose(phys[observed], raw[observed], rtol=1e-6)

    # changing val/test values must not change the fit
    ts.loc[~ts["stay_id"].isin(train_ids), FEATURES] = 1e4
    write_parquet(ts, cohort.timeseries)
    assert prepare(cohort.stays, cohort.timeseries, "mortality").transform == prep.transform


def test_stays_order_is_followed(cohort):
    stays = read_parquet(cohort.stays)
    write_parquet(stays.iloc[::-1], cohort.stays)
    c = load_cohort(cohort.stays, cohort.timeseries, "mortality")
    ts = read_parquet(cohort.timeseries)
    first = ts[ts["stay_id"] == c.stays["stay_id"].iloc[0]][FEATURES].to_numpy()
    np.testing.assert_array_equal(c.x[0], first)


def test_load_errors_name_file_column_task(cohort):
    with pytest.raises(ValueError, match=r"stays.parquet: missing task column 'icu_stay'"):
        load_cohort(cohort.stays, cohort.timeseries, "icu_stay")
    ts = read_parquet(cohort.timeseries)
    write_parquet(ts.iloc[::-1], cohort.timeseries)
    with pytest.raises(ValueError, match=r"timeseries.parquet: rows must be sorted"):
        load_cohort(cohort.stays, cohort.timeseries, "mortality")
    write_parquet(ts.iloc[1:], cohort.timeseries)
    with pytest.raises(ValueError, match=r"same number of steps"):
        load_cohort(cohort.stays, cohort.timeseries, "mortality")


def test_one_class_error(cohort):
    stays = read_parquet(cohort.stays)
    stays.loc[stays["split"] == "test", "mortality"] = 0
    write_parquet(stays, cohort.stays)
    prep = prepare(cohort.stays, cohort.timeseries, "mortality")
    prep.require_both_classes(("train", "select"))
    with pytest.raises(ValueError, match="task mortality has only one class in split test"):
        prep.require_both_classes(("train", "test"))


def test_to_timeseries_frame_schema():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    frame = to_timeseries_frame(x, np.array([0, 1, 1]), ["a", "b"], "mortality")
    assert list(frame.columns) == ["stay_id", "step", "a", "b", "mortality"]
    assert frame["stay_id"].dtype == np.int64 and frame["a"].dtype == np.float32
    assert frame["mortality"].dtype == np.int8
    np.testing.assert_array_equal(frame[["a", "b"]].to_numpy().reshape(3, 4, 2), x)
    np.testing.assert_array_equal(frame.groupby("stay_id")["mortality"].first(), [0, 1, 1])
    assert isinstance(frame, pd.DataFrame)
