"""The ``laue-live`` command line (typer): one sub-command or sub-app per private module."""

from laue_live.cli._app import app, main

__all__ = ["app", "main"]
