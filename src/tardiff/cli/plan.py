"""What the workflow derives from a config: the (dataset, task) pairs, seeds and study
variants, and the input lists of the stages that read many files.

``workflow/rules/common.smk`` and the ``tardiff`` command both call these functions, so a step
run by hand reads the files the rule would read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tardiff.config import ConfigError, cross_validated, scarcity_tasks, study_pairs
from tardiff.io import read_json
from tardiff.layout import Layout
from tardiff.names import fold_dataset, parse_dataset, parse_fold, scale_tag, scarcity_dataset
from tardiff.settings import DatasetSettings, ScaleGrids, StudySettings


def methods(config: dict[str, Any]) -> tuple[str, ...]:
    return tuple(config["generation"]["methods"])


def scales(config: dict[str, Any]) -> ScaleGrids:
    return ScaleGrids.from_config(config["generation"]["scales"])


def n_seeds(config: dict[str, Any]) -> int:
    return config["evaluation"]["seeds"]


def selection_seeds(config: dict[str, Any]) -> int:
    """The first seeds: they choose the scales and run the guidance studies."""
    return config["evaluation"]["selection_seeds"]


def minority_multiple(config: dict[str, Any]) -> float:
    """The largest minority-only multiple: generation tops the minority class up to it."""
    return max([1.0, *config["evaluation"]["minority_multiples"]])


def base_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d, t) for d, entry in config["datasets"].items() for t in entry["tasks"]]


def fold_copies(config: dict[str, Any]) -> dict[str, list[str]]:
    """Each cross-validated dataset's fold copies, repeat by repeat (``split.folds``)."""
    split = config["split"]
    return {d: [fold_dataset(d, r, f) for r in range(1, split["repeats"] + 1)
                for f in range(1, split["folds"] + 1)]
            for d in cross_validated(config)}  # fmt: skip


def single_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The config's (dataset, task) pairs, then the data-scarcity study's reduced copies."""
    fractions = config["evaluation"]["scarcity"]["fractions"]
    scarce = [(scarcity_dataset(d, f), t) for d, tasks in scarcity_tasks(config).items()
              for f in fractions if f < 1 for t in tasks]  # fmt: skip
    return base_pairs(config) + scarce


def pooled_pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The (dataset, task) pairs whose paired differences are pooled over folds."""
    return [(d, t) for d in fold_copies(config) for t in config["datasets"][d]["tasks"]]


def pairs(config: dict[str, Any]) -> list[tuple[str, str]]:
    """:func:`single_pairs`, then the cross-validation fold copies' pairs."""
    folds = [(c, t) for d, copies in fold_copies(config).items() for c in copies
             for t in config["datasets"][d]["tasks"]]  # fmt: skip
    return single_pairs(config) + folds


def variants(config: dict[str, Any]) -> list[str]:
    """Guidance-study variants of G beyond the main one."""
    from tardiff.evaluate.studies.stage import study_draws

    return study_draws(StudySettings.from_config(config["studies"]), config["influence"]["source"])


def entry(config: dict[str, Any], dataset: str) -> DatasetSettings:
    return DatasetSettings.from_config(config["datasets"][parse_dataset(dataset)[0]])


def chosen_scales(layout: Layout, dataset: str, task: str) -> dict[str, Any]:
    """The selection file of a pair (``select-scales`` writes it)."""
    path = layout.selection(dataset, task)
    if not Path(path).exists():
        raise FileNotFoundError(
            f"{path} does not exist: run `tardiff select-scales --dataset {dataset} "
            f"--task {task}` first"
        )
    return read_json(path)


def selection_synthetic(config, layout: Layout, dataset: str, task: str) -> list[str]:
    """Samples of every scale of every guided method's grid (and the conditional ones)."""
    from tardiff.evaluate.downstream.sets import selection_draws

    keys = selection_draws(methods(config), scales(config), selection_seeds(config))
    return [layout.draw(dataset, task, *key) for key in keys]


def _chosen(layout: Layout, dataset: str, task: str) -> dict[str, float]:
    selection = chosen_scales(layout, dataset, task)
    return {m: v["chosen"] for m, v in selection["methods"].items()}


def evaluation_synthetic(config, layout: Layout, dataset: str, task: str) -> list[str]:
    """Samples of each method at the scale chosen on validation."""
    from tardiff.evaluate.downstream.sets import evaluation_draws

    keys = evaluation_draws(methods(config), _chosen(layout, dataset, task), n_seeds(config))
    return [layout.draw(dataset, task, *key) for key in keys]


def final_keys(config, layout: Layout, dataset: str, task: str) -> list:
    """The diffusion draws of the seeds after the selection seeds, at the chosen scales (none
    without such seeds; otherwise the selection must exist)."""
    from tardiff.evaluate.downstream.sets import final_draws

    if selection_seeds(config) == n_seeds(config):
        return []
    chosen = _chosen(layout, dataset, task)
    return final_draws(methods(config), chosen, n_seeds(config), selection_seeds(config))


def external_cohort(config, layout: Layout, dataset: str) -> tuple[str, str] | None:
    """The external population's cohort the evaluation scores (None if the dataset has none)."""
    base = parse_dataset(dataset)[0]
    if entry(config, base).external is None:
        return None
    files = layout.cohort(base, external=True)
    return files.stays, files.timeseries


