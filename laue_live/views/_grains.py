"""Live maps of an indexed scan: orientation (IPF colours with a key), misorientation, strain, quality.

:class:`LiveGrainMap` follows an analysis run's indexing documents (the ``grains`` stream and the
per-frame ``indexing`` rows) like :class:`~laue_live.views.LiveSpotMap` follows its frames; the
values are those of every other map of the project (:func:`laue_live.indexing.grain_values`,
:func:`laue_live.indexing.ipf_colors`). :func:`draw_ipf_key` and :func:`save_orientation_map` draw
the orientation map of a run read from the catalog (``laue-live query map --value orientation``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from laue_live._run import (
    GRAINS_STREAM,
    INDEXING_KEY,
    INDEXING_STREAM,
    imshow_extent,
    scan_geometry,
)
from laue_live.views._map import LiveSpotMap

__all__ = ["LiveGrainMap", "draw_ipf_key", "save_orientation_map", "GRAIN_VIEW_VALUES"]

logger = logging.getLogger(__name__)

_NO_GRAIN_GREY = (0.8, 0.8, 0.8)


def _science():
    # why: the indexer (scipy, gemmi, pandas: 1-4 s) loads with the first indexed run, not with the views
    import laue_live.indexing as indexing

    return indexing


#: Values :class:`LiveGrainMap` shows: ``orientation`` and :data:`laue_live.indexing.GRAIN_MAP_VALUES`.
GRAIN_VIEW_VALUES = ("orientation", "misorientation", "matched_fraction", "intensity_fraction",
                     "deviation_px", "n_matched", "n_grains", "strain_xx", "strain_yy", "strain_zz",
                     "strain_xy", "strain_xz", "strain_yz", "equivalent_strain")


def draw_ipf_key(ax, sector, direction="z", *, fontsize: float = 8.0) -> None:
    """Draw the IPF colour key of a fundamental sector in ``ax``: the coloured triangle, its corners labelled.

    Parameters
    ----------
    ax
        matplotlib Axes (e.g. an inset); its frame and ticks are removed.
    sector
        :class:`laue_live.indexing.IPFSector`.
    direction
        The sample direction the map colours, for the title (``"x"``, ``"y"``, ``"z"`` or a vector).
    """
    rgba, extent, corners = sector.key_grid(160)
    ax.imshow(rgba, extent=extent, origin="lower", interpolation="bilinear")
    names = {"x": "x (beam)", "y": "y", "z": "z (up)"}
    places = (("right", "top"), ("left", "top"), ("left", "bottom"))
    for (x, y), label, (ha, va) in zip(corners, sector.labels, places, strict=True):
        ax.annotate(_science().mathtext_label(label), (x, y), fontsize=fontsize, ha=ha, va=va,
                    xytext=(-2 if ha == "right" else 2, -2 if va == "top" else 2), textcoords="offset points")
    title = names.get(direction, str(direction)) if isinstance(direction, str) else str(list(direction))
    ax.set_title(f"{sector.material}: IPF-{title}", fontsize=fontsize)
    pad = 0.25 * (extent[1] - extent[0])
    ax.set_xlim(extent[0] - pad, extent[1] + pad)
    ax.set_ylim(extent[2] - pad, extent[3] + pad)
    ax.set_aspect("equal")
    ax.axis("off")


def _axis_labels(geom) -> tuple[str, str]:
    motors = list(geom.motors or [])
    unit = f" ({geom.unit_label})" if geom.unit_label else ""
    if len(motors) == 2:
        return f"{motors[1]}{unit}", f"{motors[0]}{unit}"
    return f"second scan axis (point){unit}", f"first scan axis (point){unit}"


def save_orientation_map(rgb, sectors: dict, path: str | Path, *, geometry: dict | None = None,
                         direction="z", title: str = "") -> Path:
    """Save an orientation map (``(rows, cols, 3)`` RGB, NaN: no grain) with its colour key(s) as a PNG.

    Parameters
    ----------
    rgb
        The map, e.g. from :func:`laue_live.catalog.orientation_map`.
    sectors
        Material name -> :class:`laue_live.indexing.IPFSector` of the materials shown (one key each).
    path
        PNG to write (folders are created).
    geometry
        :func:`laue_live.catalog.raster_geometry` of the run (extents, motors, units), for the axes.
    direction
        The sample direction coloured.
    title
        Figure title (the direction is added).
    """
    import matplotlib  # lazy: matplotlib's figure costs ~0.4 s to import

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # lazy: as above

    geometry = dict(geometry or {})
    rgb = np.asarray(rgb, dtype=float)
    img = np.where(np.isfinite(rgb), rgb, np.array(_NO_GRAIN_GREY))
    n_keys = max(1, len(sectors))
    fig = Figure(figsize=(6.4 + 1.8, 5.2), dpi=100)
    ax = fig.add_axes((0.1, 0.1, 0.62, 0.8))
    extent = imshow_extent(geometry.get("extents"), rgb.shape[:2])
    ax.imshow(img, extent=extent, origin="upper", interpolation="nearest",
              aspect="auto" if extent else "equal")
    geom = scan_geometry({k: v for k, v in geometry.items() if k in ("shape", "extents", "motors", "units")})
    xlabel, ylabel = _axis_labels(geom)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}: orientation, IPF-{direction} (grey: no grain)".strip(": "))
    for i, sector in enumerate(sectors.values()):
        key = fig.add_axes((0.75, 0.9 - (i + 1) * 0.8 / n_keys, 0.22, 0.8 / n_keys * 0.9))
        draw_ipf_key(key, sector, direction)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("orientation map written to %s", path)
    return path


class LiveGrainMap(LiveSpotMap):
    """Map a value of each frame's grain over the raster while the run is indexed.

    Subscribe it to the analysis run's documents (a sink of the live callback, or the ``laue.doc``
    stream of the service); runs that are not indexed leave it empty. Frames indexed without a grain
    stay grey; failed or not (yet) indexed ones blank.

    Parameters
    ----------
    value
        ``"orientation"`` (inverse-pole-figure colours of ``direction``, with a labelled colour key),
        ``"misorientation"`` (degrees, to ``reference``), ``"strain_xx"`` ... ``"strain_yz"``,
        ``"equivalent_strain"`` (deviatoric, crystal frame, in 1e-3), ``"matched_fraction"``,
        ``"intensity_fraction"``, ``"deviation_px"``, ``"n_matched"``, ``"n_grains"``.
    direction
        Orientation maps: the sample direction coloured, ``"x"`` (beam), ``"y"``, ``"z"`` (up) or a vector.
    grain
        Which grain of a frame: ``"largest"`` (most matched spots) or a grain number.
    reference
        Misorientation maps: ``"first"`` (the first indexed frame's grain) or a 3 x 3 orientation matrix.
    ax, shape, cmap, clim, redraw_interval
        As for :class:`~laue_live.views.LiveSpotMap` (a diverging colour map centred on 0 for strain).

    Attributes
    ----------
    data
        ``(rows, cols)`` values (``(rows, cols, 3)`` RGB for orientation); NaN where nothing is shown.
    reference_u
        The misorientation reference in use (None until the first grain).
    """

    def __init__(self, value: str = "orientation", *, direction="z", grain: str | int = "largest",
                 reference="first", ax=None, shape: tuple[int, int] | None = None, cmap: str | None = None,
                 clim: tuple[float, float] | None = None, redraw_interval: float = 0.2):
        if value not in GRAIN_VIEW_VALUES:
            raise ValueError(f"unknown grain map value {value!r}; known: {GRAIN_VIEW_VALUES}")
        diverging = value.startswith("strain_")
        super().__init__("n_good", ax=ax, shape=shape, cmap=cmap or ("RdBu_r" if diverging else "viridis"),
                         clim=clim, redraw_interval=redraw_interval)
        self.column = value
        self.direction = direction
        self.grain = grain
        self.reference = reference
        self.reference_u = None if isinstance(reference, str) else np.asarray(reference, dtype=float)
        self.materials: dict[str, Any] = {}
        self.sectors: dict[str, Any] = {}
        self.indexed = False
        self._grains: dict[int, dict[str, np.ndarray]] = {}
        self._key_axes = None
        self._unit = ""

    # -- documents ---------------------------------------------------------------------------------
    def start(self, doc: dict[str, Any]) -> None:
        info = doc.get(INDEXING_KEY) or {}
        self.indexed = bool(info.get("enabled"))
        if not self.indexed:
            return  # not an indexed analysis run: the map stays as it is
        super().start(doc)
        with self._lock:
            if self.column == "orientation":
                self.data = np.full((*self.shape, 3), np.nan)
            self._grains = {}
            if isinstance(self.reference, str):
                self.reference_u = None
            sci = _science()
            self.materials = {}
            for entry in info.get("materials") or info.get("material") or []:
                try:
                    m = sci.material_from_metadata(entry)
                except Exception:  # noqa: BLE001 - maps of that material use its name
                    logger.warning("cannot rebuild material %r; its grains use the project's material", entry)
                    continue
                self.materials[m.name] = m
            self.sectors = {}
            names = ", ".join(self.materials) or "?"
            label = "orientation" if self.column == "orientation" else sci.GRAIN_MAP_VALUES[self.column].label
            scan = doc.get("raw_scan_id", "")
            self._title = f"{label} ({names})" + (f" - scan {scan}" if scan != "" else "")
            self._unit = scan_geometry(doc).unit_label

    def event_page(self, doc: dict[str, Any]) -> None:
        if not self.indexed:
            return
        stream = self._descriptors.get(doc.get("descriptor", ""))
        data = doc.get("data", {})
        if stream == GRAINS_STREAM:
            frames = np.asarray(data.get("frame", []))
            for frame in np.unique(frames):
                rows = frames == frame
                self._grains[int(frame)] = {k: np.asarray(v)[rows] for k, v in data.items()}
        elif stream == INDEXING_STREAM:
            for i, frame in enumerate(np.asarray(data.get("frame", [])).tolist()):
                status = str(np.asarray(data["status"])[i]) if "status" in data else ""
                self._frame_done(int(frame), status, data, i)

    def _frame_done(self, frame: int, status: str, data: dict, i: int) -> None:
        import pandas as pd  # lazy: loaded by the indexer anyway by now

        rows = self._grains.pop(frame, None)
        if status not in ("indexed", "no_grain"):
            return  # failed or not indexed: left blank
        if self.column == "n_grains":
            self._set(frame, float(np.asarray(data["n_grains"])[i]))
            return
        if not rows:
            self._set(frame, np.array(_NO_GRAIN_GREY) if self.column == "orientation" else np.nan)
            return
        sci = _science()
        table = pd.DataFrame(rows)
        for name in table["material"].unique():
            if name not in self.materials:
                try:
                    self.materials[name] = sci.material_from_metadata(name)
                except Exception:  # noqa: BLE001
                    continue
        if self.column == "orientation":
            colours = sci.orientation_colors(table, self.direction, grain=self.grain,
                                             materials=self.materials)
            if not len(colours):
                return
            name = colours["material"].iloc[0]
            if name not in self.sectors:
                self.sectors[name] = sci.ipf_sector(self.materials.get(name, name))
            self._set(frame, colours[["r", "g", "b"]].to_numpy(float)[0])
            return
        if self.column == "misorientation" and self.reference_u is None:
            chosen = sci.select_grains(table, self.grain)
            if not len(chosen):
                return
            self.reference_u = sci.u_matrices(chosen.iloc[:1])[0]
        values = sci.grain_values(table, self.column, grain=self.grain,
                                  reference=self.reference_u if self.column == "misorientation" else "first",
                                  materials=self.materials)
        self._set(frame, float(values.iloc[0]) if len(values) else np.nan)

    # -- drawing ------------------------------------------------------------------------------------
    def _draw(self) -> None:
        ax = self._ensure_axes()
        if self.data is None:
            return
        if self.column != "orientation":
            super()._draw()
            if self.column.startswith("strain_") and self.clim is None and self._image is not None:
                finite = self.data[np.isfinite(self.data)]
                half = float(np.abs(finite).max()) if finite.size else 1.0
                self._image.set_clim(-(half or 1.0), half or 1.0)
            if self._colorbar is not None:
                self._colorbar.set_label(_science().GRAIN_MAP_VALUES[self.column].axis_label)
            self._label_axes(ax)
            return
        shown = np.where(np.isfinite(self.data), self.data, 1.0)  # blank (white) where not indexed yet
        if self._image is None or self._image.get_array().shape != shown.shape:
            ax.clear()
            self._image = ax.imshow(shown, origin="upper", interpolation="nearest", aspect="auto",
                                    extent=self.extent)
            self._start_timer()
        else:
            self._image.set_data(shown)
        self._label_axes(ax)
        if self.sectors:
            if self._key_axes is None:
                self._key_axes = ax.inset_axes((1.02, 0.55, 0.4, 0.45))
            self._key_axes.clear()
            draw_ipf_key(self._key_axes, next(iter(self.sectors.values())), self.direction)
        done = int(np.isfinite(self.data[..., 0]).sum())
        ax.set_title(f"{self._title}: {done}/{self.data.shape[0] * self.data.shape[1]} frames")

    def _label_axes(self, ax) -> None:
        if self.run_uid is None:
            return
        unit = f" ({self._unit})" if self._unit else ""
        ax.set_xlabel(f"{self.axis_labels[0]}{unit}")
        ax.set_ylabel(f"{self.axis_labels[1]}{unit}")
