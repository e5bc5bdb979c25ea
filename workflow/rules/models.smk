COHORT_INPUTS = LAYOUT.cohort_inputs("{dataset}")
STAGE_CODE = ("data", "io", "layout", "names", "settings", "runtime")


rule train_classifier:
    """Guidance classifier on the real training split (early stopping on validation AUPRC)."""
    input:
        **COHORT_INPUTS,
    output:
        **LAYOUT.classifier("{dataset}", "{task}")._asdict(),
    log:
        LAYOUT.log("{dataset}", "train_classifier", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "train_classifier", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["train_classifier"],
        gpu=1,
    params:
        classifier=section("classifier"),
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models"),
    script:
        "../scripts/train_classifier.py"


rule influence:
    """Influence vector G over the guidance part of the validation split."""
    input:
        **COHORT_INPUTS,
        classifier=rules.train_classifier.output.model,
    output:
        **LAYOUT.influence("{dataset}", "{task}")._asdict(),
    log:
        LAYOUT.log("{dataset}", "influence", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "influence", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["influence"],
        gpu=1,
    params:
        influence=section("influence"),
        fraction=1.0,
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "guidance"),
    script:
        "../scripts/influence.py"


rule train_diffusion:
    """Class-conditional diffusion model (EMA weights) on the real training split."""
    input:
        **COHORT_INPUTS,
    output:
        **LAYOUT.diffusion("{dataset}", "{task}")._asdict(),
    log:
        LAYOUT.log("{dataset}", "train_diffusion", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "train_diffusion", "{task}")
    conda:
        "../../envs/torch.yaml"
    threads: diffusion_threads
    resources:
        mem_mb=MEM_MB["train_diffusion"],
        gpu=1,
    params:
        diffusion=section("diffusion"),
        seed=CFG["seed"],
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "diffusion"),
    script:
        "../scripts/train_diffusion.py"
