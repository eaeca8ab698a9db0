"""Fixtures of the double-spot tests."""

from __future__ import annotations

import numpy as np
import pytest

from laue_live.doubles import RealSpotBank, default_double_model_path


@pytest.fixture(scope="session")
def real_bank(bm32_dir) -> RealSpotBank:
    """Good isolated single spots of the two real BM32 crops (tests/data), with their exact fits."""
    bank = RealSpotBank.from_bm32(bm32_dir)
    assert len(bank.spots) > 20  # measured 29 on the two 640 x 640 crops
    return bank


@pytest.fixture(scope="session")
def double_model():
    """The shipped double-spot network (models/doubles_net.safetensors)."""
    return default_double_model_path()


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
