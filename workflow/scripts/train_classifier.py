"""Snakemake adapter: train the guidance classifier of one dataset x task."""

from pathlib import Path

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.models.train_classifier import run_classifier_stage

sm = snakemake  # noqa: F821
run_classifier_stage(
    str(Path(sm.input.cohort).parent),
    sm.wildcards.task,
    str(Path(sm.output.model).parent),
    sm.params.settings,
    log_file=sm.log[0],
)
