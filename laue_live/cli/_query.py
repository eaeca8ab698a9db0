"""``laue-live query runs|spots|summary|grains|map``: read analysis results back from the catalog."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from laue_live._errors import DocumentError, SettingsError

query_app = typer.Typer(
    help=(
        "Query the catalog: list analysed runs, read spot tables, per-frame summaries and grains, draw "
        "quality, orientation and strain maps of a raster scan. RUN is a uid, a uid prefix, 'latest', "
        "-N (the N-th newest) or "
        "a scan id (the newest analysis of that scan; scan ids restart every session: find older "
        "ones with `query runs --scan-id N --date YYYY-MM-DD`). The catalog is the embedded one (a "
        "running `laue-live catalog serve`, else one started for the query) unless "
        "LAUE_LIVE_TILED_URI / --uri names another server."
    ),
    no_args_is_help=True,
)

RUN_HELP = "Analysis run: uid, uid prefix, 'latest', -N (N-th newest) or a scan id (its newest analysis)."
# RUN may be -1: a negative number is then an argument, not an unknown option
_RUN_COMMAND = {"context_settings": {"ignore_unknown_options": True}}


@query_app.callback()
def _connection(
    ctx: typer.Context,
    uri: Annotated[str | None, typer.Option(help="Tiled server URI (env LAUE_LIVE_TILED_URI).")] = None,
    settings_file: Annotated[Path | None, typer.Option(
        "--settings", help="YAML/TOML catalog settings file.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Data directory of the embedded server.")] = None,
) -> None:
    # checked when the command opens the catalog, after its own options are parsed: a connection
    # option written after the command is then refused as such, not met by "no data directory"
    ctx.obj = (uri, settings_file, data_dir)


@contextlib.contextmanager
def _session(ctx: typer.Context):
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import catalog_session
    from laue_live.cli._catalog import existing_catalog_settings

    settings = existing_catalog_settings(*ctx.obj)
    with contextlib.ExitStack() as stack:
        try:
            cat = stack.enter_context(catalog_session(settings))
        except SettingsError as exc:  # an unusable data directory, no server, no key: one line, exit 1
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        yield cat  # a mistake inside the command (a bad value) is the root guard's: exit 2


def _write(df, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        df.to_parquet(out, index=False)
    elif out.suffix in (".csv", ".txt"):
        df.to_csv(out, index=False)
    else:
        typer.echo(f"error: {out}: use a .csv or .parquet file name", err=True)
        raise typer.Exit(2)
    typer.echo(f"wrote {len(df)} rows to {out}")


def _show(df, head: int) -> None:
    # imported at run time: `laue-live --help` stays fast
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 14):
        typer.echo(df.head(head).to_string(index=False) if len(df) else "(no rows)")
    if len(df) > head:
        typer.echo(f"... {len(df)} rows in all")


def _run(cat, run_id: str):
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import get_run

    try:
        return get_run(cat, run_id)
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(1) from None


@query_app.command("runs")
def runs(
    ctx: typer.Context,
    sample: Annotated[str | None, typer.Option(help="Only runs of this sample (start.sample).")] = None,
    material: Annotated[str | None, typer.Option(help="Only runs of this material (start.material).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Started at or after this date/time (ISO, local time).")] = None,
    until: Annotated[str | None, typer.Option(
        help="Started before this date/time (ISO, local time).")] = None,
    scan_id: Annotated[int | None, typer.Option(
        "--scan-id", help="Only runs of this scan id (scan ids restart every session: add --date).")] = None,
    date: Annotated[str | None, typer.Option(
        help="Started on this day (YYYY-MM-DD, local time).")] = None,
    raw_uid: Annotated[str | None, typer.Option("--raw-uid", help="Only analyses of this raw run.")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="List raw runs instead of analysis runs.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 50,
    out: Annotated[Path | None, typer.Option(
        help="Also write the list to this .csv or .parquet file.")] = None,
) -> None:
    """List analysis (or raw) runs, newest first, filtered by scan id, date, sample, material, raw run."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import find_runs

    with _session(ctx) as cat:
        df = find_runs(cat, where="raw" if raw else "analysis", limit=limit, scan_id=scan_id, date=date,
                       sample=sample, material=material, since=since, until=until, raw_uid=raw_uid)
    df = df.dropna(axis=1, how="all")
    _show(df, limit)
    if out:
        _write(df, out)


