"""Snakemake adapter: every dataset's tidy tables (utility, paired with the primary comparison
and Holm's adjustment, fidelity, privacy, studies)."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.evaluate.reporting.collect import collect_tables
from tardiff.layout import MetricsFiles
from tardiff.runtime import setup_logging
from tardiff.settings import PrimarySettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
collect_tables(
    inputs={kind: list(sm.input[kind]) for kind in MetricsFiles._fields},
    out=MetricsFiles(**sm.output),
    primary=PrimarySettings.from_config(sm.params.primary),
)
