"""Config schema: defaults, per-source resolution, errors that name the key, and agreement of
the schema with the typed settings and the code's dispatch tables."""

import copy
import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import yaml

from tardiff.config import ConfigError, load_config, schema, validate_config
from tardiff.diffusion.schedule import BETAS, PREDICTIONS
from tardiff.diffusion.steppers import STEPPERS
from tardiff.generate import METHODS
from tardiff.guidance.hook import REFERENCE_SCALED, Guidance
from tardiff.guidance.influence import select_source
from tardiff.guidance.terms import TERMS
from tardiff.inputs import check_features
from tardiff.layout import Layout
from tardiff.models.classifier import ARCHS
from tardiff.settings import (
    SECTIONS,
    DatasetSettings,
    DemoSettings,
    ExternalSettings,
    TaskSettings,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "config").glob("*.yaml")) + sorted((ROOT / "config/examples").glob("*"))
SHIPPED = [p for p in CONFIGS if p.name != "schema.yaml"]
MINIMAL = {"datasets": {"d": {"source": "mimic3"}}}


@pytest.mark.parametrize("path", SHIPPED, ids=str)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert config["datasets"]


def test_defaults_filled_per_source():
    config = validate_config(
        {"datasets": {"m": {"source": "mimic3"}, "e": {"source": "eicu"}}, "seed": 3}
    )
    m, e = config["datasets"]["m"], config["datasets"]["e"]
    assert m["features"] == ["hr", "sbp", "dbp", "mbp", "rr", "temp", "spo2"]
    typed_m, typed_e = DatasetSettings.from_config(m), DatasetSettings.from_config(e)
    assert (typed_m.steps, typed_e.steps) == (24, 288)
    assert typed_e.tasks["icu_stay"].threshold_days == 3
    assert typed_m.uses_demo and config["split"]["train"] == 0.8
    assert config["diffusion"]["timesteps"] == 1000 and config["seed"] == 3
    assert config["results_dir"] == "results"


def test_real_data_entry_is_not_demo():
    config = validate_config({"datasets": {"m": {"source": "mimic3", "raw_dir": "/x"}}})
    assert not DatasetSettings.from_config(config["datasets"]["m"]).uses_demo


def test_a_demo_dataset_simulates_an_external_population_and_real_data_names_one():
    datasets = {
        "demo": {"source": "eicu"},
        "off": {"source": "eicu", "external": None},
        "small": {"source": "mimic3", "external": {"demo": {"n_stays": 300}}},
        "real": {"source": "mimic3", "raw_dir": "/m"},
        "two": {"source": "mimic3", "raw_dir": "/m", "external": {"source": "eicu",
                                                                  "raw_dir": "/e"}},
    }  # fmt: skip
    entries = {
        name: DatasetSettings.from_config(entry)
        for name, entry in validate_config({"datasets": datasets})["datasets"].items()
    }
    assert entries["demo"].external == ExternalSettings("eicu", None, None, DemoSettings(20000))
    assert entries["small"].external.demo.n_stays == 300
    assert entries["off"].external is None and entries["real"].external is None
    other = entries["two"].external_entry()
    assert (other.source, other.raw_dir, other.features) == ("eicu", "/e", entries["two"].features)
    assert other.external is None and entries["demo"].external_entry().uses_demo
    with pytest.raises(ValueError, match="no external population"):
        entries["real"].external_entry()


@pytest.mark.parametrize(
    ("external", "key"),
    [
        ({}, "datasets.r.external.raw_dir"),  # nothing to simulate for real data
        ({"source": "yaib"}, "datasets.r.external.path"),  # real data: a YAIB cohort needs a path
        ({"n_stays": 5}, "datasets.r.external"),  # misplaced key
    ],
)
def test_a_bad_external_population_names_the_key(external, key):
    config = {"datasets": {"r": {"source": "mimic3", "raw_dir": "/m", "external": external}}}
    with pytest.raises(ConfigError, match=f"config key '{key}"):
        validate_config(config)


def test_the_primary_comparison_defaults_and_must_name_an_evaluated_row():
    primary = validate_config(MINIMAL)["evaluation"]["primary"]
    assert primary == {"method": "tardiff", "baseline": "conditional", "protocol": "TSRTR",
                       "ratio": 1.0, "metric": "auprc", "test_set": "headline",
                       "evaluator": "gru"}  # fmt: skip
    ok = {"method": "cfg", "baseline": "real", "protocol": "TSTR", "ratio": None}
    assert validate_config({**MINIMAL, "evaluation": {"primary": ok}})
    corrections = {"method": "tardiff", "baseline": "oversample", "evaluator": "lgbm"}
    assert validate_config({**MINIMAL, "evaluation": {"primary": corrections}})
    bad = [
        ({"baseline": "oversample"}, "evaluation.primary.baseline", {"baselines": []}),
        ({"evaluator": "lgbm"}, "evaluation.primary.evaluator", {"evaluators": ["gru"]}),
    ]
    for patch, key, evaluation in bad:
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            validate_config({**MINIMAL, "evaluation": {"primary": patch, **evaluation}})
    bad = [
        ({"method": "mystery"}, "evaluation.primary.method"),
        ({"baseline": "cfg"}, "evaluation.primary.baseline"),
        ({"method": "conditional", "baseline": "tardiff"}, "evaluation.primary"),
        ({"ratio": 0.3}, "evaluation.primary.ratio"),
        ({"protocol": "TSTR"}, "evaluation.primary.ratio"),  # TSTR has no ratio
        ({"test_set": "external"}, "evaluation.primary.test_set"),
    ]
    real = {"datasets": {"r": {"source": "mimic3", "raw_dir": "/m"}}}
    for patch, key in bad:
        with pytest.raises(ConfigError, match=f"config key '{key}'"):
            validate_config({**real, "evaluation": {"primary": patch}})


