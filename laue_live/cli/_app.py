"""The root ``laue-live`` typer app; each command lives in its own module, heavy imports inside it."""

from __future__ import annotations

import logging

import typer

from laue_live.cli._guard import GuardedGroup

app = typer.Typer(
    name="laue-live",
    cls=GuardedGroup,  # laue-live's errors and usage errors: one line on stderr, an exit code
    help=(
        "Live characterization of Laue microdiffraction spots: peak search, Gaussian fit or CNN "
        "descriptors per spot, spot tables in Tiled and over ZeroMQ."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="More log output (-v info, -vv debug)."
    ),
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register() -> None:
    # Each module adds its command(s) to `app`; imported here so that `laue-live --help` lists all.
    # Keep one import per line; a module's heavy imports stay inside its command functions.
    from laue_live.cli import (
        _analyze,  # noqa: F401
        _bench,  # noqa: F401
        _catalog,  # noqa: F401
        _dashboard,  # noqa: F401
        _demo,  # noqa: F401
        _import,  # noqa: F401
        _index,  # noqa: F401
        _query,  # noqa: F401
        _reprocess,  # noqa: F401
        _serve,  # noqa: F401
        _sim,  # noqa: F401
        _train,  # noqa: F401
        _watch,  # noqa: F401
    )


def main() -> None:
    """Entry point of the ``laue-live`` console script."""
    _register()
    app()
