"""The ``tardiff`` command: every step of the workflow, one subcommand each, for use by hand.

Each subcommand calls the package function that the step's Snakemake adapter
(``workflow/scripts/``) calls, with the config's sections and the files the rule would pass.
Paths come from :mod:`tardiff.layout` under the config's ``results_dir``, so a step run by hand
reads and writes exactly where Snakemake would for the same config. Each config should have its
own ``results_dir`` (``config/test.yaml`` uses ``results-test``), so by-hand runs of one config
never overwrite another's outputs. Torch steps use the threads the rule would (``--threads``).
"""

from __future__ import annotations

import argparse
import sys

from tardiff.cli import data, evaluation, models, plan, reports
from tardiff.config import ConfigError, load_config
from tardiff.layout import Layout

#: the command groups, in the order of ``tardiff --help``
GROUPS = (data, models, evaluation, reports)
_DATASET_HELP = {"any": "dataset name in the config (or a data-scarcity copy's: <name>-train0.5)",
                 "base": "dataset name in the config"}  # fmt: skip


def _adder(sub):
    """``add(name, func, help, dataset=, task=, threads=, mem=)``: one subcommand.

    ``dataset``: ``"any"`` (a config dataset or a data-scarcity copy), ``"base"`` (a config
    dataset) or None (no ``--dataset``); ``task``: whether it takes ``--task``; ``threads``:
    a torch step (``--threads``, default what the rule declares); ``mem``: ``--mem-mb``.
    """

    def add(name, func, help_text, dataset="any", task=True, threads=False, mem=False):
        p = sub.add_parser(name, help=help_text, description=help_text)
        if dataset:
            p.add_argument("--dataset", required=True, help=_DATASET_HELP[dataset])
        if task:
            p.add_argument("--task", required=True, help="task name of the dataset")
        if threads:
            share = name == "train-diffusion"  # the cores the run's pairs share, as the rule's
            default = "the cores shared by the config's pairs" if share else "1"
            p.add_argument("--threads", type=_positive, help=f"torch threads (default {default})")
            p.set_defaults(rule_threads="share" if share else 1)
        if mem:
            p.add_argument("--mem-mb", type=_positive, help="memory limit in MiB (default none)")
        p.set_defaults(func=func, base_only=dataset == "base")
        return p

    return add


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``tardiff`` command."""
    parser = argparse.ArgumentParser(prog="tardiff", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml", help="workflow config YAML")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = _adder(sub)
    for group in GROUPS:
        group.register(add)
    return parser


def _rule_threads(args, config) -> None:
    """Give a torch step without ``--threads`` the threads its rule declares."""
    from tardiff.runtime import available_cores, training_threads

    rule = getattr(args, "rule_threads", None)
    if rule is not None and args.threads is None:
        share = training_threads(available_cores(), len(plan.pairs(config)))
        args.threads = share if rule == "share" else rule


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input, with a one-line reason)."""
    from tardiff.runtime import quiet_thread_waits, setup_logging

    quiet_thread_waits()  # before any step loads torch
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        config = load_config(args.config)
        if getattr(args, "dataset", None) is not None:
            plan.check_target(config, args.dataset, getattr(args, "task", None), args.base_only)
        _rule_threads(args, config)
        args.func(args, config, Layout.from_config(config))
    except (ConfigError, ValueError, FileNotFoundError, KeyError, MemoryError) as err:
        print(f"tardiff: error: {err}", file=sys.stderr)
        return 2
    return 0
