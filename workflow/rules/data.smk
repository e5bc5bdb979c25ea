rule demo_raw:
    """Simulate raw tables in the MIMIC-III / eICU schemas (the embedded demo)."""
    output:
        directory("results/{dataset}/raw"),
    log:
        "results/{dataset}/logs/demo_raw.log",
    benchmark:
        "results/{dataset}/benchmarks/demo_raw.tsv"
    conda:
        "../../envs/data.yaml"
    params:
        source=lambda wc: DATASETS[wc.dataset]["source"],
        n_stays=lambda wc: DATASETS[wc.dataset]["demo"]["n_stays"],
        seed=CFG["seed"],
        code=source_hash("demo", "variables"),
    script:
        "../scripts/demo_raw.py"


rule extract_cohort:
    """Raw tables (demo or real) or a YAIB folder -> Parquet cohort tables."""
    input:
        raw_input,
    output:
        stays="results/{dataset}/cohort/stays.parquet",
        timeseries="results/{dataset}/cohort/timeseries.parquet",
        summary="results/{dataset}/cohort/summary.json",
    log:
        "results/{dataset}/logs/extract_cohort.log",
    benchmark:
        "results/{dataset}/benchmarks/extract_cohort.tsv"
    conda:
        "../../envs/data.yaml"
    threads: workflow.cores
    resources:
        mem_mb=4096,
    params:
        entry=lambda wc: DATASETS[wc.dataset],
        split=CFG["split"],
        seed=CFG["seed"],
        code=source_hash("extract", "variables"),
    script:
        "../scripts/extract_cohort.py"


rule manifest:
    """Checksums of every output of a dataset (what DVC and users compare)."""
    input:
        lambda wc: dataset_targets(wc.dataset),
    output:
        "results/{dataset}/manifest.json",
    log:
        "results/{dataset}/logs/manifest.log",
    conda:
        "../../envs/data.yaml"
    script:
        "../scripts/manifest.py"
