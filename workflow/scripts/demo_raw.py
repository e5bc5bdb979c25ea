"""Snakemake adapter: write the embedded demo's raw tables."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.demo import write_demo
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
write_demo(sm.params.source, sm.output[0], n_stays=sm.params.n_stays, seed=sm.params.seed)
