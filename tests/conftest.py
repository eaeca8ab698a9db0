"""Fixtures shared by every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # tests never open windows

REPO = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path:
    # CI clones the repository with shared/ beside it; LAUE_LIVE_SHARED overrides.
    return Path(os.environ.get("LAUE_LIVE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The project's read-only reference folder (real BM32 frames, calibration, paper)."""
    d = _shared_dir()
    if not (d / "data" / "bm32").is_dir():
        pytest.skip(f"reference data not found at {d} (set LAUE_LIVE_SHARED)")
    return d


@pytest.fixture(scope="session")
def bm32_dir(shared_dir: Path) -> Path:
    """Folder with the two real BM32 frames, calib.det and LaueTools' peak lists."""
    return shared_dir / "data" / "bm32"


@pytest.fixture(scope="session")
def bm32_frame(bm32_dir: Path):
    """The real BM32 frame nw1_0000.tif as a (2018, 2016) uint16 array."""
    import tifffile

    return tifffile.imread(bm32_dir / "nw1_0000.tif")
