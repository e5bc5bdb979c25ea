"""Figures and tables of the utility evaluation, on small hand-made inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tardiff.evaluate.reporting import report as report_module
from tardiff.evaluate.reporting import selection_figure as selection_module
from tardiff.evaluate.reporting.headline import headline_problems
from tardiff.evaluate.reporting.plotting import COLOURS, EXTRA_COLOURS, METHOD_ORDER
from tardiff.evaluate.reporting.report import write_report
from tardiff.layout import Layout

DATASETS, TASK, SEEDS = ("mimic3_demo", "eicu_demo"), "mortality", (0, 1)
METRICS = ("auroc", "auprc", "minority_f1")
EVALUATORS = ("gru", "lgbm")
#: chosen scales; cfg chose 0: its samples are conditional's
SCALES = {"conditional": 0.0, "tardiff": 0.03, "cfg": 0.0}
#: the methods of Table 1, in their order: TRTR arms, then TSTR
TABLE1 = [("TRTR", "real"), ("TRTR", "class_weight"), ("TSTR", "conditional"),
          ("TSTR", "tardiff"), ("TSTR", "cfg")]  # fmt: skip


def _row(rng, dataset, method, protocol, ratio=np.nan, fraction=1.0, seed=0, test_set="internal",
         evaluator="gru"):  # fmt: skip
    row = dict(dataset=dataset, task=TASK, test_set=test_set, evaluator=evaluator, method=method,
               protocol=protocol, ratio=ratio, fraction=fraction, fold=None, seed=seed,
               scale=SCALES.get(method, np.nan), f1_threshold=0.5, n_real=100,
               n_synthetic=0 if protocol == "TRTR" else 100)  # fmt: skip
    for m in METRICS:
        est = rng.uniform(0.3, 0.9)
        row |= {m: est, f"{m}_lo": est - 0.1, f"{m}_hi": est + 0.1}
    return row


def _settings(minority):
    """(method, protocol, ratio) of every arm: TRTR real and class_weight, then oversample and
    the generators at TSTR (not oversample), TSRTR and minority-only."""
    settings = [("real", "TRTR", np.nan), ("class_weight", "TRTR", np.nan)]
    for method in ("oversample", "conditional", "tardiff", "cfg"):
        settings += [] if method == "oversample" else [(method, "TSTR", np.nan)]
        settings += [(method, "TSRTR", 0.5), (method, "TSRTR", 1.0)]
        settings += [(method, "minority", r) for r in (1.0, 2.0)] if minority else []
    return settings


def _utility(scarcity=True, minority=True, evaluators=EVALUATORS):
    rng = np.random.default_rng(0)
    settings = _settings(minority)
    rows = []
    for e in evaluators:
        rows += [_row(rng, d, *s, seed=k, evaluator=e)
                 for d in DATASETS for s in settings for k in SEEDS]  # fmt: skip
        rows += [_row(rng, DATASETS[0], *s, seed=k, test_set="external", evaluator=e)
                 for s in settings for k in SEEDS]  # fmt: skip
        for fraction in (0.25, 0.5) if scarcity else ():
            for method, protocol, ratio in (("real", "TRTR", np.nan), ("tardiff", "TSRTR", 1.0)):
                rows += [_row(rng, DATASETS[0], method, protocol, ratio, fraction, k, t, e)
                         for k in SEEDS for t in ("internal", "external")]  # fmt: skip
    return pd.DataFrame(rows)


def _paired(evaluators=EVALUATORS):
    rows = []
    for dataset in DATASETS:
        for evaluator in evaluators:
            for baseline, method in (("real", "tardiff"), ("conditional", "tardiff")):
                for ratio, metric in ((1.0, "auprc"), (0.5, "auroc")):
                    primary = (baseline, ratio, evaluator) == ("conditional", 1.0, "gru")
                    rows.append(dict(dataset=dataset, task=TASK, test_set="internal",
                                     evaluator=evaluator, method=method, baseline=baseline,
                                     protocol="TSRTR", ratio=ratio, fraction=1.0, metric=metric,
                                     delta=0.01, delta_lo=-0.02, delta_hi=0.04, delta_se=0.015,
                                     share_positive=0.5, n_seeds=2, p_value=0.5,
                                     verdict="no detectable difference", primary=primary,
                                     p_holm=1.0, delta_lo_adj=-0.02 if primary else -0.05,
                                     delta_hi_adj=0.04 if primary else 0.07,
                                     verdict_adj="no detectable difference"))  # fmt: skip
    return pd.DataFrame(rows[::-1])  # unsorted on purpose


def _selection(dataset):
    grid = [0.0, 0.01, 0.03, 0.1, 0.3]
    entry = {"grid": grid, "score": [0.5, 0.52, 0.55, 0.51, 0.4],
             "per_seed": [[s - 0.01, s + 0.01] for s in (0.5, 0.52, 0.55, 0.51, 0.4)],
             "chosen": 0.03}  # fmt: skip
    cfg = {"grid": [0.0, 0.5, 2.0], "score": [0.5, 0.45, 0.4], "chosen": 0.0}
    return {"dataset": dataset, "task": TASK, "metric": "auprc", "protocol": "TSRTR",
            "ratio": 1.0, "part": "select", "methods": {"cfg": cfg, "tardiff": entry}}  # fmt: skip


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
    # TABLE1's arms per evaluator, on the internal split and one external population
    assert len(rows) == len(table1) == (len(DATASETS) + 1) * len(EVALUATORS) * len(TABLE1)
    for dataset in DATASETS:
        shown = [r[2:6] for r in rows if r[0] == dataset]
        test_sets = ("internal", "external") if dataset == DATASETS[0] else ("internal",)
        assert shown == [[t, e, *arm] for t in test_sets for e in EVALUATORS for arm in TABLE1]
    full = utility[utility["fraction"] == 1.0]
    keys = ["dataset", "task", "test_set", "evaluator", "protocol", "method"]
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
    assert rows[0][8] == f"{first.auroc:.3f} [{first.auroc_lo:.3f}, {first.auroc_hi:.3f}]"


def test_tables_show_the_chosen_scale_and_which_methods_are_conditional(report):
    out = report[1]
    table1 = pd.read_csv(out.table1_csv).set_index("method")
    assert list(table1.columns[:6]) == ["dataset", "task", "test_set", "evaluator", "protocol",
                                        "scale"]  # fmt: skip
    assert (
        table1.loc["tardiff", "scale"].eq(0.03).all() and table1.loc["real", "scale"].isna().all()
    )
    chosen = {r[5]: r[6] for r in _md_rows(out.table1_md)}
    assert chosen == {"real": "", "class_weight": "", "conditional": "0", "tardiff": "0.03",
                      "cfg": "0 (= conditional)"}  # fmt: skip
    chosen = {r[5]: r[6] for r in _md_rows(out.table4_md)}
    assert chosen["oversample"] == "" and chosen["cfg"] == "0 (= conditional)"
    assert "0 (= conditional)" in Path(out.table1_md).read_text().splitlines()[0]  # explained


def test_table4_has_real_trtr_tsrtr_alpha1_and_minority_rows(report):
    utility, out = report
    table4 = pd.read_csv(out.table4_csv)
    here = ["eicu_demo", TASK, "internal", "lgbm"]
    arms = [r[4:6] for r in _md_rows(out.table4_md) if r[:4] == here]
    generated = ["oversample", "conditional", "tardiff", "cfg"]
    assert arms == [["TRTR", "real"], ["TRTR", "class_weight"]] + [
        [setting, m] for setting in ("TSRTR α=1", "minority ×1", "minority ×2") for m in generated
    ]
    utility = utility[(utility["test_set"] == "internal") & (utility["evaluator"] == "lgbm")]
    table4 = table4[(table4["test_set"] == "internal") & (table4["evaluator"] == "lgbm")]
    mask = (utility["protocol"] == "minority") & (utility["ratio"] == 2.0)
    expected = utility[mask].groupby(["dataset", "method"])["minority_f1"].mean()
    got = table4[table4["ratio"] == 2.0].set_index(["dataset", "method"])["minority_f1"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)


def test_paired_table_is_sorted_and_summarised(report):
    out = report[1]
    table = pd.read_csv(out.paired_csv)
    assert len(table) == len(_paired())
    assert table["dataset"].tolist() == ["eicu_demo"] * 8 + ["mimic3_demo"] * 8
    assert table["evaluator"].tolist()[:8] == ["gru"] * 4 + ["lgbm"] * 4
    assert table["baseline"].tolist()[:4] == ["real", "real", "conditional", "conditional"]
    assert table["ratio"].tolist()[:2] == [0.5, 1.0]
    text = Path(out.paired_md).read_text()
    assert "[paired.csv](paired.csv)" in text and "over 14 rows" in text
    counts = [line for line in text.splitlines() if line.startswith("| internal | lgbm | real |")]
    assert counts[0] == "| internal | lgbm | real | auprc | 2 | 0 | 0 | 2 | 0 |"


def test_the_verdict_table_puts_the_primary_row_first_and_the_readme_reads_it(report):
    out = report[1]
    verdicts = pd.read_csv(out.verdict_csv)
    assert verdicts["primary"].tolist() == [True, False, False, False] * len(DATASETS)
    assert verdicts["evaluator"].tolist() == ["gru", "gru", "lgbm", "lgbm"] * len(DATASETS)
    assert verdicts["baseline"].tolist() == ["conditional", "real", "real", "conditional"] * 2
    assert verdicts["verdict_adj"].eq("no detectable difference").all()
    rows = _md_rows(out.verdict_md)
    assert rows[0][:6] == ["eicu_demo · mortality", "internal", "gru", "tardiff − conditional",
                           "TSRTR α=1 · AUPRC", "+0.010 [−0.020, +0.040]"]  # fmt: skip
    assert rows[1][5] == "+0.010 [−0.050, +0.070]"  # the adjusted interval
    readme = Path(out.readme).read_text()
    assert readme.index("## Verdict") < readme.index("## Headline") < readme.index("git-ignored")
    assert headline_problems(readme, Path(out.verdict_md).read_text()) == []


def test_missing_parts_still_give_every_output(tmp_path):
    out = _run(tmp_path, _utility(scarcity=False, minority=False))
    for path in out:
        assert Path(path).stat().st_size > 0, path
    settings = {r[4] for r in _md_rows(out.table4_md)}
    assert settings == {"TRTR", "TSRTR α=1"}


def test_tables_without_an_evaluator_column_are_read_as_the_gru(tmp_path):
    utility = _utility(evaluators=("gru",)).drop(columns="evaluator")
    out = _run(tmp_path, utility, _paired(evaluators=("gru",)).drop(columns="evaluator"))
    for path in out:
        assert Path(path).stat().st_size > 0, path
    for table in (out.table1_csv, out.table4_csv, out.paired_csv):
        assert pd.read_csv(table)["evaluator"].eq("gru").all(), table
    assert {r[3] for r in _md_rows(out.table1_md)} == {"gru"}


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
    expected = (len(DATASETS) + 1) * len(EVALUATORS) * len(TABLE1)
    assert len(pd.read_csv(out.table1_csv)) == expected  # copies left out


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """The report's figures as drawn, not saved, by file name."""
    figures = {}

    def keep(fig, note, png, pdf):
        figures[Path(png).stem] = fig

    monkeypatch.setattr(report_module, "finish", keep)
    monkeypatch.setattr(selection_module, "finish", keep)
    _run(tmp_path, _utility())
    return figures


