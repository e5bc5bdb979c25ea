"""Snakemake adapter: checksum manifest of a dataset's outputs."""

import _srcpath  # noqa: F401  (repository src/ on sys.path)

from tardiff.provenance import write_manifest
from tardiff.runtime import setup_logging

sm = snakemake  # noqa: F821
setup_logging(sm.log[0])
write_manifest(list(sm.input), sm.output[0])
