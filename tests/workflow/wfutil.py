"""Helpers for the workflow tests: run Snakemake, ruff, snakefmt as subprocesses."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(args, cwd=ROOT, timeout=900):
    """Run a command; return the CompletedProcess (stdout and stderr merged)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def snakemake(*args, prefix=(), **kwargs):
    """Run ``python -m snakemake`` with the repository Snakefile (``prefix``: e.g. strace)."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    return run([*prefix, *command, *args], **kwargs)
