"""Figures and tables of the utility evaluation, on small hand-made inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tardiff.evaluate.headline import headline_problems
from tardiff.evaluate.report import write_report
from tardiff.layout import Layout

DATASETS, TASK, SEEDS = ("mimic3_demo", "eicu_demo"), "mortality", (0, 1)
METRICS = ("auroc", "auprc", "minority_f1")


def _row(rng, dataset, method, protocol, ratio=np.nan, fraction=1.0, seed=0, test_set="internal"):
    scale = {"real": np.nan, "conditional": 0.0}.get(method, 0.03)
    row = dict(dataset=dataset, task=TASK, test_set=test_set, method=method, protocol=protocol,
               ratio=ratio,
               fraction=fraction, seed=seed, scale=scale, f1_threshold=0.5, n_real=100,
               n_synthetic=0 if method == "real" else 100)  # fmt: skip
    for m in METRICS:
        est = rng.uniform(0.3, 0.9)
        row |= {m: est, f"{m}_lo": est - 0.1, f"{m}_hi": est + 0.1}
    return row


def _utility(scarcity=True, minority=True):
    rng = np.random.default_rng(0)
    settings = [("real", "TRTR", np.nan)]
    for method in ("conditional", "tardiff"):
        settings += [(method, "TSTR", np.nan), (method, "TSRTR", 0.5), (method, "TSRTR", 1.0)]
        settings += [(method, "minority", r) for r in (1.0, 2.0)] if minority else []
    rows = [_row(rng, d, *s, seed=k) for d in DATASETS for s in settings for k in SEEDS]
    rows += [_row(rng, DATASETS[0], *s, seed=k, test_set="external")
             for s in settings for k in SEEDS]  # fmt: skip
    if scarcity:
        for fraction in (0.25, 0.5):
            rows += [_row(rng, DATASETS[0], "real", "TRTR", np.nan, fraction, k) for k in SEEDS]
            rows += [_row(rng, DATASETS[0], "tardiff", "TSRTR", 1.0, fraction, k) for k in SEEDS]
    return pd.DataFrame(rows)


def _paired():
    rows = []
    for dataset in DATASETS:
        for baseline, method in (("real", "tardiff"), ("conditional", "tardiff")):
            for ratio, metric in ((1.0, "auprc"), (0.5, "auroc")):
                primary = (baseline, ratio) == ("conditional", 1.0)
                rows.append(dict(dataset=dataset, task=TASK, test_set="internal", method=method,
                                 baseline=baseline, protocol="TSRTR", ratio=ratio, fraction=1.0,
                                 metric=metric, delta=0.01, delta_lo=-0.02, delta_hi=0.04,
                                 delta_se=0.015, share_positive=0.5, n_seeds=2, p_value=0.5,
                                 verdict="no detectable difference", primary=primary, p_holm=1.0,
                                 delta_lo_adj=-0.02 if primary else -0.05,
                                 delta_hi_adj=0.04 if primary else 0.07,
                                 verdict_adj="no detectable difference"))  # fmt: skip
    return pd.DataFrame(rows[::-1])  # unsorted on purpose


def _selection(dataset):
    grid = [0.0, 0.01, 0.03, 0.1, 0.3]
    entry = {"grid": grid, "score": [0.5, 0.52, 0.55, 0.51, 0.4],
             "per_seed": [[s - 0.01, s + 0.01] for s in (0.5, 0.52, 0.55, 0.51, 0.4)],
             "chosen": 0.03}  # fmt: skip
    return {"dataset": dataset, "task": TASK, "metric": "auprc", "protocol": "TSRTR",
            "ratio": 1.0, "part": "select", "methods": {"tardiff": entry}}  # fmt: skip


def _run(tmp_path, utility, paired=None, name="results"):
    utility_path, paired_path = tmp_path / "utility.csv", tmp_path / "paired.csv"
    utility.to_csv(utility_path, index=False)
    (_paired() if paired is None else paired).to_csv(paired_path, index=False)
    selections = []
    for dataset in DATASETS:
        path = tmp_path / f"{dataset}_selection.json"
        path.write_text(json.dumps(_selection(dataset)))
        selections.append(path)
    empty = tmp_path / "no_guided_selection.json"  # what a run without guided methods writes
    empty.write_text(json.dumps({"dataset": "other", "task": TASK, "methods": {}}))
    out = Layout(str(tmp_path / name)).report()
    write_report(utility=utility_path, paired=paired_path, selections=[*selections, empty], out=out)
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Inputs with every part (scarcity and minority rows) and the report written from them."""
    utility = _utility()
    return utility, _run(tmp_path_factory.mktemp("report"), utility)


def _md_rows(path):
    lines = Path(path).read_text().splitlines()
    assert lines[0] and not lines[0].startswith("|") and lines[1] == ""  # title line
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]


