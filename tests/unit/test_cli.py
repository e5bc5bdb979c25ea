"""The ``tardiff`` command: a subcommand for every workflow step that has a script adapter,
calling the adapter's package function with the same arguments; errors exit 2 with a reason."""

from __future__ import annotations

import ast
import inspect
import json
from importlib import import_module
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_cohort import write_cohort

from tardiff import cli
from tardiff.evaluate.downstream.utility import UTILITY_COLUMNS
from tardiff.evaluate.reporting.collect import COLLECTED_PAIRED_COLUMNS
from tardiff.evaluate.studies.stage import SWEEP_COLUMNS
from tardiff.layout import Layout
from tardiff.runtime import available_cores, training_threads

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p for p in (ROOT / "workflow" / "scripts").glob("*.py") if p.stem != "_srcpath")
#: adapters whose subcommand is not their name with dashes
RENAMED = {"demo_raw": "demo", "extract_cohort": "extract"}
#: subcommands without --task / without --dataset
NO_TASK = {"demo", "extract", "scarcity-cohort", "fold-cohort", "manifest"}
NO_DATASET = {"metrics", "metrics-summary", "report", "study-report", "efficiency"}
EXTRA = {
    "generate": ["--method", "tardiff", "--scale", "0.1"],
    "scarcity-cohort": ["--fraction", "0.5"],
    "fold-cohort": ["--repeat", "1", "--fold", "2"],
}
#: config changes of the subcommands of a cross-validation (d without an external population)
CROSS_VALIDATED = {
    "datasets": {"d": {"source": "eicu", "demo": {"n_stays": 10}, "external": None}},
    "split": {"folds": 2},
}
CHANGES = {"fold-cohort": CROSS_VALIDATED, "pool-folds": CROSS_VALIDATED}


def command_of(script: Path) -> str:
    return RENAMED.get(script.stem, script.stem.replace("_", "-"))


def stage_calls(script: Path) -> list[tuple[str, str, int, set[str]]]:
    """(module, function, positional count, keyword names) of each top-level call the adapter
    makes of a ``tardiff`` function (``tardiff.runtime``'s helpers aside)."""
    tree = ast.parse(script.read_text())
    imported = {alias.name: node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("tardiff") for alias in node.names}  # fmt: skip
    calls = []
    for node in tree.body:
        call = node.value if isinstance(node, ast.Expr) else None
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            module = imported.get(call.func.id)
            if module and module != "tardiff.runtime":
                calls.append((module, call.func.id, len(call.args), {k.arg for k in call.keywords}))
    return calls


def uses_threads(script: Path) -> bool:
    return "use_threads(sm.threads)" in script.read_text()


def write_config(tmp_path: Path, **changes) -> Path:
    """A config with one demo dataset ``d`` (with an external population), its results under
    ``tmp_path``, in the data-scarcity study and the guidance studies."""
    config = {
        "results_dir": str(tmp_path / "results"),
        "device": "cpu",
        "datasets": {"d": {"source": "eicu", "demo": {"n_stays": 10},
                           "external": {"demo": {"n_stays": 10}}}},
        "evaluation": {"seeds": 2, "scarcity": {"pairs": ["d/mortality"]}},
        "studies": {"pairs": ["d/mortality"]},
        **changes,
    }  # fmt: skip
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_selection(layout: Layout, dataset="d", task="mortality") -> None:
    """A selection file choosing a scale of the default grid for tardiff and cfg (the other
    guided method, classifier_guidance, chose 0: its conditional draw)."""
    chosen = {"tardiff": 0.1, "cfg": 1.0}
    methods = {m: {"grid": [0.0, w], "score": [0.5, 0.6], "chosen": w} for m, w in chosen.items()}
    path = Path(layout.selection(dataset, task))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"methods": methods}))


def argv_of(config: Path, command: str, *more: str) -> list[str]:
    argv = ["--config", str(config), command]
    if command not in NO_DATASET:
        argv += ["--dataset", "d"] + ([] if command in NO_TASK else ["--task", "mortality"])
    return argv + EXTRA.get(command, []) + list(more)


