"""Raw EHR tables (MIMIC-III, eICU-CRD, YAIB cohorts) -> cohort tables on a regular grid.

``build_cohort`` writes ``stays.parquet``, ``timeseries.parquet`` and ``summary.json``.
"""

from tardiff.extract.cohort import build_cohort
from tardiff.extract.tables import ExtractError, MissingTableError

__all__ = ["ExtractError", "MissingTableError", "build_cohort"]
