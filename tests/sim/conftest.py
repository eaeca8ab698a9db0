"""Fixtures of the simulator tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bm32_calibration(bm32_lists_dir):
    """calib.det's calibration and the Si orientation matrix of nw1_0000.tif."""
    from laue_live.geometry import read_det

    return read_det(bm32_lists_dir / "calib.det")
