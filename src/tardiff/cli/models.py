"""Model steps: guidance classifier, influence vector G, diffusion model, samples, jitter."""

from __future__ import annotations

from tardiff.cli import plan
from tardiff.config import ConfigError
from tardiff.runtime import use_threads
from tardiff.settings import (
    ClassifierSettings,
    DiffusionSettings,
    GenerationSettings,
    InfluenceSettings,
    JitterSettings,
)


def _variant(config, variant: str | None) -> str | None:
    """A guidance-study variant of this config (None: the main G)."""
    known = plan.variants(config)
    if variant is not None and variant not in known:
        listed = ", ".join(known) or "none (studies.pairs is empty)"
        raise ConfigError(f"unknown study variant '{variant}'; this config's variants: {listed}")
    return variant


def _cmd_train_classifier(args, config, layout):
    from tardiff.models.train_classifier import run_classifier_stage

    use_threads(args.threads)
    run_classifier_stage(
        **layout.cohort_inputs(args.dataset),
        task=args.task,
        out=layout.classifier(args.dataset, args.task),
        settings=ClassifierSettings.from_config(config["classifier"]),
        seed=config["seed"],
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _cmd_influence(args, config, layout):
    from tardiff.guidance.influence import run_influence_stage
    from tardiff.names import parse_variant

    d, t, variant = args.dataset, args.task, _variant(config, args.variant)
    section, fraction, out = config["influence"], 1.0, layout.influence(d, t)
    if variant is not None:
        source, fraction = parse_variant(variant)
        section = {**section, "source": source or section["source"]}
        out = layout.variant_influence(d, t, variant)
    use_threads(args.threads)
    run_influence_stage(
        **layout.cohort_inputs(d),
        classifier=layout.classifier(d, t).model,
        task=t,
        out=out,
        settings=InfluenceSettings.from_config(section),
        fraction=fraction,
        seed=config["seed"],
        device=config["device"],
        **({} if args.mem_mb is None else {"mem_mb": args.mem_mb}),
    )


def _cmd_train_diffusion(args, config, layout):
    from tardiff.diffusion.train import run_diffusion_stage

    use_threads(args.threads)
    run_diffusion_stage(
        **layout.cohort_inputs(args.dataset),
        task=args.task,
        out=layout.diffusion(args.dataset, args.task),
        settings=DiffusionSettings.from_config(config["diffusion"]),
        seed=config["seed"],
        dataset=args.dataset,
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _cmd_generate(args, config, layout):
    from tardiff.generate import run_generation_stage

    d, t, variant = args.dataset, args.task, _variant(config, args.variant)
    seeds = args.seed if args.seed is not None else list(range(plan.n_seeds(config)))
    inputs, method = layout.generation_inputs(d, t), args.method
    if variant is None:
        outs = [layout.synthetic(d, t, method, args.scale, k) for k in seeds]
    else:
        if method not in (None, "tardiff"):
            raise ConfigError("a study variant's samples are tardiff's: leave --method out")
        method, inputs["influence"] = "tardiff", layout.variant_influence(d, t, variant).G
        outs = [layout.variant_synthetic(d, t, variant, args.scale, k) for k in seeds]
    if method is None:
        raise ConfigError("generate needs --method (or --variant)")
    use_threads(args.threads)
    run_generation_stage(
        **inputs,
        task=t,
        method=method,
        scale=args.scale,
        seeds=seeds,
        outs=outs,
        settings=GenerationSettings.from_config(config["generation"]),
        minority_multiple=plan.minority_multiple(config),
        device=config["device"],
        mem_mb=args.mem_mb,
    )


def _cmd_jitter(args, config, layout):
    from tardiff.jitter import run_jitter_stage

    seeds = list(range(plan.n_seeds(config)))
    run_jitter_stage(
        **layout.cohort_inputs(args.dataset),
        task=args.task,
        seeds=seeds,
        outs=[layout.jitter(args.dataset, args.task, k) for k in seeds],
        settings=JitterSettings.from_config(config["evaluation"]["jitter"]),
        n_samples=config["generation"]["n_samples"],
        minority_multiple=plan.minority_multiple(config),
        mem_mb=args.mem_mb,
    )


def register(add) -> None:
    """Add this group's subcommands (``add`` as in :func:`tardiff.cli.build_parser`)."""
    from tardiff.methods import METHODS

    torch = {"threads": True, "mem": True}
    add("train-classifier", _cmd_train_classifier, "train the guidance classifier", **torch)
    p = add("influence", _cmd_influence, "compute the influence vector G", **torch)
    p.add_argument("--variant", help="a guidance-study variant of G (guide0.5, source-minority)")
    add("train-diffusion", _cmd_train_diffusion, "train the class-conditional diffusion model",
        **torch)  # fmt: skip
    p = add("generate", _cmd_generate, "generate synthetic samples, one set per seed", **torch)
    p.add_argument("--method", choices=sorted(METHODS), help="diffusion method")
    p.add_argument("--scale", type=float, default=0.0, help="guidance scale (0 = conditional)")
    p.add_argument("--seed", type=int, nargs="+", help="evaluation seeds (default: all)")
    p.add_argument("--variant", help="tardiff samples guided by a study variant's G")
    add("jitter", _cmd_jitter, "the jitter baseline's synthetic sets, one per seed", mem=True)
