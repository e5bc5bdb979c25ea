"""Snakemake adapter: raw tables or a YAIB folder -> Parquet cohort."""

from pathlib import Path

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.extract import build_cohort
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
log = setup_logging(sm.log[0])
out_dir = str(Path(sm.output.stays).parent)
build_cohort(sm.params.entry, sm.input[0], out_dir, sm.params.split, sm.params.seed, log=log)
