"""Snakemake adapter: generate synthetic samples for one method and seed."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.generate import run_generation_stage
from tardiff.layout import SyntheticFiles
from tardiff.runtime import setup_logging, use_threads
from tardiff.settings import GenerationSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
use_threads(sm.threads)
run_generation_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    diffusion=sm.input.diffusion,
    classifier=sm.input.classifier,
    influence=sm.input.influence,
    task=sm.wildcards.task,
    method=sm.wildcards.method,
    seed=int(sm.wildcards.seed),
    out=SyntheticFiles(**sm.output),
    settings=GenerationSettings.from_config(sm.params.generation),
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
