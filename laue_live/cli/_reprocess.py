"""``laue-live reprocess RUN``: analyse a raw run from the catalog again, or finish an interrupted one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laue_live._errors import LaueLiveError, SettingsError

# RUN may be -1: a negative number is then an argument, not an unknown option
reprocess_app = typer.Typer()


@reprocess_app.command("reprocess", context_settings={"ignore_unknown_options": True})
def reprocess(
    run: Annotated[str, typer.Argument(
        help="Raw run: uid, uid prefix, 'latest', -N (N-th newest) or a scan id (its newest run).")],
    method: Annotated[str, typer.Option(
        help="fit (exact Gaussian fit), cnn, or auto (the one measured better on this device; see the "
             "README).")] = "auto",
    model: Annotated[str | None, typer.Option(help="CNN model name or weights file (method cnn).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Complete the interrupted analysis run of this raw run (no stop document) "
                         "instead of writing a new one: frames already written are skipped, no row "
                         "is written twice.")] = False,
    analysis: Annotated[str | None, typer.Option(
        "--analysis", help="With --resume: uid of the analysis run to complete (default: the newest "
                           "unfinished one).")] = None,
    device: Annotated[str | None, typer.Option(help="torch device: cpu, cuda, auto.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Frames per analysis call.")] = 8,
    index: Annotated[bool, typer.Option(
        "--index/--no-index", help="Index the frames too (grains, orientations, strains) when the raw run's "
        "start document or --material/--calibration name a material and a calibration.")] = True,
    material: Annotated[list[str] | None, typer.Option(
        "--material", "-m", help="Index with this material (Si, Ge, Cu, Al, Al2O3, GaN; repeat for several, "
        "a substrate first), whatever the raw run names.")] = None,
    calibration: Annotated[Path | None, typer.Option(
        "--calibration", help="Index with this LaueTools .det calibration, whatever the raw run names.")
    ] = None,
    energy_range: Annotated[str | None, typer.Option(
        "--energy-range", help="Beam band 'E_min,E_max' in keV for the indexing (default 5,23).")] = None,
    uri: Annotated[str | None, typer.Option(
        help="Tiled server URI (env LAUE_LIVE_TILED_URI); default: the embedded server (a running "
             "one, else one started for this command).")] = None,
    settings_file: Annotated[Path | None, typer.Option(
        "--settings", help="YAML/TOML catalog settings file.")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Data directory of the embedded server.")] = None,
) -> None:
    """Re-analyse a raw run already in the catalog and write a new analysis run.

    Frames are read from Tiled (raw run, stream "primary"), analysed with METHOD, and written as a
    new analysis run linked to the raw run (start.raw_uid). With --resume the same path completes a
    live analysis that was interrupted. The frames are indexed too when the raw run's start document
    or --material/--calibration name a material and a calibration (--no-index: never).
    """
    # imported at run time: `laue-live --help` stays fast
    from laue_live.analysis import IndexingConfig
    from laue_live.catalog import catalog_session, reprocess_run
    from laue_live.cli._catalog import existing_catalog_settings
    from laue_live.geometry import read_det
    from laue_live.indexing import material_from_metadata

    settings = existing_catalog_settings(uri, settings_file, data_dir)
    target: bool | str = analysis if (resume and analysis) else resume
    try:
        energy = None
        if energy_range is not None:
            try:
                energy = tuple(float(v) for v in energy_range.replace(",", " ").split())
            except ValueError:
                raise typer.BadParameter("'E_min,E_max' in keV", param_hint="--energy-range") from None
        # a wrong material or calibration file is one line now, not a run without indexing
        for m in material or []:
            material_from_metadata(m)
        if calibration is not None:
            read_det(calibration)
        indexing = IndexingConfig(
            material=(material[0] if len(material) == 1 else list(material)) if material else None,
            calibration=str(calibration) if calibration else None, energy_range=energy, enabled=index,
            prefer="settings")
        with catalog_session(settings) as cat:
            if resume and not analysis:
                _check_something_to_resume(cat, run)
            res = reprocess_run(cat, run, method=method, model=model, resume=target, device=device,
                                batch_size=batch_size, indexing=indexing)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2 if isinstance(exc, SettingsError) else 1) from None
    stop = res.stop
    verb = "completed" if res.resumed else "wrote"
    print(f"{verb} analysis run {res.analysis_uid} of raw run {res.raw_uid}")
    print(f"  frames: {res.frames_total} in the raw run, {res.frames_skipped} already written, "
          f"{stop.get('frames_analysed', 0)} analysed, {stop.get('frames_failed', 0)} failed; "
          f"{stop.get('spots', 0)} spot rows")
    if "frames_indexed" in stop:
        print(f"  indexing: {stop['frames_indexed']} frames indexed ({stop.get('grains', 0)} grains), "
              f"{stop.get('frames_no_grain', 0)} without a grain, {stop.get('frames_index_failed', 0)} "
              f"failed, {stop.get('frames_not_indexed', 0)} not indexed")
    where = f" --data-dir {data_dir}" if data_dir else (f" --uri {uri}" if uri else "")
    print(f"  read back: laue-live query{where} spots {res.analysis_uid[:8]}")
    if stop.get("exit_status") != "success":
        raise typer.Exit(1)


def _check_something_to_resume(cat, run: str) -> None:
    """Raise a SettingsError when the raw run has no interrupted analysis run for --resume to complete."""
    # imported at run time: `laue-live --help` stays fast
    from laue_live.catalog import find_analysis_runs, get_run, run_finished

    raw_uid = get_run(cat, run, "raw").metadata["start"]["uid"]
    runs = find_analysis_runs(cat, raw_uid)
    if not runs:
        raise SettingsError(f"nothing to resume: raw run {raw_uid[:8]} has no analysis run; "
                            "run without --resume to analyse it")
    if all(run_finished(r) for r in runs):
        raise SettingsError(f"nothing to resume: the {len(runs)} analysis run(s) of raw run {raw_uid[:8]} "
                            "are complete; run without --resume to write a new one")
