"""Snakemake adapter: raw tables or a YAIB folder -> Parquet cohort (split None: an external
test population, every stay a test stay)."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.extract import build_cohort
from tardiff.layout import CohortFiles
from tardiff.runtime import setup_logging
from tardiff.settings import DatasetSettings, SplitSettings

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
build_cohort(
    entry=DatasetSettings.from_config(sm.params.entry),
    raw=sm.input.raw,
    out=CohortFiles(**sm.output),
    split=SplitSettings.from_config(sm.params.split) if sm.params.split else None,
    seed=sm.params.seed,
)
