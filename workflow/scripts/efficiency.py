"""Snakemake adapter: the efficiency table of a run."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.studies.efficiency import run_efficiency_stage
from tardiff.layout import TableFiles
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
run_efficiency_stage(
    benchmarks=list(sm.input.benchmarks),
    pairs=list(sm.params.pairs),
    influence=list(sm.input.influence),
    records=list(sm.input.records),
    out=TableFiles(**sm.output),
)
