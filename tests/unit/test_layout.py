"""Artifact paths: all under the results root, distinct, and usable as Snakemake patterns."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tardiff.config import validate_config
from tardiff.layout import (
    ClassifierFiles,
    CohortFiles,
    DiffusionFiles,
    InfluenceFiles,
    JitterFiles,
    Layout,
    SyntheticFiles,
    seed_files,
)
from tardiff.names import parse_dataset, scale_tag, scarcity_dataset
from tardiff.settings import DatasetSettings

DEMO_ENTRY = DatasetSettings.from_config(
    validate_config({"datasets": {"d": {"source": "mimic3"}}})["datasets"]["d"]
)


def _all_paths(layout: Layout, dataset: str, task: str, method: str, seed: int | str) -> dict:
    """Every path ``layout`` gives for one dataset/task/method/seed, keyed by method and field.

    A dataset entry for ``raw_input`` is the embedded demo (its input is ``raw(dataset)``).
    """
    groups = {
        "dataset_dir": layout.dataset_dir(dataset),
        "raw": layout.raw(dataset),
        "raw_input": layout.raw_input(dataset, DEMO_ENTRY),
        "cohort_inputs": layout.cohort_inputs(dataset),
        "generation_inputs": layout.generation_inputs(dataset, task),
        "cohort": layout.cohort(dataset),
        "task_dir": layout.task_dir(dataset, task),
        "classifier": layout.classifier(dataset, task),
        "influence": layout.influence(dataset, task),
        "diffusion": layout.diffusion(dataset, task),
        "synthetic": layout.synthetic(dataset, task, method, 0.1, seed),
        "jitter": layout.jitter(dataset, task, seed),
        "synthetic_seeds": layout.synthetic_seeds(dataset, task, method, 0.1, [seed]),
        "jitter_seeds": layout.jitter_seeds(dataset, task, [seed]),
        "draw": layout.draw(dataset, task, method, 0.1, seed),
        "selection": layout.selection(dataset, task),
        "evaluation": layout.evaluation(dataset, task),
        "pooled": layout.pooled(dataset, task),
        "metrics": layout.metrics(),
        "metrics_summary": layout.metrics_summary(),
        "metrics_curves": layout.metrics_curves(),
        "report": layout.report(),
        "study_report": layout.study_report(),
        "fidelity": layout.fidelity(dataset, task),
        "privacy": layout.privacy(dataset, task),
        "studies": layout.studies(dataset, task),
        "variant_influence": layout.variant_influence(dataset, task, "guide0.5"),
        "variant_synthetic": layout.variant_synthetic(dataset, task, "source-minority", 0.1, seed),
        "variant_seeds": layout.variant_seeds(dataset, task, "guide0.5", 0.1, [seed]),
        "samples_figure": layout.samples_figure(dataset, task),
        "efficiency": layout.efficiency(),
        "run_log": layout.run_log("report"),
        "manifest": layout.manifest(dataset),
        "log": layout.log(dataset, "train_classifier", task),
        "benchmark": layout.benchmark(dataset, "train_classifier", task),
    }
    paths = {}
    for name, value in groups.items():
        if isinstance(value, tuple):
            paths.update({f"{name}.{field}": p for field, p in value._asdict().items()})
        elif isinstance(value, dict):
            paths.update({f"{name}.{field}": p for field, p in value.items()})
        else:
            paths[name] = value
    return paths


def test_every_method_is_covered():
    public = {
        name
        for name, member in inspect.getmembers(Layout, inspect.isfunction)
        if not name.startswith("_")
    }
    covered = {key.split(".")[0] for key in _all_paths(Layout(), "d", "t", "m", 0)}
    assert public == covered


@pytest.mark.parametrize("root", ["results", "results-test", "/abs/run 1", "a/b/c"])
def test_paths_sit_under_the_root(root):
    layout = Layout(root)
    for key, path in _all_paths(layout, "mimic3_demo", "mortality", "tardiff", 2).items():
        assert isinstance(path, str), key
        assert path.startswith(f"{root}/"), key
        assert ".." not in Path(path).parts and "//" not in path, key


FOLDERS = ("dataset_dir", "raw", "raw_input", "task_dir")
# what a stage reads: other stages' outputs
BUNDLES = ("cohort_inputs", "generation_inputs", "draw", "synthetic_seeds", "jitter_seeds",
           "variant_seeds")  # fmt: skip
# how many of (dataset, task, method, seed) each file depends on
SCOPE = {"cohort": 1, "manifest": 1, "classifier": 2, "influence": 2, "diffusion": 2, "log": 2}
SCOPE |= {"benchmark": 2, "synthetic": 4, "selection": 2, "evaluation": 2, "pooled": 2}
SCOPE |= {"jitter": 2, "metrics": 0, "report": 0, "run_log": 0}  # jitter: (dataset, task, seed)
SCOPE |= {"fidelity": 2, "privacy": 2, "studies": 2, "samples_figure": 2, "study_report": 0}
SCOPE |= {"efficiency": 0, "variant_influence": 2, "variant_synthetic": 2}  # + variant, seed
SCOPE |= {"metrics_summary": 0, "metrics_curves": 0}


def test_names_are_unique_across_stages():
    files = {
        key: path
        for key, path in _all_paths(Layout("results"), "d", "mortality", "tardiff", 0).items()
        if key.split(".")[0] not in FOLDERS + BUNDLES
    }
    assert len(set(files.values())) == len(files)
    # each stage writes into a folder of its own
    folders = {key: str(Path(path).parent) for key, path in files.items()}
    for stage in ("cohort", "classifier", "influence", "diffusion", "synthetic"):
        own = {d for k, d in folders.items() if k.startswith(f"{stage}.")}
        others = {d for k, d in folders.items() if not k.startswith(f"{stage}.")}
        assert len(own) == 1 and not own & others, stage


def test_other_datasets_tasks_methods_and_seeds_never_collide():
    variants = [
        ("d", "mortality", "tardiff", 0),
        ("d", "icu_stay", "tardiff", 0),
        ("d", "mortality", "conditional", 0),
        ("d", "mortality", "tardiff", 1),
        ("e", "mortality", "tardiff", 0),
    ]
    owner: dict[str, set] = {}
    for variant in variants:
        for key, path in _all_paths(Layout("results"), *variant).items():
            if key.split(".")[0] not in FOLDERS + BUNDLES:
                owner.setdefault(path, set()).add((key, variant[: SCOPE[key.split(".")[0]]]))
    shared = {path: owners for path, owners in owner.items() if len(owners) > 1}
    assert not shared


def test_wildcards_pass_through():
    layout = Layout("results")
    assert (
        layout.classifier("{dataset}", "{task}").model
        == "results/{dataset}/{task}/classifier/model.pt"
    )
    synthetic = layout.synthetic("{dataset}", "{task}", "{method}", "{scale}", "{seed}")
    assert synthetic == SyntheticFiles(
        "results/{dataset}/{task}/synthetic/{method}/w{scale}/seed{seed}.parquet",
        "results/{dataset}/{task}/synthetic/{method}/w{scale}/seed{seed}.json",
        "results/{dataset}/{task}/synthetic/{method}/w{scale}/seed{seed}_diagnostics.csv",
    )
    assert layout.cohort("{dataset}").stays == "results/{dataset}/cohort/stays.parquet"
    assert (
        layout.log("{dataset}", "influence", "{task}")
        == "results/{dataset}/logs/{task}/influence.log"
    )
    assert layout.benchmark("{dataset}", "extract") == "results/{dataset}/benchmarks/extract.tsv"


def test_concrete_paths_and_types():
    layout = Layout("results-test")
    assert layout.influence("d", "t") == InfluenceFiles(
        "results-test/d/t/influence/G.pt",
        "results-test/d/t/influence/grad_norms.csv",
        "results-test/d/t/influence/summary.json",
    )
    assert isinstance(layout.classifier("d", "t"), ClassifierFiles)
    assert isinstance(layout.diffusion("d", "t"), DiffusionFiles)
    assert layout.diffusion("d", "t").plot == "results-test/d/t/diffusion/loss.png"
    assert layout.manifest("d") == "results-test/d/manifest.json"
    assert layout.metrics_summary() == "results-test/metrics/summary.json"
    assert layout.metrics_curves().tsrtr == "results-test/metrics/curves/tsrtr_ratio.csv"
    # a results root given as a config value with a trailing slash
    assert Layout.from_config({"results_dir": "runs/a/"}).cohort("d").summary == (
        "runs/a/d/cohort/summary.json"
    )


@pytest.mark.parametrize("folder", ["some/dir", Path("some/dir")], ids=["str", "Path"])
def test_cohort_files_in_dir(folder):
    files = CohortFiles.in_dir(folder)
    assert files == CohortFiles(
        "some/dir/stays.parquet", "some/dir/timeseries.parquet", "some/dir/summary.json"
    )
    assert Layout("r").cohort("d") == CohortFiles.in_dir("r/d/cohort")


def test_raw_input_per_source():
    config = validate_config(
        {
            "datasets": {
                "demo": {"source": "eicu"},
                "real": {"source": "mimic3", "raw_dir": "/data/mimic-iii/1.4"},
                "cohort": {"source": "yaib", "path": "/data/yaib/mortality24", "tasks": {"m": {}}},
            }
        }
    )
    layout = Layout("results")
    entries = {k: DatasetSettings.from_config(v) for k, v in config["datasets"].items()}
    assert layout.raw_input("demo", entries["demo"]) == "results/demo/raw" == layout.raw("demo")
    assert layout.raw_input("real", entries["real"]) == "/data/mimic-iii/1.4"
    assert layout.raw_input("cohort", entries["cohort"]) == "/data/yaib/mortality24"
    # the demo's simulated external population has its own folders beside the dataset's
    external = entries["demo"].external_entry()
    assert layout.raw_input("demo", external, external=True) == "results/demo/external/raw"
    assert layout.raw("demo", external=True) == "results/demo/external/raw"
    assert layout.cohort("demo", external=True) == CohortFiles.in_dir(
        "results/demo/external/cohort"
    )


def test_input_bundles_are_the_producing_stages_outputs():
    layout = Layout("r")
    cohort = layout.cohort("d")
    assert layout.cohort_inputs("d") == {"stays": cohort.stays, "timeseries": cohort.timeseries}
    external = layout.cohort("d", external=True)
    assert layout.cohort_inputs("d", external=True) == {
        "external_stays": external.stays,
        "external_timeseries": external.timeseries,
    }
    assert not set(external) & set(cohort)
    assert layout.generation_inputs("d", "t") == {
        **layout.cohort_inputs("d"),
        "diffusion": layout.diffusion("d", "t").model,
        "classifier": layout.classifier("d", "t").model,
        "influence": layout.influence("d", "t").G,
    }


def test_scarcity_names_scales_and_draws():
    assert scarcity_dataset("mimic3_demo", 0.25) == "mimic3_demo-train0.25"
    assert parse_dataset("mimic3_demo-train0.25") == ("mimic3_demo", 0.25)
    assert parse_dataset("mimic3_demo") == ("mimic3_demo", 1.0)
    assert [scale_tag(w) for w in (0, 0.1, 0.03, -1.0, "{scale}")] == [
        "0",
        "0.1",
        "0.03",
        "-1",
        "{scale}",
    ]
    layout = Layout("r")
    # a guided method at scale 0 is conditional sampling; jitter has no scale
    assert (
        layout.draw("d", "t", "tardiff", 0.0, 2)
        == layout.synthetic("d", "t", "conditional", 0, 2).samples
    )
    assert layout.draw("d", "t", "tardiff", 0.1, 2) == "r/d/t/synthetic/tardiff/w0.1/seed2.parquet"
    assert layout.draw("d", "t", "jitter", None, 2) == layout.jitter("d", "t", 2).samples


def test_per_seed_outputs_round_trip():
    layout = Layout("r")
    outputs = layout.synthetic_seeds("d", "t", "tardiff", 0.1, [0, 2])
    assert set(outputs) == {f"{f}_seed{k}" for f in SyntheticFiles._fields for k in (0, 2)}
    assert seed_files(SyntheticFiles, outputs, 2) == layout.synthetic("d", "t", "tardiff", 0.1, 2)
    jitter = layout.jitter_seeds("d", "t", [1])
    assert seed_files(JitterFiles, jitter, 1) == layout.jitter("d", "t", 1)
