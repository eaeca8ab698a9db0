"""Bluesky plans of laue-live (they may import bluesky)."""

from laue_live.plans._raster import LAUE_MD_KEY, map_index, raster_scan

__all__ = ["raster_scan", "map_index", "LAUE_MD_KEY"]
