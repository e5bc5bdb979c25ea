"""Static checks: Snakemake lint, snakefmt, ruff, and CI running the README's test command."""

import shutil
import sys

import pytest
import yaml
from wfutil import ROOT, run, snakemake


def test_snakemake_lint_clean():
    result = snakemake("--lint", "--directory", str(ROOT))
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("snakefmt") is None, reason="snakefmt not installed")
def test_snakefmt_clean():
    result = run(["snakefmt", "--check", "Snakefile", "workflow"])
    assert result.returncode == 0, result.stdout


def test_ruff_clean():
    check = run([sys.executable, "-m", "ruff", "check", "."])
    fmt = run([sys.executable, "-m", "ruff", "format", "--check", "."])
    assert check.returncode == 0, check.stdout
    assert fmt.returncode == 0, fmt.stdout


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    marker = "<!-- test-command -->"
    assert marker in readme, "README must mark its test command"
    block = readme.split(marker, 1)[1].split("```bash", 1)[1].split("```", 1)[0].strip()
    assert block in (ROOT / ".ci/run").read_text()


def test_dvc_stages_follow_config_datasets():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    stage = dvc["stages"]["dataset"]
    assert stage["foreach"] == "${datasets}"
    assert "snakemake" in stage["do"]["cmd"]
    assert (ROOT / ".dvcignore").read_text().count(".snakemake/") == 1
