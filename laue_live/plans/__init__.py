"""Bluesky plans of laue-live (they may import bluesky)."""

from laue_live._run import frame_index
from laue_live.plans._raster import LAUE_MD_KEY, raster_scan

__all__ = ["raster_scan", "frame_index", "LAUE_MD_KEY"]
