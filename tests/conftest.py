"""Test-wide settings and fixtures.

- One torch thread: tests run beside other work on 2 cores.
- ``tiny_config(**overrides)``: ``config/test.yaml`` loaded and validated, with section
  overrides merged in and the result validated again (so a test can only ask for a config the
  schema accepts). Build typed settings from it with ``XSettings.from_config(cfg["x"])``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tardiff.config import load_config, validate_config

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / "config" / "test.yaml"


def merge_sections(config: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A copy of ``config`` with each override merged into its section (a dict section gets the
    given keys replaced or added; any other value, e.g. ``seed=3``, replaces the entry)."""
    config = copy.deepcopy(config)
    for section, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(section), dict):
            config[section] = {**config[section], **copy.deepcopy(value)}
        else:
            config[section] = copy.deepcopy(value)
    return config


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., dict[str, Any]]:
    """Factory ``tiny_config(**overrides)`` -> validated config dict based on config/test.yaml.

    ``tiny_config(classifier={"arch": "tcn"}, diffusion={"train_steps": 6})`` changes those keys
    only; every call returns a fresh dict.
    """
    base = load_config(TEST_CONFIG)

    def make(**overrides: Any) -> dict[str, Any]:
        return validate_config(merge_sections(base, **overrides))

    return make
