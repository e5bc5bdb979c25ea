"""Fixtures of the unit tests (``tiny_config`` is in ``tests/conftest.py``)."""

from __future__ import annotations

import pytest
from tiny_cohort import write_cohort

from tardiff.layout import CohortFiles


@pytest.fixture()
def cohort(tmp_path) -> CohortFiles:
    """A tiny cohort (``tiny_cohort.write_cohort`` defaults) in ``tmp_path / "cohort"``."""
    return write_cohort(tmp_path / "cohort")