def _labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def test_fig2_names_conditional_copies_and_draws_interval_bands(drawn):
    fig = drawn["fig2_tsrtr_ratio"]
    axes = np.array(fig.axes).reshape(4, len(DATASETS))
    ylabels = ["GRU: AUROC", "GRU: AUPRC", "LightGBM: AUROC", "LightGBM: AUPRC"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ylabels
    for ax in axes[0]:
        assert ax.get_title().endswith("\ncfg = conditional (w = 0)")
    for ax in axes.flat:
        assert _labels(ax) == ["oversample", "conditional", "tardiff", "real (TRTR mean)",
                               "class_weight (TRTR mean)"]  # fmt: skip
    # the band of oversample (drawn first) on eicu_demo (first column), LightGBM AUPRC
    rows = _utility().query("dataset == 'eicu_demo' and evaluator == 'lgbm' and "
                            "method == 'oversample' and protocol == 'TSRTR'")  # fmt: skip
    means = rows.groupby("ratio")[["auprc_lo", "auprc_hi"]].mean()
    band = axes[3, 0].collections[0].get_paths()[0].vertices
    for ratio, (lo, hi) in means.iterrows():
        at = band[np.isclose(band[:, 0], ratio), 1]
        assert np.isclose(at, lo).any() and np.isclose(at, hi).any()


def test_scarcity_has_a_row_per_evaluator(drawn):
    axes = drawn["scarcity"].axes
    assert [ax.get_ylabel() for ax in axes] == ["GRU: AUPRC", "LightGBM: AUPRC"]
    tsrtr = [f"{m} (TSRTR α=1)" for m in ("oversample", "conditional", "tardiff")]
    assert _labels(axes[0]) == [*tsrtr, "real (TRTR)", "class_weight (TRTR)"]
    assert axes[0].get_title().endswith("\ncfg = conditional (w = 0)")  # at every share


def test_selection_figure_is_a_grid_of_selection_by_method(drawn):
    fig = drawn["scale_selection"]
    assert fig.get_figwidth() * 150 <= 1800
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{d} · {TASK}\n{m}" for d in sorted(DATASETS)
                      for m in ("tardiff: w = 0.03", "cfg: w = 0 (= conditional)")]  # fmt: skip
    assert [ax.get_xticklabels()[-1].get_text() for ax in fig.axes[:2]] == ["0.3", "2"]


def test_the_corrections_come_right_after_real_each_in_its_own_colour():
    assert METHOD_ORDER == ("real", "class_weight", "oversample", "conditional", "tardiff",
                            "classifier_guidance", "cfg", "influence_filter", "jitter")  # fmt: skip
    assert len(set(COLOURS.values())) == len(COLOURS)
    assert not set(COLOURS.values()) & set(EXTRA_COLOURS)


def test_only_a_scale_guided_method_at_scale_0_is_a_copy_of_conditional():
    rows = pd.DataFrame({"method": ["conditional", "cfg", "tardiff", "tardiff",
                                    "influence_filter", "oversample"],
                         "scale": [0.0, 0.0, 0.0, 0.1, 0.0, np.nan]})  # fmt: skip
    assert report_module._conditional_copies(rows) == ["cfg"]  # tardiff: 0.1 at another share
    assert report_module._conditional_copies(rows[rows["method"] != "conditional"]) == []
