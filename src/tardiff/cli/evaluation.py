"""Evaluation steps of one (dataset, task): scale selection, utility, fidelity, privacy, Fig. 5
and the guidance studies."""

from __future__ import annotations

from tardiff.cli import plan
from tardiff.config import ConfigError
from tardiff.names import parse_dataset
from tardiff.runtime import use_threads
from tardiff.settings import (
    EvaluationSettings,
    FidelitySettings,
    PrivacySettings,
    StudySettings,
)


def _common(args, config, layout) -> dict:
    """The cohort, selection and evaluated samples that the quality steps read."""
    d, t = args.dataset, args.task
    return {
        **layout.cohort_inputs(d),
        "selection": layout.selection(d, t),
        "synthetic": plan.evaluation_synthetic(config, layout, d, t),
        "dataset": d,
        "task": t,
        "methods": plan.methods(config),
    }


def _cmd_select_scales(args, config, layout):
    from tardiff.evaluate.downstream.selection import run_selection_stage

    d, t = args.dataset, args.task
    use_threads(args.threads)
    run_selection_stage(
        **layout.cohort_inputs(d),
        synthetic=plan.selection_synthetic(config, layout, d, t),
        dataset=d,
        task=t,
        out=layout.selection(d, t),
        methods=plan.methods(config),
        scales=plan.scales(config),
        settings=EvaluationSettings.from_config(config["evaluation"]),
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _cmd_evaluate(args, config, layout):
    from tardiff.evaluate.downstream.utility import run_evaluation_stage

    d, inputs = args.dataset, _common(args, config, layout)
    use_threads(args.threads)
    run_evaluation_stage(
        **inputs,
        out=layout.evaluation(d, args.task),
        settings=EvaluationSettings.from_config(config["evaluation"]),
        external=plan.external_cohort(config, layout, d),
        study="main" if parse_dataset(d)[1] == 1 else "scarcity",
        seed=config["seed"],
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _cmd_fidelity(args, config, layout):
    from tardiff.evaluate.quality.stage import run_fidelity_stage

    inputs = _common(args, config, layout)
    use_threads(args.threads)
    run_fidelity_stage(
        **inputs,
        out=layout.fidelity(args.dataset, args.task),
        seeds=plan.n_seeds(config),
        settings=FidelitySettings.from_config(config["fidelity"]),
        seed=config["seed"],
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _cmd_privacy(args, config, layout):
    from tardiff.evaluate.quality.stage import run_privacy_stage

    run_privacy_stage(
        **_common(args, config, layout),
        out=layout.privacy(args.dataset, args.task),
        seeds=plan.n_seeds(config),
        settings=PrivacySettings.from_config(config["privacy"]),
        seed=config["seed"],
        mem_mb=args.mem_mb,
    )


def _cmd_samples_figure(args, config, layout):
    from tardiff.evaluate.quality.stage import run_samples_figure_stage

    run_samples_figure_stage(
        **_common(args, config, layout),
        out=layout.samples_figure(args.dataset, args.task),
        seeds=plan.n_seeds(config),
        mem_mb=args.mem_mb,
    )


def _cmd_scale_sweep(args, config, layout):
    from tardiff.evaluate.studies.stage import run_sweep_stage

    d, t = args.dataset, args.task
    files = [layout.synthetic(d, t, "conditional" if w == 0 else m, w, k)
             for m, w, k in plan.sweep_keys(config)]  # fmt: skip
    use_threads(args.threads)
    run_sweep_stage(
        **layout.cohort_inputs(d),
        synthetic=[f.samples for f in files],
        records=[f.settings for f in files],
        dataset=d,
        task=t,
        out=layout.studies(d, t).sweep,
        keys=plan.sweep_keys(config),
        evaluation=EvaluationSettings.from_config(config["evaluation"]),
        fidelity=FidelitySettings.from_config(config["fidelity"]),
        seed=config["seed"],
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _guidance_inputs(config, layout, d: str, t: str) -> dict:
    """Samples of the main G and of every variant at the study scale, and their summaries."""
    from tardiff.evaluate.studies.stage import study_scale

    scale = study_scale(plan.chosen_scales(layout, d, t))
    seeds, variants = range(plan.selection_seeds(config)), plan.variants(config)
    samples = [layout.synthetic(d, t, "tardiff", scale, k).samples for k in seeds]
    for v in variants:
        samples += [layout.variant_synthetic(d, t, v, scale, k).samples for k in seeds]
    summaries = [layout.influence(d, t).summary]
    summaries += [layout.variant_influence(d, t, v).summary for v in variants]
    return {"synthetic": samples, "summaries": summaries}


def _cmd_guidance_study(args, config, layout):
    from tardiff.evaluate.studies.stage import MAIN, run_guidance_study_stage

    d, t = args.dataset, args.task
    inputs = _guidance_inputs(config, layout, d, t)
    use_threads(args.threads)
    run_guidance_study_stage(
        **layout.cohort_inputs(d),
        selection=layout.selection(d, t),
        **inputs,
        variants=[MAIN, *plan.variants(config)],
        dataset=d,
        task=t,
        out=layout.studies(d, t).guidance,
        studies=StudySettings.from_config(config["studies"]),
        main_source=config["influence"]["source"],
        evaluation=EvaluationSettings.from_config(config["evaluation"]),
        seed=config["seed"],
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _cmd_pool_folds(args, config, layout):
    from tardiff.evaluate.downstream.folds import run_pooled_stage

    copies = plan.fold_copies(config).get(args.dataset)
    if not copies:
        raise ConfigError(f"dataset '{args.dataset}' is not cross-validated (split.folds)")
    run_pooled_stage(
        predictions=[layout.evaluation(c, args.task).predictions for c in copies],
        dataset=args.dataset,
        task=args.task,
        out=layout.pooled(args.dataset, args.task),
        resamples=config["evaluation"]["bootstrap_resamples"],
        seed=config["seed"],
    )


def register(add) -> None:
    """Add this group's subcommands (``add`` as in :func:`tardiff.cli.build_parser`)."""
    torch = {"threads": True, "mem": True}
    add("select-scales", _cmd_select_scales,
        "choose each guided method's scale on validation select", **torch)  # fmt: skip
    add("evaluate", _cmd_evaluate,
        "TRTR / TSTR / TSRTR / minority-only utility on real test", **torch)  # fmt: skip
    add("pool-folds", _cmd_pool_folds,
        "paired differences pooled over the cross-validation folds", dataset="base")  # fmt: skip
    add("fidelity", _cmd_fidelity, "fidelity of the evaluated synthetic sets",
        dataset="base", **torch)  # fmt: skip
    add("privacy", _cmd_privacy, "privacy of the evaluated synthetic sets",
        dataset="base", mem=True)  # fmt: skip
    add("samples-figure", _cmd_samples_figure, "Fig. 5: real vs synthetic samples",
        dataset="base", mem=True)  # fmt: skip
    add("scale-sweep", _cmd_scale_sweep, "the guidance-scale sweep (Fig. 3)", **torch)
    add("guidance-study", _cmd_guidance_study,
        "guidance-set size and source studies (Fig. 4, Table 5)", **torch)  # fmt: skip
