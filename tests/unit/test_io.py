"""Atomic writes, manifests, code fingerprints and the CLI's error handling."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tardiff import cli
from tardiff.io import atomic_path, read_parquet, write_json, write_parquet
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
