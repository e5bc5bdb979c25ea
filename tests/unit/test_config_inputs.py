"""Checks of a config against the variable catalogue and the raw data (tardiff.inputs):
each bad input is one early error naming the config key, from the command line too."""

from pathlib import Path

import pytest
import yaml
from extract_raw import eicu_basic, mimic_basic
from test_extract_yaib import write_yaib

from tardiff import cli
from tardiff.config import ConfigError, load_config, validate_config
from tardiff.inputs import check_features, check_files, check_inputs

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIGS = [ROOT / "config" / name for name in ("config.yaml", "test.yaml", "paper.yaml")]
EXAMPLES = sorted((ROOT / "config/examples").glob("*.yaml"))


def _inputs(datasets: dict) -> None:
    check_inputs(validate_config({"datasets": datasets}))


@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=lambda p: p.name)
def test_demo_configs_pass(path):
    check_inputs(load_config(path))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_name_known_features_and_only_their_missing_folder(path):
    """The examples point at credentialed data this machine lacks: their features are checked,
    their folders are reported (and nothing else)."""
    config = load_config(path)
    assert check_features(config) == []
    problems = check_files(config)
    (name,) = config["datasets"]
    assert len(problems) == 1 and f"'datasets.{name}." in problems[0], problems
    assert "does not exist" in problems[0]


def test_real_folders_that_hold_their_tables_pass(tmp_path):
    mimic, eicu = mimic_basic().write(tmp_path / "m"), eicu_basic().write(tmp_path / "e")
    yaib = write_yaib(tmp_path / "y")
    _inputs(
        {
            "m": {"source": "mimic3", "raw_dir": str(mimic), "features": ["hr", "sbp"],
                  "external": {"source": "eicu", "raw_dir": str(eicu)}},
            "y": {"source": "yaib", "path": str(yaib), "features": ["hr", "o2sat"],
                  "tasks": {"mortality24": {}}},
        }
    )  # fmt: skip


def test_a_missing_folder_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"'datasets\.m\.raw_dir': folder .*nope does not exist"):
        _inputs({"m": {"source": "mimic3", "raw_dir": str(tmp_path / "nope")}})


def test_an_empty_folder_lists_every_missing_table(tmp_path):
    with pytest.raises(ConfigError) as err:
        _inputs({"m": {"source": "mimic3", "raw_dir": str(tmp_path)}})
    message = str(err.value)
    assert "'datasets.m.raw_dir'" in message and "lacks 4 of the 4 tables" in message
    for table in ("PATIENTS", "ADMISSIONS", "ICUSTAYS", "CHARTEVENTS"):
        assert f"{table}.csv.gz" in message


def test_eicu_tables_follow_the_features(tmp_path):
    folder = eicu_basic().write(tmp_path / "e")
    (folder / "vitalAperiodic.csv.gz").unlink()
    _inputs({"e": {"source": "eicu", "raw_dir": str(folder), "features": ["hr", "rr"]}})
    with pytest.raises(ConfigError, match=r"lacks 1 of the 3 tables.*: vitalAperiodic\.csv\.gz"):
        _inputs({"e": {"source": "eicu", "raw_dir": str(folder), "features": ["hr", "sbp"]}})


def test_an_external_folder_is_checked(tmp_path):
    mimic = mimic_basic().write(tmp_path / "m")
    external = {"source": "eicu", "raw_dir": str(tmp_path / "none")}
    with pytest.raises(ConfigError, match=r"'datasets\.m\.external\.raw_dir': folder"):
        _inputs({"m": {"source": "mimic3", "raw_dir": str(mimic), "external": external}})


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"source": "mimic3", "features": ["hr", "map", "heart_rate"]},
         r"'datasets\.d\.features': 'map', 'heart_rate' not extractable from mimic3.*"
         r"did you mean 'mbp' for 'map'"),
        ({"source": "eicu", "features": ["hr", "gcs"]}, r"'gcs' not extractable from eicu"),
        ({"source": "mimic3", "features": ["hr"], "item_ids": {"sbp": [1]}},
         r"'datasets\.d\.item_ids'.*not a configured feature"),
        ({"source": "mimic3", "features": ["hr", "gcs"], "external": {"source": "eicu"}},
         r"'datasets\.d\.features' \(external population, source eicu\): 'gcs'"),
    ],
)  # fmt: skip
def test_features_the_source_cannot_extract(entry, match):
    with pytest.raises(ConfigError, match=match):
        _inputs({"d": entry})


def test_yaib_features_are_columns_of_dyn(tmp_path):
    folder = write_yaib(tmp_path / "y")
    entry = {"source": "yaib", "path": str(folder), "tasks": {"mortality24": {}}}
    with pytest.raises(ConfigError) as err:
        _inputs({"y": {**entry, "features": ["hr", "spo2", "map"]}})
    message = str(err.value)
    assert "'datasets.y.features': 'spo2', 'map' not columns of" in message
    assert "did you mean 'o2sat' for 'spo2'" in message
    (folder / "sta.parquet").unlink()
    (folder / "outc.parquet").write_bytes(b"not parquet")
    with pytest.raises(ConfigError) as err:
        _inputs({"y": {**entry, "features": ["hr"]}})
    assert "'datasets.y.path'" in str(err.value) and "sta.parquet" in str(err.value)


def test_validate_config_command_reports_every_problem_and_exits_2(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    datasets = {
        "m": {"source": "mimic3", "raw_dir": str(tmp_path), "features": ["hr", "na"]},
        "y": {"source": "yaib", "path": str(tmp_path / "y"), "tasks": {"t": {}}},
    }
    config.write_text(yaml.safe_dump({"datasets": datasets}))
    assert cli.main(["--config", str(config), "validate-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tardiff: error: {config}: invalid config inputs:")
    for key in ("datasets.m.features", "datasets.m.raw_dir", "datasets.y.path"):
        assert f"config key '{key}'" in err
