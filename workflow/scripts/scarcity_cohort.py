"""Snakemake adapter: a cohort copy with a share of its train stays (data-scarcity study)."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.layout import CohortFiles
from tardiff.runtime import setup_logging
from tardiff.scarcity import run_scarcity_cohort_stage

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
run_scarcity_cohort_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    out=CohortFiles(**sm.output),
    fraction=float(sm.wildcards.fraction),
    tasks=list(sm.params.tasks),
    seed=sm.params.seed,
)
