"""A raster map of the scan that fills in as frames are analysed (in the spirit of bluesky's LiveGrid)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from laue_live._errors import SettingsError
from laue_live._maps import (
    draw_map,
    frame_value,
    grain_value,
    map_extent,
    map_geometry,
    map_image,
    map_title,
    map_value,
    value_limits,
)
from laue_live._run import ANALYSIS_KIND, FRAMES_STREAM, SPOTS_STREAM, frame_index
from laue_live._schema import FRAME_COLUMNS
from laue_live.views._base import LiveView

__all__ = ["LiveSpotMap"]

logger = logging.getLogger(__name__)

#: Spot columns kept per frame until its summary arrives: what any map value may need.
_FAMILY_COLUMNS = ("frame", "good", "edge", "masked", "saturated", "component", "intensity", "sigma_row",
                   "sigma_col")


class LiveSpotMap(LiveView):
    """Map one value per stage position over the raster while the analysis runs.

    Subscribe it to the analysis run's documents (a sink of the live callback, or the ``laue.doc``
    stream of the service). The raster shape and snaking come from the analysis start document
    (copied from the raw run's ``shape``/``snaking``); without them frames fill a single row. The
    axes are the stage positions in µm where the motors' units are lengths (:func:`~laue_live._maps.
    map_geometry`), the colour scale says what is mapped and its unit, the title says it in words.

    Parameters
    ----------
    value
        What to map (:func:`laue_live._maps.map_value`): a per-frame value (``n_good`` default,
        ``n_spots``, ``good_fraction``, ``mean_sim``, ``total_intensity``, ``median_width``,
        ``seconds``, ``failed``) or a spot-table column (``sigma_row``, ``intensity``...) summarised
        per frame by ``statistic`` over the ``spots`` family.
    spots
        For a spot column: ``all`` (default), ``good``, ``bad``, ``edge``, ``saturated`` or ``double``.
    statistic
        For a spot column: ``mean`` (default), ``median``, ``min``, ``max``, ``sum`` or ``count``.
    ax
        matplotlib Axes; a new figure if ``None``.
    shape
        ``(rows, cols)`` overriding the start document's.
    good_only
        Shorthand for ``spots="good"``.
    cmap, clim
        Colour map and fixed colour limits (autoscaled if ``None``).

    Raises
    ------
    laue_live.SettingsError
        An unknown value, family or statistic.

    Attributes
    ----------
    data
        The map, ``(rows, cols)`` float array, NaN where no frame was analysed yet (or it failed).
    value
        The :class:`~laue_live._maps.MapValue` mapped.
    """

    _grain_values = False  # LiveGrainMap maps the values of the grains

    def __init__(self, value: str = "n_good", *, spots: str | None = None, statistic: str = "mean", ax=None,
                 shape: tuple[int, int] | None = None, good_only: bool = False, cmap: str | None = None,
                 clim: tuple[float, float] | None = None, redraw_interval: float = 0.2):
        super().__init__(ax, redraw_interval=redraw_interval)
        if good_only and spots is None:
            spots = "good"
        self.value = map_value(value, spots, statistic, frame_columns=[c.name for c in FRAME_COLUMNS])
        if grain_value(self.value) is not None and not self._grain_values:
            raise SettingsError(f"{value!r} is a value of the grains: map it with LiveGrainMap({value!r})")
        self.column = value
        self.cmap = cmap
        self.clim = clim
        self._shape_override = shape
        self.shape: tuple[int, int] | None = None
        self.data: np.ndarray | None = None
        self.snaking = False
        self.run_uid: str | None = None
        self._start: dict[str, Any] = {}
        self._descriptors: dict[str, str] = {}
        self._tables: dict[int, dict[str, np.ndarray]] = {}
        self._image = None
        self._colorbar = None
        self._fixed_shape = False
        self.geometry: dict[str, Any] | None = None
        self.extent = None
        self._needs_spots = self.value.per_spot or self.value.name in ("total_intensity", "median_width")

    # -- documents ---------------------------------------------------------------------------------
    def start(self, doc: dict[str, Any]) -> None:
        if doc.get("kind") != ANALYSIS_KIND:
            return  # a raw run or another analysis: not ours
        with self._lock:
            self.run_uid = doc["uid"]
            self._start = dict(doc)
            geometry = map_geometry(doc, n_frames=16)
            self._fixed_shape = self._shape_override is not None or geometry["known"]
            self.shape = self._shape_override or geometry["shape"]
            self.geometry = geometry if self._shape_override is None else map_geometry(
                {"shape": list(self.shape)})
            self.extent = map_extent(self.geometry) if self._fixed_shape else None
            self.snaking = bool(self.geometry["snake"])  # bluesky snakes the fast axis
            self.data = self._empty(self.shape)
            self._descriptors, self._tables = {}, {}
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
        if stream == SPOTS_STREAM and self._needs_spots:
            frames = np.asarray(data["frame"])
            keep = [c for c in dict.fromkeys((*_FAMILY_COLUMNS, self.value.name)) if c in data]
            for frame in np.unique(frames):
                sel = frames == frame
                self._tables[int(frame)] = {c: np.asarray(data[c])[sel] for c in keep}
        elif stream == FRAMES_STREAM:
            for i, frame in enumerate(data["frame"]):
                summary = {k: v[i] for k, v in data.items()}
                table = self._tables.pop(int(frame), None)
                if table is None and self._needs_spots:
                    table = {c: np.empty(0) for c in (*_FAMILY_COLUMNS, self.value.name)}  # no spots
                self._set(int(frame), frame_value(self.value, summary, table))

    def stop(self, doc: dict[str, Any]) -> None:
        if doc.get("run_start") == self.run_uid:
            self._tables.clear()
            self._changed()

    def _empty(self, shape: tuple[int, int]) -> np.ndarray:
        """Return the map before any frame: NaN cells (LiveGrainMap: RGB cells for an orientation map)."""
        return np.full(shape, np.nan)

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
                self.geometry = map_geometry({}, n_frames=grown.shape[1])
            self.data[frame_index(frame, self.shape, self.snaking)] = value
            self.n_updates += 1
        self._changed()

    # -- drawing ------------------------------------------------------------------------------------
    def _draw(self) -> None:
        ax = self._ensure_axes()
        if self.data is None:
            return
        if self._image is None or self._image.get_array().shape[:2] != self.data.shape[:2]:
            ax.clear()
            self._image, self._colorbar = draw_map(ax, self.data, self.geometry, self.value, cmap=self.cmap,
                                                   clim=self.clim, colorbar=self._colorbar)
            self._start_timer()
        else:
            self._image.set_data(map_image(self.data))
            limits = self.clim or value_limits(self.value, self.data)
            if self.data.ndim == 2 and limits is not None:
                self._image.set_clim(*limits)
        cells = self.data if self.data.ndim == 2 else self.data[..., 0]
        ax.set_title(map_title(self.value, self._start, int(np.isfinite(cells).sum()), cells.size),
                     fontsize="medium")
