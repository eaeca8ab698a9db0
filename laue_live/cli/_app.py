"""The root ``laue-live`` typer app, and where every command and group is registered.

Each command or group lives in its own module with its own typer app, registered here with
``add_typer`` (tiled's layout). Without a name, a module's command sits at
the top level (``laue-live analyze``); with one, it is a group (``laue-live catalog serve``). The
modules keep their heavy imports inside the commands so that ``laue-live --help`` stays fast.
"""

from __future__ import annotations

import logging

import typer

from laue_live.cli._analyze import analyze_app
from laue_live.cli._bench import bench_app
from laue_live.cli._catalog import catalog_app
from laue_live.cli._dashboard import dashboard_app
from laue_live.cli._demo import demo_app
from laue_live.cli._guard import GuardedGroup
from laue_live.cli._import import import_frames_app
from laue_live.cli._index import index_app
from laue_live.cli._query import query_app
from laue_live.cli._reprocess import reprocess_app
from laue_live.cli._serve import serve_app
from laue_live.cli._sim import sim_app
from laue_live.cli._train import train_app
from laue_live.cli._watch import watch_app

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


# The order here is the order of `laue-live --help`: the commands, then the groups.
for _sub in (analyze_app, bench_app, dashboard_app, demo_app, import_frames_app, index_app,
             reprocess_app, serve_app, train_app, watch_app):
    app.add_typer(_sub)
app.add_typer(catalog_app, name="catalog")
app.add_typer(query_app, name="query")
app.add_typer(sim_app, name="sim")


def main() -> None:
    """Entry point of the ``laue-live`` console script."""
    app()
