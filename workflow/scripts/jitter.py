"""Snakemake adapter: the jitter baseline's synthetic sets, one per seed."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.jitter import run_jitter_stage
from tardiff.layout import JitterFiles, seed_files
from tardiff.runtime import setup_logging
from tardiff.settings import JitterSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
run_jitter_stage(
    stays=sm.input.stays,
    timeseries=sm.input.timeseries,
    task=sm.wildcards.task,
    seeds=sm.params.seeds,
    outs=[seed_files(JitterFiles, sm.output, k) for k in sm.params.seeds],
    settings=JitterSettings.from_config(sm.params.jitter),
    n_samples=sm.params.n_samples,
    minority_multiple=sm.params.minority_multiple,
    mem_mb=sm.resources.mem_mb,
)
