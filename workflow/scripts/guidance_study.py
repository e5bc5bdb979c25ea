"""Snakemake adapter: the guidance-set size and source studies (Fig. 4, Table 5)."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.studies.stage import run_guidance_study_stage
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import EvaluationSettings, StudySettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_guidance_study_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    selection=sm.input.selection,
    synthetic=list(sm.input.synthetic),
    summaries=list(sm.input.summaries),
    variants=list(sm.params.variants),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=sm.output[0],
    studies=StudySettings.from_config(sm.params.studies),
    main_source=sm.params.main_source,
    evaluation=EvaluationSettings.from_config(sm.params.evaluation),
    seed=sm.params.seed,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
