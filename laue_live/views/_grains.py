"""Live maps of an indexed scan: orientation (IPF colours with a key), misorientation, strain, quality.

:class:`LiveGrainMap` follows an analysis run's indexing documents (the ``grains`` stream and the
per-frame ``indexing`` rows) like :class:`~laue_live.views.LiveSpotMap` follows its frames, and draws
like it (:func:`laue_live._maps.draw_map`: stage positions in µm, labelled colour scales); the values
are those of every other map of the project (:func:`laue_live.indexing.grain_values`,
:func:`laue_live.indexing.orientation_colors`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from laue_live._maps import GRAIN_VALUE_NAMES
from laue_live._run import GRAINS_STREAM, INDEXING_KEY, INDEXING_STREAM
from laue_live.views._map import LiveSpotMap

__all__ = ["LiveGrainMap", "GRAIN_VIEW_VALUES", "NO_GRAIN_RGB"]

logger = logging.getLogger(__name__)

#: Colour of a frame indexed without a grain on an orientation map (not yet indexed or failed: grey).
NO_GRAIN_RGB = (0.0, 0.0, 0.0)


def _science():
    # why: the indexer (scipy, gemmi, pandas: 1-4 s) loads with the first indexed run, not with the views
    import laue_live.indexing as indexing

    return indexing


#: Values :class:`LiveGrainMap` shows: ``orientation`` and :data:`laue_live._maps.GRAIN_VALUE_NAMES`.
GRAIN_VIEW_VALUES = ("orientation", *GRAIN_VALUE_NAMES)


class LiveGrainMap(LiveSpotMap):
    """Map a value of each frame's grain over the raster while the run is indexed.

    Subscribe it to the analysis run's documents (a sink of the live callback, or the ``laue.doc``
    stream of the service); runs that are not indexed leave it empty. On an orientation map a frame
    indexed without a grain is black; frames failed or not (yet) indexed stay grey.

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
    sectors
        Material name -> fundamental sector of the materials shown (their colour keys).
    """

    _grain_values = True

    def __init__(self, value: str = "orientation", *, direction="z", grain: str | int = "largest",
                 reference="first", ax=None, shape: tuple[int, int] | None = None, cmap: str | None = None,
                 clim: tuple[float, float] | None = None, redraw_interval: float = 0.2):
        if value not in GRAIN_VIEW_VALUES:
            raise ValueError(f"unknown grain map value {value!r}; known: {', '.join(GRAIN_VIEW_VALUES)}")
        super().__init__(value, ax=ax, shape=shape, cmap=cmap, clim=clim, redraw_interval=redraw_interval)
        self._needs_spots = False
        self.direction = direction
        self.grain = grain
        self.reference = reference
        self.reference_u = None if isinstance(reference, str) else np.asarray(reference, dtype=float)
        self.materials: dict[str, Any] = {}
        self.sectors: dict[str, Any] = {}
        self.indexed = False
        self._grains: dict[int, dict[str, np.ndarray]] = {}
        self._key_axes = None

    # -- documents ---------------------------------------------------------------------------------
    def start(self, doc: dict[str, Any]) -> None:
        info = doc.get(INDEXING_KEY) or {}
        self.indexed = bool(info.get("enabled"))
        if not self.indexed:
            return  # not an indexed analysis run: the map stays as it is
        super().start(doc)
        with self._lock:
            self._grains = {}
            if isinstance(self.reference, str):
                self.reference_u = None
            self.materials, self.sectors = _science().materials_from_indexing(info), {}

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

    def _empty(self, shape: tuple[int, int]) -> np.ndarray:
        return np.full((*shape, 3), np.nan) if self.column == "orientation" else np.full(shape, np.nan)

    def _frame_done(self, frame: int, status: str, data: dict, i: int) -> None:
        import pandas as pd  # lazy: loaded by the indexer anyway by now

        rows = self._grains.pop(frame, None)
        if status not in ("indexed", "no_grain"):
            return  # failed or not indexed: left blank
        if self.column == "n_grains":
            self._set(frame, float(np.asarray(data["n_grains"])[i]))
            return
        if not rows:
            self._set(frame, np.array(NO_GRAIN_RGB) if self.column == "orientation" else np.nan)
            return
        sci = _science()
        table = pd.DataFrame(rows)
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
        super()._draw()
        if self.column != "orientation" or not self.sectors or self.ax is None:
            return
        if self._key_axes is None:
            self._key_axes = self.ax.inset_axes((1.02, 0.55, 0.4, 0.45))
        self._key_axes.clear()
        _science().draw_ipf_key(self._key_axes, next(iter(self.sectors.values())), self.direction)
