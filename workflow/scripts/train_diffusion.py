"""Snakemake adapter: train the class-conditional diffusion model of one dataset x task."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.diffusion.train import run_diffusion_stage
from tardiff.layout import DiffusionFiles
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import DiffusionSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_diffusion_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    task=sm.wildcards.task,
    out=DiffusionFiles(**sm.output),
    settings=DiffusionSettings.from_config(sm.params.diffusion),
    seed=sm.params.seed,
    dataset=sm.wildcards.dataset,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
