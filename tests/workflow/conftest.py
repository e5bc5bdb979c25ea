"""Fixtures of the workflow tests: one run of ``config/test.yaml`` shared by the tests that
inspect a finished run (under ``strace`` when it is installed, to check declared files)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from file_access import STRACE_ARGS
from wfutil import ROOT, snakemake

TEST_CONFIG = ROOT / "config/test.yaml"


@dataclass(frozen=True)
class Run:
    """A finished run: its working folder, Snakemake's output and the strace log (or None)."""

    workdir: Path
    returncode: int
    stdout: str
    trace: Path | None


@pytest.fixture(scope="session")
def test_config_run(tmp_path_factory) -> Run:
    workdir = tmp_path_factory.mktemp("run")
    trace = tmp_path_factory.mktemp("trace") / "strace.txt" if shutil.which("strace") else None
    prefix = [*STRACE_ARGS, "-o", str(trace)] if trace else []
    result = snakemake(
        "--cores", "2", "--directory", str(workdir), "--configfile", str(TEST_CONFIG),
        prefix=prefix,
    )  # fmt: skip
    return Run(workdir, result.returncode, result.stdout, trace)


@pytest.fixture()
def completed_run(test_config_run) -> Path:
    """The folder of the shared run, which must have succeeded."""
    assert test_config_run.returncode == 0, test_config_run.stdout[-5000:]
    return test_config_run.workdir
