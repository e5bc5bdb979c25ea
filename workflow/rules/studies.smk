rule fidelity:
    """Fidelity of every evaluated synthetic set against the real imputed training grids."""
    input:
        **COHORT_INPUTS,
        selection=LAYOUT.selection("{dataset}", "{task}"),
        synthetic=evaluation_inputs,
    output:
        LAYOUT.fidelity("{dataset}", "{task}"),
    log:
        LAYOUT.log("{dataset}", "fidelity", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "fidelity", "{task}")
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["fidelity"],
        gpu=1,
    params:
        methods=METHODS,
        seeds=N_SEEDS,
        fidelity=section("fidelity"),
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "generate", "evaluate"),
    script:
        "../scripts/fidelity.py"


rule privacy:
    """Distance-to-closest-record, membership inference and near copies of every evaluated
    synthetic set."""
    input:
        **COHORT_INPUTS,
        selection=LAYOUT.selection("{dataset}", "{task}"),
        synthetic=evaluation_inputs,
    output:
        LAYOUT.privacy("{dataset}", "{task}"),
    log:
        LAYOUT.log("{dataset}", "privacy", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "privacy", "{task}")
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["privacy"],
    params:
        methods=METHODS,
        seeds=N_SEEDS,
        privacy=section("privacy"),
        seed=CFG["seed"],
        code=source_hash(*STAGE_CODE, "generate", "evaluate"),
    script:
        "../scripts/privacy.py"


rule samples_figure:
    """Fig. 5: real vs synthetic trajectories per class and a PCA overlay, per method."""
    input:
        **COHORT_INPUTS,
        selection=LAYOUT.selection("{dataset}", "{task}"),
        synthetic=evaluation_inputs,
    output:
        **{
            name: report(
                path, caption="../report/fig5.rst", category="Fidelity and privacy"
            )
            for name, path in LAYOUT.samples_figure("{dataset}", "{task}")
            ._asdict()
            .items()
        },
    log:
        # not under the dataset's folder, which DVC versions as the dataset stage's output
        LAYOUT.run_log("samples_figure_{dataset}_{task}"),
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["report"],
    params:
        methods=METHODS,
        seeds=N_SEEDS,
        code=source_hash(*STAGE_CODE, "generate", "evaluate", "variables"),
    script:
        "../scripts/samples_figure.py"


rule influence_variant:
    """G of a guidance-study variant: a share of the guide part, or another guidance source."""
    input:
        **COHORT_INPUTS,
        classifier=rules.train_classifier.output.model,
    output:
        **LAYOUT.variant_influence("{dataset}", "{task}", "{variant}")._asdict(),
    log:
        LAYOUT.log("{dataset}", "influence_{variant}", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "influence_{variant}", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["influence"],
        gpu=1,
    params:
        influence=variant_influence_settings,
        fraction=lambda wc: parse_variant(wc.variant)[1],
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "guidance"),
    script:
        "../scripts/influence.py"


rule generate_variant:
    """tardiff samples guided by a study variant's G, one set per evaluation seed."""
    input:
        **{
            **LAYOUT.generation_inputs("{dataset}", "{task}"),
            "influence": LAYOUT.variant_influence(
                "{dataset}", "{task}", "{variant}"
            ).G,
        },
    output:
        **LAYOUT.variant_seeds(
            "{dataset}", "{task}", "{variant}", "{scale}", SELECTION_SEEDS
        ),
    log:
        LAYOUT.log("{dataset}", "generate_{variant}_w{scale}", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "generate_{variant}_w{scale}", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["generate"],
        gpu=1,
    params:
        method="tardiff",
        generation=section("generation"),
        seeds=SELECTION_SEEDS,
        minority_multiple=MINORITY_MULTIPLE,
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "diffusion", "guidance", "generate"),
    script:
        "../scripts/generate.py"


rule scale_sweep:
    """Fig. 3's data: influence by class, TSRTR on validation select and discriminator AUROC
    at every scale of the sweep."""
    input:
        unpack(sweep_inputs),
        **COHORT_INPUTS,
    output:
        LAYOUT.studies("{dataset}", "{task}").sweep,
    log:
        LAYOUT.log("{dataset}", "scale_sweep", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "scale_sweep", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["scale_sweep"],
        gpu=1,
    params:
        methods=METHODS,
        scales=CFG["generation"]["scales"],
        studies=section("studies"),
        evaluation=section("evaluation"),
        fidelity=section("fidelity"),
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "generate", "evaluate"),
    script:
        "../scripts/scale_sweep.py"


rule guidance_study:
    """Fig. 4 and Table 5's data: TSRTR on real test with G from a share of the guide part or
    from another guidance source."""
    input:
        unpack(guidance_study_inputs),
        **COHORT_INPUTS,
        selection=LAYOUT.selection("{dataset}", "{task}"),
    output:
        LAYOUT.studies("{dataset}", "{task}").guidance,
    log:
        LAYOUT.log("{dataset}", "guidance_study", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "guidance_study", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["guidance_study"],
        gpu=1,
    params:
        variants=[MAIN, *VARIANTS],
        studies=section("studies"),
        main_source=MAIN_SOURCE,
        evaluation=section("evaluation"),
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "generate", "evaluate"),
    script:
        "../scripts/guidance_study.py"


rule study_report:
    """Figures and tables of the fidelity, privacy and guidance studies."""
    input:
        fidelity=LAYOUT.metrics().fidelity,
        privacy=LAYOUT.metrics().privacy,
        sweep=LAYOUT.metrics().sweep,
        guidance=LAYOUT.metrics().guidance,
        influence=[LAYOUT.influence(d, t).summary for d, t in BASE_PAIRS],
    output:
        **{
            name: report(
                path, caption=report_caption(name), category=STUDY_CATEGORY[name]
            )
            for name, path in LAYOUT.study_report()._asdict().items()
        },
    log:
        LAYOUT.run_log("study_report"),
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["report"],
    params:
        pairs=[f"{d}/{t}" for d, t in BASE_PAIRS],
        code=source_hash("evaluate", "io", "layout"),
    script:
        "../scripts/study_report.py"


rule efficiency:
    """Wall time and peak memory per stage, the cost of G and of sampling."""
    input:
        unpack(efficiency_inputs),
    output:
        **{
            name: report(
                path, caption="../report/efficiency.rst", category="Efficiency"
            )
            for name, path in LAYOUT.efficiency()._asdict().items()
        },
    log:
        LAYOUT.run_log("efficiency"),
    conda:
        "../../envs/torch.yaml"
    params:
        pairs=[f"{d}/{t}" for d, t in BASE_PAIRS],
        code=source_hash("evaluate", "io", "layout"),
    script:
        "../scripts/efficiency.py"
