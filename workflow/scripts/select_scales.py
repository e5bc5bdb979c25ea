"""Snakemake adapter: choose each guided method's scale on validation select."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.downstream.selection import run_selection_stage
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import EvaluationSettings, ScaleGrids

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_selection_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    synthetic=list(sm.input.synthetic),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=sm.output[0],
    methods=tuple(sm.params.methods),
    scales=ScaleGrids.from_config(sm.params.scales),
    settings=EvaluationSettings.from_config(sm.params.evaluation),
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
