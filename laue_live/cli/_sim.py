"""``laue-live sim``: write simulated Laue frames with their ground truth, draw the comparison picture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["sim_app", "write", "figure", "make_sample"]

sim_app = typer.Typer(
    name="sim",
    help=(
        "Simulated BM32 Laue frames (physics-based spot positions, realistic spot shapes and noise) with "
        "their ground truth, for testing laue-live or other software without beam time."
    ),
    no_args_is_help=True,
)

SAMPLES = ("single", "bent", "poly")


def make_sample(kind: str, material: str, seed: int, shape_mix: str, det: Path | None = None,
                detector: str | None = None):
    """Build a sample model for the CLI (``single``, ``bent`` or ``poly``) on a detector preset."""
    from laue_live._errors import SettingsError
    from laue_live.geometry import BM32_CALIBRATION, nominal_calibration, read_det
    from laue_live.sim import BentCrystal, Polycrystal, RenderConfig, SingleCrystal

    if det is not None:
        cal, orientation = read_det(det)
    else:
        cal, orientation = (BM32_CALIBRATION if detector is None else nominal_calibration(detector)), None
    render = RenderConfig(shape_mix=shape_mix) if detector is None else RenderConfig.for_detector(
        detector, shape_mix=shape_mix)
    common = dict(calibration=cal, render_config=render, seed=seed)
    if kind == "single":
        return SingleCrystal(material, orientation, **common)
    if kind == "bent":
        return BentCrystal(material, orientation, curvature=0.05, **common)
    if kind == "poly":
        return Polycrystal(
            material,
            n_grains=8,
            extent=((0, 10), (0, 10)),
            grain_shape_mixes=("clean", shape_mix, "deformed"),
            **common,
        )
    raise SettingsError(f"unknown sample kind {kind!r}; use one of {SAMPLES}")


@sim_app.command()
def write(
    outdir: Annotated[Path, typer.Argument(help="Folder to write into (created if needed).")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of frames.")] = 10,
    fmt: Annotated[
        str, typer.Option("--format", help="tiff: one .tif per frame; hdf5: one sim.h5.")
    ] = "tiff",
    material: Annotated[str, typer.Option(help="Crystal: Si, Ge, Cu, Al, Al2O3 or GaN.")] = "Si",
    sample: Annotated[str, typer.Option(help="Sample: single, bent or poly(crystal).")] = "single",
    shape_mix: Annotated[str, typer.Option(help="Shape mix: clean, bm32, broad, thick, deformed.")] = "bm32",
    step: Annotated[float, typer.Option(help="Stage step between frames along x, micrometres.")] = 1.0,
    seed: Annotated[int, typer.Option(min=0, help="Seed: same seed, same frames.")] = 0,
    det: Annotated[Path | None, typer.Option(help="LaueTools .det: calibration, orientation.")] = None,
    detector: Annotated[str | None, typer.Option(
        help="Detector preset: sCMOS (BM32, default) or MARCCD165 (round window, ~10 ADU offset).")] = None,
) -> None:
    """Write N simulated frames and their ground truth (truth.parquet, truth.csv; 0-based row, col)."""
    import json

    import numpy as np
    import pandas as pd
    import tifffile
    from tqdm import tqdm

    from laue_live._errors import LaueLiveError
    from laue_live.sim import H5TruthWriter, conform_truth

    if fmt not in ("tiff", "hdf5"):
        raise typer.BadParameter(f"--format must be tiff or hdf5, not {fmt!r}")
    try:
        smp = make_sample(sample, material, seed, shape_mix, det, detector)
    except LaueLiveError as exc:
        raise typer.BadParameter(str(exc)) from exc
    outdir.mkdir(parents=True, exist_ok=True)
    truths = []
    h5 = None
    if fmt == "hdf5":
        import h5py

        rows, cols = smp.calibration.frame_shape
        h5 = h5py.File(outdir / "sim.h5", "w")
        ds = h5.create_dataset("/entry/data/data", (n, rows, cols), dtype="<u2", chunks=(1, rows, cols))
        tw = H5TruthWriter(h5)
        h5["/entry"].attrs["calibration"] = json.dumps(smp.calibration.to_dict())
        h5["/entry"].attrs["sample"] = json.dumps(smp.describe(), default=str)
    try:
        for i in tqdm(range(n), desc="simulating frames", unit="frame"):
            x, y = i * step, 0.0
            rf = smp.frame_at(x, y, np.random.default_rng([seed, i]))
            truth = conform_truth(rf.truth, frame=i, x=x, y=y)
            if h5 is None:
                tifffile.imwrite(outdir / f"sim_{i:04d}.tif", rf.frame)
            else:
                ds[i] = rf.frame
                tw.append(truth)
            truths.append(truth)
    finally:
        if h5 is not None:
            h5.close()
    table = pd.concat(truths, ignore_index=True)
    table.to_parquet(outdir / "truth.parquet", index=False)
    table.to_csv(outdir / "truth.csv", index=False)
    meta = {
        "n_frames": n,
        "format": fmt,
        "sample": smp.describe(),
        "calibration": smp.calibration.to_dict(),
        "render_config": smp.render_config.to_dict(),
        "seed": seed,
        "step_um": step,
        "convention": "truth row, col are 0-based with pixel centres at integers (LaueTools X = col + 1)",
    }
    (outdir / "metadata.json").write_text(json.dumps(meta, indent=1, default=str))
    typer.echo(f"wrote {n} frames ({fmt}) and {len(table)} true spots to {outdir}")


@sim_app.command()
def figure(
    real: Annotated[Path, typer.Option(help="Real BM32 frame (.tif), e.g. shared/data/bm32/nw1_0000.tif.")],
    det: Annotated[Path, typer.Option(help="Its LaueTools .det calibration with the orientation matrix.")],
    out: Annotated[Path, typer.Option(help="PNG to write (the README's is docs/images/sim_vs_real.png).")
                   ] = Path("sim_vs_real.png"),
    material: Annotated[str, typer.Option(help="Material of the calibrated crystal.")] = "Si",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the simulated frame.")] = 0,
) -> None:
    """Draw a simulated frame next to a real one (same calibration and orientation), labelled."""
    import tifffile

    from laue_live._errors import FrameError, SettingsError
    from laue_live.sim import compare_figure

    if not real.is_file():
        raise FrameError(f"no such frame file: {real}")
    if not det.is_file():
        raise SettingsError(f"no such calibration file: {det}")
    try:
        image = tifffile.imread(real)
    except (OSError, ValueError) as exc:  # tifffile's errors are ValueErrors
        raise FrameError(f"cannot read {real}: truncated or corrupt file ({exc})") from None
    path = compare_figure(image, det, out, material=material, seed=seed,
                          real_label=f"real: {real.name} (BM32)")
    typer.echo(f"wrote {path}")


@sim_app.command()
def histogram(
    out: Annotated[Path, typer.Option(help="PNG to write (the docs' is docs/images/sim_histograms.png).")
                   ] = Path("sim_histograms.png"),
    n: Annotated[int, typer.Option("--n", min=10, help="Cutouts per preset.")] = 2000,
    seed: Annotated[int, typer.Option(min=0, help="Seed.")] = 0,
) -> None:
    """Plot the Sim distribution (exact fit) of simulated cutouts for each shape-mix preset."""
    from laue_live.sim import sim_histogram_figure

    path, medians = sim_histogram_figure(out, n=n, seed=seed)
    for preset, med in medians.items():
        typer.echo(f"{preset:10s} median Sim {med:.3f}")
    typer.echo(f"wrote {path}")
