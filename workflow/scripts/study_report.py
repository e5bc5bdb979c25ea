"""Snakemake adapter: figures and tables of the fidelity, privacy and guidance studies."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.reporting.collect import write_study_report
from tardiff.layout import StudyReportFiles
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
write_study_report(
    fidelity=sm.input.fidelity,
    privacy=sm.input.privacy,
    sweep=sm.input.sweep,
    guidance=sm.input.guidance,
    influence=dict(zip(sm.params.pairs, sm.input.influence, strict=True)),
    out=StudyReportFiles(**sm.output),
)