def _frames(text: str | None):
    if text is None:
        return None
    try:
        if ":" in text:
            lo, hi = text.split(":", 1)
            return int(lo), int(hi)
        return int(text)
    except ValueError:
        typer.echo(f"error: --frames {text!r}: use I or I:J (inclusive)", err=True)
        raise typer.Exit(2) from None


@query_app.command("spots", **_RUN_COMMAND)
def spots(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
    frames: Annotated[str | None, typer.Option(help="Frame I or frames I:J (inclusive, 0-based).")] = None,
    good_only: Annotated[bool, typer.Option(
        "--good-only", help="Only good spots (Sim > 0.5, |Pos-s| <= 0.9).")] = False,
    columns: Annotated[str | None, typer.Option(
        help="Comma-separated spot-table columns (default all).")] = None,
    indexed: Annotated[bool, typer.Option(
        "--indexed", help="Add grain, h, k, l, deviation_px of the run's indexing (grain -1: no grain).")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write the table to this .csv or .parquet file.")] = None,
    head: Annotated[int, typer.Option(help="Rows to print.")] = 20,
) -> None:
    """Print (and save) the spot table of an analysis run: all frames, a range, or good spots only."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import get_spot_table

    cols = [c.strip() for c in columns.split(",")] if columns else None
    with _session(ctx) as cat:
        r = _run(cat, run)
        try:
            df = get_spot_table(r, frames=_frames(frames), good_only=good_only, columns=cols, indexed=indexed)
        except KeyError as exc:
            typer.echo(f"error: {exc.args[0]}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"run {r.metadata['start']['uid']}: {len(df)} spots in {df['frame'].nunique()} frame(s)")
    _show(df, head)
    if out:
        _write(df, out)


@query_app.command("summary", **_RUN_COMMAND)
def summary(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
    out: Annotated[Path | None, typer.Option(help="Write the summary to this .csv or .parquet file.")] = None,
    head: Annotated[int, typer.Option(help="Rows to print.")] = 20,
) -> None:
    """Print (and save) the per-frame summary: position, spots, good spots, mean Sim, time, failures."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import frame_summary

    with _session(ctx) as cat:
        df = frame_summary(_run(cat, run))
    failed = int(df["failed"].sum()) if "failed" in df else 0
    typer.echo(f"{len(df)} frames, {int(df['n_spots'].sum()) if len(df) else 0} spots, {failed} failed")
    _show(df, head)
    if out:
        _write(df, out)


@query_app.command("grains", **_RUN_COMMAND)
def grains(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
    frames: Annotated[str | None, typer.Option(help="Frame I or frames I:J (inclusive, 0-based).")] = None,
    status: Annotated[bool, typer.Option(
        "--status", help="Print the per-frame indexing status (indexed, no_grain, failed, not_indexed) "
        "instead of the grains.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the table to this .csv or .parquet file.")] = None,
    head: Annotated[int, typer.Option(help="Rows to print.")] = 20,
) -> None:
    """Print (and save) the grains of an indexed run: orientation U, deviatoric strain, quality, position."""
    from laue_live.catalog import get_grains, indexing_info, indexing_summary

    with _session(ctx) as cat:
        r = _run(cat, run)
        info = indexing_info(r)
        summary = indexing_summary(r)
        df = summary if status else get_grains(r, frames=_frames(frames))
    uid = r.metadata["start"]["uid"]
    if not info.get("enabled"):
        why = info.get("reason") or "no material and calibration named (see `laue-live index --run`)"
        typer.echo(f"run {uid} is not indexed: {why}")
    counts = summary["status"].value_counts().to_dict() if len(summary) else {}
    typer.echo(f"run {uid}: {'+'.join(info.get('material', [])) or '-'}; " + ", ".join(
        f"{counts.get(k, 0)} {k}" for k in ("indexed", "no_grain", "failed", "not_indexed"))
        + f" frames; {int(summary['n_grains'].sum()) if len(summary) else 0} grains")
    _show(df, head)
    if out:
        _write(df, out)


@query_app.command("map", **_RUN_COMMAND)
def quality_map_cmd(
    ctx: typer.Context,
    run: Annotated[str, typer.Argument(help=RUN_HELP)],
    value: Annotated[str, typer.Option(help=(
        "What to map: a per-frame value (n_good, n_spots, good_fraction, mean_sim, total_intensity, "
        "median_width, seconds, failed, or another numeric column of the run's frames table such as "
        "an indexed fraction), or a spot-table column (sigma_row, intensity, sim, ...) with --spots "
        "and --stat; of an indexed run: orientation (IPF colours), misorientation (deg), strain_xx ... "
        "strain_yz, equivalent_strain (1e-3), matched_fraction, intensity_fraction, deviation_px, "
        "n_matched, n_grains."))] = "n_good",
    spots: Annotated[str | None, typer.Option(
        help="With a spot column: which spots, all, good, bad, edge, saturated or double.")] = None,
    stat: Annotated[str, typer.Option(
        help="With a spot column: mean, median, min, max, sum or count per frame.")] = "mean",
    direction: Annotated[str, typer.Option(
        help="orientation: the sample direction coloured, x (beam), y or z (up), LaueTools' frame.")] = "z",
    grain: Annotated[str, typer.Option(
        help="Grain values: which grain of a frame, 'largest' (most matched spots) or a number.")
    ] = "largest",
    out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("quality_map.png"),
    csv: Annotated[Path | None, typer.Option(help="Also write the map as a CSV grid.")] = None,
) -> None:
    """Draw one value per frame over the raster of the scan, at the stage positions in µm, as a PNG."""
    # imported at run time: `laue-live --help` stays fast
    import numpy as np

    from laue_live._maps import ORIENTATION, map_value
    from laue_live.catalog import frame_summary, orientation_map, plot_quality_map, quality_map

    if direction not in ("x", "y", "z"):
        raise SettingsError(f"--direction {direction!r}: use x, y or z")
    which = int(grain) if grain.lstrip("-").isdigit() else grain
    if which != "largest" and not isinstance(which, int):
        raise SettingsError(f"--grain {grain!r}: use 'largest' or a grain number")
    with _session(ctx) as cat:
        r = _run(cat, run)
        what = map_value(value, spots, stat, frame_columns=list(frame_summary(r).columns))
        try:
            if what is ORIENTATION:
                grid = orientation_map(r, direction, grain=which, catalog=cat)[0]
            else:
                grid = quality_map(r, what, catalog=cat, grain=which)
        except KeyError as exc:  # no raster recorded for this run
            raise DocumentError(f"{exc.args[0]}: this run has no map (a raster scan records its shape)") \
                from None
        path = plot_quality_map(r, out, what, catalog=cat, grain=which, direction=direction)
    if what is ORIENTATION:
        with_grain = int(np.isfinite(grid[..., 0]).sum())
        typer.echo(f"orientation (IPF-{direction}) over a {grid.shape[0]} x {grid.shape[1]} raster: "
                   f"{with_grain} frames with a grain, {grid.shape[0] * grid.shape[1] - with_grain} without")
        grid, fmt = grid.reshape(grid.shape[0], -1), "%.4f"  # CSV: r, g, b of a row's cells side by side
    else:
        finite = np.isfinite(grid)
        low, high = (np.nanmin(grid), np.nanmax(grid)) if finite.any() else (float("nan"), float("nan"))
        typer.echo(f"{what.title} over a {grid.shape[0]} x {grid.shape[1]} raster: min {low:.3g}, "
                   f"max {high:.3g}, {int((~finite).sum())} frame(s) without a value")
        fmt = "%.6g"
    typer.echo(f"wrote {path}")
    if csv:
        csv.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(csv, grid, delimiter=",", fmt=fmt)
        typer.echo(f"wrote {csv}")
