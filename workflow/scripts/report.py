"""Snakemake adapter: figures and tables of the utility evaluation."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.reporting.report import write_report
from tardiff.layout import ReportFiles
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
write_report(
    utility=sm.input.utility,
    paired=sm.input.paired,
    selections=list(sm.input.selections),
    out=ReportFiles(**sm.output),
)
