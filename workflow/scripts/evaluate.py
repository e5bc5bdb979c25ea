"""Snakemake adapter: train and score the evaluation models of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.downstream.utility import run_evaluation_stage
from tardiff.layout import EvaluationFiles
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import EvaluationSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_evaluation_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    selection=sm.input.selection,
    synthetic=list(sm.input.synthetic),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=EvaluationFiles(**sm.output),
    methods=tuple(sm.params.methods),
    settings=EvaluationSettings.from_config(sm.params.evaluation),
    external=(sm.input.external_stays, sm.input.external_timeseries)
    if hasattr(sm.input, "external_stays")
    else None,
    study=sm.params.study,
    seed=sm.params.seed,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
