"""The workflow end to end: dry runs of both configs and a full run of config/test.yaml."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from file_access import declared_jobs, job_access, under
from wfutil import ROOT, snakemake

from tardiff.config import load_config, study_pairs
from tardiff.evaluate.downstream.metrics import SAME_SAMPLES
from tardiff.evaluate.downstream.utility import UTILITY_COLUMNS
from tardiff.evaluate.quality.stage import FIDELITY_COLUMNS, PRIVACY_COLUMNS
from tardiff.evaluate.reporting.collect import COLLECTED_PAIRED_COLUMNS
from tardiff.evaluate.reporting.headline import headline_problems
from tardiff.evaluate.studies.stage import GUIDANCE_COLUMNS, SWEEP_COLUMNS
from tardiff.layout import Layout
from tardiff.names import fold_dataset, parse_fold

TEST_CONFIG = ROOT / "config/test.yaml"


@pytest.mark.parametrize("config", ["config/config.yaml", "config/test.yaml", "config/paper.yaml"])
def test_dry_run(tmp_path, config):
    result = snakemake(
        "-n", "--cores", "2", "--directory", str(tmp_path), "--configfile", str(ROOT / config)
    )
    assert result.returncode == 0, result.stdout
    assert "demo_raw" in result.stdout and "generate" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: {d: {source: mimic3}}\nclassifier: {arch: lstm}\n", "arch"),
        ("datasets: {d: {source: mimic3, raw_dir: nope}}\n",
         "config key 'datasets.d.raw_dir': folder nope does not exist"),
    ],
    ids=["schema", "raw_dir"],
)  # fmt: skip
def test_invalid_config_fails_dry_run(tmp_path, text, message):
    """A bad config, or raw data that is not there, stops the dry run before any job."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(bad))
    assert result.returncode != 0
    assert message in result.stdout


def _check_declared_files(jobs, declared, results):
    """Every job opened exactly its declared inputs and wrote only its declared outputs."""
    assert set(jobs) == set(declared), "jobs seen in the trace differ from Snakemake's jobs"
    for log, access in jobs.items():
        inputs, outputs = declared[log]
        own_log = results.parent / log
        read = {
            p
            for p in access.read - access.written - {own_log}
            if under(p, {results}) and not p.is_dir() and not _hidden(p, results)
        }
        undeclared = {p for p in read if not under(p, inputs)}
        assert not undeclared, f"{log}: read undeclared files {sorted(map(str, undeclared))}"
        unread = {i for i in inputs if not any(under(p, {i}) for p in read)}
        assert not unread, f"{log}: declared inputs never opened {sorted(map(str, unread))}"
        placed = {p for p in access.renamed_to | access.written if under(p, {results})}
        stray = {p for p in placed - {own_log} if not under(p, outputs) and not _hidden(p, results)}
        assert not stray, f"{log}: wrote undeclared files {sorted(map(str, stray))}"
        missing = {o for o in outputs if not any(under(p, {o}) for p in placed)}
        assert not missing, (
            f"{log}: declared outputs not written by the job {sorted(map(str, missing))}"
        )


def _check_yaib_cohort(layout, config):
    """The simulated YAIB folder went through the YAIB path: ricu's names to the fidelity table
    (plausibility included), hourly steps from the timedelta ``time``."""
    (name,) = [d for d, e in config["datasets"].items() if e["source"] == "yaib"]
    entry = config["datasets"][name]
    raw = Path(layout.raw(name))
    tables = sorted(p.name for p in raw.iterdir() if not p.name.startswith("."))  # not Snakemake's
    assert tables == ["dyn.parquet", "outc.parquet", "sta.parquet"]
    dyn = pd.read_parquet(raw / "dyn.parquet")
    assert pd.api.types.is_timedelta64_dtype(dyn["time"]) and dyn["time"].max() == pd.Timedelta(
        hours=24
    )
    series = pd.read_parquet(layout.cohort(name).timeseries)
    assert series["step"].max() == entry["hours"] - 1  # the 24 h row is past the window
    fidelity = pd.read_csv(layout.metrics().fidelity)
    rows = fidelity[(fidelity.dataset == name) & (fidelity.metric == "out_of_range")]
    assert {"map", "resp", "o2sat", "all"} <= set(rows["feature"])


