"""Fixtures of the 0MQ tests: schema-conform spot tables (CURVE certificates: tests/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from laue_live.catalog import random_spot_table


def make_spot_table(frame: int, n: int, seed: int = 0) -> pd.DataFrame:
    """A spot table with every schema column at its dtype and values that differ per frame."""
    return pd.DataFrame(random_spot_table(frame, n, np.random.default_rng(seed + frame)))


@pytest.fixture
def spot_table_factory():
    return make_spot_table
