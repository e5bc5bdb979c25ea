"""Snakemake adapter: the guidance-scale sweep (Fig. 3) of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.studies.stage import run_sweep_stage, sweep_draws
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import EvaluationSettings, FidelitySettings, ScaleGrids, StudySettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
evaluation = EvaluationSettings.from_config(sm.params.evaluation)
studies = StudySettings.from_config(sm.params.studies)
run_sweep_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    synthetic=list(sm.input.synthetic),
    records=list(sm.input.records),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=sm.output[0],
    keys=sweep_draws(
        tuple(sm.params.methods),
        ScaleGrids.from_config(sm.params.scales),
        studies.sweep_scales,
        studies.sweep_methods,
        evaluation.selection_seeds,
    ),
    evaluation=evaluation,
    fidelity=FidelitySettings.from_config(sm.params.fidelity),
    seed=sm.params.seed,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
