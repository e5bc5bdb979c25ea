"""The ``tardiff`` command: the workflow's steps, one subcommand each, for use by hand.

Paths default to the workflow's layout under ``--results`` (``results/``), so a step run by hand
writes exactly where Snakemake would.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tardiff.config import ConfigError, load_config, uses_demo


def _stage_dir(args: argparse.Namespace, stage: str) -> str:
    return str(Path(args.results) / args.dataset / args.task / stage)


def _cohort_dir(args: argparse.Namespace) -> str:
    return str(Path(args.results) / args.dataset / "cohort")


def _settings(config: dict, *sections: str) -> dict:
    return {name: config[name] for name in sections}


def _cmd_validate(args, config):
    names = ", ".join(config["datasets"])
    print(f"{args.config}: valid; datasets: {names}")


def _cmd_demo(args, config):
    from tardiff.demo import write_demo

    entry = config["datasets"][args.dataset]
    out = args.out or str(Path(args.results) / args.dataset / "raw")
    write_demo(entry["source"], out, n_stays=entry["demo"]["n_stays"], seed=config["seed"])


def _cmd_extract(args, config):
    from tardiff.extract import build_cohort

    entry = config["datasets"][args.dataset]
    raw = args.raw or (
        str(Path(args.results) / args.dataset / "raw")
        if uses_demo(entry)
        else entry.get("path") or entry["raw_dir"]
    )
    build_cohort(entry, raw, args.out or _cohort_dir(args), config["split"], config["seed"])


def _cmd_train_classifier(args, config):
    from tardiff.models.train_classifier import run_classifier_stage

    run_classifier_stage(
        _cohort_dir(args),
        args.task,
        _stage_dir(args, "classifier"),
        _settings(config, "seed", "device", "classifier"),
    )


def _cmd_influence(args, config):
    from tardiff.guidance.influence import run_influence_stage

    run_influence_stage(
        _cohort_dir(args),
        args.task,
        str(Path(_stage_dir(args, "classifier")) / "model.pt"),
        _stage_dir(args, "influence"),
        _settings(config, "seed", "device", "influence"),
    )


def _cmd_train_diffusion(args, config):
    from tardiff.diffusion.train import run_diffusion_stage

    run_diffusion_stage(
        _cohort_dir(args),
        args.task,
        _stage_dir(args, "diffusion"),
        _settings(config, "seed", "device", "diffusion"),
    )


def _cmd_generate(args, config):
    from tardiff.generate import run_generation_stage

    run_generation_stage(
        _cohort_dir(args),
        args.task,
        args.method,
        args.seed,
        str(Path(_stage_dir(args, "diffusion")) / "model.pt"),
        str(Path(_stage_dir(args, "classifier")) / "model.pt"),
        str(Path(_stage_dir(args, "influence")) / "G.pt"),
        str(Path(_stage_dir(args, "synthetic")) / args.method),
        _settings(config, "device", "influence", "generation"),
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tardiff`` command."""
    parser = argparse.ArgumentParser(prog="tardiff", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="workflow config YAML")
    parser.add_argument("--results", default="results", help="results folder")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, func, help_text, task=True):
        p = sub.add_parser(name, help=help_text)
        if name != "validate-config":
            p.add_argument("--dataset", required=True, help="dataset name in the config")
        if task:
            p.add_argument("--task", required=True, help="task name of the dataset")
        p.set_defaults(func=func)
        return p

    add("validate-config", _cmd_validate, "validate the config and print its datasets", False)
    add("demo", _cmd_demo, "write the embedded demo's raw tables", False).add_argument(
        "--out", help="output folder (default: RESULTS/DATASET/raw)"
    )
    p = add("extract", _cmd_extract, "raw tables or YAIB folder -> Parquet cohort", False)
    p.add_argument("--raw", help="raw tables folder (default: from the config)")
    p.add_argument("--out", help="output folder (default: RESULTS/DATASET/cohort)")
    add("train-classifier", _cmd_train_classifier, "train the guidance classifier")
    add("influence", _cmd_influence, "compute the influence vector G")
    add("train-diffusion", _cmd_train_diffusion, "train the class-conditional diffusion model")
    p = add("generate", _cmd_generate, "generate synthetic samples")
    p.add_argument(
        "--method", required=True, choices=["conditional", "tardiff", "classifier_guidance"]
    )
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
        args.func(args, config)
    except (ConfigError, ValueError, FileNotFoundError, KeyError) as err:
        print(f"tardiff: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
