"""The workflow end to end: dry runs of both configs and a full run of config/test.yaml."""

import json

import pandas as pd
import pytest
import yaml
from wfutil import ROOT, snakemake

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


@pytest.mark.workflow
def test_end_to_end_test_config(tmp_path):
    result = snakemake(
        "--cores", "2", "--directory", str(tmp_path), "--configfile", str(TEST_CONFIG)
    )
    assert result.returncode == 0, result.stdout[-5000:]
    config = yaml.safe_load(TEST_CONFIG.read_text())
    methods = ["conditional", "tardiff", "classifier_guidance"]
    for name, entry in config["datasets"].items():
        base = tmp_path / "results" / name
        stays = pd.read_parquet(base / "cohort/stays.parquet")
        series = pd.read_parquet(base / "cohort/timeseries.parquet")
        assert set(stays["split"]) == {"train", "val", "test"}
        steps = series.groupby("stay_id")["step"].count()
        assert steps.nunique() == 1 and len(steps) == len(stays)
        summary = json.loads((base / "cohort/summary.json").read_text())
        assert summary["n_stays"] == len(stays)
        for task in entry["tasks"]:
            for method in methods:
                samples = pd.read_parquet(base / task / "synthetic" / method / "seed0.parquet")
                assert task in samples.columns and samples[task].nunique() == 2
                assert not samples.drop(columns=["stay_id", "step", task]).isna().any().any()
        assert (base / "manifest.json").exists()
    again = snakemake(
        "-n", "--cores", "2", "--directory", str(tmp_path), "--configfile", str(TEST_CONFIG)
    )
    assert "Nothing to be done" in again.stdout, again.stdout[-3000:]
