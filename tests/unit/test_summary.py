"""What DVC shows of the utility evaluation: the metrics summary and the curve tables, on
hand-made tables with values worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tardiff.evaluate.downstream.utility import UTILITY_COLUMNS
from tardiff.evaluate.reporting.collect import COLLECTED_PAIRED_COLUMNS
from tardiff.evaluate.reporting.summary import (
    DELTA_KEY,
    curve_tables,
    metrics_summary,
    write_curves,
    write_metrics_summary,
)
from tardiff.evaluate.studies.stage import SWEEP_COLUMNS
from tardiff.layout import Layout

NAN = float("nan")


def utility_rows(*rows: tuple, test_set: str = "internal", evaluator: str = "gru") -> pd.DataFrame:
    """Rows ``(dataset, task, method, protocol, ratio, fraction, seed, auroc, auprc)``; the
    other columns get filler values."""
    keys = ("dataset", "task", "method", "protocol", "ratio", "fraction", "seed", "auroc", "auprc")
    frame = pd.DataFrame([dict(zip(keys, row, strict=True)) for row in rows])
    filler = {"scale": NAN, "fold": None, "minority_f1": 0.5, "f1_threshold": 0.0, "n_real": 10,
              "n_synthetic": 5}  # fmt: skip
    frame = frame.assign(test_set=test_set, evaluator=evaluator)
    frame = frame.assign(**filler)
    for metric in ("auroc", "auprc", "minority_f1"):
        frame[f"{metric}_lo"], frame[f"{metric}_hi"] = frame[metric] - 0.1, frame[metric] + 0.1
    return frame[UTILITY_COLUMNS]


def paired_rows(*rows: tuple, test_set: str = "internal", evaluator: str = "gru") -> pd.DataFrame:
    """Rows ``(dataset, task, method, baseline, protocol, ratio, fraction, metric, delta)``."""
    keys = ("dataset", "task", "method", "baseline", "protocol", "ratio", "fraction", "metric",
            "delta")  # fmt: skip
    frame = pd.DataFrame([dict(zip(keys, row, strict=True)) for row in rows])
    frame = frame.assign(delta_lo=frame["delta"] - 0.1, delta_hi=frame["delta"] + 0.1)
    frame = frame.assign(delta_lo_adj=frame["delta"] - 0.2, delta_hi_adj=frame["delta"] + 0.2)
    frame = frame.assign(share_positive=0.5, n_seeds=2, verdict="no detectable difference",
                         test_set=test_set, evaluator=evaluator, delta_se=0.05, p_value=0.5,
                         primary=False,
                         p_holm=1.0, verdict_adj="no detectable difference")  # fmt: skip
    return frame[COLLECTED_PAIRED_COLUMNS]


EXTERNAL = utility_rows(
    ("d", "t", "tardiff", "TSRTR", 1.0, 1.0, 0, 0.7, 0.3),
    ("d", "t", "tardiff", "TSRTR", 1.0, 1.0, 1, 0.8, 0.4),
    test_set="external",
)
UTILITY = utility_rows(
    ("d", "t", "real", "TRTR", NAN, 1.0, 0, 0.8, 0.3),
    ("d", "t", "real", "TRTR", NAN, 1.0, 1, 0.6, 0.5),
    ("d", "t", "tardiff", "TSRTR", 1.0, 1.0, 0, 0.7, 0.41234),
    ("d", "t", "tardiff", "TSRTR", 1.0, 1.0, 1, 0.9, 0.45),
    ("d", "t", "tardiff", "TSRTR", 0.5, 1.0, 0, 0.5, 0.99),  # another ratio: curve only
    ("d", "t", "tardiff", "TSTR", NAN, 1.0, 0, 0.6, 0.2),
    ("d", "t", "tardiff", "TSTR", NAN, 1.0, 1, 0.6, 0.3),
    ("d", "t", "tardiff", "minority", 1.0, 1.0, 0, 0.9, 0.9),  # not summarised
    ("d", "t", "tardiff", "TSRTR", 1.0, 0.25, 0, 0.6, 0.1),  # scarcity study
    ("d", "t", "real", "TRTR", NAN, 0.25, 0, 0.5, 0.05),  # scarcity study
    ("d", "t", "jitter", "TSRTR", 1.0, 1.0, 0, 0.123456, NAN),  # NaN AUPRC: left out
    ("d", "u", "real", "TRTR", NAN, 1.0, 0, 0.75, 0.25),  # a pair without scarcity study
)
UTILITY = pd.concat([UTILITY, EXTERNAL], ignore_index=True)
PAIRED = paired_rows(
    ("d", "t", "tardiff", "real", "TSRTR", 1.0, 1.0, "auprc", 0.031249),
    ("d", "t", "tardiff", "real", "TSRTR", 1.0, 1.0, "auroc", 0.5),  # other metric
    ("d", "t", "tardiff", "conditional", "TSRTR", 1.0, 1.0, "auprc", 0.5),  # other baseline
    ("d", "t", "tardiff", "real", "TSRTR", 0.5, 1.0, "auprc", 0.5),  # other ratio
    ("d", "t", "tardiff", "real", "TSTR", NAN, 1.0, "auprc", 0.5),  # other protocol
    ("d", "t", "tardiff", "real", "TSRTR", 1.0, 0.25, "auprc", 0.5),  # scarcity study
    ("d", "t", "jitter", "real", "TSRTR", 1.0, 1.0, "auprc", NAN),  # NaN: left out
    ("d", "t", "conditional", "real", "TSRTR", 1.0, 1.0, "auprc", -0.00001),  # rounds to 0
)
PAIRED = pd.concat(
    [PAIRED, paired_rows(("d", "t", "tardiff", "real", "TSRTR", 1.0, 1.0, "auprc", 0.02),
                         test_set="external")], ignore_index=True,
)  # fmt: skip
EXPECTED = {
    "d": {
        "t": {
            "real": {"TRTR_auroc": 0.7, "TRTR_auprc": 0.4},
            "tardiff": {
                "TSRTR_auroc": 0.8,
                "TSRTR_auprc": 0.4312,  # (0.41234 + 0.45) / 2 = 0.43117
                "TSTR_auroc": 0.6,
                "TSTR_auprc": 0.25,
                "vs_real_TSRTR_auprc_delta": 0.0312,
                "external_TSRTR_auroc": 0.75,
                "external_TSRTR_auprc": 0.35,
                "external_vs_real_TSRTR_auprc_delta": 0.02,
            },
            "jitter": {"TSRTR_auroc": 0.1235},
            "conditional": {"vs_real_TSRTR_auprc_delta": 0.0},
        },
        "u": {"real": {"TRTR_auroc": 0.75, "TRTR_auprc": 0.25}},
    }
}


def test_summary_means_over_seeds_of_the_main_arms():
    assert metrics_summary(UTILITY, PAIRED) == EXPECTED


def test_summary_is_finite_json_without_negative_zero(tmp_path):
    for name, frame in (("utility.csv", UTILITY), ("paired.csv", PAIRED)):
        frame.to_csv(tmp_path / name, index=False)
    out = tmp_path / "metrics" / "summary.json"
    written = write_metrics_summary(
        utility=tmp_path / "utility.csv", paired=tmp_path / "paired.csv", out=out
    )
    text = out.read_text()
    assert json.loads(text) == written == EXPECTED
    assert "NaN" not in text and "Infinity" not in text and "-0.0" not in text
    leaves = [v for t in written["d"].values() for m in t.values() for v in m.values()]
    assert all(isinstance(v, float) and math.isfinite(v) for v in leaves)


def test_empty_tables_give_an_empty_summary_and_empty_curves(tmp_path):
    pd.DataFrame(columns=UTILITY_COLUMNS).to_csv(tmp_path / "utility.csv", index=False)
    pd.DataFrame(columns=COLLECTED_PAIRED_COLUMNS).to_csv(tmp_path / "paired.csv", index=False)
    pd.DataFrame(columns=SWEEP_COLUMNS).to_csv(tmp_path / "sweep.csv", index=False)
    out = tmp_path / "summary.json"
    assert (
        write_metrics_summary(
            utility=tmp_path / "utility.csv", paired=tmp_path / "paired.csv", out=out
        )
        == {}
    )
    assert json.loads(out.read_text()) == {}
    curves = Layout(str(tmp_path)).metrics_curves()
    write_curves(utility=tmp_path / "utility.csv", sweep=tmp_path / "sweep.csv", out=curves)
    assert [list(pd.read_csv(p).columns) for p in curves] == [
        ["series", "ratio", "auprc"],
        ["series", "fraction", "auprc"],
        ["series", "scale", "auprc"],
    ]
    assert all(pd.read_csv(p).empty for p in curves)


@pytest.mark.parametrize("broken", ["utility", "paired"])
def test_unexpected_columns_name_the_file(tmp_path, broken):
    tables = {"utility": UTILITY, "paired": PAIRED}
    for name, frame in tables.items():
        frame = frame.drop(columns=["seed" if name == "utility" else "verdict"])
        (frame if name == broken else tables[name]).to_csv(tmp_path / f"{name}.csv", index=False)
    with pytest.raises(ValueError, match=f"{broken}.csv"):
        write_metrics_summary(
            utility=tmp_path / "utility.csv",
            paired=tmp_path / "paired.csv",
            out=tmp_path / "summary.json",
        )
    assert not (tmp_path / "summary.json").exists()


def test_two_paired_rows_for_one_method_are_refused():
    twice = pd.concat([PAIRED.iloc[:1], PAIRED.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="more than one"):
        metrics_summary(UTILITY, twice)


SWEEP = pd.DataFrame(
    [("d", "t", "tardiff", 0.1, 0.5), ("d", "t", "tardiff", -0.3, 0.2),
     ("d", "t", "classifier_guidance", 0.1, 0.45)],
    columns=["dataset", "task", "method", "scale", "auprc"],
).reindex(columns=SWEEP_COLUMNS)  # fmt: skip


def records(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(row) for row in frame.itertuples(index=False)]


def test_curve_tables():
    curves = curve_tables(UTILITY, SWEEP)
    # TSRTR of the main study at every ratio (the NaN AUPRC of jitter is left out); real's TRTR
    # AUPRC as a flat line at each of those ratios
    assert records(curves["tsrtr"]) == [
        ("d/t/real", 0.5, 0.4),
        ("d/t/real", 1.0, 0.4),
        ("d/t/tardiff", 0.5, 0.99),
        ("d/t/tardiff", 1.0, 0.4312),
        ("d/t/tardiff (external)", 1.0, 0.35),
    ]
    # pairs of the scarcity study only: TSRTR at ratio 1 and real at TRTR, every fraction
    assert records(curves["scarcity"]) == [
        ("d/t/real", 0.25, 0.05),
        ("d/t/real", 1.0, 0.4),
        ("d/t/tardiff", 0.25, 0.1),
        ("d/t/tardiff", 1.0, 0.4312),
        ("d/t/tardiff (external)", 1.0, 0.35),
    ]
    assert records(curves["sweep"]) == [
        ("d/t/classifier_guidance", 0.1, 0.45),
        ("d/t/tardiff", -0.3, 0.2),
        ("d/t/tardiff", 0.1, 0.5),
    ]
    assert [list(c.columns) for c in curves.values()] == [
        ["series", "ratio", "auprc"],
        ["series", "fraction", "auprc"],
        ["series", "scale", "auprc"],
    ]


def test_a_curve_of_missing_values_only_is_empty():
    only_nan = utility_rows(("d", "t", "jitter", "TSRTR", 1.0, 1.0, 0, 0.5, NAN))
    assert curve_tables(only_nan, SWEEP.iloc[:0])["tsrtr"].empty


def test_write_curves_round_trips(tmp_path):
    UTILITY.to_csv(tmp_path / "utility.csv", index=False)
    SWEEP.to_csv(tmp_path / "sweep.csv", index=False)
    out = Layout(str(tmp_path)).metrics_curves()
    write_curves(utility=tmp_path / "utility.csv", sweep=tmp_path / "sweep.csv", out=out)
    expected = curve_tables(UTILITY, SWEEP)
    for field, path in out._asdict().items():
        read = pd.read_csv(path)
        assert records(read) == records(expected[field])
        assert np.isfinite(read["auprc"].to_numpy(float)).all()


LGBM = utility_rows(
    ("d", "t", "real", "TRTR", NAN, 1.0, 0, 0.7, 0.2),
    ("d", "t", "class_weight", "TRTR", NAN, 1.0, 0, 0.75, 0.25),
    ("d", "t", "oversample", "TSRTR", 1.0, 1.0, 0, 0.65, 0.15),
    ("d", "t", "tardiff", "TSRTR", 1.0, 1.0, 0, 0.6, 0.1),
    evaluator="lgbm",
)
LGBM_PAIRED = paired_rows(
    ("d", "t", "tardiff", "real", "TSRTR", 1.0, 1.0, "auprc", -0.1), evaluator="lgbm"
)


def test_another_evaluator_gets_its_own_keys_and_series():
    utility = pd.concat([UTILITY, LGBM], ignore_index=True)
    summary = metrics_summary(utility, pd.concat([PAIRED, LGBM_PAIRED], ignore_index=True))
    lgbm = {"lgbm_TSRTR_auroc": 0.6, "lgbm_TSRTR_auprc": 0.1, "lgbm_" + DELTA_KEY: -0.1}
    assert summary["d"]["t"]["tardiff"] == EXPECTED["d"]["t"]["tardiff"] | lgbm  # gru unchanged
    assert summary["d"]["t"]["class_weight"] == {"lgbm_TRTR_auroc": 0.75, "lgbm_TRTR_auprc": 0.25}
    assert summary["d"]["t"]["oversample"] == {"lgbm_TSRTR_auroc": 0.65, "lgbm_TSRTR_auprc": 0.15}
    tsrtr = [r for r in records(curve_tables(utility, SWEEP)["tsrtr"]) if "lgbm" in r[0]]
    assert tsrtr == [
        ("d/t/class_weight (internal, lgbm)", 1.0, 0.25),
        ("d/t/oversample (internal, lgbm)", 1.0, 0.15),
        ("d/t/real (internal, lgbm)", 1.0, 0.2),
        ("d/t/tardiff (internal, lgbm)", 1.0, 0.1),
    ]


def test_tables_without_an_evaluator_column_are_the_gru(tmp_path):
    UTILITY.drop(columns="evaluator").to_csv(tmp_path / "utility.csv", index=False)
    PAIRED.drop(columns="evaluator").to_csv(tmp_path / "paired.csv", index=False)
    out = tmp_path / "summary.json"
    written = write_metrics_summary(
        utility=tmp_path / "utility.csv", paired=tmp_path / "paired.csv", out=out
    )
    assert written == EXPECTED
    SWEEP.to_csv(tmp_path / "sweep.csv", index=False)
    curves = Layout(str(tmp_path)).metrics_curves()
    write_curves(utility=tmp_path / "utility.csv", sweep=tmp_path / "sweep.csv", out=curves)
    assert records(pd.read_csv(curves.tsrtr)) == records(curve_tables(UTILITY, SWEEP)["tsrtr"])