@pytest.mark.parametrize(
    ("patch", "key"),
    [
        ({"datasets": {"d": {"source": "mimiciv"}}}, "datasets.d.source"),
        ({"device": "tpu"}, "device"),
        ({"classifier": {"arch": "lstm"}}, "classifier.arch"),
        ({"diffusion": {"timesteps": 1}}, "diffusion.timesteps"),
        ({"generation": {"sampler": "euler"}}, "generation.sampler"),
        ({"unknown_section": {}}, "<top level>"),
        ({"datasets": {"bad name": {"source": "eicu"}}}, "datasets"),
        ({"influence": {"batch_size": 3}}, "influence"),
        ({"results_dir": ""}, "results_dir"),
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


def test_cross_validation_needs_a_dataset_without_external_population():
    from tardiff.config import cross_validated

    real = {"source": "mimic3", "raw_dir": "/data/mimic"}  # a real dataset: no external implied
    demo = {"source": "eicu"}  # a demo dataset: an external population is implied
    config = validate_config({"datasets": {"r": real, "d": demo}, "split": {"folds": 5}})
    assert cross_validated(config) == ["r"] and config["split"]["repeats"] == 1
    assert cross_validated(validate_config({"datasets": {"r": real}})) == []  # folds 0: off
    with pytest.raises(ConfigError, match="'split.folds': cross-validation applies"):
        validate_config({"datasets": {"d": demo}, "split": {"folds": 5}})
    with pytest.raises(ConfigError, match="'split.folds'"):
        validate_config({"datasets": {"r": real}, "split": {"folds": 1}})
    fold = {"primary": {"test_set": "fold"}}
    with pytest.raises(ConfigError, match="no dataset is cross-validated"):
        validate_config({"datasets": {"r": real}, "evaluation": fold})
    validate_config({"datasets": {"r": real}, "split": {"folds": 3}, "evaluation": fold})


def test_cfg_needs_a_trained_null_label():
    cfg = {"methods": ["conditional", "cfg"]}
    assert validate_config({**MINIMAL, "generation": cfg})["generation"]["scales"]["cfg"]
    with pytest.raises(ConfigError, match="cfg needs diffusion.label_dropout"):
        validate_config({**MINIMAL, "generation": cfg, "diffusion": {"label_dropout": 0}})
    defaults = validate_config(MINIMAL)["generation"]
    assert defaults["methods"] == [
        "conditional", "tardiff", "classifier_guidance", "cfg", "influence_filter"
    ]  # fmt: skip
    chosen = (defaults["normalize"], defaults["fd_eps"], defaults["clip_x0"])
    assert chosen == ("capped", 3e-4, None)
    assert inspect.signature(Guidance).parameters["fd_eps"].default == defaults["fd_eps"]


def test_resolution_must_divide_window():
    bad = {"datasets": {"d": {"source": "eicu", "resolution_minutes": 7}}}
    with pytest.raises(ConfigError, match="datasets.d.resolution_minutes"):
        validate_config(bad)


def test_a_yaib_dataset_without_path_is_the_simulated_yaib_cohort():
    config = validate_config({"datasets": {"y": {"source": "yaib", "tasks": {"mortality": {}}}}})
    entry = DatasetSettings.from_config(config["datasets"]["y"])
    assert entry.uses_demo and entry.path is None
    external = entry.external_entry()  # a demo simulates its external population, here too
    assert external.source == "yaib" and external.uses_demo
    bad = {"datasets": {"y": {"source": "yaib", "features": ["hr", "mbp"], "tasks": {"m": {}}}}}
    problems = check_features(validate_config(bad))
    assert len(problems) == 2 and "'map' for 'mbp'" in problems[0]  # dataset and external


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


@pytest.mark.parametrize(
    "typo", [{"resolution_minute": 60}, {"featurs": ["hr"]}], ids=lambda t: next(iter(t))
)
def test_typo_in_dataset_entry_names_key_and_dataset(typo):
    key = next(iter(typo))
    config = {"datasets": {"good": {"source": "eicu"}, "icu_a": {"source": "mimic3", **typo}}}
    with pytest.raises(ConfigError, match=rf"config key 'datasets\.icu_a'.*'{key}'"):
        validate_config(config)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"datasets": {"d": {"source": "mimic3", "featurs": ["hr"]}}},
         r"'datasets\.d'.*'featurs' was unexpected\); did you mean 'features'\?"),
        ({**MINIMAL, "generaton": {}}, r"'<top level>'.*did you mean 'generation'\?"),
        ({**MINIMAL, "generation": {"sampler": "dpm_solver"}},
         r"'generation\.sampler'.*did you mean 'dpm_solver\+\+'\?"),
    ],
)  # fmt: skip
def test_a_misspelt_key_or_value_gets_a_suggestion(config, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(config)


def test_main_guidance_scales_are_positive_and_only_the_sweep_may_be_negative():
    assert validate_config({**MINIMAL, "studies": {"sweep_scales": [-0.3, 0.5]}})
    for method in ("tardiff", "classifier_guidance", "cfg"):
        with pytest.raises(
            ConfigError, match=rf"'generation\.scales\.{method}': negative scale\(s\) \[-0\.1\]"
        ):
            validate_config({**MINIMAL, "generation": {"scales": {method: [0.1, -0.1]}}})


def test_selection_seeds_default_to_every_seed_and_may_not_exceed_them():
    assert (
        validate_config({**MINIMAL, "evaluation": {"seeds": 4}})["evaluation"]["selection_seeds"]
        == 4
    )
    chosen = validate_config({**MINIMAL, "evaluation": {"seeds": 5, "selection_seeds": 3}})
    assert chosen["evaluation"]["selection_seeds"] == 3
    with pytest.raises(ConfigError, match=r"'evaluation\.selection_seeds': 4 is more than .*\(3\)"):
        validate_config({**MINIMAL, "evaluation": {"seeds": 3, "selection_seeds": 4}})


def test_results_dir_of_test_config():
    config = load_config(ROOT / "config/test.yaml")
    assert config["results_dir"] == "results-test"
    assert Layout.from_config(config).root == "results-test"
    assert Layout.from_config({"results_dir": "out/run1/"}).root == "out/run1"


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_settings_fields_are_the_schema_keys(section):
    fields = [f.name for f in dataclasses.fields(SECTIONS[section])]
    assert fields == list(schema()["properties"][section]["properties"])


def test_dataset_settings_fields_are_the_schema_keys():
    defs = schema()["$defs"]
    fields = [f.name for f in dataclasses.fields(DatasetSettings)]
    assert fields == list(defs["dataset"]["properties"])
    nested = {"demo": DemoSettings, "tasks": TaskSettings, "external": ExternalSettings}
    for key, cls in nested.items():
        spec = defs["dataset"]["properties"][key]
        props = spec["properties"] if "properties" in spec else defs["task"]["properties"]
        assert [f.name for f in dataclasses.fields(cls)] == list(props), key


@pytest.mark.parametrize("path", SHIPPED, ids=str)
def test_dataset_settings_from_every_shipped_config(path):
    for entry in load_config(path)["datasets"].values():
        typed = DatasetSettings.from_config(entry)
        assert typed.steps * typed.resolution_minutes == 60 * typed.hours
        assert list(typed.tasks) == list(entry["tasks"])
        own_files = entry.get("path") if entry["source"] == "yaib" else entry["raw_dir"]
        assert typed.uses_demo == (own_files is None)


def test_schema_enums_match_dispatch_tables():
    props = schema()["properties"]

    def enum(section, key):
        return set(props[section]["properties"][key]["enum"])

    assert enum("classifier", "arch") == set(ARCHS)
    assert enum("diffusion", "schedule") == set(BETAS)
    assert enum("diffusion", "prediction") == set(PREDICTIONS)
    assert enum("generation", "jacobian") == set(TERMS)
    assert enum("generation", "sampler") == set(STEPPERS)
    assert set(props["generation"]["properties"]["methods"]["items"]["enum"]) == set(METHODS)
    assert enum("generation", "normalize") == {"none", "rms", *REFERENCE_SCALED}
    sources = enum("influence", "source")
    assert sources == {"all", "minority", "majority"}
    y = np.array([0, 1, 1, 0, 0])
    for source in sources:
        assert select_source(y, source, minority=1).dtype == bool


@pytest.mark.parametrize("path", SHIPPED, ids=str)
def test_settings_round_trip(path):
    config = load_config(path)
    for name, cls in SECTIONS.items():
        settings = cls.from_config(config[name])
        assert settings.to_dict() == config[name]
        assert cls.from_config(settings.to_dict()) == settings
        hash(settings)  # frozen, with tuples instead of lists
        field = dataclasses.fields(settings)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(settings, field, None)


def test_every_schema_object_rejects_unknown_keys():
    """Every object that lists its keys is closed (``if`` conditions only test a value)."""

    def open_objects(node, path):
        if isinstance(node, dict):
            closed = node.get("additionalProperties") is False or path.endswith("/if")
            if "properties" in node and not closed:
                yield path
            for key, child in node.items():
                yield from open_objects(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                yield from open_objects(child, f"{path}/{i}")

    assert list(open_objects(schema(), "")) == []
