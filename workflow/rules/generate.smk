rule generate:
    """Synthetic samples of one method and seed, in physical units."""
    input:
        cohort=rules.extract_cohort.output.stays,
        diffusion=rules.train_diffusion.output.model,
        classifier=rules.train_classifier.output.model,
        influence=rules.influence.output.G,
    output:
        samples="results/{dataset}/{task}/synthetic/{method}/seed{seed}.parquet",
        settings="results/{dataset}/{task}/synthetic/{method}/seed{seed}.json",
        diagnostics="results/{dataset}/{task}/synthetic/{method}/seed{seed}_diagnostics.csv",
    log:
        "results/{dataset}/logs/{task}/generate_{method}_seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/{task}/generate_{method}_seed{seed}.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        settings=settings("device", "influence", "generation"),
        code=source_hash(
            "data", "models", "diffusion", "guidance", "generate", "runtime"
        ),
    script:
        "../scripts/generate.py"
