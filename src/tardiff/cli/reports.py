"""Steps over every dataset: collected metrics, DVC summary, report, study report, efficiency."""

from __future__ import annotations

from tardiff.cli import plan
from tardiff.config import study_pairs
from tardiff.settings import PrimarySettings


def _metrics_inputs(config, layout) -> dict[str, list[str]]:
    """Every pair's tidy tables, by kind (the fields of ``MetricsFiles``)."""
    pairs, base, studied = plan.pairs(config), plan.base_pairs(config), study_pairs(config)
    return {
        "utility": [layout.evaluation(d, t).utility for d, t in pairs],
        "paired": [layout.evaluation(d, t).paired for d, t in plan.single_pairs(config)]
        + [layout.pooled(d, t) for d, t in plan.pooled_pairs(config)],
        "fidelity": [layout.fidelity(d, t) for d, t in base],
        "privacy": [layout.privacy(d, t) for d, t in base],
        "sweep": [layout.studies(d, t).sweep for d, t in studied],
        "guidance": [layout.studies(d, t).guidance for d, t in studied],
    }


def _cmd_metrics(args, config, layout):
    from tardiff.evaluate.reporting.collect import collect_tables

    collect_tables(
        inputs=_metrics_inputs(config, layout),
        out=layout.metrics(),
        primary=PrimarySettings.from_config(config["evaluation"]["primary"]),
    )


def _cmd_metrics_summary(args, config, layout):
    from tardiff.evaluate.reporting.summary import write_curves, write_metrics_summary

    metrics = layout.metrics()
    write_metrics_summary(
        utility=metrics.utility, paired=metrics.paired, out=layout.metrics_summary()
    )
    write_curves(utility=metrics.utility, sweep=metrics.sweep, out=layout.metrics_curves())


def _cmd_report(args, config, layout):
    from tardiff.evaluate.reporting.report import write_report

    write_report(
        utility=layout.metrics().utility,
        paired=layout.metrics().paired,
        selections=[layout.selection(d, t) for d, t in plan.single_pairs(config)],
        out=layout.report(),
    )


def _cmd_study_report(args, config, layout):
    from tardiff.evaluate.reporting.collect import write_study_report

    metrics, base = layout.metrics(), plan.base_pairs(config)
    write_study_report(
        fidelity=metrics.fidelity,
        privacy=metrics.privacy,
        sweep=metrics.sweep,
        guidance=metrics.guidance,
        influence={f"{d}/{t}": layout.influence(d, t).summary for d, t in base},
        out=layout.study_report(),
    )


def _cmd_efficiency(args, config, layout):
    from tardiff.evaluate.studies.efficiency import run_efficiency_stage

    run_efficiency_stage(
        **plan.efficiency_inputs(config, layout),
        pairs=[f"{d}/{t}" for d, t in plan.base_pairs(config)],
        out=layout.efficiency(),
    )


def register(add) -> None:
    """Add this group's subcommands (``add`` as in :func:`tardiff.cli.build_parser`)."""
    every = {"dataset": None, "task": False}
    add("metrics", _cmd_metrics, "collect every dataset's tidy metric tables", **every)
    add("metrics-summary", _cmd_metrics_summary,
        "the metrics DVC shows (summary JSON, curve tables)", **every)  # fmt: skip
    add("report", _cmd_report, "figures and tables of the utility evaluation", **every)
    add("study-report", _cmd_study_report,
        "figures and tables of the fidelity, privacy and guidance studies", **every)  # fmt: skip
    add("efficiency", _cmd_efficiency,
        "wall time and memory per stage (from a workflow run's benchmark files)",
        **every)  # fmt: skip
