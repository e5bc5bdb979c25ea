"""Load and validate the workflow config; resolve per-dataset defaults.

The JSON schema (``config_schema.yaml``, also reachable as ``config/schema.yaml``) is the single
definition of what a config may contain. Snakemake validates with it; :func:`load_config` does the
same for the command line and the tests, filling in defaults.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "mimic3": {
        "resolution_minutes": 60,
        "features": ["hr", "sbp", "dbp", "mbp", "rr", "temp", "spo2"],
        "tasks": {"mortality": {}, "icu_stay": {"threshold_days": 3}},
    },
    "eicu": {
        "resolution_minutes": 5,
        "features": ["hr", "rr", "spo2"],
        "tasks": {"mortality": {}, "icu_stay": {"threshold_days": 3}},
    },
    "yaib": {
        "resolution_minutes": 60,
        "features": ["hr", "sbp", "dbp", "map", "resp", "temp", "o2sat"],
    },
}


class ConfigError(ValueError):
    """An invalid config; the message names the offending key."""


def schema() -> dict[str, Any]:
    """The config JSON schema as a dict."""
    text = resources.files("tardiff").joinpath("config_schema.yaml").read_text()
    return yaml.safe_load(text)


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sch):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, sch)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` against the schema and return a copy with defaults filled in."""
    config = copy.deepcopy(config)
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.path) or "<top level>"
            lines.append(f"config key '{key}': {err.message}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    for name in config["datasets"]:
        config["datasets"][name] = dataset_settings(config, name)
    if "cfg" in config["generation"]["methods"] and not config["diffusion"]["label_dropout"] > 0:
        raise ConfigError(
            "config key 'generation.methods': cfg needs diffusion.label_dropout > 0 (null label)"
        )
    split = config["split"]
    if abs(split["train"] + split["val"] + split["test"] - 1.0) > 1e-6:
        raise ConfigError("config key 'split': train + val + test must sum to 1")
    for key, pairs in (("evaluation.scarcity.pairs", config["evaluation"]["scarcity"]["pairs"]),
                       ("studies.pairs", config["studies"]["pairs"])):  # fmt: skip
        for dataset, tasks in _tasks_by_dataset(pairs).items():
            for task in tasks:
                if task not in config["datasets"].get(dataset, {}).get("tasks", {}):
                    raise ConfigError(f"config key '{key}': {dataset}/{task} is not in this config")
    return config


def _tasks_by_dataset(pairs: list[str]) -> dict[str, list[str]]:
    tasks: dict[str, list[str]] = {}
    for pair in pairs:
        dataset, task = pair.split("/")
        tasks.setdefault(dataset, []).append(task)
    return tasks


def scarcity_tasks(config: dict[str, Any]) -> dict[str, list[str]]:
    """Dataset -> tasks of the data-scarcity study (``evaluation.scarcity.pairs``)."""
    return _tasks_by_dataset(config["evaluation"]["scarcity"]["pairs"])


def study_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """(dataset, task) pairs of the guidance studies (``studies.pairs``)."""
    return [(d, t) for d, tasks in _tasks_by_dataset(config["studies"]["pairs"]).items()
            for t in tasks]  # fmt: skip


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file, validate it and fill defaults."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    with path.open() as fh:
        raw = yaml.safe_load(fh) or {}
    try:
        return validate_config(raw)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def dataset_settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Settings of dataset ``name`` with the source-specific defaults filled in."""
    if name not in config["datasets"]:
        raise ConfigError(f"config key 'datasets.{name}' does not exist")
    entry = copy.deepcopy(config["datasets"][name])
    for key, value in SOURCE_DEFAULTS[entry["source"]].items():
        entry.setdefault(key, copy.deepcopy(value))
    for task in entry["tasks"].values():
        task.setdefault("threshold_days", 3)
    if entry["source"] == "yaib" and len(entry["tasks"]) != 1:
        raise ConfigError(
            f"config key 'datasets.{name}.tasks': a YAIB cohort has one label, so name one task"
        )
    if 60 * entry["hours"] % entry["resolution_minutes"]:
        raise ConfigError(f"config key 'datasets.{name}.resolution_minutes' must divide hours * 60")
    return entry
