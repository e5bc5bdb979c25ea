rule generate:
    """Synthetic samples of one method and seed, in physical units."""
    input:
        **LAYOUT.generation_inputs("{dataset}", "{task}"),
    output:
        **LAYOUT.synthetic("{dataset}", "{task}", "{method}", "{seed}")._asdict(),
    log:
        LAYOUT.log("{dataset}", "generate_{method}_seed{seed}", "{task}"),
    benchmark:
        LAYOUT.benchmark("{dataset}", "generate_{method}_seed{seed}", "{task}")
    conda:
        "../../envs/torch.yaml"
    resources:
        mem_mb=MEM_MB["generate"],
        gpu=1,
    params:
        generation=section("generation"),
        device=CFG["device"],
        code=source_hash(*STAGE_CODE, "models", "diffusion", "guidance", "generate"),
    script:
        "../scripts/generate.py"