def test_every_output_is_written_and_tables_hold_the_pandas_means(report):
    utility, out = report
    for path in out:
        assert Path(path).stat().st_size > 0, path
    assert Path(out.fig2_png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(out.fig2_pdf).read_bytes()[:5] == b"%PDF-"

    table1 = pd.read_csv(out.table1_csv)
    rows = _md_rows(out.table1_md)
    # TRTR real, TSTR conditional, tardiff; on the internal split and one external population
    assert len(rows) == len(table1) == (len(DATASETS) + 1) * 3
    for dataset in DATASETS:
        shown = [r[2:5] for r in rows if r[0] == dataset]
        internal = [["internal", "TRTR", "real"], ["internal", "TSTR", "conditional"],
                    ["internal", "TSTR", "tardiff"]]  # fmt: skip
        external = [["external", *r[1:]] for r in internal] if dataset == DATASETS[0] else []
        assert shown == internal + external
    full = utility[utility["fraction"] == 1.0]
    keys = ["dataset", "task", "test_set", "protocol", "method"]
    expected = full[full["protocol"].isin(["TRTR", "TSTR"])].groupby(keys)
    got = table1.set_index(keys)
    for column in ("auroc", "auroc_lo", "auroc_hi", "auprc", "auprc_hi"):
        pd.testing.assert_series_equal(
            got[column].sort_index(), expected[column].mean().sort_index(), check_names=False
        )
    pd.testing.assert_series_equal(
        got["auroc_sd"].sort_index(), expected["auroc"].std().sort_index(), check_names=False
    )
    assert (table1["n_seeds"] == len(SEEDS)).all()
    first = table1.iloc[0]
    assert rows[0][6] == f"{first.auroc:.3f} [{first.auroc_lo:.3f}, {first.auroc_hi:.3f}]"


def test_table4_has_real_trtr_tsrtr_alpha1_and_minority_rows(report):
    utility, out = report
    table4 = pd.read_csv(out.table4_csv)
    settings = [r[3] for r in _md_rows(out.table4_md) if r[:3] == ["eicu_demo", TASK, "internal"]]
    assert settings == ["TRTR"] + ["TSRTR α=1"] * 2 + ["minority ×1"] * 2 + ["minority ×2"] * 2
    utility = utility[utility["test_set"] == "internal"]
    table4 = table4[table4["test_set"] == "internal"]
    mask = (utility["protocol"] == "minority") & (utility["ratio"] == 2.0)
    expected = utility[mask].groupby(["dataset", "method"])["minority_f1"].mean()
    got = table4[table4["ratio"] == 2.0].set_index(["dataset", "method"])["minority_f1"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


def test_paired_table_is_sorted_and_summarised(report):
    out = report[1]
    table = pd.read_csv(out.paired_csv)
    assert len(table) == len(_paired())
    assert table["dataset"].tolist() == ["eicu_demo"] * 4 + ["mimic3_demo"] * 4
    assert table["baseline"].tolist()[:4] == ["real", "real", "conditional", "conditional"]
    assert table["ratio"].tolist()[:2] == [0.5, 1.0]
    text = Path(out.paired_md).read_text()
    assert "[paired.csv](paired.csv)" in text and "over 6 rows" in text
    counts = [line for line in text.splitlines() if line.startswith("| internal | real | auprc")]
    assert counts == ["| internal | real | auprc | 2 | 0 | 0 | 2 | 0 |"]


def test_the_verdict_table_puts_the_primary_row_first_and_the_readme_reads_it(report):
    out = report[1]
    verdicts = pd.read_csv(out.verdict_csv)
    assert verdicts["primary"].tolist() == [True, False] * len(DATASETS)
    assert verdicts["baseline"].tolist() == ["conditional", "real"] * len(DATASETS)
    assert verdicts["verdict_adj"].eq("no detectable difference").all()
    rows = _md_rows(out.verdict_md)
    assert rows[0][:5] == ["eicu_demo · mortality", "internal", "tardiff − conditional",
                           "TSRTR α=1 · AUPRC", "+0.010 [−0.020, +0.040]"]  # fmt: skip
    assert rows[1][4] == "+0.010 [−0.050, +0.070]"  # the adjusted interval
    readme = Path(out.readme).read_text()
    assert readme.index("## Verdict") < readme.index("## Headline") < readme.index("git-ignored")
    assert headline_problems(readme, Path(out.verdict_md).read_text()) == []


def test_missing_parts_still_give_every_output(tmp_path):
    out = _run(tmp_path, _utility(scarcity=False, minority=False))
    for path in out:
        assert Path(path).stat().st_size > 0, path
    settings = {r[3] for r in _md_rows(out.table4_md)}
    assert settings == {"TRTR", "TSRTR α=1"}


def test_reruns_are_byte_identical(report, tmp_path):
    first, second = report[1], _run(tmp_path, _utility())
    for a, b in zip(first, second, strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes(), a


@pytest.mark.parametrize("file, column", [("utility", "auprc_hi"), ("paired", "verdict")])
def test_a_missing_column_names_file_and_column(tmp_path, file, column):
    utility, paired = _utility(), _paired()
    if file == "utility":
        utility = utility.drop(columns=column)
    else:
        paired = paired.drop(columns=column)
    with pytest.raises(ValueError, match=rf"{file}\.csv.*{column}"):
        _run(tmp_path, utility, paired)


def test_a_selection_without_its_chosen_scale_is_named(tmp_path):
    path = tmp_path / "selection.json"
    selection = _selection("mimic3_demo")
    del selection["methods"]["tardiff"]["chosen"]
    path.write_text(json.dumps(selection))
    _utility().to_csv(tmp_path / "utility.csv", index=False)
    _paired().to_csv(tmp_path / "paired.csv", index=False)
    with pytest.raises(ValueError, match=r"selection\.json.*methods\.tardiff\.chosen"):
        write_report(utility=tmp_path / "utility.csv", paired=tmp_path / "paired.csv",
                     selections=[path], out=Layout(str(tmp_path)).report())  # fmt: skip


def test_a_scarcity_copy_named_by_its_dataset_is_read_at_its_fraction(tmp_path):
    utility = _utility()
    scarce = utility["fraction"] < 1
    utility.loc[scarce, "dataset"] = [
        f"mimic3_demo-train{f:g}" for f in utility["fraction"][scarce]
    ]
    utility.loc[scarce, "fraction"] = 1.0
    out = _run(tmp_path, utility)
    assert len(pd.read_csv(out.table1_csv)) == (len(DATASETS) + 1) * 3  # copies left out
