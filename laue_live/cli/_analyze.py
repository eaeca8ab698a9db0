"""``laue-live analyze``: spot tables of detector frames (files, globs, folders, HDF5 stacks).

One frame: a summary on the terminal, and on request its table, LaueTools ``.dat``/``.cor`` files
and a picture. Many frames: a progress bar, one table (and ``.dat``/``.cor``) per frame in
``--out-dir`` and one combined table (``--out``) with a per-frame summary beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["analyze", "plot_spots", "summary_text", "DetectorOptions"]


def summary_text(table, seconds: float | None = None, top: int = 10) -> str:
    """Summarize a spot table for people: counts, Sim, positions of the brightest spots."""
    n = len(table)
    if n == 0:
        return "0 spots found"
    good = int(table["good"].sum())
    lines = [
        f"{n} spots: {good} good ({100 * good / n:.0f}%), {int(table['edge'].sum())} at the edge, "
        f"{int(table['masked'].sum())} touching the mask, {int(table['saturated'].sum())} saturated, "
        f"{int((~table['converged']).sum())} fits not converged",
        f"Sim: median {table['sim'].median():.3f}; Sim0 median {table['sim0'].median():.3f} "
        f"({table.attrs.get('sim_variant', 'background')} variant)",
    ]
    doubles = table.attrs.get("doubles")
    if doubles:
        lines.append(f"double spots: {doubles.get('n_split', 0)} bad spot(s) split into two components "
                     "(rows with component 1 and 2; parent = the spot they replace)")
    if seconds is not None:
        lines.append(f"analysed in {seconds:.3f} s")
    cols = ["spot", "row", "col", "two_theta", "chi", "sim", "asp", "area", "amplitude", "good"]
    if table["two_theta"].isna().all():
        cols = [c for c in cols if c not in ("two_theta", "chi")]
    shown = table.sort_values("peak_intensity", ascending=False).head(top)[cols]
    lines += ["", f"brightest {len(shown)} spots (0-based row, col; px; 2theta, chi: deg):",
              shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    return "\n".join(lines)


def plot_spots(frame, table, path: Path, title: str | None = None, dpi: int = 110) -> Path:
    """Picture of a frame with its spots as fitted ellipses, good green and bad red; and the Sim histogram.

    Parameters
    ----------
    frame
        2D frame, ADU.
    table
        Spot table of that frame.
    path
        PNG file to write.
    title
        Figure title.
    dpi
        Resolution of the PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from laue_live.views import SPOT_STYLE, draw_frame

    fig, (ax, axh) = plt.subplots(1, 2, figsize=(13, 6.2), gridspec_kw={"width_ratios": [2.2, 1]})
    # the legend's good + bad add up to the printed spot count; edge and saturated are among them
    draw_frame(ax, frame, table)
    good = table["good"].to_numpy(bool)
    ax.set_xlabel("column (px, 0-based)")
    ax.set_ylabel("row (px, 0-based)")
    ax.set_title(title or "spots by quality")
    bins = np.linspace(0, 1, 21)
    axh.hist([table["sim"][good], table["sim"][~good]], bins=bins, stacked=True,
             color=[SPOT_STYLE["good"], SPOT_STYLE["bad"]], label=["good", "bad"])
    axh.axvline(0.5, color="k", lw=0.8, ls="--")
    axh.set_xlabel("Sim")
    axh.set_ylabel("spots")
    axh.legend(fontsize=8)
    axh.set_title(f"{len(table)} spots, {int(good.sum())} good")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


class DetectorOptions:
    """Command-line options shared by ``analyze``, ``import-frames`` and ``serve``: detector and peaks."""

    Detector = Annotated[str | None, typer.Option(
        "--detector", help="Detector preset: sCMOS (BM32, 2018 x 2016, 73.4 um) or MARCCD165 (2048 x 2048, "
        "79.1 um, round window); sets the saturation and checks shapes.")]
    Calibration = Annotated[Path | None, typer.Option(
        "--calibration", "-c",
        help="LaueTools .det calibration: fills two_theta/chi and enables .cor files.")]
    Mask = Annotated[Path | None, typer.Option(
        "--mask", help="Pixel mask file (.npy, .tif, .edf, pyFAI .msk, NeXus file[::/path/pixel_mask]); "
        "non-zero = not used.")]
    Dark = Annotated[Path | None, typer.Option("--dark", help="Dark frame subtracted from every frame.")]
    Flat = Annotated[Path | None, typer.Option("--flat", help="Flat field every frame is divided by "
                                               "(normalised to its median).")]
    AutoMask = Annotated[bool, typer.Option(
        "--auto-mask/--no-auto-mask", help="Mask pixels that read 0 (no active area, dead) and isolated "
        "saturated (hot) pixels.")]
    Beamstop = Annotated[str | None, typer.Option(
        "--beamstop", metavar="ROW,COL,RADIUS", help="Mask a circular beamstop shadow (px, 0-based).")]
    Threshold = Annotated[float, typer.Option(
        help="Peak search: a spot pixel exceeds the local background by this many local noise sigmas.")]
    Block = Annotated[int, typer.Option(help="Peak search: background block side, px (even; larger than "
                                        "a spot).")]
    MinPixels = Annotated[int, typer.Option(help="Peak search: smallest number of connected pixels above "
                                            "the threshold.")]
    MergeRadius = Annotated[float, typer.Option(help="Peak search: maxima closer than this to a brighter "
                                                "one are the same spot, px.")]


