"""The ``tardiff`` command: the workflow's steps, one subcommand each, for use by hand.

Paths come from :mod:`tardiff.layout` under the config's ``results_dir``, so a step run by hand
reads and writes exactly where Snakemake would for the same config. Each config should have its
own ``results_dir`` (``config/test.yaml`` uses ``results-test``), so by-hand runs of one config
never overwrite another's outputs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tardiff.config import ConfigError, load_config
from tardiff.layout import Layout
from tardiff.settings import (
    ClassifierSettings,
    DatasetSettings,
    DiffusionSettings,
    GenerationSettings,
    InfluenceSettings,
    SplitSettings,
)

log = logging.getLogger(__name__)


def _cmd_validate(args, config, layout):
    from tardiff.inputs import check_inputs

    try:
        check_inputs(config)
    except ConfigError as err:
        raise ConfigError(f"{args.config}: {err}") from None
    names = ", ".join(config["datasets"])
    print(f"{args.config}: valid; datasets: {names}; results in {layout.root}/")


def _cmd_demo(args, config, layout):
    from tardiff.demo import write_demo

    entry = DatasetSettings.from_config(config["datasets"][args.dataset])
    out = layout.raw(args.dataset)
    log.info("writing %s", out)
    write_demo(entry.source, out, n_stays=entry.demo.n_stays, seed=config["seed"])


def _cmd_extract(args, config, layout):
    from tardiff.extract import build_cohort

    entry = DatasetSettings.from_config(config["datasets"][args.dataset])
    out = layout.cohort(args.dataset)
    log.info("writing %s", ", ".join(out))
    split = SplitSettings.from_config(config["split"])
    build_cohort(entry, layout.raw_input(args.dataset, entry), out, split, config["seed"])


def _cmd_train_classifier(args, config, layout):
    from tardiff.models.train_classifier import run_classifier_stage

    run_classifier_stage(
        **layout.cohort_inputs(args.dataset),
        task=args.task,
        out=layout.classifier(args.dataset, args.task),
        settings=ClassifierSettings.from_config(config["classifier"]),
        seed=config["seed"],
        device=config["device"],
    )


def _cmd_influence(args, config, layout):
    from tardiff.guidance.influence import run_influence_stage

    run_influence_stage(
        **layout.cohort_inputs(args.dataset),
        classifier=layout.classifier(args.dataset, args.task).model,
        task=args.task,
        out=layout.influence(args.dataset, args.task),
        settings=InfluenceSettings.from_config(config["influence"]),
        device=config["device"],
    )


def _cmd_train_diffusion(args, config, layout):
    from tardiff.diffusion.train import run_diffusion_stage

    run_diffusion_stage(
        **layout.cohort_inputs(args.dataset),
        task=args.task,
        out=layout.diffusion(args.dataset, args.task),
        settings=DiffusionSettings.from_config(config["diffusion"]),
        seed=config["seed"],
        dataset=args.dataset,
        device=config["device"],
    )


def _cmd_generate(args, config, layout):
    from tardiff.generate import run_generation_stage

    run_generation_stage(
        **layout.generation_inputs(args.dataset, args.task),
        task=args.task,
        method=args.method,
        scale=args.scale,
        seeds=[args.seed],
        outs=[layout.synthetic(args.dataset, args.task, args.method, args.scale, args.seed)],
        settings=GenerationSettings.from_config(config["generation"]),
        device=config["device"],
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tardiff`` command."""
    from tardiff.generate import METHODS

    parser = argparse.ArgumentParser(prog="tardiff", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="workflow config YAML")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, task=True):
        p = sub.add_parser(name, help=help_text)
        if name != "validate-config":
            p.add_argument("--dataset", required=True, help="dataset name in the config")
        if task:
            p.add_argument("--task", required=True, help="task name of the dataset")
        p.set_defaults(func=func)
        return p

    add(
        "validate-config",
        _cmd_validate,
        "validate the config, its features and raw data folders; print its datasets",
        False,
    )
    add("demo", _cmd_demo, "write the embedded demo's raw tables", False)
    add("extract", _cmd_extract, "raw tables or YAIB folder -> Parquet cohort", False)
    add("train-classifier", _cmd_train_classifier, "train the guidance classifier")
    add("influence", _cmd_influence, "compute the influence vector G")
    add("train-diffusion", _cmd_train_diffusion, "train the class-conditional diffusion model")
    p = add("generate", _cmd_generate, "generate synthetic samples")
    p.add_argument("--method", required=True, choices=sorted(METHODS))
    p.add_argument("--scale", type=float, default=0.0, help="guidance scale (0 = conditional)")
    p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input, with a one-line reason)."""
    from tardiff.runtime import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        config = load_config(args.config)
        if getattr(args, "dataset", None) and args.dataset not in config["datasets"]:
            raise ConfigError(f"config key 'datasets.{args.dataset}' does not exist")
        args.func(args, config, Layout.from_config(config))
    except (ConfigError, ValueError, FileNotFoundError, KeyError, MemoryError) as err:
        print(f"tardiff: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
