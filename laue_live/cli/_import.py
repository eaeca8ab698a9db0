"""``laue-live import-frames``: frames recorded without Bluesky -> a raw run in the catalog."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laue_live.cli._analyze import DetectorOptions

__all__ = ["import_frames_cmd"]


def _pair(text: str | None, what: str, kind=float):
    if text is None:
        return None
    try:
        a, b = (kind(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise typer.BadParameter(f"expected two numbers 'A,B', got {text!r}", param_hint=what) from None
    return a, b


import_frames_app = typer.Typer()


@import_frames_app.command("import-frames")
def import_frames_cmd(
    inputs: Annotated[list[str], typer.Argument(
        metavar="FRAMES...", help="Frame files, globs ('scan/*.tif'), folders, or an HDF5 stack "
        "(file.h5[::/entry/data/data]), in scan order (file names sorted).")],
    positions: Annotated[Path | None, typer.Option(
        "--positions", help="CSV of stage positions: columns x, y (one row per frame, in order) and "
        "optionally file (the frame's file name, name[index] for stacks).")] = None,
    x_dataset: Annotated[str | None, typer.Option(
        "--x-dataset", help="HDF5 stack: dataset of the x position of each frame (e.g. "
        "/entry/measurement/x).")] = None,
    y_dataset: Annotated[str | None, typer.Option("--y-dataset", help="HDF5 stack: dataset of y.")] = None,
    grid: Annotated[str | None, typer.Option(
        "--grid", metavar="NX,NY", help="The frames are a raster of NX x NY points, x fastest (sets the "
        "map shape; positions from --step unless given).")] = None,
    step: Annotated[str, typer.Option("--step", metavar="DX,DY", help="Raster steps, motor units.")] = "1,1",
    snake: Annotated[bool, typer.Option("--snake", help="Odd raster rows run x backwards.")] = False,
    sample: Annotated[str | None, typer.Option(help="Sample name (start document 'sample').")] = None,
    material: Annotated[str | None, typer.Option(help="Material (Si, Ge, ...), for queries.")] = None,
    detector: DetectorOptions.Detector = None,
    calibration: DetectorOptions.Calibration = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Search folders recursively.")] = False,
    uri: Annotated[str | None, typer.Option(
        help="Tiled server URI (env LAUE_LIVE_TILED_URI); default: the embedded server.")] = None,
    settings_file: Annotated[Path | None, typer.Option(
        "--settings", help="YAML/TOML catalog settings.")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Data directory of the embedded "
                                                  "server.")] = None,
) -> None:
    """Import frames recorded without Bluesky into the catalog as a raw run.

    The frames are written through TiledWriter exactly as a live scan's (stream "primary", data key
    laue_image, uint16 kept), with the stage positions and a laue_live entry in the start document
    (scan shape, detector, calibration, source files). Then `laue-live reprocess <uid>` analyses it,
    `laue-live query` finds it, quality maps and training read it like any other raw run.
    """
    from tqdm import tqdm

    from laue_live._errors import LaueLiveError
    from laue_live.catalog import catalog_session, import_frames, scan_positions
    from laue_live.cli._catalog import load_settings
    from laue_live.io import frame_sources, load_calibration

    grid_xy = _pair(grid, "--grid", int)
    step_xy = _pair(step, "--step")
    settings = load_settings(uri, settings_file, data_dir)
    try:
        det = None
        if detector is not None:
            from laue_live.geometry import get_detector

            det = get_detector(detector)
        cal = load_calibration(calibration, det)
        sources = frame_sources(inputs, recursive=recursive)
        x, y, shape = scan_positions(sources, csv=positions, x_dataset=x_dataset, y_dataset=y_dataset,
                                     grid=grid_xy, step=step_xy, snake=snake)
        md = {"sample": sample, "material": material}
        with catalog_session(settings) as cat, tqdm(total=len(sources), unit="frame",
                                                    disable=len(sources) < 2) as bar:
            uid = import_frames(cat, sources, x=x, y=y, scan_shape=shape, snake=snake, metadata=md,
                                calibration=cal, detector=det, progress=bar.update)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"imported {len(sources)} frames as raw run {uid}")
    where = f" --data-dir {data_dir}" if data_dir else (f" --uri {uri}" if uri else "")
    typer.echo(f"  analyse it: laue-live reprocess{where} {uid[:8]}")
