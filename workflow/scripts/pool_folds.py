"""Snakemake adapter: paired differences pooled over a dataset's cross-validation folds."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.downstream.folds import run_pooled_stage
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
run_pooled_stage(
    predictions=list(sm.input.predictions),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=sm.output[0],
    resamples=sm.params.resamples,
    seed=sm.params.seed,
)
