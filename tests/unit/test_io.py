"""Atomic writes and their file modes, manifests, code fingerprints and the ``tardiff`` command
(error handling, paths under the config's ``results_dir``)."""

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tardiff import cli
from tardiff.io import (
    atomic_dir,
    atomic_path,
    read_parquet,
    save_checkpoint,
    write_csv,
    write_json,
    write_parquet,
)
from tardiff.layout import Layout
from tardiff.provenance import source_hash, write_manifest

ROOT = Path(__file__).resolve().parents[2]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list((tmp_path / "sub").iterdir()) == []


def test_parquet_round_trip_is_byte_stable(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, float("nan")]})
    write_parquet(frame, tmp_path / "x.parquet")
    write_parquet(frame, tmp_path / "y.parquet")
    assert (tmp_path / "x.parquet").read_bytes() == (tmp_path / "y.parquet").read_bytes()
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "x.parquet"), frame)


def test_read_parquet_names_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.parquet"):
        read_parquet(tmp_path / "gone.parquet")


def test_manifest_lists_sizes_and_hashes(tmp_path):
    (tmp_path / "a.txt").write_text("abc")
    write_manifest([str(tmp_path / "a.txt")], tmp_path / "m.json")
    entry = json.loads((tmp_path / "m.json").read_text())["files"][str(tmp_path / "a.txt")]
    assert entry["bytes"] == 3
    assert entry["sha256"].startswith("ba7816bf")


def test_source_hash_changes_with_module_set():
    assert source_hash("io") != source_hash("io", "config")
    assert source_hash("io", "config") == source_hash("config", "io")
    with pytest.raises(FileNotFoundError, match="no_such_module"):
        source_hash("no_such_module")


def test_write_json_sorted(tmp_path):
    write_json({"b": 1, "a": 2}, tmp_path / "x.json")
    assert (tmp_path / "x.json").read_text().index('"a"') < (tmp_path / "x.json").read_text().index(
        '"b"'
    )


def test_cli_bad_config_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: {d: {source: nope}}\n")
    assert cli.main(["--config", str(bad), "validate-config"]) == 2
    assert "datasets.d.source" in capsys.readouterr().err


def test_cli_unknown_dataset_exits_2(capsys):
    code = cli.main(["--config", str(ROOT / "config/test.yaml"), "demo", "--dataset", "nope"])
    assert code == 2
    assert "datasets.nope" in capsys.readouterr().err


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    """Run the test under a given umask; the previous one is restored afterwards."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_follow_the_umask(tmp_path, umask):
    # mkstemp alone would leave 0o600: the writers must give what a plain open() gives
    expected = {0o022: 0o644, 0o027: 0o640}[umask]
    write_json({"a": 1}, tmp_path / "x.json")
    write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")
    write_csv(pd.DataFrame({"a": [1]}), tmp_path / "x.csv")
    save_checkpoint({"a": 1}, tmp_path / "x.pt")
    for name in ("x.json", "x.parquet", "x.csv", "x.pt"):
        assert _mode(tmp_path / name) == expected, name
    (tmp_path / "plain").write_text("")
    assert _mode(tmp_path / "plain") == expected


def test_atomic_dir_follows_the_umask(tmp_path, umask):
    # mkdtemp alone would leave 0o700
    expected = {0o022: 0o755, 0o027: 0o750}[umask]
    for _ in range(2):  # a new folder, then one that replaces an existing folder
        with atomic_dir(tmp_path / "raw") as tmp:
            (tmp / "t.csv").write_text("x\n")
        assert _mode(tmp_path / "raw") == expected
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
    (tmp_path / "plain").mkdir()
    assert _mode(tmp_path / "plain") == expected


def test_cli_validate_names_the_results_dir(capsys):
    assert cli.main(["--config", str(ROOT / "config/test.yaml"), "validate-config"]) == 0
    out = capsys.readouterr().out
    assert "results in results-test/" in out and "mimic3_demo" in out


def _config_file(tmp_path, results_dir):
    path = tmp_path / "c.yaml"
    config = {
        "results_dir": str(results_dir),
        "device": "cpu",
        "datasets": {"d": {"source": "eicu", "demo": {"n_stays": 10}}},
    }
    path.write_text(yaml.safe_dump(config))
    return path


# command -> (module whose function the command calls, function name, extra arguments)
COMMANDS = {
    "demo": ("tardiff.demo", "write_demo", []),
    "extract": ("tardiff.extract", "build_cohort", []),
    "train-classifier": ("tardiff.models.train_classifier", "run_classifier_stage", ["--task"]),
    "influence": ("tardiff.guidance.influence", "run_influence_stage", ["--task"]),
    "train-diffusion": ("tardiff.diffusion.train", "run_diffusion_stage", ["--task"]),
    "generate": (
        "tardiff.generate", "run_generation_stage", ["--task", "--method", "--scale", "--seed"]
    ),
}  # fmt: skip
ARGS = {"--task": "mortality", "--method": "tardiff", "--scale": "0.03", "--seed": "4"}


def _expected_paths(layout: Layout, command: str) -> dict:
    """The path arguments a stage command must pass (keyword arguments of the stage)."""
    cohort, task = layout.cohort("d"), "mortality"
    clf, inf = layout.classifier("d", task), layout.influence("d", task)
    diff = layout.diffusion("d", task)
    data = {"stays": cohort.stays, "timeseries": cohort.timeseries, "task": task}
    return {
        "train-classifier": {**data, "out": clf},
        "influence": {**data, "classifier": clf.model, "out": inf},
        "train-diffusion": {**data, "out": diff},
        "generate": {
            **data, "diffusion": diff.model, "classifier": clf.model, "influence": inf.G,
            "outs": [layout.synthetic("d", task, "tardiff", 0.03, 4)], "method": "tardiff",
            "scale": 0.03, "seeds": [4],
        },
    }[command]  # fmt: skip


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_steps_use_the_layout_of_results_dir(tmp_path, monkeypatch, command):
    module, function, extra = COMMANDS[command]
    calls = []
    monkeypatch.setattr(f"{module}.{function}", lambda *a, **k: calls.append((a, k)))
    root = tmp_path / "my results"
    argv = ["--config", str(_config_file(tmp_path, root)), command, "--dataset", "d"]
    for flag in extra:
        argv += [flag, ARGS[flag]]
    assert cli.main(argv) == 0
    [(args, kwargs)] = calls
    layout = Layout(str(root))
    if command == "demo":
        assert args == ("eicu", layout.raw("d")) and kwargs == {"n_stays": 10, "seed": 0}
    elif command == "extract":
        assert args[1:3] == (layout.raw("d"), layout.cohort("d"))
    else:
        assert kwargs["device"] == "cpu"
        for key, value in _expected_paths(layout, command).items():
            assert kwargs[key] == value, key
    assert not root.exists()  # the step itself was replaced: the command wrote nothing else
