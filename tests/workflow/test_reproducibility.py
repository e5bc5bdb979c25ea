"""`dvc repro` of the tiny config in a temporary git repository reproduces the Snakemake run.

The shared Snakemake run of ``config/test.yaml`` and a second run through DVC, in another folder,
must give identical artifacts: cohort tables, models, synthetic sets, evaluation tables and
figures. The DVC run leaves out the cross-validated YAIB cohort (its fold copies are half the
tiny config's jobs, and CI has time for one traced run and one more): every file of the datasets
it keeps, their data-scarcity copies included, must equal the shared run's, which also shows
that a dataset's results do not depend on the other datasets of the config. The tables and
figures across datasets differ by construction and are only required to exist.

Compared as bytes, except where a file records how long its job took (wall time, peak memory):
JSON records and model checkpoints are compared with those entries removed (checkpoints tensor by
tensor); logs, benchmark files, manifests (hashes of those records) and the efficiency table are
timings by nature and left out. DVC must then report everything up to date and print the metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from wfutil import ROOT

from tardiff.config import load_config
from tardiff.layout import Layout
from tardiff.names import parse_dataset

TEST_CONFIG = ROOT / "config/test.yaml"
#: the test config's dataset the DVC run leaves out (cross-validated: split.folds goes with it)
LEFT_OUT = "yaib_demo"
#: entries of JSON records and checkpoints that measure the run, not its results
TIMING_KEYS = {"wall_s", "peak_rss_mb", "samples_per_s", "rows_per_second"}
#: folders and files that hold timings only
TIMINGS = {"logs", "benchmarks", "manifest.json", "efficiency.md", "efficiency.csv"}


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DVC_NO_ANALYTICS": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _repository(dest: Path) -> Path:
    """A git repository with the workflow, DVC files and the test config as the default."""
    dest.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "src", "config", "envs", "dvc.yaml", ".dvcignore"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, dest / name)
    (dest / ".dvc").mkdir()
    shutil.copy(ROOT / ".dvc/config", dest / ".dvc/config")
    shutil.copytree(ROOT / ".dvc/plots", dest / ".dvc/plots")
    config = yaml.safe_load(TEST_CONFIG.read_text())
    del config["datasets"][LEFT_OUT], config["split"]
    (dest / "config/config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    commit = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]
    for args in (["git", "init", "-q"], ["git", "add", "-A"], commit):
        assert _run(args, dest).returncode == 0, args
    return dest


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    return [_without_timings(v) for v in value] if isinstance(value, list) else value


def _same_checkpoint(a: Path, b: Path) -> bool:
    one, two = (torch.load(p, map_location="cpu", weights_only=False) for p in (a, b))
    return _equal(_without_timings(one), _without_timings(two))


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _same(a: Path, b: Path) -> bool:
    if a.suffix == ".pt":
        return _same_checkpoint(a, b)
    if a.suffix == ".json":
        return _without_timings(json.loads(a.read_text())) == _without_timings(
            json.loads(b.read_text())
        )
    return a.read_bytes() == b.read_bytes()


def _artifacts(results: Path, datasets: list[str]) -> set[Path]:
    """Files of the results folders of ``datasets`` and their copies, timings left out."""
    folders = [f for f in results.iterdir() if f.is_dir() and parse_dataset(f.name)[0] in datasets]
    return {
        p.relative_to(results)
        for folder in folders
        for p in folder.rglob("*")
        if p.is_file()
        and not TIMINGS & set(p.relative_to(results).parts)
        and not any(part.startswith(".") for part in p.relative_to(results).parts)
    }


@pytest.mark.workflow
def test_dvc_repro_reproduces_the_run_byte_for_byte(completed_run, tmp_path):
    repo = _repository(tmp_path / "repo")
    repro = _run(["dvc", "repro"], repo)
    assert repro.returncode == 0, repro.stdout[-3000:] + repro.stderr[-3000:]
    status = _run(["dvc", "status"], repo)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    shown = _run(["dvc", "metrics", "show"], repo)
    assert shown.returncode == 0 and "TSRTR_auprc" in shown.stdout, shown.stdout + shown.stderr
    config = load_config(repo / "config/config.yaml")
    first, second = completed_run / config["results_dir"], repo / config["results_dir"]
    datasets = list(config["datasets"])
    assert not (second / LEFT_OUT).exists()
    artifacts = _artifacts(first, datasets)
    assert artifacts == _artifacts(second, datasets)
    assert all(p.exists() for p in map(Path, Layout(str(second)).metrics()))
    different = sorted(str(p) for p in artifacts if not _same(first / p, second / p))
    assert not different, f"artifacts differ between two runs of the same config: {different}"
    plots = _run(["dvc", "plots", "show", "--out", str(tmp_path / "plots")], repo)
    assert plots.returncode == 0 and (tmp_path / "plots/index.html").exists(), plots.stderr[-3000:]
