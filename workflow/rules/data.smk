rule demo_raw:
    """Simulate raw tables in the MIMIC-III / eICU schemas (the embedded demo)."""
    output:
        directory(LAYOUT.raw("{dataset}")),
    log:
        LAYOUT.log("{dataset}", "demo_raw"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "demo_raw")
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=MEM_MB["demo_raw"],
    params:
        source=lambda wc: DATASETS[wc.dataset]["source"],
        n_stays=lambda wc: DATASETS[wc.dataset]["demo"]["n_stays"],
        seed=CFG["seed"],
        code=source_hash("demo", "variables", "io"),
    script:
        "../scripts/demo_raw.py"


rule extract_cohort:
    """Raw tables (demo or real) or a YAIB folder -> Parquet cohort tables."""
    input:
        raw=raw_input,
    output:
        **LAYOUT.cohort("{dataset}")._asdict(),
    log:
        LAYOUT.log("{dataset}", "extract_cohort"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "extract_cohort")
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/data.yaml"
    # DuckDB sizes its own pool to the machine's cores; declaring them all here made the job wait
    # for every core to be free at once, which never happens while one-thread jobs are ready (the
    # run at b9cc291 + the guidance merge left one core idle 5.6 min before an extraction)
    threads: 1
    resources:
        mem_mb=MEM_MB["extract_cohort"],
    params:
        entry=lambda wc: DATASETS[wc.dataset],
        split=section("split"),
        seed=CFG["seed"],
        code=source_hash("extract", "variables", "io", "layout", "settings"),
    script:
        "../scripts/extract_cohort.py"


rule external_demo_raw:
    """Simulate a demo dataset's external test population (its own simulator seed)."""
    output:
        directory(LAYOUT.raw("{dataset}", external=True)),
    log:
        LAYOUT.log("{dataset}", "external_demo_raw"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "external_demo_raw")
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=MEM_MB["demo_raw"],
    params:
        source=lambda wc: EXTERNAL[wc.dataset].source,
        n_stays=lambda wc: EXTERNAL[wc.dataset].demo.n_stays,
        seed=external_seed(CFG["seed"]),
        code=source_hash("demo", "variables", "io"),
    script:
        "../scripts/demo_raw.py"


rule extract_external:
    """The external test population -> Parquet cohort tables, every stay a test stay."""
    input:
        raw=external_raw_input,
    output:
        **LAYOUT.cohort("{dataset}", external=True)._asdict(),
    log:
        LAYOUT.log("{dataset}", "extract_external"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "extract_external")
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/data.yaml"
    # one thread, as extract_cohort (DuckDB sizes its own pool)
    threads: 1
    resources:
        mem_mb=MEM_MB["extract_cohort"],
    params:
        entry=lambda wc: ENTRIES[wc.dataset].external_entry().to_dict(),
        split=None,
        seed=CFG["seed"],
        code=source_hash("extract", "variables", "io", "layout", "settings"),
    script:
        "../scripts/extract_cohort.py"


rule scarcity_cohort:
    """The data-scarcity study's copy of a cohort: a stratified share of its train stays."""
    input:
        **LAYOUT.cohort_inputs("{base}"),
    output:
        **LAYOUT.cohort(f"{{base}}{SCARCITY_TAG}{{fraction}}")._asdict(),
    log:
        LAYOUT.log(f"{{base}}{SCARCITY_TAG}{{fraction}}", "scarcity_cohort"),
    wildcard_constraints:
        base=BASE_DATASET,
        fraction="[0-9.e-]+",
    conda:
        "../../envs/data.yaml"
    params:
        tasks=lambda wc: SCARCITY_TASKS[wc.base],
        seed=CFG["seed"],
        code=source_hash("scarcity", "io", "layout"),
    script:
        "../scripts/scarcity_cohort.py"


rule fold_cohort:
    """A cross-validation fold's copy of a cohort: the same stays with that fold's splits."""
    input:
        **LAYOUT.cohort_inputs("{base}"),
    output:
        **LAYOUT.cohort(f"{{base}}{FOLD_TAG}{{repeat}}.{{fold}}")._asdict(),
    log:
        LAYOUT.log(f"{{base}}{FOLD_TAG}{{repeat}}.{{fold}}", "fold_cohort"),
    wildcard_constraints:
        base=BASE_DATASET,
        repeat="[0-9]+",
        fold="[0-9]+",
    conda:
        "../../envs/data.yaml"
    params:
        task=lambda wc: next(iter(DATASETS[wc.base]["tasks"])),
        split=section("split"),
        seed=CFG["seed"],
        code=source_hash("folds", "extract", "io", "layout", "settings"),
    script:
        "../scripts/fold_cohort.py"


rule manifest:
    """Checksums of every output of a dataset (what DVC and users compare)."""
    input:
        lambda wc: dataset_targets(wc.dataset),
    output:
        LAYOUT.manifest("{dataset}"),
    log:
        LAYOUT.log("{dataset}", "manifest"),
    wildcard_constraints:
        dataset=BASE_DATASET,
    conda:
        "../../envs/data.yaml"
    params:
        code=source_hash("provenance", "io"),
    script:
        "../scripts/manifest.py"
