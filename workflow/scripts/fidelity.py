"""Snakemake adapter: fidelity of the evaluated synthetic sets of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.quality.stage import run_fidelity_stage
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import FidelitySettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_fidelity_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    selection=sm.input.selection,
    synthetic=list(sm.input.synthetic),
    dataset=sm.wildcards.dataset,
    task=sm.wildcards.task,
    out=sm.output[0],
    methods=tuple(sm.params.methods),
    seeds=sm.params.seeds,
    settings=FidelitySettings.from_config(sm.params.fidelity),
    seed=sm.params.seed,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