def _check_evaluation_outputs(layout, config):
    """utility.csv and paired.csv: columns, value ranges, one row per expected combination;
    the selections, figures and tables exist."""
    ev = config["evaluation"]
    seeds, ratios, multiples = ev["seeds"], ev["ratios"], ev["minority_multiples"]
    utility = pd.read_csv(layout.metrics().utility)
    assert list(utility.columns) == UTILITY_COLUMNS
    metrics = utility[[c for c in UTILITY_COLUMNS if c.startswith(("auroc", "auprc", "minority"))]]
    assert np.isfinite(metrics.to_numpy()).all() and metrics.to_numpy().min() >= 0
    assert metrics.to_numpy().max() <= 1
    main = utility[utility["fraction"] == 1.0]
    methods = 6  # conditional, tardiff, classifier_guidance, cfg, influence_filter, jitter
    levels = len(ratios) + len(multiples)
    # real and class_weight (TRTR), oversample at every level, each method at TSTR and every level
    per_pair = seeds * (2 + levels + methods * (1 + levels))
    n_pairs = {"internal": len(_base_pairs(config)), "external": len(_external_pairs(config)),
               "fold": len(_fold_pairs(config)) * _n_folds(config)}  # fmt: skip
    groups = main.groupby(["test_set", "evaluator"]).size().to_dict()  # every model on each set
    assert groups == {(t, e): per_pair * n_pairs[t] for t in ("internal", "external", "fold")
                      for e in ("gru", "lgbm")}  # fmt: skip
    folds = main[main["test_set"] == "fold"]
    assert set(folds["fold"]) == {f"r1f{f}" for f in range(1, _n_folds(config) + 1)}
    assert main.loc[main["test_set"] != "fold", "fold"].isna().all()
    model = ["dataset", "task", "fold", "method", "protocol", "ratio", "seed"]
    assert not main.duplicated([*model, "test_set", "evaluator"]).any()
    scarce = utility[utility["fraction"] < 1.0]
    fractions = [f for f in ev["scarcity"]["fractions"] if f < 1]
    assert sorted(scarce["fraction"].unique()) == fractions
    assert len(scarce) == 2 * 2 * len(fractions) * seeds * (
        3 + methods
    )  # + class_weight, oversample
    assert set(scarce["protocol"]) == {"TRTR", "TSRTR"} and (scarce["ratio"].dropna() == 1).all()
    _check_paired(layout, config)
    folds = {(d, t): [fold_dataset(d, 1, f) for f in range(1, _n_folds(config) + 1)]
             for d, t in _fold_pairs(config)}  # fmt: skip
    for name, entry in config["datasets"].items():
        for task in entry["tasks"]:
            here = main[(main.dataset == name) & (main.task == task)]
            copies = [(name, here[here.test_set != "fold"])]  # the dataset's own split, then
            copies += [(c, here[here.fold == parse_fold(c)[1]])
                       for c in folds.get((name, task), [])]  # fmt: skip
            for copy, rows in copies:  # its folds: each evaluated at its own chosen scales
                selection = json.loads(Path(layout.selection(copy, task)).read_text())
                assert set(selection["methods"]) == {"tardiff", "classifier_guidance", "cfg"}
                assert selection["seeds"] == ev["selection_seeds"] < seeds
                for method, chosen in rows.groupby("method")["scale"]:
                    if method in selection["methods"]:
                        assert (chosen == selection["methods"][method]["chosen"]).all()
    for path in layout.report():
        assert Path(path).stat().st_size > 0, path


def _check_paired(layout, config):
    """The collected paired table: one primary row per base pair on the external population,
    Holm-adjusted columns, same-samples rows apart; the verdict table and the results README."""
    paired = pd.read_csv(layout.metrics().paired)
    assert list(paired.columns) == COLLECTED_PAIRED_COLUMNS
    assert (paired["n_seeds"] == config["evaluation"]["seeds"]).all()
    assert set(paired["baseline"]) == {
        "real",
        "class_weight",
        "oversample",
        "conditional",
        "tardiff",
    }
    assert set(paired["evaluator"]) == {"gru", "lgbm"}
    assert set(paired["test_set"]) == {"internal", "external", "fold"}
    assert (paired["delta_lo"] <= paired["delta_hi"]).all()
    assert (paired["delta_lo_adj"] <= paired["delta_hi_adj"]).all()
    numbers = paired.select_dtypes("number").drop(columns="ratio")
    assert np.isfinite(numbers.to_numpy(float)).all()
    assert paired[["p_value", "p_holm"]].stack().between(0, 1).all()
    primary = paired[paired["primary"]]
    assert sorted(zip(primary.dataset, primary.task, strict=True)) == sorted(_base_pairs(config))
    # the headline test set: external where there is one, else the pooled folds
    external, folds = set(_external_pairs(config)), set(_fold_pairs(config))
    pairs = list(zip(primary.dataset, primary.task, strict=True))
    expected = ["external" if p in external else "fold" if p in folds else "internal"
                for p in pairs]  # fmt: skip
    assert folds and not any(p in external for p in folds)
    assert primary["test_set"].tolist() == expected and (primary["metric"] == "auprc").all()
    same = paired["verdict"] == SAME_SAMPLES
    assert (paired.loc[same, "verdict_adj"] == SAME_SAMPLES).all()
    assert (paired.loc[same, "baseline"] != "real").all()
    verdict_md = Path(layout.report().verdict_md).read_text()
    readme = Path(layout.report().readme).read_text()
    assert headline_problems(readme, verdict_md) == []