analyze_app = typer.Typer()


@analyze_app.command("analyze")
def analyze(
    inputs: Annotated[list[str], typer.Argument(
        metavar="FRAMES...", help="Frame files (.tif, .mccd, .edf, .cbf, .jp2, .npy, .h5/.nxs[::/dataset]), "
        "globs ('scan/*.tif') or folders.")],
    method: Annotated[str, typer.Option(
        "--method", "-m", help="Descriptors from the exact Gaussian 'fit' or the 'cnn'.")] = "fit",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the spot table (all frames, schema columns, 0-based row, col): .csv or "
        ".parquet; a per-frame summary goes beside it (<name>.frames.csv).")] = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out-dir", help="Write one table per frame here (<frame>.csv or .parquet, see --format) with its "
        ".dat and, with a calibration, .cor.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="Per-frame table format in --out-dir: csv or "
                                     "parquet.")] = "csv",
    dat: Annotated[Path | None, typer.Option(
        "--dat", help="One frame: write a LaueTools .dat peak list (1-based, X = col).")] = None,
    cor: Annotated[Path | None, typer.Option(
        "--cor", help="One frame: write a LaueTools .cor file (2theta, chi, X, Y, I; needs --calibration), "
        "the input of LaueTools' indexing.")] = None,
    good_only: Annotated[bool, typer.Option(
        "--good-only", help="Only good spots in the .dat and .cor files (Sim > 0.5, |Pos - s| <= 0.9 px, "
        "not at the edge or on the mask).")] = False,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="One frame: write a PNG of the frame with spots marked by quality.")] = None,
    detector: DetectorOptions.Detector = None,
    calibration: DetectorOptions.Calibration = None,
    mask: DetectorOptions.Mask = None,
    dark: DetectorOptions.Dark = None,
    flat: DetectorOptions.Flat = None,
    auto_mask: DetectorOptions.AutoMask = True,
    beamstop: DetectorOptions.Beamstop = None,
    threshold: DetectorOptions.Threshold = 7.0,
    block: DetectorOptions.Block = 16,
    min_pixels: DetectorOptions.MinPixels = 2,
    merge_radius: DetectorOptions.MergeRadius = 4.0,
    sim_variant: Annotated[str, typer.Option(
        help="Sim0 on the 'background'-subtracted or the 'raw' cutout.")] = "background",
    model: Annotated[str | None, typer.Option(help="CNN weights (name or path), for --method cnn.")] = None,
    device: Annotated[str | None, typer.Option(help="torch device (cpu, cuda, auto).")] = None,
    top: Annotated[int, typer.Option(help="One frame: number of brightest spots listed.")] = 10,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Search folders recursively.")] = False,
    doubles: Annotated[bool, typer.Option(
        "--doubles/--no-doubles",
        help="Examine bad spots with the double-spot network; overlaps become two component rows.")] = False,
) -> None:
    """Find and characterize the spots of detector frames; print a summary, write tables and pictures.

    Pipeline per frame: corrections (dark, flat, mask), peak search against the local background
    and noise, 32 x 32 cutouts, exact Gaussian fit (or CNN), descriptors Sim, Pos, Asp, Area, the
    good-spot rule (Sim > 0.5, |Pos - s| <= 0.9 px) and, with a calibration, 2theta and chi.
    Exit code 1 when a frame or an option is bad (one line each on stderr; other frames go on).
    """
    import sys
    import time

    from laue_live._errors import LaueLiveError

    if method not in ("fit", "cnn"):
        raise typer.BadParameter("must be 'fit' or 'cnn'", param_hint="--method")
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise typer.BadParameter("table file must end in .csv or .parquet", param_hint="--out")
    if fmt not in ("csv", "parquet"):
        raise typer.BadParameter("must be csv or parquet", param_hint="--format")
    if cor is not None and calibration is None:
        raise typer.BadParameter("a .cor file needs --calibration", param_hint="--cor")

    from laue_live.describe import analyze_frame
    from laue_live.io import frame_sources, load_calibration, load_corrections
    from laue_live.spots import check_peak_params

    try:
        det = None
        if detector is not None:
            from laue_live.geometry import get_detector

            det = get_detector(detector)
        params = check_peak_params({"threshold": threshold, "block": block, "min_pixels": min_pixels,
                                    "merge_radius": merge_radius,
                                    **({"saturation": det.saturation} if det else {})})
        cal = load_calibration(calibration, det)
        corrections = load_corrections(mask, dark, flat, auto=auto_mask, beamstop=beamstop, detector=det)
        sources = frame_sources(inputs, recursive=recursive)
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    single = len(sources) == 1
    if not single and (dat is not None or cor is not None or plot is not None):
        typer.echo(f"error: {len(sources)} frames: --dat, --cor and --plot take one frame; use --out-dir",
                   err=True)
        raise typer.Exit(1)
    kw = {"model": model} if method == "cnn" else {"sim_variant": sim_variant}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    tables, summary, failed = [], [], 0
    progress = _progress(len(sources), disable=single)
    for k, src in enumerate(sources):
        t0 = time.perf_counter()
        try:
            frame = src.read()
            if det is not None and frame.shape != tuple(det.frame_shape):
                raise LaueLiveError(f"{src.label}: frame of shape {frame.shape}, not a {det.name} "
                                    f"({det.frame_shape[0]} x {det.frame_shape[1]})")
            table = analyze_frame(frame, method, frame_number=k, peak_params=params, device=device,
                                  doubles=doubles, corrections=corrections, calibration=cal, **kw)
        except LaueLiveError as exc:
            failed += 1
            msg = str(exc) if src.label in str(exc) else f"{src.label}: {exc}"
            progress.write(f"error: {msg}", file=sys.stderr)
            summary.append({"frame": k, "source": str(src.path), "index": src.index, "n_spots": 0,
                            "n_good": 0, "seconds": time.perf_counter() - t0, "error": str(exc)})
            progress.update(1)
            continue
        seconds = time.perf_counter() - t0
        tables.append(table)
        summary.append({"frame": k, "source": str(src.path), "index": src.index, "n_spots": len(table),
                        "n_good": int(table["good"].sum()), "seconds": seconds, "error": ""})
        exported = table[table["good"] & ~table["edge"] & ~table["masked"]] if good_only else table
        if out_dir is not None:
            stem = out_dir / (src.path.stem + ("" if src.index is None else f"_{src.index:05d}"))
            _write_table(table, stem.parent / f"{stem.name}.{fmt}")
            _write_lauetools(exported, stem, cal, det, source=src.label)
        if single:
            typer.echo(f"{src.label}: {frame.shape[0]} x {frame.shape[1]} px, method {method}")
            typer.echo(summary_text(table, seconds, top))
            _write_lauetools(exported, None, cal, det, dat=dat, cor=cor, source=src.label)
            if plot is not None:
                plot_spots(frame, table, plot, title=f"{src.label}: spots by quality ({method})")
                typer.echo(f"picture -> {plot}")
        progress.update(1)
    progress.close()
    if not single:
        n = sum(len(t) for t in tables)
        typer.echo(f"{len(sources) - failed} of {len(sources)} frames analysed: {n} spots, "
                   f"{sum(int(t['good'].sum()) for t in tables)} good")
    if out is not None:
        import pandas as pd

        from laue_live._schema import empty_spot_table

        combined = pd.concat(tables, ignore_index=True) if tables else empty_spot_table()
        _write_table(combined, out)
        pd.DataFrame(summary).to_csv(out.with_name(out.stem + ".frames.csv"), index=False)
        typer.echo(f"spot table -> {out} ({len(combined)} rows); per-frame summary -> "
                   f"{out.with_name(out.stem + '.frames.csv')}")
    if out_dir is not None:
        typer.echo(f"per-frame tables -> {out_dir}")
    if failed:
        raise typer.Exit(1)


def _progress(total: int, disable: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", disable=disable, file=None, dynamic_ncols=True)


def _write_table(table, path: Path) -> None:
    if path.suffix.lower() == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)


def _write_lauetools(table, stem: Path | None, cal, det, *, dat: Path | None = None, cor: Path | None = None,
                     source: str = "") -> None:
    from laue_live.spots import write_lauetools_cor, write_lauetools_dat

    if stem is not None:
        dat = stem.parent / f"{stem.name}.dat"
        cor = stem.parent / f"{stem.name}.cor" if cal is not None else None
    if dat is not None:
        write_lauetools_dat(table, dat, calibration=cal, comments=f"from {source}")
        if stem is None:
            typer.echo(f"LaueTools peak list -> {dat}")
    if cor is not None:
        write_lauetools_cor(table, cor, cal, detector=det, comments=f"from {source}")
        if stem is None:
            typer.echo(f"LaueTools .cor -> {cor}")
