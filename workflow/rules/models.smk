rule train_classifier:
    """Guidance classifier on the real training split (early stopping on validation AUPRC)."""
    input:
        cohort=rules.extract_cohort.output.stays,
    output:
        model="results/{dataset}/{task}/classifier/model.pt",
        metrics="results/{dataset}/{task}/classifier/metrics.json",
    log:
        "results/{dataset}/logs/{task}/train_classifier.log",
    benchmark:
        "results/{dataset}/benchmarks/{task}/train_classifier.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        settings=settings("seed", "device", "classifier"),
        code=source_hash("data", "models", "runtime"),
    script:
        "../scripts/train_classifier.py"


rule influence:
    """Influence vector G over the guidance part of the validation split."""
    input:
        cohort=rules.extract_cohort.output.stays,
        classifier=rules.train_classifier.output.model,
    output:
        G="results/{dataset}/{task}/influence/G.pt",
        norms="results/{dataset}/{task}/influence/grad_norms.csv",
        summary="results/{dataset}/{task}/influence/summary.json",
    log:
        "results/{dataset}/logs/{task}/influence.log",
    benchmark:
        "results/{dataset}/benchmarks/{task}/influence.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        settings=settings("seed", "device", "influence"),
        code=source_hash("data", "models", "guidance", "runtime"),
    script:
        "../scripts/influence.py"


rule train_diffusion:
    """Class-conditional diffusion model (EMA weights) on the real training split."""
    input:
        cohort=rules.extract_cohort.output.stays,
    output:
        model="results/{dataset}/{task}/diffusion/model.pt",
        loss="results/{dataset}/{task}/diffusion/loss.csv",
        plot="results/{dataset}/{task}/diffusion/loss.png",
    log:
        "results/{dataset}/logs/{task}/train_diffusion.log",
    benchmark:
        "results/{dataset}/benchmarks/{task}/train_diffusion.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        settings=settings("seed", "device", "diffusion"),
        code=source_hash("data", "models", "diffusion", "runtime"),
    script:
        "../scripts/train_diffusion.py"