def _base_pairs(config):
    return [(d, t) for d, e in config["datasets"].items() for t in e["tasks"]]


def _external_pairs(config):
    """The base pairs whose dataset has an external test population."""
    return [(d, t) for d, t in _base_pairs(config) if config["datasets"][d]["external"]]


def _fold_pairs(config):
    """The base pairs cross-validated (split.folds; datasets without an external population)."""
    return [(d, t) for d, t in _base_pairs(config) if not config["datasets"][d]["external"]]


def _n_folds(config):
    return config["split"]["folds"] * config["split"]["repeats"]


def _check_folds(layout, config):
    """Each fold copy holds the base cohort's stays; every subject is a test subject in exactly
    one fold; the pooled rows cover every arm of a fold's own paired table."""
    for dataset, task in _fold_pairs(config):
        base = pd.read_parquet(layout.cohort(dataset).stays)
        tested = []
        for fold in range(1, config["split"]["folds"] + 1):
            stays = pd.read_parquet(layout.cohort(fold_dataset(dataset, 1, fold)).stays)
            assert sorted(stays["stay_id"]) == sorted(base["stay_id"])
            assert (stays.groupby("subject_id")["split"].nunique() == 1).all()
            tested += stays.loc[stays["split"] == "test", "stay_id"].tolist()
            own = pd.read_csv(layout.evaluation(fold_dataset(dataset, 1, fold), task).paired)
        assert sorted(tested) == sorted(base["stay_id"])
        pooled = pd.read_csv(layout.pooled(dataset, task))
        arms = ["evaluator", "method", "baseline", "protocol", "ratio", "metric"]
        assert len(pooled) == len(own) and (pooled["test_set"] == "fold").all()
        assert pooled[arms].merge(own[arms], how="outer", indicator=True)["_merge"].eq("both").all()


def _figures_and_tables(layout, config):
    """Every figure and table the report shows."""
    files = [*layout.report(), *layout.study_report(), *layout.efficiency()]
    return files + [f for d, t in _base_pairs(config) for f in layout.samples_figure(d, t)]


def _check_study_outputs(layout, config):
    """fidelity.csv, privacy.csv, the guidance studies, every figure and table: well-formed."""
    seeds, pairs = config["evaluation"]["seeds"], _base_pairs(config)
    synthetic = ["conditional", "tardiff", "classifier_guidance", "cfg", "influence_filter",
                 "jitter"]  # fmt: skip
    fidelity = pd.read_csv(layout.metrics().fidelity)
    assert list(fidelity.columns) == FIDELITY_COLUMNS and np.isfinite(fidelity["value"]).all()
    assert set(fidelity["method"]) == {"real_holdout", "real", *synthetic}
    disc = fidelity[fidelity.metric == "disc_auroc"]
    assert len(disc) == len(pairs) * (1 + len(synthetic) * seeds)
    assert disc["value"].between(0, 1).all()
    shares = fidelity[fidelity.metric.isin(["label_share_0", "label_share_1"])]
    assert len(shares) == 2 * len(disc) and shares["value"].between(0, 1).all()
    privacy = pd.read_csv(layout.metrics().privacy)
    assert list(privacy.columns) == PRIVACY_COLUMNS
    assert len(privacy) == len(pairs) * len(synthetic) * seeds
    assert privacy[["dcr_share", "attack_auc"]].stack().between(0, 1).all()
    assert (privacy["attack_auc_lo"] <= privacy["attack_auc_hi"]).all()
    sweep = pd.read_csv(layout.metrics().sweep)
    studies = config["studies"]
    assert list(sweep.columns) == SWEEP_COLUMNS
    assert sweep[["label_share_0", "label_share_1"]].stack().between(0, 1).all()
    assert set(sweep["scale"]) >= {0.0, *studies["sweep_scales"]}
    assert set(zip(sweep.dataset, sweep.task, strict=True)) == set(study_pairs(config))
    guidance = pd.read_csv(layout.metrics().guidance)
    assert list(guidance.columns) == GUIDANCE_COLUMNS
    assert set(guidance["source"]) == set(studies["guide_sources"])
    assert set(guidance["fraction"]) == {1.0, *studies["guide_fractions"]}
    for path in _figures_and_tables(layout, config):
        head = Path(path).read_bytes()[:8]
        expected = {".png": b"\x89PNG", ".pdf": b"%PDF", ".md": None, ".csv": None}
        magic = expected[Path(path).suffix]
        assert head.startswith(magic) if magic else Path(path).read_text().strip(), path


