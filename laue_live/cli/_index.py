"""``laue-live index``: orientations and strains of the grains of spot files, frames, or catalog runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laue_live._errors import FrameError, LaueLiveError

__all__ = ["index"]


def _materials(names, cifs, lattice, space_group) -> list:
    """Return the materials to index with, in the order given: names, then CIF files, then --lattice."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.geometry import Material, get_material, read_cif

    materials = [get_material(n) for n in names or []] + [read_cif(c) for c in cifs or []]
    if lattice is not None:
        materials.append(Material.from_space_group("custom", _lattice(lattice, space_group), space_group))
    if not materials:
        raise typer.BadParameter("give the material: --material, --cif or --lattice with --space-group",
                                 param_hint="--material")
    return materials


def _spots_of(path: Path, calibration, threshold: float):
    """Spot table of a spot file, or of a frame (peak search + Gaussian fit)."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.indexing import SPOT_FILE_SUFFIXES, read_spot_file
    from laue_live.io import FRAME_SUFFIXES, read_frame

    suffix = path.suffix.lower()
    if suffix in SPOT_FILE_SUFFIXES:
        return read_spot_file(path), None
    if suffix in FRAME_SUFFIXES:
        # imported at run time: `laue-live --help` stays fast
        from laue_live.describe import analyze_frame

        frame = read_frame(path)  # TIFF, MarCCD, EDF, CBF, JPEG 2000 (fabio), HDF5, .npy
        if calibration is not None and tuple(frame.shape) != tuple(calibration.frame_shape):
            raise FrameError(f"{path}: frame is {frame.shape[0]} x {frame.shape[1]} px but the calibration "
                             f"is for {calibration.frame_shape[0]} x {calibration.frame_shape[1]}")
        table = analyze_frame(frame, "fit", peak_params={"threshold": threshold})
        table.attrs["calibration"] = {}
        return table, frame.shape
    raise typer.BadParameter(f"{path.name}: use a spot file ({', '.join(SPOT_FILE_SUFFIXES)}) or a frame "
                             f"({', '.join(FRAME_SUFFIXES)})", param_hint="INPUT")


def _write_table(df, path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, index=False)


def _material_specs(names, cifs, lattice, space_group) -> list:
    """Materials as plain specs (names, ``{"cif": path}``, ``{"lattice", "space_group"}``), for --run."""
    specs: list = list(names or []) + [{"cif": str(c)} for c in cifs or []]
    if lattice is not None:
        specs.append({"name": "custom", "lattice": _lattice(lattice, space_group),
                      "space_group": space_group})
    return specs


def _lattice(lattice: str, space_group: str | None) -> list[float]:
    """Return the numbers of --lattice (a one-line error otherwise); --space-group must come with it."""
    try:
        values = [float(v) for v in lattice.replace(",", " ").split()]
    except ValueError:
        raise typer.BadParameter("6 numbers: a b c (Angstrom) alpha beta gamma (deg)",
                                 param_hint="--lattice") from None
    if space_group is None:
        raise typer.BadParameter("--lattice needs --space-group", param_hint="--space-group")
    return values


def _index_catalog_run(run_id: str, material, det, energy, options, out, catalog_opts) -> None:
    """Index an analysis run in the catalog (grains written into the run); one line per outcome."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import catalog_session, get_grains, index_run
    from laue_live.cli._catalog import existing_catalog_settings

    settings = existing_catalog_settings(*catalog_opts)
    try:
        with catalog_session(settings) as cat:
            res = index_run(cat, run_id, material=(material[0] if len(material) == 1 else material) or None,
                            calibration=str(det) if det else None, energy_range=energy, options=options)
            grains = get_grains(cat.analysis[res.analysis_uid]) if out is not None else None
    except (LaueLiveError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    c, md = res.counts, res.indexing
    typer.echo(f"analysis run {res.analysis_uid}: {res.frames_total} frames, {res.frames_skipped} already "
               f"indexed; now {c['indexed']} indexed ({c['grains']} grains), {c['no_grain']} without a "
               f"grain, {c['failed']} failed")
    typer.echo(f"  {'+'.join(md['material'])}, calibration {md.get('calibration_source') or 'recorded'}; "
               f"in the run: {md['frames_indexed']} frames indexed, {md['frames_not_indexed']} not indexed")
    typer.echo(f"  read back: laue-live query grains {res.analysis_uid[:8]}")
    if out is not None:
        _write_table(grains, out)
        typer.echo(f"grains -> {out}")


index_app = typer.Typer()


@index_app.command("index")
def index(
    inputs: Annotated[list[Path] | None, typer.Argument(
        metavar="INPUT...", help="Spot files (.dat, .cor, .csv, .parquet; 0-based row, col in our tables) "
        "or frames (.tif, .tiff, .npy, .mccd: peak search and Gaussian fit first).")] = None,
    run: Annotated[str | None, typer.Option(
        "--run", help="Index an analysis run of the catalog instead (uid, uid prefix, scan id or latest): "
        "its spot tables are read from Tiled and its grains written into the run (streams grains, "
        "indexed_spots, indexing). Resumable: frames already indexed are skipped. Material and "
        "calibration default to what the run was indexed with or what its start documents name.")] = None,
    material: Annotated[list[str] | None, typer.Option(
        "--material", "-m", help="Material by name: Si, Ge, Cu, Al, Al2O3, GaN. Repeat for a frame of "
        "several materials (tried in the order given, each on the spots the previous left).")] = None,
    cif: Annotated[list[Path] | None, typer.Option(help="Material from a CIF file (repeatable).")] = None,
    lattice: Annotated[str | None, typer.Option(
        help="Material from 'a b c alpha beta gamma' (Angstrom, degrees), with --space-group.")] = None,
    space_group: Annotated[str | None, typer.Option(
        help="Space group of --lattice, e.g. Fd-3m, P6_3mc.")] = None,
    det: Annotated[Path | None, typer.Option(
        "--det", "-d",
        help="LaueTools .det calibration (default: the one a .cor/.dat file carries).")] = None,
    energy_min: Annotated[float, typer.Option(help="Lowest beam energy, keV.")] = 5.0,
    energy_max: Annotated[float, typer.Option(help="Highest beam energy, keV.")] = 23.0,
    max_grains: Annotated[int, typer.Option(help="Most grains searched per frame.")] = 5,
    strain: Annotated[bool, typer.Option(
        "--strain/--orientation-only",
        help="Refine the deviatoric strain too, or the orientation only.")] = True,
    threshold: Annotated[float, typer.Option(
        help="Peak-search threshold above the local background, in local noise sigmas (frames "
             "only).")] = 7.0,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the grains (one row per grain, all inputs): .csv or .parquet.")] = None,
    spots_out: Annotated[Path | None, typer.Option(
        help="Write the spot tables with grain, h, k, l, deviation_px columns: .csv or .parquet.")] = None,
    fit_dir: Annotated[Path | None, typer.Option(
        help="Write one LaueTools .fit file per input (INPUT stem + .fit) into this folder.")] = None,
    uri: Annotated[str | None, typer.Option(
        help="--run: Tiled server URI (env LAUE_LIVE_TILED_URI; default: the embedded server).")] = None,
    settings_file: Annotated[Path | None, typer.Option(
        "--settings", help="--run: YAML/TOML catalog settings file.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="--run: data directory of the embedded server.")] = None,
) -> None:
    """Index spot files, frames or a catalog run: each grain's orientation U, deviatoric strain and spots.

    Classical Laue indexing (angles between spot pairs against a table of low-index directions),
    verified by the forward model and refined (U and the deviatoric strain) by least squares on the
    matched spots. A frame where no grain passes the tests says "no grain found" with the best
    candidate's statistics.
    """
    # imported at run time: `laue-live --help` stays fast
    import numpy as np
    import pandas as pd

    if run is not None:
        if inputs:
            raise typer.BadParameter("give INPUT files or --run, not both", param_hint="--run")
        if spots_out is not None or fit_dir is not None:
            raise typer.BadParameter("--run writes into the catalog: read the spots back with "
                                     "`laue-live query spots RUN --indexed`", param_hint="--spots-out")
        if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
            raise typer.BadParameter("table file must end in .csv or .parquet", param_hint="--out")
        energy = (energy_min, energy_max) if (energy_min, energy_max) != (5.0, 23.0) else None
        options = {k: v for k, v in (("max_grains", max_grains), ("refine_strain", strain))
                   if v != {"max_grains": 5, "refine_strain": True}[k]}
        _index_catalog_run(run, _material_specs(material, cif, lattice, space_group), det, energy, options,
                           out, (uri, settings_file, data_dir))
        return
    if not inputs:
        raise typer.BadParameter("give spot files or frames to index, or --run RUN", param_hint="INPUT")

    # imported at run time: `laue-live --help` stays fast
    from laue_live.geometry import read_det
    from laue_live.indexing import (
        Indexer,
        IndexerSettings,
        calibration_from_file_keys,
        index_materials,
        write_fit,
    )

    for path, hint in ((out, "--out"), (spots_out, "--spots-out")):
        if path is not None and path.suffix.lower() not in (".csv", ".parquet"):
            raise typer.BadParameter("table file must end in .csv or .parquet", param_hint=hint)
    try:
        materials = _materials(material, cif, lattice, space_group)
        settings = IndexerSettings(max_grains=max_grains, refine_strain=strain)
        calibration = read_det(det)[0] if det is not None else None
        indexers: dict = {}
        grains_rows, spot_tables = [], []
        for path in inputs:
            spots, _ = _spots_of(path, calibration, threshold)
            cal = calibration or calibration_from_file_keys(spots.attrs.get("calibration", {}))
            if cal is None:
                raise typer.BadParameter(f"{path.name} carries no calibration: give --det",
                                         param_hint="--det")
            if cal not in indexers:
                indexers[cal] = [Indexer(m, cal, (energy_min, energy_max), settings) for m in materials]
            result = index_materials(indexers[cal], spots)
            typer.echo(f"{path.name}: {len(spots)} spots, {result.seconds * 1e3:.0f} ms")
            typer.echo("  " + result.summary().replace("\n", "\n  "))
            for g in result.grains:
                u = np.array2string(g.U, precision=6, suppress_small=True)
                typer.echo("  U = " + u.replace("\n", "\n      "))
            table = result.grains_table()
            table.insert(0, "file", path.name)
            grains_rows.append(table)
            labelled = result.spots.copy()
            labelled.insert(0, "file", path.name)
            spot_tables.append(labelled)
            if fit_dir is not None and result.grains:
                fit_dir.mkdir(parents=True, exist_ok=True)
                written = write_fit(fit_dir / (path.stem + ".fit"), result.grains, cal, path.name)
                typer.echo(f"  LaueTools .fit -> {written}")
    except (LaueLiveError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if out is not None:
        _write_table(pd.concat(grains_rows, ignore_index=True), out)
        typer.echo(f"grains -> {out}")
    if spots_out is not None:
        _write_table(pd.concat(spot_tables, ignore_index=True), spots_out)
        typer.echo(f"spot tables -> {spots_out}")
