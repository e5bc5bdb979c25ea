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


def _dvc_paths(entries, results_dir):
    """{path: options} of a dvc.yaml outs / metrics list, ``${results_dir}`` filled in."""
    out = {}
    for entry in entries:
        path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        out[path.replace("${results_dir}", results_dir)] = options or {}
    return out


def _curve_columns(layout):
    """Curve table -> its columns (``series, <x>, auprc``)."""
    import pandas as pd

    from tardiff.evaluate.downstream.utility import UTILITY_COLUMNS
    from tardiff.evaluate.reporting.summary import curve_tables
    from tardiff.evaluate.studies.stage import SWEEP_COLUMNS

    tables = curve_tables(
        pd.DataFrame(columns=UTILITY_COLUMNS), pd.DataFrame(columns=SWEEP_COLUMNS)
    )
    files = layout.metrics_curves()._asdict()
    return {files[field]: list(table.columns) for field, table in tables.items()}


def test_dvc_declares_params_metrics_and_plots_of_snakemake_targets(tmp_path):
    from tardiff.layout import Layout

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    layout = Layout.from_config(yaml.safe_load((ROOT / "config/config.yaml").read_text()))
    evaluation = dvc["stages"]["evaluation"]
    # every stage tracks the whole config as params (`dvc params diff`), not as a plain dep
    for stage in (dvc["stages"]["dataset"]["do"], evaluation):
        assert stage["params"] == [{"config/config.yaml": None}]
        assert "config/config.yaml" not in stage["deps"]
    outs = _dvc_paths(evaluation["outs"], layout.root)
    metrics = _dvc_paths(evaluation["metrics"], layout.root)
    assert list(metrics) == [layout.metrics_summary()]
    declared = {**outs, **metrics}
    # kept in git with the demo run (cache: false); Snakemake, not DVC, decides what reruns
    assert all(o == {"cache": False, "persist": True} for o in declared.values())
    # no declared output inside another (DVC refuses overlapping outputs)
    for a in declared:
        assert not [b for b in declared if b != a and b.startswith(f"{a}/")], a
    # every file of the evaluation stage's target is declared
    wanted = [*layout.metrics(), *layout.metrics_curves(), *layout.report(),
              *layout.study_report(), *layout.efficiency()]  # fmt: skip
    for path in wanted:
        assert [d for d in declared if path == d or path.startswith(f"{d}/")], path
    # plots: each curve table once, with its own x column and a template that exists
    columns = _curve_columns(layout)
    plotted = []
    for entry in dvc["plots"]:
        (spec,) = entry.values()
        ((path, y),) = spec["y"].items()
        plotted.append(path.replace("${results_dir}", layout.root))
        assert columns[plotted[-1]] == ["series", spec["x"], y]
        assert (ROOT / ".dvc/plots" / f"{spec['template']}.json").exists()
    assert sorted(plotted) == sorted(columns)
    # the metric and plot files are outputs of Snakemake's default target
    result = snakemake("-n", "--cores", "2", "--directory", str(tmp_path),
                       "--configfile", str(ROOT / "config/config.yaml"))  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert all(path in result.stdout for path in [*metrics, *plotted])
    ignored = set((ROOT / ".dvcignore").read_text().split())
    assert {".snakemake/", ".venv/", "__pycache__/"} <= ignored
