"""Snakemake adapter: generate synthetic samples for one method and seed."""

from pathlib import Path

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.generate import run_generation_stage

sm = snakemake  # noqa: F821
run_generation_stage(
    str(Path(sm.input.cohort).parent),
    sm.wildcards.task,
    sm.wildcards.method,
    int(sm.wildcards.seed),
    sm.input.diffusion,
    sm.input.classifier,
    sm.input.influence,
    str(Path(sm.output.samples).parent),
    sm.params.settings,
    log_file=sm.log[0],
)
