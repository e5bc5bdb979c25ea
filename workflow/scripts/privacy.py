"""Snakemake adapter: privacy of the evaluated synthetic sets of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.quality.stage import run_privacy_stage
from tardiff.runtime import setup_logging
from tardiff.settings import PrivacySettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
run_privacy_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    selection=sm.input.selection,
    synthetic=list(sm.input.synthetic),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=sm.output[0],
    methods=tuple(sm.params.methods),
    seeds=sm.params.seeds,
    settings=PrivacySettings.from_config(sm.params.privacy),
    seed=sm.params.seed,
    mem_mb=sm.resources.mem_mb,
)
