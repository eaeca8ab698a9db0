"""A raster map of the scan that fills in as frames are analysed (in the spirit of bluesky's LiveGrid)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from laue_live._run import (
    ANALYSIS_KIND,
    FRAMES_STREAM,
    SPOTS_STREAM,
    frame_index,
    imshow_extent,
    scan_geometry,
)
from laue_live._schema import FRAME_COLUMNS, SPOT_COLUMNS
from laue_live.views._base import LiveView

__all__ = ["LiveSpotMap"]

logger = logging.getLogger(__name__)

_FRAME_NAMES = {c.name for c in FRAME_COLUMNS}
_SPOT_NAMES = {c.name for c in SPOT_COLUMNS}


class LiveSpotMap(LiveView):
    """Map one value per stage position over the raster while the analysis runs.

    Subscribe it to the analysis run's documents (a sink of the live callback, or the ``laue.doc``
    stream of the service). The raster shape and snaking come from the analysis start document
    (copied from the raw run's ``shape``/``snaking``); without them frames fill a single row.

    Parameters
    ----------
    column
        A per-frame summary column (``n_good`` default, ``n_spots``, ``mean_sim``, ``seconds``) or a
        spot-table column (e.g. ``sigma_row``, ``intensity``), then averaged over the frame's spots
        (``good_only`` to average good spots only).
    ax
        matplotlib Axes; a new figure if ``None``.
    shape
        ``(rows, cols)`` overriding the start document's.
    good_only
        For spot columns: average over good spots only.
    cmap, clim
        Colour map and fixed colour limits (autoscaled if ``None``).

    Attributes
    ----------
    data
        The map, ``(rows, cols)`` float array, NaN where no frame was analysed yet.
    """

    def __init__(self, column: str = "n_good", *, ax=None, shape: tuple[int, int] | None = None,
                 good_only: bool = False, cmap: str = "viridis", clim: tuple[float, float] | None = None,
                 redraw_interval: float = 0.2):
        super().__init__(ax, redraw_interval=redraw_interval)
        if column not in _FRAME_NAMES and column not in _SPOT_NAMES:
            raise ValueError(f"unknown column {column!r}: use a frame summary or spot-table column")
        if column in ("x", "y", "error", "failed", "frame"):
            raise ValueError(f"column {column!r} is not a quality value to map")
        self.column = column
        self.good_only = good_only
        self.cmap = cmap
        self.clim = clim
        self._shape_override = shape
        self.shape: tuple[int, int] | None = None
        self.data: np.ndarray | None = None
        self.snaking = False
        self.run_uid: str | None = None
        self._descriptors: dict[str, str] = {}
        self._spot_means: dict[int, float] = {}
        self._image = None
        self._colorbar = None
        self._fixed_shape = False
        self.extent = None
        self.axis_labels = ("second scan axis (point)", "first scan axis (point)")
        self._title = ""

    # -- documents ---------------------------------------------------------------------------------
    def start(self, doc: dict[str, Any]) -> None:
        if doc.get("kind") != ANALYSIS_KIND:
            return  # a raw run or another analysis: not ours
        geom = scan_geometry(doc)
        with self._lock:
            self.run_uid = doc["uid"]
            self.shape = self._shape_override or geom.shape or (1, 16)
            self._fixed_shape = self._shape_override is not None or geom.shape is not None
            self.extent = imshow_extent(geom.extents, self.shape) if self._fixed_shape else None
            motors = geom.motors or []
            self.axis_labels = (str(motors[1]), str(motors[0])) if len(motors) == 2 else (
                "second scan axis (point)", "first scan axis (point)")
            self.snaking = geom.snaking[1]  # bluesky snakes the fast axis
            self.data = np.full(self.shape, np.nan)
            self._descriptors, self._spot_means = {}, {}
            scan = doc.get("raw_scan_id", "")
            self._title = f"{self.column}" + (" (good spots)" if self.good_only else "") + \
                (f" - scan {scan}" if scan != "" else "") + f" [{doc.get('method', '')}]"
            self._image = None
            self.n_updates = 0
        self._changed()

    def descriptor(self, doc: dict[str, Any]) -> None:
        if doc.get("run_start") == self.run_uid:
            self._descriptors[doc["uid"]] = doc.get("name", "")

    def event(self, doc: dict[str, Any]) -> None:
        self.event_page({"descriptor": doc["descriptor"], "data": {k: [v] for k, v in doc["data"].items()}})

    def event_page(self, doc: dict[str, Any]) -> None:
        stream = self._descriptors.get(doc.get("descriptor", ""))
        data = doc.get("data", {})
        if stream == SPOTS_STREAM and self.column in _SPOT_NAMES:
            frames = np.asarray(data["frame"])
            values = np.asarray(data[self.column], dtype=float)
            keep = np.asarray(data["good"], dtype=bool) if self.good_only else np.ones(len(values), bool)
            for frame in np.unique(frames):
                sel = (frames == frame) & keep
                self._spot_means[int(frame)] = float(values[sel].mean()) if sel.any() else np.nan
        elif stream == FRAMES_STREAM:
            for i, frame in enumerate(data["frame"]):
                if self.column in _FRAME_NAMES:
                    value = data[self.column][i]
                else:
                    value = self._spot_means.pop(int(frame), np.nan)
                failed = bool(data.get("failed", [False] * (i + 1))[i])
                self._set(int(frame), np.nan if failed or value is None else float(value))

    def stop(self, doc: dict[str, Any]) -> None:
        if doc.get("run_start") == self.run_uid:
            self._changed()

    def _set(self, frame: int, value: float) -> None:
        with self._lock:
            if self.data is None:
                return
            rows, cols = self.shape
            if frame >= rows * cols:
                if self._fixed_shape:
                    logger.warning("frame %d is outside the %s raster; not mapped", frame, self.shape)
                    return
                # unknown shape: one growing row (of values, or of RGB triplets for a colour map)
                grown = np.full((1, max(frame + 1, 2 * cols), *self.data.shape[2:]), np.nan)
                grown[:, :cols] = self.data
                self.data, self.shape = grown, grown.shape[:2]
            self.data[frame_index(frame, self.shape, self.snaking)] = value
            self.n_updates += 1
        self._changed()

    # -- drawing ------------------------------------------------------------------------------------
    def _draw(self) -> None:
        ax = self._ensure_axes()
        if self.data is None:
            return
        data = np.ma.masked_invalid(self.data)
        if self._image is None or self._image.get_array().shape != data.shape:
            ax.clear()
            self._image = ax.imshow(data, cmap=self.cmap, origin="upper", interpolation="nearest",
                                    aspect="auto", extent=self.extent)
            if self._colorbar is None:
                self._colorbar = ax.figure.colorbar(self._image, ax=ax)
            else:
                self._colorbar.update_normal(self._image)
            ax.set_xlabel(self.axis_labels[0])
            ax.set_ylabel(self.axis_labels[1])
            self._start_timer()
        else:
            self._image.set_data(data)
        if self.clim is not None:
            self._image.set_clim(*self.clim)
        elif data.count():
            low, high = float(data.min()), float(data.max())
            self._image.set_clim(low, high if high > low else low + 1)
        done = int(np.isfinite(self.data).sum())
        ax.set_title(f"{self._title}: {done}/{self.data.size} frames")
