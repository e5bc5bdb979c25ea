"""Snakemake adapter: influence vector G of one dataset x task."""

from pathlib import Path

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.guidance.influence import run_influence_stage

sm = snakemake  # noqa: F821
run_influence_stage(
    str(Path(sm.input.cohort).parent),
    sm.wildcards.task,
    sm.input.classifier,
    str(Path(sm.output.G).parent),
    sm.params.settings,
    log_file=sm.log[0],
)
