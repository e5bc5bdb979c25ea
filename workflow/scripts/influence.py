"""Snakemake adapter: influence vector G of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.guidance.influence import run_influence_stage
from tardiff.layout import InfluenceFiles
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import InfluenceSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_influence_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    classifier=sm.input.classifier,
    task=sm.wildcards.task,
    out=InfluenceFiles(**sm.output),
    settings=InfluenceSettings.from_config(sm.params.influence),
    fraction=sm.params.fraction,
    seed=sm.params.seed,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
