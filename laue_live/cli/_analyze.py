"""``laue-live analyze``: spot table of one detector frame, with a summary and a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laue_live.cli._app import app

__all__ = ["analyze", "load_frame", "plot_spots", "summary_text"]


def load_frame(path: Path):
    """Read a 2D detector frame from a ``.tif``/``.tiff`` or ``.npy`` file.

    Raises
    ------
    laue_live.FrameError
        If the file is missing or of an unknown kind.
    """
    import numpy as np

    from laue_live._errors import FrameError

    path = Path(path)
    if not path.is_file():
        raise FrameError(f"no such frame file: {path}")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    raise FrameError(f"unknown frame file type {suffix!r} ({path}): use .tif, .tiff or .npy")


def summary_text(table, seconds: float | None = None, top: int = 10) -> str:
    """Summarize a spot table for people: counts, Sim, positions of the brightest spots."""
    n = len(table)
    if n == 0:
        return "0 spots found"
    good = int(table["good"].sum())
    lines = [
        f"{n} spots: {good} good ({100 * good / n:.0f}%), {int(table['edge'].sum())} at the edge, "
        f"{int(table['saturated'].sum())} saturated, {int((~table['converged']).sum())} fits not converged",
        f"Sim: median {table['sim'].median():.3f}; Sim0 median {table['sim0'].median():.3f} "
        f"({table.attrs.get('sim_variant', 'background')} variant)",
    ]
    if seconds is not None:
        lines.append(f"analysed in {seconds:.3f} s")
    cols = ["spot", "row", "col", "sim", "asp", "area", "amplitude", "good"]
    shown = table.sort_values("peak_intensity", ascending=False).head(top)[cols]
    lines += ["", f"brightest {len(shown)} spots (0-based row, col; px):",
              shown.to_string(index=False, float_format=lambda v: f"{v:.3f}")]
    return "\n".join(lines)


def plot_spots(frame, table, path: Path, title: str | None = None, dpi: int = 110) -> Path:
    """Picture of a frame with its spots marked by quality: good green, bad red, edge grey; and Sim.

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

    f = np.asarray(frame, dtype=np.float32)
    ped = np.median(f)
    img = np.log10(np.clip(f - ped, 1.0, None))
    fig, (ax, axh) = plt.subplots(1, 2, figsize=(13, 6.2), gridspec_kw={"width_ratios": [2.2, 1]})
    ax.imshow(img, cmap="gray_r", vmin=0, vmax=max(float(np.percentile(img, 99.95)), 1.0), origin="upper")
    good = table["good"].to_numpy(bool)
    edge = table["edge"].to_numpy(bool)
    for sel, color, label in ((good & ~edge, "tab:green", "good"), (~good & ~edge, "tab:red", "bad"),
                              (edge, "0.5", "edge")):
        ax.scatter(table["col"][sel], table["row"][sel], s=60, facecolors="none", edgecolors=color,
                   linewidths=1.0, label=f"{label} ({int(sel.sum())})")
    ax.set_xlabel("column (px, 0-based)")
    ax.set_ylabel("row (px, 0-based)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "spots by quality")
    bins = np.linspace(0, 1, 21)
    axh.hist([table["sim"][good], table["sim"][~good]], bins=bins, stacked=True,
             color=["tab:green", "tab:red"], label=["good", "bad"])
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


@app.command("analyze")
def analyze(
    frame_path: Annotated[Path, typer.Argument(
        metavar="FRAME", help="Detector frame: .tif/.tiff or .npy (2D).")],
    method: Annotated[str, typer.Option(
        "--method", "-m", help="Descriptors from the exact Gaussian 'fit' or the 'cnn'.")] = "fit",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the spot table: .csv or .parquet (0-based row, col).")] = None,
    dat: Annotated[Path | None, typer.Option(
        "--dat", help="Write a LaueTools .dat peak list (1-based, X = col).")] = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write a PNG of the frame with spots marked by quality.")] = None,
    threshold: Annotated[float, typer.Option(
        help="Peak-search threshold above the local background, ADU.")] = 50.0,
    sim_variant: Annotated[str, typer.Option(
        help="Sim0 on the 'background'-subtracted or the 'raw' cutout.")] = "background",
    model: Annotated[str | None, typer.Option(help="CNN weights (name or path), for --method cnn.")] = None,
    device: Annotated[str | None, typer.Option(help="torch device (cpu, cuda, auto).")] = None,
    top: Annotated[int, typer.Option(help="Number of brightest spots listed in the summary.")] = 10,
    doubles: Annotated[bool, typer.Option(
        "--doubles/--no-doubles",
        help="Examine bad spots with the double-spot network; overlaps become two component rows.")] = False,
) -> None:
    """Find and characterize the spots of one frame; print a summary, write a table and a picture.

    Pipeline: background + threshold peak search, 32 x 32 cutouts, exact Gaussian fit (or CNN),
    descriptors Sim, Pos, Asp, Area and the good-spot rule (Sim > 0.5, |Pos - s| <= 0.9 px).
    """
    import time

    from laue_live._errors import LaueLiveError

    if method not in ("fit", "cnn"):
        raise typer.BadParameter("must be 'fit' or 'cnn'", param_hint="--method")
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise typer.BadParameter("table file must end in .csv or .parquet", param_hint="--out")
    from laue_live.describe import analyze_frame
    from laue_live.spots import write_lauetools_dat

    try:
        frame = load_frame(frame_path)
        kw = {"sim_variant": sim_variant}
        if method == "cnn":
            kw = {"model": model}
        t0 = time.perf_counter()
        table = analyze_frame(frame, method, peak_params={"threshold": threshold}, device=device,
                              doubles=doubles, **kw)
        seconds = time.perf_counter() - t0
    except LaueLiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"{frame_path.name}: {frame.shape[0]} x {frame.shape[1]} px, method {method}")
    typer.echo(summary_text(table, seconds, top))
    if out is not None:
        if out.suffix.lower() == ".parquet":
            table.to_parquet(out, index=False)
        else:
            table.to_csv(out, index=False)
        typer.echo(f"spot table -> {out}")
    if dat is not None:
        write_lauetools_dat(table, dat)
        typer.echo(f"LaueTools peak list -> {dat}")
    if plot is not None:
        plot_spots(frame, table, plot, title=f"{frame_path.name}: spots by quality ({method})")
        typer.echo(f"picture -> {plot}")
