"""Checks of command-line values that typer's types cannot express: one line each, before anything runs."""

from __future__ import annotations

from pathlib import Path

from laue_live._errors import SettingsError

__all__ = ["check_counts", "check_paths"]


def check_counts(counts: dict[str, tuple[int | float | None, int | float]],
                 rates: dict[str, float | None] | None = None) -> None:
    """Refuse, with one :class:`~laue_live._errors.SettingsError` line, a value below its least one.

    Parameters
    ----------
    counts
        Option name -> (value, or None when not given; least value allowed).
    rates
        Option name -> value that must be > 0 (None: not given).
    """
    for name, (value, low) in counts.items():
        if value is not None and value < low:
            raise SettingsError(f"{name} must be >= {low}, got {value}")
    for name, value in (rates or {}).items():
        if value is not None and not value > 0:
            raise SettingsError(f"{name} must be > 0, got {value}")


def check_paths(*, files: dict[str, Path | None], folders: dict[str, Path | None]) -> None:
    """Refuse files to write that are folders, and folders (the files' too) that are files or under one.

    Parameters
    ----------
    files
        Option name -> file the command will write (None: not given).
    folders
        Option name -> folder the command will write into or create (None: not given).
    """
    every = dict(folders)
    for name, file in files.items():
        if file is None:
            continue
        if file.is_dir():
            raise SettingsError(f"{name} {file} is a folder: give the file to write")
        every[f"{name}'s folder"] = file.parent
    for name, folder in every.items():
        if folder is None:
            continue
        if folder.is_file():
            raise SettingsError(f"{name} {folder} is a file, not a folder")
        if any(p.is_file() for p in folder.parents):
            raise SettingsError(f"{name} {folder} cannot be created: part of its path is a file")
