"""Exceptions of laue-live: every error a user can cause has its own class and a clear message."""

from __future__ import annotations

__all__ = [
    "LaueLiveError",
    "FrameError",
    "SpotTableError",
    "ModelError",
    "WireError",
    "DocumentError",
    "SettingsError",
    "FrameFileError",
]


class LaueLiveError(Exception):
    """Base class of every error raised on purpose by laue-live."""


class FrameError(LaueLiveError, ValueError):
    """A detector frame cannot be analysed (wrong dtype, shape, NaN, ...)."""


class SpotTableError(LaueLiveError, ValueError):
    """A spot table does not follow the schema."""


class ModelError(LaueLiveError):
    """Model weights are missing, corrupted or of another architecture."""


class WireError(LaueLiveError, ValueError):
    """A 0MQ message cannot be decoded (truncated, oversized, unknown version, pickled)."""


class DocumentError(LaueLiveError, ValueError):
    """A Bluesky document is malformed or arrives out of order."""


class SettingsError(LaueLiveError, ValueError):
    """A setting (file, environment or argument) is invalid."""


class FrameFileError(LaueLiveError, ValueError):
    """A frame, mask, dark or flat file cannot be read (missing, unknown format, truncated, wrong path)."""