def test_there_are_adapters():
    assert len(SCRIPTS) >= 20 and all(stage_calls(s) for s in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_adapter_has_a_subcommand(script, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command_of(script), "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    assert f"tardiff {command_of(script)}" in help_text
    assert ("--threads" in help_text) == uses_threads(script)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_subcommand_calls_the_adapters_function_with_its_arguments(script, tmp_path, monkeypatch):
    calls, expected = {}, {}
    for module, name, n_args, keywords in stage_calls(script):
        params = list(inspect.signature(getattr(import_module(module), name)).parameters)
        expected[name] = set(params[:n_args]) | keywords

        def record(*args, _name=name, _params=params, **kwargs):
            calls[_name] = set(_params[: len(args)]) | set(kwargs)

        monkeypatch.setattr(f"{module}.{name}", record)
    config = write_config(tmp_path, **CHANGES.get(command_of(script), {}))
    write_selection(Layout(str(tmp_path / "results")))
    mem = ["--mem-mb", "900"] if any("mem_mb" in k for k in expected.values()) else []
    assert cli.main(argv_of(config, command_of(script), *mem)) == 0
    assert calls == expected


STAGES = {
    "select-scales": "downstream.selection.run_selection_stage",
    "evaluate": "downstream.utility.run_evaluation_stage",
    "privacy": "quality.stage.run_privacy_stage",
}


@pytest.mark.parametrize("command", sorted(STAGES))
def test_the_samples_a_step_reads_are_written_by_generate_or_jitter(command, tmp_path, monkeypatch):
    from tardiff.cli import plan
    from tardiff.config import load_config

    read = []
    monkeypatch.setattr("tardiff.cli.evaluation.use_threads", lambda threads: None)
    monkeypatch.setattr(f"tardiff.evaluate.{STAGES[command]}", lambda **k: read.append(k))
    config = write_config(tmp_path)
    layout = Layout(str(tmp_path / "results"))
    write_selection(layout)
    assert cli.main(argv_of(config, command)) == 0
    written = set(plan.pair_targets(load_config(config), layout, "d", "mortality"))
    [kwargs] = read
    assert kwargs["synthetic"] and set(kwargs["synthetic"]) <= written


def test_train_diffusion_takes_the_threads_of_its_rule(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("tardiff.cli.models.use_threads", seen.append)
    for name in ("run_diffusion_stage", "run_classifier_stage"):
        module = "diffusion.train" if "diffusion" in name else "models.train_classifier"
        monkeypatch.setattr(f"tardiff.{module}.{name}", lambda **kwargs: None)
    config = write_config(tmp_path)
    assert cli.main(argv_of(config, "train-diffusion")) == 0
    assert cli.main(argv_of(config, "train-classifier")) == 0
    assert cli.main(argv_of(config, "train-diffusion", "--threads", "3")) == 0
    # pairs: d/mortality, d/icu_stay and three data-scarcity copies of d/mortality
    assert seen == [training_threads(available_cores(), 5), 1, 3]


def test_validate_config_says_what_each_dataset_reads(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        "datasets:\n  y: {source: yaib, tasks: {mortality: {}}}\n"
        f"  m: {{source: mimic3, raw_dir: {tmp_path}, external: null}}\n"
    )
    for name in ("PATIENTS", "ADMISSIONS", "ICUSTAYS", "CHARTEVENTS", "LABEVENTS",
                 "OUTPUTEVENTS", "D_ITEMS", "D_LABITEMS"):  # fmt: skip
        (tmp_path / f"{name}.csv").write_text("x\n")
    assert cli.main(["--config", str(config), "validate-config"]) == 0
    out = capsys.readouterr().out
    assert "y reads the simulated yaib demo (3000 stays)" in out
    assert f"m reads {tmp_path} (mimic3)" in out


def test_main_makes_idle_torch_workers_sleep_unless_told_otherwise(tmp_path, monkeypatch):
    config = write_config(tmp_path)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert cli.main(["--config", str(config), "validate-config"]) == 0
    import os

    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert cli.main(["--config", str(config), "validate-config"]) == 0
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_jitter_runs_end_to_end(tmp_path):
    config = write_config(tmp_path)
    layout = Layout(str(tmp_path / "results"))
    write_cohort(Path(layout.cohort("d").stays).parent)
    assert cli.main(argv_of(config, "jitter")) == 0
    for seed in (0, 1):
        files = layout.jitter("d", "mortality", seed)
        samples = pd.read_parquet(files.samples)
        assert {"stay_id", "step", "mortality"} <= set(samples.columns)
        assert json.loads(Path(files.settings).read_text())["seed"] == seed


def test_metrics_summary_runs_end_to_end(tmp_path):
    config = write_config(tmp_path)
    layout = Layout(str(tmp_path / "results"))
    metrics = layout.metrics()
    Path(metrics.utility).parent.mkdir(parents=True)
    for path, columns in ((metrics.utility, UTILITY_COLUMNS), (metrics.sweep, SWEEP_COLUMNS),
                          (metrics.paired, COLLECTED_PAIRED_COLUMNS)):  # fmt: skip
        pd.DataFrame(columns=list(columns)).to_csv(path, index=False)
    assert cli.main(argv_of(config, "metrics-summary")) == 0
    assert json.loads(Path(layout.metrics_summary()).read_text()) == {}
    assert all(Path(p).exists() for p in layout.metrics_curves())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "--dataset", "d", "--task", "nope"], "has no task 'nope'"),
        (["evaluate", "--dataset", "e", "--task", "mortality"], "datasets.e"),
        (["fidelity", "--dataset", "d-train0.5", "--task", "mortality"], "data-scarcity copy"),
        (["evaluate", "--dataset", "d-train0.3", "--task", "mortality"], "not a data-scarcity"),
        (["evaluate", "--dataset", "d", "--task", "mortality"], "tardiff select-scales"),
        (["guidance-study", "--dataset", "d", "--task", "mortality"], "tardiff select-scales"),
        (["generate", "--dataset", "d", "--task", "mortality"], "--method"),
        (["generate", "--dataset", "d", "--task", "mortality", "--variant", "x"], "guide0.25"),
        (["influence", "--dataset", "d", "--task", "mortality", "--variant", "x"], "variant 'x'"),
        (["scarcity-cohort", "--dataset", "d", "--fraction", "1.5"], "--fraction"),
        (["metrics"], "utility.csv"),
    ],
)
def test_bad_input_exits_2_with_the_reason(tmp_path, capsys, argv, message):
    assert cli.main(["--config", str(write_config(tmp_path)), *argv]) == 2
    err = capsys.readouterr().err
    assert "tardiff: error:" in err and message in err


@pytest.mark.parametrize(
    "argv",
    [["evaluate", "--dataset", "d"], ["train-diffusion", "--dataset", "d", "--task", "m",
                                      "--threads", "0"], ["no-such-step"]],
)  # fmt: skip
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_demo_needs_a_demo_dataset(tmp_path, capsys):
    config = write_config(tmp_path, datasets={"d": {"source": "eicu", "raw_dir": str(tmp_path)}})
    assert cli.main(["--config", str(config), "demo", "--dataset", "d", "--external"]) == 2
    assert "no external population" in capsys.readouterr().err
