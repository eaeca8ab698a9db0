"""Bluesky plans of laue-live (they may import bluesky)."""

from laue_live.plans._raster import LAUE_MD_KEY, raster_scan

__all__ = ["raster_scan", "LAUE_MD_KEY"]
