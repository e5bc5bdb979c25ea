"""Safe resume and change tracking on the tiny config.

- A run stopped with SIGTERM while a job is writing (diffusion training, then generation) leaves
  no partial output in place, and the restarted run finishes without redoing completed jobs.
- Editing one package module reruns exactly the rules whose code fingerprint covers it, and
  changing one config key reruns exactly the rules that read its section (and what depends on
  their outputs), nothing upstream.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from wfutil import ROOT, snakemake

from tardiff.config import load_config
from tardiff.layout import Layout

TEST_CONFIG = ROOT / "config/test.yaml"
DATASET, TASK = "mimic3_demo", "mortality"
UPSTREAM = {"demo_raw", "extract_cohort", "train_classifier", "influence", "train_diffusion"}


def _job_counts(stdout: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's "Job stats" table (empty when nothing is to be done)."""
    if "Job stats:" not in stdout:
        return {}
    table = stdout.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _command(workdir: Path, *targets: str) -> list[str]:
    # targets first: --configfile takes every value that follows it
    return [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(ROOT / "Snakefile"),
            "--cores", "2", "--directory", str(workdir), "--configfile", str(TEST_CONFIG),
            "--rerun-incomplete"]  # fmt: skip


def _stop_when(command: list[str], started: Path, timeout: float = 300) -> None:
    """Start ``command``; SIGTERM its process group once ``started`` (a job's log) exists."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before {started.name}: {proc.stdout.read()[-3000:]}"
    time.sleep(0.5)  # inside the job
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)


@pytest.mark.workflow
def test_sigterm_mid_job_then_resume(tmp_path):
    layout = Layout(load_config(TEST_CONFIG)["results_dir"])  # relative: targets and paths
    target = layout.synthetic(DATASET, TASK, "tardiff", 0.1, 0).samples
    model = tmp_path / layout.diffusion(DATASET, TASK).model
    training = tmp_path / layout.log(DATASET, "train_diffusion", TASK)
    _stop_when(_command(tmp_path, target), training)
    assert not model.exists(), "a stopped training job left its model in place"
    assert (tmp_path / layout.cohort(DATASET).stays).exists()
    generating = tmp_path / layout.log(DATASET, "generate_tardiff_w0.1", TASK)
    _stop_when(_command(tmp_path, target), generating)
    assert model.exists() and not (tmp_path / target).exists()
    done = subprocess.run(_command(tmp_path, target), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    jobs = _job_counts(done.stdout + done.stderr)
    assert jobs.get("generate") == 1 and not UPSTREAM & set(jobs), jobs
    again = snakemake(target, "-n", "--cores", "2", "--directory", str(tmp_path),
                      "--configfile", str(TEST_CONFIG))  # fmt: skip
    assert "Nothing to be done" in again.stdout, again.stdout[-3000:]


def _copy_project(dest: Path) -> Path:
    """The workflow and package sources in ``dest`` (so a test can edit them)."""
    dest.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "src", "config"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, dest / name)
    return dest


def _dry_jobs(project: Path, workdir: Path, config: Path) -> dict[str, int]:
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(project / "Snakefile"),
         "--cores", "2", "--directory", str(workdir), "--configfile", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return _job_counts(result.stdout + result.stderr)


def _rules_with_code(project: Path, module: str) -> set[str]:
    """Rules whose ``code=source_hash(...)`` names ``module`` (read from the rule files)."""
    rules = set()
    for path in (project / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^(?:checkpoint|rule) ", path.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            if re.search(rf'code=source_hash\([^)]*"{module}"', block):
                rules.add(name)
    return rules


@pytest.mark.workflow
def test_code_and_config_changes_rerun_exactly_their_rules(completed_run, tmp_path):
    project = _copy_project(tmp_path / "project")
    config = project / "config/test.yaml"
    assert _dry_jobs(project, completed_run, config) == {}
    module = project / "src/tardiff/evaluate/quality/privacy.py"
    module.write_text(module.read_text() + "\n# edited\n")
    jobs = set(_dry_jobs(project, completed_run, config))
    changed = _rules_with_code(project, "evaluate")
    assert "privacy" in changed and "train_diffusion" not in changed
    assert changed <= jobs, changed - jobs
    generation = {"generate", "generate_unguided", "generate_final", "generate_variant", "jitter"}
    assert not jobs & (UPSTREAM | generation), jobs
    module.write_text(module.read_text().removesuffix("\n# edited\n"))
    assert _dry_jobs(project, completed_run, config) == {}
    # one value edited in place, as a user would (rewriting the file could reorder its keys)
    old, new = (
        "privacy: {bootstrap_resamples: 200",
        "privacy: {near_copy_distance: 0.1, bootstrap_resamples: 200",
    )
    assert old in config.read_text()
    config.write_text(config.read_text().replace(old, new))
    jobs = _dry_jobs(project, completed_run, config)
    pairs = sum(len(e["tasks"]) for e in load_config(TEST_CONFIG)["datasets"].values())
    assert jobs.get("privacy") == pairs, jobs  # one per (dataset, task) pair
    assert not {"fidelity", "evaluate", "select_scales", "generate", *UPSTREAM} & set(jobs), jobs
