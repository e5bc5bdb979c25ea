"""Snakemake adapter: Fig. 5 (real vs synthetic samples) of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.quality.stage import run_samples_figure_stage
from tardiff.layout import FigureFiles
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
run_samples_figure_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    selection=sm.input.selection,
    synthetic=list(sm.input.synthetic),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=FigureFiles(**sm.output),
    methods=tuple(sm.params.methods),
    seeds=sm.params.seeds,
    mem_mb=sm.resources.mem_mb,
)
