"""The labelled comparison picture: a simulated frame next to a real BM32 frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from laue_live.geometry import read_det, simulate_spots
from laue_live.sim._render import RenderConfig, render_frame

__all__ = ["compare_figure"]


def compare_figure(
    real_frame: np.ndarray,
    det_path: str | Path,
    out: str | Path,
    material: str = "Si",
    seed: int = 0,
    config: RenderConfig | None = None,
    real_label: str = "real",
) -> Path:
    """Draw the real frame and a simulation of it side by side, with zooms, and save a PNG.

    Parameters
    ----------
    real_frame
        The real detector frame (uint16).
    det_path
        LaueTools ``.det`` file with the calibration and orientation matrix of the real frame.
    out
        PNG file to write.
    material
        Material of the crystal in ``det_path``.
    seed
        Seed of the simulated frame.
    config
        Render configuration (BM32-like defaults).
    real_label
        Title of the real panel.

    Returns
    -------
    pathlib.Path
        ``out``.
    """
    # matplotlib only when a picture is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib only when a picture is drawn
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    cal, orientation = read_det(det_path)
    spots = simulate_spots(material, np.eye(3) if orientation is None else orientation, cal)
    sim = render_frame(spots, config or RenderConfig(), rng=seed, frame_shape=cal.frame_shape)

    # zooms on two bright spots that both frames share
    picks = [1, 4]
    half = 24
    block = 4  # display the full frames max-pooled 4 x 4, so that 3-px spots stay visible
    norm = LogNorm(vmin=1000, vmax=30000)
    fig = plt.figure(figsize=(13, 10.5), layout="constrained")
    grid = fig.add_gridspec(2, 4, height_ratios=[2.2, 1.0])
    panels = [
        (real_frame, real_label),
        (sim.frame, f"simulated: {material}, same calibration and orientation"),
    ]
    for j, (img, title) in enumerate(panels):
        ax = fig.add_subplot(grid[0, 2 * j : 2 * j + 2])
        rows, cols = (s // block * block for s in img.shape)
        pooled = img[:rows, :cols].reshape(rows // block, block, cols // block, block).max(axis=(1, 3))
        im = ax.imshow(
            np.maximum(pooled, 1000),
            cmap="magma_r",
            norm=norm,
            interpolation="nearest",
            extent=(-0.5, cols - 0.5, rows - 0.5, -0.5),
        )
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("column (px)")
        ax.set_ylabel("row (px)")
        if j == 0:
            ax.scatter(
                spots["col"],
                spots["row"],
                s=70,
                facecolors="none",
                edgecolors="tab:blue",
                lw=0.6,
                label=f"simulated {material} positions ({len(spots)} spots)",
            )
            ax.legend(loc="lower right", fontsize=8)
        for k, p in enumerate(picks):
            r0, c0 = int(round(spots["row"].iloc[p])), int(round(spots["col"].iloc[p]))
            ax.add_patch(
                Rectangle((c0 - half, r0 - half), 2 * half, 2 * half, fill=False, ec="tab:green", lw=1.2)
            )
            ax.annotate(f"{'AB'[k]}", (c0 + half, r0 - half), color="tab:green", fontsize=11, weight="bold")
            zoom = img[max(r0 - half, 0) : r0 + half, max(c0 - half, 0) : c0 + half]
            axz = fig.add_subplot(grid[1, 2 * j + k])
            axz.imshow(
                zoom,
                cmap="viridis",
                interpolation="nearest",
                extent=(c0 - half - 0.5, c0 + half - 0.5, r0 + half - 0.5, r0 - half - 0.5),
            )
            axz.set_title(f"{'real' if j == 0 else 'simulated'}, zoom {'AB'[k]} (linear)", fontsize=9)
    fig.colorbar(im, ax=fig.axes[0:1] + fig.axes[3:4], shrink=0.7, label="ADU (log scale, 4x4 max-pooled)")
    fig.suptitle("BM32 Laue frame 2018 x 2016 px uint16: real (left) and laue-live simulation (right)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def sim_histogram_figure(
    out: str | Path, presets=("clean", "bm32", "broad", "deformed", "thick"), n: int = 2000, seed: int = 0
) -> tuple[Path, dict[str, float]]:
    """Histogram of Sim (exact Gaussian fit) of simulated cutouts for several shape-mix presets.

    Shows that the descriptor distribution of a simulated dataset can be made skewed (``clean``) or
    broad (``broad``, ``thick``), like the paper's Figure 4.

    Returns
    -------
    path, medians
        The PNG written and the median Sim per preset.
    """
    # matplotlib only when a picture is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib only when a picture is drawn
    import matplotlib.pyplot as plt

    from laue_live.describe import characterize
    from laue_live.sim._cutouts import render_spot_cutouts

    fig, axes = plt.subplots(
        1, len(presets), figsize=(3.2 * len(presets), 3.2), sharey=True, layout="constrained"
    )
    medians = {}
    for ax, preset in zip(np.atleast_1d(axes), presets, strict=True):
        cut, _ = render_spot_cutouts(n, preset, rng=seed)
        sim = characterize(cut)["sim"].to_numpy()
        medians[preset] = float(np.median(sim))
        ax.hist(sim, bins=12, range=(0, 1), color="tab:blue", edgecolor="white")
        ax.set_title(f"{preset}: median Sim {medians[preset]:.2f}", fontsize=10)
        ax.set_xlabel("Sim (exact fit)")
    np.atleast_1d(axes)[0].set_ylabel(f"spots (of {n})")
    fig.suptitle("Sim of simulated cutouts by shape-mix preset (log-uniform peaks 30-40000 ADU)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out, medians


def shapes_figure(out: str | Path, per_class: int = 4, seed: int = 0) -> Path:
    """Gallery of simulated 32 x 32 cutouts, one row per shape class, true position marked."""
    # matplotlib only when a picture is drawn
    import matplotlib

    matplotlib.use("Agg")
    # matplotlib only when a picture is drawn
    import matplotlib.pyplot as plt

    from laue_live.sim._cutouts import render_spot_cutouts
    from laue_live.sim._shapes import SHAPES

    fig, axes = plt.subplots(
        len(SHAPES), per_class, figsize=(1.7 * per_class + 1.2, 1.7 * len(SHAPES)), layout="constrained"
    )
    for i, shape in enumerate(SHAPES):
        cut, truth = render_spot_cutouts(per_class, {shape: 1.0}, rng=seed + i, peak_range=(3000, 20000))
        for j in range(per_class):
            ax = axes[i, j]
            ax.imshow(cut[j], cmap="viridis", interpolation="nearest")
            t = truth.iloc[j]
            ax.plot(16 + t["d_col"], 16 + t["d_row"], "r+", ms=8, mew=1.2)
            if shape == "split":
                ax.plot(16 + t["d_col2"], 16 + t["d_row2"], "w+", ms=8, mew=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(shape, fontsize=10)
    fig.suptitle(
        "Simulated cutouts by shape class (red +: true position; white +: second component)", fontsize=10
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
