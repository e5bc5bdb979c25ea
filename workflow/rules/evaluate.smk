checkpoint select_scales:
    """Guidance scale of each guided method, chosen by TSRTR AUPRC on validation select."""
    input:
        **COHORT_INPUTS,
        synthetic=selection_inputs,
    output:
        LAYOUT.selection("{dataset}", "{task}"),
    log:
        LAYOUT.log("{dataset}", "select_scales", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "select_scales", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["select_scales"],
        gpu=1,
    params:
        methods=METHODS,
        scales=CFG["generation"]["scales"],
        evaluation=section("evaluation"),
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "generate", "evaluate"),
    script:
        "../scripts/select_scales.py"


rule evaluate:
    """TRTR / TSTR / TSRTR / minority-only evaluation models scored on real test (the internal
    split and the external population)."""
    input:
        unpack(external_inputs),
        **COHORT_INPUTS,
        selection=LAYOUT.selection("{dataset}", "{task}"),
        synthetic=evaluation_inputs,
    output:
        **LAYOUT.evaluation("{dataset}", "{task}")._asdict(),
    log:
        LAYOUT.log("{dataset}", "evaluate", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "evaluate", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["evaluate"],
        gpu=1,
    params:
        methods=METHODS,
        evaluation=section("evaluation"),
        study=lambda wc: "main" if parse_dataset(wc.dataset)[1] == 1 else "scarcity",
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "generate", "evaluate"),
    script:
        "../scripts/evaluate.py"


rule pool_folds:
    """Paired differences pooled over a dataset's cross-validation folds (split.folds)."""
    input:
        predictions=fold_predictions,
    output:
        LAYOUT.pooled("{dataset}", "{task}"),
    log:
        LAYOUT.log("{dataset}", "pool_folds", "{task}"),
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/torch.yaml"
    params:
        resamples=CFG["evaluation"]["bootstrap_resamples"],
        seed=CFG["seed"],
        code=source_hash("evaluate", "io", "layout"),
    script:
        "../scripts/pool_folds.py"


rule metrics:
    """Every dataset's tidy tables: utility rows, paired differences, fidelity, privacy and the
    guidance studies."""
    input:
        **metrics_inputs(),
    output:
        **LAYOUT.metrics()._asdict(),
    log:
        LAYOUT.run_log("metrics"),
    conda:
        "../../envs/torch.yaml"
    params:
        primary=CFG["evaluation"]["primary"],
        code=source_hash("evaluate", "io", "layout"),
    script:
        "../scripts/metrics.py"


rule metrics_summary:
    """What DVC shows of the utility metrics: the summary JSON (dvc metrics) and the curve tables
    (dvc plots)."""
    input:
        utility=LAYOUT.metrics().utility,
        paired=LAYOUT.metrics().paired,
        sweep=LAYOUT.metrics().sweep,
    output:
        **LAYOUT.metrics_curves()._asdict(),
        summary=LAYOUT.metrics_summary(),
    log:
        LAYOUT.run_log("metrics_summary"),
    conda:
        "../../envs/torch.yaml"
    params:
        code=source_hash("evaluate", "io", "layout"),
    script:
        "../scripts/metrics_summary.py"


rule report:
    """Figures and tables of the utility evaluation (collected by snakemake --report)."""
    input:
        utility=LAYOUT.metrics().utility,
        paired=LAYOUT.metrics().paired,
        selections=[LAYOUT.selection(d, t) for d, t in SINGLE_PAIRS],
    output:
        **{
            name: report(path, caption=report_caption(name), category="Utility")
            for name, path in LAYOUT.report()._asdict().items()
        },
    log:
        LAYOUT.run_log("report"),
    conda:
        "../../envs/torch.yaml"
    params:
        code=source_hash("evaluate", "io", "layout"),
    script:
        "../scripts/report.py"
