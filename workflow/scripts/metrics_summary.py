"""Snakemake adapter: what DVC shows of the utility metrics (summary JSON, curve tables)."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.reporting.summary import write_curves, write_metrics_summary
from tardiff.layout import CurveFiles
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
write_metrics_summary(utility=sm.input.utility, paired=sm.input.paired, out=sm.output.summary)
write_curves(
    utility=sm.input.utility,
    sweep=sm.input.sweep,
    out=CurveFiles(**{field: sm.output[field] for field in CurveFiles._fields}),
)
