"""Snakemake adapter: synthetic samples of one method and scale, one set per seed."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.generate import run_generation_stage
from tardiff.layout import SyntheticFiles, seed_files
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
    method=sm.params.method,
    scale=float(sm.wildcards.scale),
    seeds=sm.params.seeds,
    outs=[seed_files(SyntheticFiles, sm.output, k) for k in sm.params.seeds],
    settings=GenerationSettings.from_config(sm.params.generation),
    minority_multiple=sm.params.minority_multiple,
    device=sm.params.device,
    mem_mb=sm.resources.mem_mb,
)
