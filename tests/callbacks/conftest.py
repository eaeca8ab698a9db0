"""The live-callback tests use the shared fixtures of tests/conftest.py (RE, analyzer, inline_det...)."""

from __future__ import annotations

# the frames themselves are shared with the other test areas
from laue_live.testing import SHAPE, n_spots, synthetic_frame  # noqa: F401
