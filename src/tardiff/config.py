"""Load and validate the workflow config; resolve per-dataset defaults.

The JSON schema (``config_schema.yaml``, also reachable as ``config/schema.yaml``) is the single
definition of what a config may contain. Snakemake validates with it; :func:`load_config` does the
same for the command line and the tests, filling in defaults. What the config points at (raw
data folders, the features a source can extract) is checked apart, by :mod:`tardiff.inputs`, so
that a config can be validated on a machine that lacks its data.
"""

from __future__ import annotations

import copy
import difflib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tardiff.methods import compared
from tardiff.settings import own_files

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
    evaluation = config.get("evaluation")
    named_primary = isinstance(evaluation, dict) and "primary" in evaluation
    _imply_externals(config)
    errors = sorted(_Validator(schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.path) or "<top level>"
            lines.append(f"config key '{key}': {err.message}{_did_you_mean(err)}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))
    _check_scales(config)
    _fill_selection_seeds(config["evaluation"])
    for name in config["datasets"]:
        config["datasets"][name] = dataset_settings(config, name)
    if "cfg" in config["generation"]["methods"] and not config["diffusion"]["label_dropout"] > 0:
        raise ConfigError(
            "config key 'generation.methods': cfg needs diffusion.label_dropout > 0 (null label)"
        )
    split = config["split"]
    if abs(split["train"] + split["val"] + split["test"] - 1.0) > 1e-6:
        raise ConfigError("config key 'split': train + val + test must sum to 1")
    if split["folds"] and not cross_validated(config):
        raise ConfigError(
            "config key 'split.folds': cross-validation applies to datasets without an external "
            "test population, and every dataset of this config has one (set a dataset's "
            "`external: null` to cross-validate it, or split.folds: 0)"
        )
    for key, pairs in (("evaluation.scarcity.pairs", config["evaluation"]["scarcity"]["pairs"]),
                       ("studies.pairs", config["studies"]["pairs"])):  # fmt: skip
        for dataset, tasks in _tasks_by_dataset(pairs).items():
            for task in tasks:
                if task not in config["datasets"].get(dataset, {}).get("tasks", {}):
                    raise ConfigError(f"config key '{key}': {dataset}/{task} is not in this config")
    if named_primary:
        _check_primary(config)
    return config


def cross_validated(config: dict[str, Any]) -> list[str]:
    """The datasets of a validated ``config`` evaluated by cross-validation (``split.folds`` >= 2
    and no external test population)."""
    if not config["split"]["folds"]:
        return []
    return [d for d, e in config["datasets"].items() if e.get("external") is None]


def _did_you_mean(err: jsonschema.ValidationError) -> str:
    """``; did you mean ...`` for a misspelt key (or enum value) of a schema error."""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = list(err.schema.get("properties", {}))
        typos = [k for k in err.instance if k not in known]
    elif err.validator == "enum" and isinstance(err.instance, str):
        known, typos = [str(v) for v in err.validator_value], [err.instance]
    else:
        return ""
    pairs = [(t, difflib.get_close_matches(str(t), known, n=1)) for t in typos]
    hints = [f"{m[0]!r} for {t!r}" if len(typos) > 1 else repr(m[0]) for t, m in pairs if m]
    return f"; did you mean {', '.join(hints)}?" if hints else ""


def _fill_selection_seeds(evaluation: dict[str, Any]) -> None:
    """``evaluation.selection_seeds``: null means every seed; more than ``seeds`` is an error."""
    seeds, chosen = evaluation["seeds"], evaluation["selection_seeds"]
    if chosen is None:
        evaluation["selection_seeds"] = seeds
    elif chosen > seeds:
        raise ConfigError(
            f"config key 'evaluation.selection_seeds': {chosen} is more than evaluation.seeds "
            f"({seeds}); the scales are chosen on the first selection_seeds of the seeds"
        )


def _check_scales(config: dict[str, Any]) -> None:
    """Guidance scales of the main grids are > 0: a negative one guides away from the target
    (anti-guidance) yet would be reported under the method's name. Only the scale sweep
    (``studies.sweep_scales``) asks for negative scales, explicitly."""
    for method, grid in config["generation"]["scales"].items():
        negative = [w for w in grid if w < 0]
        if negative:
            raise ConfigError(
                f"config key 'generation.scales.{method}': negative scale(s) {negative} would be "
                f"reported as {method} but guide away from the target (anti-guidance); use "
                "scales > 0 here, and studies.sweep_scales for negative ones"
            )


def _is_demo(entry: dict[str, Any]) -> bool:
    return own_files(entry.get("source"), entry.get("raw_dir"), entry.get("path")) is None


def _imply_externals(config: dict[str, Any]) -> None:
    """An embedded demo dataset without an ``external`` key simulates one (``{}``: the schema
    fills its defaults); any other dataset has none unless the config names one."""
    datasets = config.get("datasets")
    for entry in datasets.values() if isinstance(datasets, dict) else ():
        if isinstance(entry, dict) and _is_demo(entry):
            entry.setdefault("external", {})


def _external(entry: dict[str, Any], name: str) -> dict[str, Any]:
    """A dataset's external population with its source resolved (default: the dataset's)."""
    external = {"source": entry["source"], **entry["external"]}
    key = f"config key 'datasets.{name}.external"
    if _is_demo(external) and not _is_demo(entry):
        where = "path" if external["source"] == "yaib" else "raw_dir"
        raise ConfigError(
            f"{key}.{where}': only an embedded demo dataset simulates its external population; "
            f"name the external {'cohort folder' if where == 'path' else 'raw tables'}"
        )
    if external["source"] == "yaib" and len(entry["tasks"]) != 1:
        raise ConfigError(f"{key}': a YAIB external cohort needs a dataset of one task")
    return external


def _check_primary(config: dict[str, Any]) -> None:
    """``evaluation.primary``, where the config names it, must name a paired row the evaluation
    writes (the default one is simply absent from a run that does not evaluate it, e.g.
    without ``tardiff``: every row is then Holm-adjusted)."""
    evaluation = config["evaluation"]
    primary = evaluation["primary"]
    key = "config key 'evaluation.primary"
    evaluated = [*config["generation"]["methods"], "jitter", *evaluation["baselines"]]
    for field, names in (
        ("method", evaluated),
        ("baseline", ["real", *evaluated]),
        ("evaluator", evaluation["evaluators"]),
    ):
        if primary[field] not in names:
            raise ConfigError(f"{key}.{field}': {primary[field]!r} is not evaluated in this config")
    if not compared(primary["method"], primary["baseline"]):
        raise ConfigError(
            f"{key}': {primary['method']} is not compared with {primary['baseline']} "
            "(conditional − tardiff is reported as tardiff − conditional)"
        )
    protocol, ratio = primary["protocol"], primary["ratio"]
    levels = {"TSTR": [None], "TSRTR": evaluation["ratios"],
              "minority": evaluation["minority_multiples"]}[protocol]  # fmt: skip
    if not any(r == ratio for r in levels):
        raise ConfigError(f"{key}.ratio': {ratio} is not evaluated for {protocol} ({levels})")
    without = [d for d, e in config["datasets"].items() if e["external"] is None]
    if primary["test_set"] == "external" and without:
        raise ConfigError(f"{key}.test_set': no external population for {', '.join(without)}")
    if primary["test_set"] == "fold" and not cross_validated(config):
        raise ConfigError(f"{key}.test_set': no dataset is cross-validated (split.folds)")


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
    entry.setdefault("external", None)
    if entry["external"] is not None:
        entry["external"] = _external(entry, name)
    if entry["source"] == "yaib" and len(entry["tasks"]) != 1:
        raise ConfigError(
            f"config key 'datasets.{name}.tasks': a YAIB cohort has one label, so name one task"
        )
    if 60 * entry["hours"] % entry["resolution_minutes"]:
        raise ConfigError(f"config key 'datasets.{name}.resolution_minutes' must divide hours * 60")
    return entry
