"""Snakemake adapter: every dataset's utility rows and paired differences in two tables."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.utility import collect_tables
from tardiff.layout import MetricsFiles
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
collect_tables(
    utility=list(sm.input.utility), paired=list(sm.input.paired), out=MetricsFiles(**sm.output)
)