def sweep_keys(config: dict[str, Any]) -> list:
    from tardiff.evaluate.studies.stage import sweep_draws

    studies = StudySettings.from_config(config["studies"])
    return sweep_draws(methods(config), scales(config), studies.sweep_scales,
                       studies.sweep_methods, selection_seeds(config))  # fmt: skip


def pair_targets(config, layout: Layout, dataset: str, task: str) -> list[str]:
    """Every model, sample and evaluation file of one (dataset, task) pair."""
    targets = [*layout.classifier(dataset, task), *layout.influence(dataset, task)]
    targets += layout.diffusion(dataset, task)
    for method, scale, seed in pair_draws(config, layout, dataset, task):
        targets += layout.synthetic(dataset, task, method, scale, seed)
    for seed in range(n_seeds(config)):
        targets += layout.jitter(dataset, task, seed)
    targets += [layout.selection(dataset, task), *layout.evaluation(dataset, task)]
    if (dataset, task) in base_pairs(config):
        targets += [layout.fidelity(dataset, task), layout.privacy(dataset, task)]
    if (dataset, task) in study_pairs(config):
        targets += layout.studies(dataset, task)
    return targets


def dataset_targets(config, layout: Layout, dataset: str) -> list[str]:
    """Every output of a dataset, its data-scarcity copies included (the manifest's list)."""
    targets = list(layout.cohort(dataset))
    if entry(config, dataset).external is not None:
        targets += layout.cohort(dataset, external=True)
    targets += [layout.pooled(d, t) for d, t in pooled_pairs(config) if d == dataset]
    for d, t in pairs(config):
        if parse_dataset(d)[0] == dataset:
            targets += pair_targets(config, layout, d, t)
            targets += list(layout.cohort(d)) if d != dataset else []
    return targets


def first_draws(config: dict[str, Any]) -> list:
    """The diffusion draws that do not wait for the scale selection (the ``generate`` jobs)."""
    from tardiff.evaluate.downstream.sets import generation_draws

    return generation_draws(methods(config), scales(config), selection_seeds(config),
                            n_seeds(config))  # fmt: skip


def pair_draws(config, layout: Layout, dataset: str, task: str) -> list:
    """Every diffusion draw of one pair: :func:`first_draws`, then :func:`final_keys`."""
    return first_draws(config) + final_keys(config, layout, dataset, task)


def benchmark_jobs(config, layout: Layout, dataset: str, task: str) -> list[str]:
    """Benchmark names of one pair's jobs the efficiency table reads (the generation jobs of
    the later seeds need the selection)."""
    jobs = ["train_classifier", "influence", "train_diffusion", "select_scales", "evaluate",
            "fidelity", "privacy"]  # fmt: skip
    later = final_keys(config, layout, dataset, task)
    for suffix, draws in (("", first_draws(config)), ("_final", later)):
        generated = sorted({(m, w) for m, w, _ in draws})
        jobs += [f"generate_{m}_w{scale_tag(w)}{suffix}" for m, w in generated]
    return jobs


def efficiency_inputs(config, layout: Layout) -> dict[str, list[str]]:
    """Benchmark files of every job of the main pairs (a workflow run writes them), their
    influence summaries and generation records."""
    entries = {d: entry(config, d) for d in config["datasets"]}
    files = [layout.benchmark(d, "extract_cohort") for d in entries]
    files += [layout.benchmark(d, "demo_raw") for d, e in entries.items() if e.uses_demo]
    external = {d: e.external_entry() for d, e in entries.items() if e.external is not None}
    files += [layout.benchmark(d, "extract_external") for d in external]
    files += [layout.benchmark(d, "external_demo_raw") for d, e in external.items() if e.uses_demo]
    base = base_pairs(config)
    files += [layout.benchmark(d, job, t) for d, t in base
              for job in benchmark_jobs(config, layout, d, t)]  # fmt: skip
    return {
        "benchmarks": files,
        "influence": [layout.influence(d, t).summary for d, t in base],
        "records": [
            layout.synthetic(d, t, m, w, k).settings
            for d, t in base
            for m, w, k in pair_draws(config, layout, d, t)
        ],
    }


def check_target(config: dict[str, Any], dataset: str, task: str | None, base_only: bool) -> None:
    """Fail with the reason unless the config has ``dataset`` (and ``task`` for it)."""
    base, fraction = parse_dataset(dataset)
    fold = parse_fold(dataset)[1]
    if base not in config["datasets"]:
        raise ConfigError(f"config key 'datasets.{base}' does not exist")
    if (fraction != 1 or fold) and base_only:
        kind = "cross-validation fold" if fold else "data-scarcity"
        raise ConfigError(f"'{dataset}' is a {kind} copy; this step runs on '{base}' only")
    known = [t for d, t in pairs(config) if d == dataset]
    if fraction != 1 and not known:
        raise ConfigError(f"'{dataset}' is not a data-scarcity copy of this config "
                          "(evaluation.scarcity.pairs, fractions)")  # fmt: skip
    if fold and not known:
        raise ConfigError(f"'{dataset}' is not a cross-validation fold copy of this config "
                          "(split.folds, split.repeats; datasets without external)")  # fmt: skip
    if task is not None and task not in known:
        raise ConfigError(f"dataset '{dataset}' has no task '{task}' (tasks: {', '.join(known)})")
