"""Data steps: config check, embedded demo, extraction, data-scarcity and cross-validation fold
copies, manifest."""

from __future__ import annotations

import logging

from tardiff.cli import plan
from tardiff.config import ConfigError
from tardiff.names import fold_dataset, scarcity_dataset
from tardiff.settings import DatasetSettings, SplitSettings

log = logging.getLogger(__name__)


def _cmd_validate(args, config, layout):
    from tardiff.inputs import check_inputs

    try:
        check_inputs(config)
    except ConfigError as err:
        raise ConfigError(f"{args.config}: {err}") from None
    entries = {name: DatasetSettings.from_config(e) for name, e in config["datasets"].items()}
    reads = "; ".join(f"{name} reads {_reads(e)}" for name, e in entries.items())
    print(f"{args.config}: valid; {reads}; results in {layout.root}/")


def _reads(entry: DatasetSettings) -> str:
    """What extraction reads for ``entry``, in words (a simulated demo is named as one, so a
    forgotten ``raw_dir``/``path`` shows)."""
    if entry.uses_demo:
        return f"the simulated {entry.source} demo ({entry.demo.n_stays} stays)"
    return f"{entry.files} ({entry.source})"


def _source(config, args):
    """The dataset entry extraction reads: the dataset's, or its external population's."""
    entry = plan.entry(config, args.dataset)
    if not args.external:
        return entry
    if entry.external is None:
        raise ConfigError(f"dataset '{args.dataset}' has no external population (external:)")
    return entry.external_entry()


def _cmd_demo(args, config, layout):
    from tardiff.demo import external_seed, write_demo

    entry = _source(config, args)
    if not entry.uses_demo:
        raise ConfigError(f"dataset '{args.dataset}' reads its own raw tables, not the demo")
    seed = external_seed(config["seed"]) if args.external else config["seed"]
    out = layout.raw(args.dataset, args.external)
    log.info("writing %s", out)
    write_demo(entry.source, out, n_stays=entry.demo.n_stays, seed=seed)


def _cmd_extract(args, config, layout):
    from tardiff.extract import build_cohort

    entry = _source(config, args)
    out = layout.cohort(args.dataset, args.external)
    log.info("writing %s", ", ".join(out))
    split = None if args.external else SplitSettings.from_config(config["split"])
    raw = layout.raw_input(args.dataset, entry, args.external)
    build_cohort(entry, raw, out, split, config["seed"])


def _cmd_scarcity(args, config, layout):
    from tardiff.config import scarcity_tasks
    from tardiff.scarcity import run_scarcity_cohort_stage

    tasks = scarcity_tasks(config).get(args.dataset)
    if not tasks:
        raise ConfigError(f"dataset '{args.dataset}' is in no pair of evaluation.scarcity.pairs")
    if not 0 < args.fraction < 1:
        raise ValueError(f"--fraction must lie in (0, 1), got {args.fraction}")
    run_scarcity_cohort_stage(
        **layout.cohort_inputs(args.dataset),
        out=layout.cohort(scarcity_dataset(args.dataset, args.fraction)),
        fraction=args.fraction,
        tasks=list(tasks),
        seed=config["seed"],
    )


def _cmd_fold_cohort(args, config, layout):
    from tardiff.folds import run_fold_cohort_stage

    if args.dataset not in plan.fold_copies(config):
        raise ConfigError(f"dataset '{args.dataset}' is not cross-validated (split.folds)")
    split = SplitSettings.from_config(config["split"])
    if not 1 <= args.repeat <= split.repeats or not 1 <= args.fold <= split.folds:
        raise ValueError(f"--repeat 1..{split.repeats} and --fold 1..{split.folds}")
    run_fold_cohort_stage(
        **layout.cohort_inputs(args.dataset),
        out=layout.cohort(fold_dataset(args.dataset, args.repeat, args.fold)),
        task=next(iter(config["datasets"][args.dataset]["tasks"])),
        split=split,
        repeat=args.repeat,
        fold=args.fold,
        seed=config["seed"],
    )


def _cmd_manifest(args, config, layout):
    from tardiff.provenance import write_manifest

    targets = plan.dataset_targets(config, layout, args.dataset)
    write_manifest(targets, layout.manifest(args.dataset))


def register(add) -> None:
    """Add this group's subcommands (``add`` as in :func:`tardiff.cli.build_parser`)."""
    add("validate-config", _cmd_validate,
        "validate the config, its features and raw data folders; print its datasets",
        dataset=None, task=False)  # fmt: skip
    external = "the dataset's external test population (every stay a test stay)"
    p = add("demo", _cmd_demo, "write the embedded demo's raw tables", dataset="base", task=False)
    p.add_argument("--external", action="store_true", help=external)
    p = add("extract", _cmd_extract, "raw tables or YAIB folder -> Parquet cohort",
            dataset="base", task=False)  # fmt: skip
    p.add_argument("--external", action="store_true", help=external)
    p = add("scarcity-cohort", _cmd_scarcity,
            "cohort copy keeping a share of the train stays (data-scarcity study)",
            dataset="base", task=False)  # fmt: skip
    p.add_argument("--fraction", type=float, required=True, help="share of train stays kept")
    p = add("fold-cohort", _cmd_fold_cohort,
            "cohort copy with one cross-validation fold's splits (split.folds)",
            dataset="base", task=False)  # fmt: skip
    p.add_argument("--repeat", type=int, required=True, help="repeat (1-based)")
    p.add_argument("--fold", type=int, required=True, help="fold (1-based)")
    add("manifest", _cmd_manifest, "checksums of every output of a dataset",
        dataset="base", task=False)  # fmt: skip
