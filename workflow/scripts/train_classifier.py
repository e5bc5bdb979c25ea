"""Snakemake adapter: train the guidance classifier of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.layout import ClassifierFiles
from tardiff.models.train_classifier import run_classifier_stage
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import ClassifierSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_classifier_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    task=sm.wildcards.task,
    out=ClassifierFiles(**sm.output),
    settings=ClassifierSettings.from_config(sm.params.classifier),
    seed=sm.params.seed,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
