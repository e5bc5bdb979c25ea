rule generate:
    """Synthetic samples of one scale-guided method at one scale of its grid, in physical units,
    one set per selection seed (the models load once)."""
    input:
        **LAYOUT.generation_inputs("{dataset}", "{task}"),
    output:
        **LAYOUT.synthetic_seeds(
            "{dataset}", "{task}", "{method}", "{scale}", SELECTION_SEEDS
        ),
    log:
        LAYOUT.log("{dataset}", "generate_{method}_w{scale}", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "generate_{method}_w{scale}", "{task}")
    wildcard_constraints:
        method=GUIDED_METHODS,
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["generate"],
        gpu=1,
    params:
        method="{method}",
        generation=section("generation"),
        seeds=SELECTION_SEEDS,
        minority_multiple=MINORITY_MULTIPLE,
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "diffusion", "guidance", "generate"),
    script:
        "../scripts/generate.py"


# The unguided methods (conditional, influence_filter) do not depend on the scale selection:
# every evaluation seed of them is drawn in one job.
use rule generate as generate_unguided with:
    output:
        **LAYOUT.synthetic_seeds("{dataset}", "{task}", "{method}", "{scale}", SEEDS),
    wildcard_constraints:
        method=UNGUIDED_METHODS,
    params:
        seeds=SEEDS,


# The evaluation seeds after the selection seeds (evaluation.selection_seeds) of the
# scale-guided methods, drawn only at the scale chosen on validation (where not 0: scale 0 is
# the conditional draw): the evaluation, fidelity and manifest ask for them once the selection
# ran.
if FINAL_SEEDS:

    use rule generate as generate_final with:
        output:
            **LAYOUT.synthetic_seeds(
                "{dataset}", "{task}", "{method}", "{scale}", FINAL_SEEDS
            ),
        log:
            LAYOUT.log("{dataset}", "generate_{method}_w{scale}_final", "{task}"),
        benchmark:
            LAYOUT.benchmark("{dataset}", "generate_{method}_w{scale}_final", "{task}")
        params:
            seeds=FINAL_SEEDS,


rule jitter:
    """The non-generative baseline: resampled real training stays, noise and time warp (one
    set per evaluation seed)."""
    input:
        **COHORT_INPUTS,
    output:
        **LAYOUT.jitter_seeds("{dataset}", "{task}", SEEDS),
    log:
        LAYOUT.log("{dataset}", "jitter", "{task}"),
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["jitter"],
    params:
        jitter=CFG["evaluation"]["jitter"],
        seeds=SEEDS,
        n_samples=CFG["generation"]["n_samples"],
        minority_multiple=MINORITY_MULTIPLE,
        code=source_hash(*STAGE_CODE, "generate", "jitter"),
    script:
        "../scripts/jitter.py"
