"""Snakemake adapter: a cohort copy with one cross-validation fold's splits."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.folds import run_fold_cohort_stage
from tardiff.layout import CohortFiles
from tardiff.runtime import setup_logging
from tardiff.settings import SplitSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
run_fold_cohort_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    out=CohortFiles(**sm.output),
    task=sm.params.task,
    split=SplitSettings.from_config(sm.params.split),
    repeat=int(sm.wildcards.repeat),
    fold=int(sm.wildcards.fold),
    seed=sm.params.seed,
)