def _report_entries(html):
    """The results and categories the report's page script shows (as a browser would load them)."""
    found = {}
    for name in ("results", "categories"):
        start = list(re.finditer(rf"var {name} = \{{", html))[-1].end() - 1
        found[name] = json.JSONDecoder().raw_decode(html, start)[0]
    return found["results"], found["categories"]


def _check_report(report, layout, config, root):
    """Every figure and table is in the HTML report, embedded, with a caption and a category."""
    results, categories = _report_entries(report.read_text())
    for path in _figures_and_tables(layout, config):
        key = str(Path(path).relative_to(root))
        assert key in results, key
        entry = results[key]
        data = base64.b64decode(entry["data_uri"].split("base64,", 1)[1])
        assert data == Path(path).read_bytes(), key
        assert entry["caption"].strip(), key
    assert set(categories) == {"Utility", "Guidance studies", "Fidelity and privacy", "Efficiency"}


def _hidden(path, results):
    """Temporary and staging entries (dot-names) of the atomic writers."""
    return any(part.startswith(".") for part in path.relative_to(results).parts)


@pytest.mark.workflow
def test_end_to_end_test_config(test_config_run):
    """The test config end to end, under strace (when installed) to check declared files."""
    tmp_path, trace = test_config_run.workdir, test_config_run.trace
    assert test_config_run.returncode == 0, test_config_run.stdout[-5000:]
    config = load_config(TEST_CONFIG)
    layout = Layout(str(tmp_path / config["results_dir"]))
    for name, entry in config["datasets"].items():
        cohort = layout.cohort(name)
        stays = pd.read_parquet(cohort.stays)
        series = pd.read_parquet(cohort.timeseries)
        assert set(stays["split"]) == {"train", "val", "test"}
        steps = series.groupby("stay_id")["step"].count()
        assert steps.nunique() == 1 and len(steps) == len(stays)
        summary = json.loads(Path(cohort.summary).read_text())
        assert summary["n_stays"] == len(stays)
        for task in entry["tasks"]:
            grid = [("tardiff", 0.1), ("classifier_guidance", 0.1), ("cfg", 1)]
            for method, scale in [("conditional", 0), *grid, ("influence_filter", 0)]:
                samples = pd.read_parquet(layout.synthetic(name, task, method, scale, 0).samples)
                assert task in samples.columns and samples[task].nunique() == 2
                assert not samples.drop(columns=["stay_id", "step", task]).isna().any().any()
            # seed 1 follows the selection seed (selection_seeds: 1): the guided methods at
            # their chosen scales only, the unguided ones as ever
            chosen = json.loads(Path(layout.selection(name, task)).read_text())["methods"]
            for method, scale in [("conditional", 0), *grid, ("influence_filter", 0)]:
                drawn = Path(layout.synthetic(name, task, method, scale, 1).samples).exists()
                assert drawn == (method not in chosen or chosen[method]["chosen"] == scale)
        assert Path(layout.manifest(name)).exists()
        if entry["external"] is None:
            assert not Path(layout.cohort(name, external=True).stays).exists()
            continue
        external = pd.read_parquet(layout.cohort(name, external=True).stays)
        assert (external["split"] == "test").all() and 0 < len(external) <= 300
        assert external["age"].head(20).tolist() != stays["age"].head(20).tolist()  # own seed
    _check_yaib_cohort(layout, config)
    _check_folds(layout, config)
    _check_evaluation_outputs(layout, config)
    _check_study_outputs(layout, config)
    again = snakemake(
        "-n", "--cores", "2", "--directory", str(tmp_path), "--configfile", str(TEST_CONFIG)
    )
    assert "Nothing to be done" in again.stdout, again.stdout[-3000:]
    report = tmp_path / "report.html"
    collected = snakemake(
        "--cores", "1", "--report", str(report), "--directory", str(tmp_path),
        "--configfile", str(TEST_CONFIG),
    )  # fmt: skip
    assert collected.returncode == 0 and report.stat().st_size > 0, collected.stdout[-3000:]
    _check_report(report, layout, config, tmp_path)
    if trace is None:
        pytest.skip("strace is not installed: declared inputs and outputs were not checked")
    summary = snakemake(
        "--detailed-summary", "--cores", "1", "--directory", str(tmp_path),
        "--configfile", str(TEST_CONFIG),
    )  # fmt: skip
    declared = declared_jobs(summary.stdout, tmp_path)
    jobs = job_access(trace.read_text(), tmp_path)
    _check_declared_files(jobs, declared, Path(layout.root).resolve())
