"""Config schema: defaults, per-source resolution, and errors that name the key."""

import copy
from pathlib import Path

import pytest
import yaml

from tardiff.config import ConfigError, load_config, n_steps, uses_demo, validate_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "config").glob("*.yaml")) + sorted((ROOT / "config/examples").glob("*"))
MINIMAL = {"datasets": {"d": {"source": "mimic3"}}}


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.name != "schema.yaml"], ids=str)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config["datasets"]


def test_defaults_filled_per_source():
    config = validate_config(
        {"datasets": {"m": {"source": "mimic3"}, "e": {"source": "eicu"}}, "seed": 3}
    )
    m, e = config["datasets"]["m"], config["datasets"]["e"]
    assert m["features"] == ["hr", "sbp", "dbp", "mbp", "rr", "temp", "spo2"]
    assert (n_steps(m), n_steps(e)) == (24, 288)
    assert e["tasks"]["icu_stay"]["threshold_days"] == 3
    assert uses_demo(m) and config["split"]["train"] == 0.8
    assert config["diffusion"]["timesteps"] == 1000 and config["seed"] == 3


def test_real_data_entry_is_not_demo():
    config = validate_config({"datasets": {"m": {"source": "mimic3", "raw_dir": "/x"}}})
    assert not uses_demo(config["datasets"]["m"])


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"datasets": {"d": {"source": "mimiciv"}}}, "datasets.d.source"),
        ({"device": "tpu"}, "device"),
        ({"classifier": {"arch": "lstm"}}, "classifier.arch"),
        ({"diffusion": {"timesteps": 1}}, "diffusion.timesteps"),
        ({"generation": {"sampler": "euler"}}, "generation.sampler"),
        ({"unknown_section": {}}, "<top level>"),
        ({"datasets": {"d": {"source": "yaib", "tasks": {"m": {}}}}}, "datasets.d"),
        ({"datasets": {"bad name": {"source": "eicu"}}}, "datasets"),
    ],
)
def test_invalid_config_names_the_key(patch, key):
    config = copy.deepcopy(MINIMAL)
    config.update(patch)
    with pytest.raises(ConfigError, match=f"config key '{key}"):
        validate_config(config)


def test_split_must_sum_to_one():
    with pytest.raises(ConfigError, match="'split'"):
        validate_config({**MINIMAL, "split": {"train": 0.7, "val": 0.1, "test": 0.1}})


def test_resolution_must_divide_window():
    bad = {"datasets": {"d": {"source": "eicu", "resolution_minutes": 7}}}
    with pytest.raises(ConfigError, match="datasets.d.resolution_minutes"):
        validate_config(bad)


def test_yaib_needs_exactly_one_task():
    bad = {"datasets": {"y": {"source": "yaib", "path": "/p", "tasks": {"a": {}, "b": {}}}}}
    with pytest.raises(ConfigError, match="datasets.y.tasks"):
        validate_config(bad)


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_error_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"datasets": {"d": {"source": "x"}}}))
    with pytest.raises(ConfigError, match="c.yaml"):
        load_config(path)


def test_workflow_schema_is_the_package_schema():
    assert (ROOT / "config/schema.yaml").resolve() == (
        ROOT / "src/tardiff/config_schema.yaml"
    ).resolve()
