"""The workflow end to end: dry runs of both configs and a full run of config/test.yaml."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from file_access import STRACE_ARGS, declared_jobs, job_access, under
from wfutil import ROOT, snakemake

from tardiff.config import load_config
from tardiff.evaluate.utility import PAIRED_COLUMNS, UTILITY_COLUMNS
from tardiff.layout import Layout

TEST_CONFIG = ROOT / "config/test.yaml"


@pytest.mark.parametrize("config", ["config/config.yaml", "config/test.yaml"])
def test_dry_run(tmp_path, config):
    result = snakemake(
        "-n", "--cores", "2", "--directory", str(tmp_path), "--configfile", str(ROOT / config)
    )
    assert result.returncode == 0, result.stdout
    assert "demo_raw" in result.stdout and "generate" in result.stdout


def test_invalid_config_fails_dry_run(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {d: {source: mimic3}}\nclassifier: {arch: lstm}\n")
    result = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(bad))
    assert result.returncode != 0
    assert "arch" in result.stdout


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
    methods = 4  # conditional, tardiff, classifier_guidance, jitter
    per_pair = seeds * (1 + methods * (1 + len(ratios) + len(multiples)))
    n_pairs = sum(len(e["tasks"]) for e in config["datasets"].values())
    assert len(main) == per_pair * n_pairs
    assert not main.duplicated(["dataset", "task", "method", "protocol", "ratio", "seed"]).any()
    scarce = utility[utility["fraction"] < 1.0]
    fractions = [f for f in ev["scarcity"]["fractions"] if f < 1]
    assert sorted(scarce["fraction"].unique()) == fractions
    assert len(scarce) == len(fractions) * seeds * (1 + methods)
    assert set(scarce["protocol"]) == {"TRTR", "TSRTR"} and (scarce["ratio"].dropna() == 1).all()
    paired = pd.read_csv(layout.metrics().paired)
    assert list(paired.columns) == PAIRED_COLUMNS and (paired["n_seeds"] == seeds).all()
    assert set(paired["baseline"]) == {"real", "conditional"}
    assert (paired["delta_lo"] <= paired["delta_hi"]).all()
    for name, entry in config["datasets"].items():
        for task in entry["tasks"]:
            selection = json.loads(Path(layout.selection(name, task)).read_text())
            assert set(selection["methods"]) == {"tardiff", "classifier_guidance"}
            rows = main[(main.dataset == name) & (main.task == task)]
            for method, chosen in rows.groupby("method")["scale"]:
                if method in selection["methods"]:
                    assert (chosen == selection["methods"][method]["chosen"]).all()
    for path in layout.report():
        assert Path(path).stat().st_size > 0, path


def _hidden(path, results):
    """Temporary and staging entries (dot-names) of the atomic writers."""
    return any(part.startswith(".") for part in path.relative_to(results).parts)


@pytest.mark.workflow
def test_end_to_end_test_config(tmp_path):
    """The test config end to end, under strace (when installed) to check declared files."""
    trace = tmp_path / "strace.txt"
    prefix = [*STRACE_ARGS, "-o", str(trace)] if shutil.which("strace") else []
    result = snakemake(
        "--cores", "2", "--directory", str(tmp_path), "--configfile", str(TEST_CONFIG),
        prefix=prefix,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:]
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
            for method, scale in [
                ("conditional", 0),
                ("tardiff", 0.1),
                ("classifier_guidance", 0.1),
            ]:
                samples = pd.read_parquet(layout.synthetic(name, task, method, scale, 1).samples)
                assert task in samples.columns and samples[task].nunique() == 2
                assert not samples.drop(columns=["stay_id", "step", task]).isna().any().any()
        assert Path(layout.manifest(name)).exists()
    _check_evaluation_outputs(layout, config)
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
    if not prefix:
        pytest.skip("strace is not installed: declared inputs and outputs were not checked")
    summary = snakemake(
        "--detailed-summary", "--cores", "1", "--directory", str(tmp_path),
        "--configfile", str(TEST_CONFIG),
    )  # fmt: skip
    declared = declared_jobs(summary.stdout, tmp_path)
    jobs = job_access(trace.read_text(), tmp_path)
    _check_declared_files(jobs, declared, Path(layout.root).resolve())
