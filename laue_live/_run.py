"""The analysis-run contract: what every writer and reader of an analysis run agrees on.

Pure Python and numpy (no bluesky, tiled or zmq), so that the analysis, the catalog, the service
and the live views share one definition:

* An *analysis run* is a Bluesky run whose start document has ``kind`` = :data:`ANALYSIS_KIND` and
  :data:`RAW_UID` = the uid of the raw run it was computed from, plus the raw run's keys listed in
  :data:`RAW_KEYS_COPIED`.
* It has two event streams: :data:`FRAMES_STREAM` (one event per frame, the columns of
  :data:`laue_live._schema.FRAME_COLUMNS`) and :data:`SPOTS_STREAM` (one event page per frame, a
  row per spot, :data:`laue_live._schema.SPOT_COLUMNS`).
* When the frames are indexed (:func:`indexing_request`: the raw run's start document or the user's
  settings name a material and a calibration), three more streams, written as the indexing stage
  catches up, never holding back the spot rows: :data:`GRAINS_STREAM` (a row per grain,
  :data:`laue_live._schema.GRAIN_COLUMNS`), :data:`SPOT_INDEX_STREAM` (the Miller indices of the
  indexed spots keyed by ``(frame, spot)``, :data:`laue_live._schema.SPOT_INDEX_COLUMNS`) and
  :data:`INDEXING_STREAM` (one row per frame, :data:`laue_live._schema.INDEXING_COLUMNS`), and the
  start document's :data:`INDEXING_KEY` entry says what was used.
* A *summary* stream's row for a frame is written after that frame's rows of the streams it
  vouches for (:data:`SUMMARY_STREAMS`): a summary row in the catalog means the frame is complete.
* In Tiled, the rows of each stream are the appendable table :data:`TABLE_KEY` of the stream's node
  (TiledWriter's layout; only :mod:`laue_live.catalog` goes there).
* In the *raw run*, the frames are the data key :func:`find_image_field` finds, the stage positions
  the data keys :func:`position_fields` finds, and the raster of the scan is what
  :func:`scan_geometry` reads from the start document; :func:`frame_index` places a frame on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ANALYSIS_KIND",
    "RAW_UID",
    "RAW_KEYS_COPIED",
    "FRAMES_STREAM",
    "SPOTS_STREAM",
    "STREAMS",
    "TABLE_KEY",
    "GRAINS_STREAM",
    "SPOT_INDEX_STREAM",
    "INDEXING_STREAM",
    "INDEXING_STREAMS",
    "SUMMARY_STREAMS",
    "MATERIAL_KEY",
    "CALIBRATION_KEY",
    "ENERGY_RANGE_KEY",
    "INDEXING_KEY",
    "IndexingRequest",
    "indexing_request",
    "find_image_field",
    "scan_axes",
    "position_fields",
    "ScanGeometry",
    "scan_geometry",
    "imshow_extent",
    "frame_index",
]

#: ``kind`` of every analysis run's start document (query it with ``Key("kind") == ANALYSIS_KIND``).
ANALYSIS_KIND = "laue-spots"
#: Start-document key of an analysis run that holds the uid of its raw run.
RAW_UID = "raw_uid"
#: Keys of the raw run's start document copied into the analysis run's start document.
RAW_KEYS_COPIED = ("laue_live", "sample", "material", "shape", "extents", "motors", "snaking", "plan_name",
                   "scan_id", "detectors", "raster", "proposal", "beamline_id", "operator")
#: The per-frame summary stream (written after the frame's spot rows).
FRAMES_STREAM = "frames"
#: The spot-table stream.
SPOTS_STREAM = "spots"
#: Both streams of an analysis run.
STREAMS = (FRAMES_STREAM, SPOTS_STREAM)
#: Key of a stream's appendable table in Tiled: ``<run>/<stream>/internal`` (TiledWriter's layout).
TABLE_KEY = "internal"
#: One row per grain found (indexing).
GRAINS_STREAM = "grains"
#: ``grain, h, k, l, deviation_px`` of the indexed spots, keyed by ``(frame, spot)`` of the spot table.
SPOT_INDEX_STREAM = "indexed_spots"
#: One row per frame: the frame's indexing status (written after its grains and indexed spots).
INDEXING_STREAM = "indexing"
#: The streams of the indexing stage, summary first.
INDEXING_STREAMS = (INDEXING_STREAM, GRAINS_STREAM, SPOT_INDEX_STREAM)
#: Summary stream -> the streams whose rows of a frame are written before the frame's summary row.
SUMMARY_STREAMS = {FRAMES_STREAM: (SPOTS_STREAM,), INDEXING_STREAM: (GRAINS_STREAM, SPOT_INDEX_STREAM)}

# -- indexing: what the raw run's start document (or the user's settings) asks for ---------------
#: The sample's material: a name (``"Si"``), several names (a substrate first, then what grows on
#: it), or a mapping ``{"name", "lattice": [a, b, c, alpha, beta, gamma], "space_group", "atoms"}``
#: or ``{"cif": path}``. Already a usual start-document key (copied into the analysis run).
MATERIAL_KEY = "material"
#: The detector calibration: a LaueTools ``.det`` path, LaueTools' parameters as a mapping
#: (``dd, xcen, ycen, xbet, xgam, pixel_size, frame_shape``, or LaueTools' own ``CCDCalibParameters``,
#: ``pixelsize``, ``framedim``), or the numbers of a ``.det`` first line ``[dd, xcen, ycen, xbet, xgam
#: (, pixelsize, rows, cols)]``.
CALIBRATION_KEY = "calibration"
#: ``[E_min, E_max]`` of the white beam, keV (default 5-23).
ENERGY_RANGE_KEY = "energy_range"
#: In a raw start document: ``false`` (no indexing) or a mapping with any of the three keys above
#: plus indexer options (``max_grains``, ``refine_strain``, ...), taking precedence over them. In an
#: analysis start document: what the indexing stage used (``enabled``, ``materials``,
#: ``calibration``, ``energy_range``, ``options``), or ``enabled: false`` and the ``reason``.
INDEXING_KEY = "indexing"
_ENERGY_KEYS = (ENERGY_RANGE_KEY, "energy_range_keV")

# Start-document keys that record the raster shape, in the order they are looked for.
_SHAPE_KEYS = ("shape", "raw_shape", "scan_shape")


# ------------------------------------------------------------------------------------------ indexing
@dataclass(frozen=True)
class IndexingRequest:
    """What indexing a run asks for, as plain values.

    :mod:`laue_live.analysis` resolves them into materials, a calibration and indexer settings.

    Attributes
    ----------
    material
        As the start document or the settings give it (see :data:`MATERIAL_KEY`).
    calibration
        As given (see :data:`CALIBRATION_KEY`).
    energy_range
        ``(E_min, E_max)`` keV, or None for the default.
    options
        Indexer options (``laue_live.indexing.IndexerSettings`` fields) from the start document's
        :data:`INDEXING_KEY` mapping and the settings.
    sources
        Where each of ``material``, ``calibration``, ``energy_range`` came from: ``"start"`` or
        ``"settings"``.
    """

    material: Any
    calibration: Any
    energy_range: tuple[float, float] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)


def _start_value(start: Mapping[str, Any], keys: Sequence[str]) -> Any:
    # The ``indexing`` mapping first, then the top level, then the ``laue_live`` entry (the raster
    # plan records material and calibration there), then its ``sample`` description.
    nested = start.get("laue_live") if isinstance(start.get("laue_live"), Mapping) else {}
    sample = nested.get("sample") if isinstance(nested.get("sample"), Mapping) else {}
    places = [start.get(INDEXING_KEY), nested.get(INDEXING_KEY), start, nested, sample]
    for place in places:
        if isinstance(place, Mapping):
            for key in keys:
                if place.get(key) not in (None, "", [], {}):
                    return place[key]
    return None


def indexing_request(start: Mapping[str, Any], settings: Mapping[str, Any] | None = None, *,
                     prefer: str = "start") -> tuple[IndexingRequest | None, str]:
    """Read what indexing a raw run asks for from its start document and the user's settings.

    Parameters
    ----------
    start
        The raw run's start document.
    settings
        The user's indexing settings (callback arguments, service settings): ``material``,
        ``calibration``, ``energy_range``, ``enabled`` (False: never index), and indexer options.
    prefer
        ``"start"`` (default): the start document's values win and the settings fill in what it
        lacks (e.g. the beamline's calibration); ``"settings"``: the settings win.

    Returns
    -------
    (request, reason)
        The request, or None and why not (no material, no calibration, disabled).
    """
    settings = dict(settings or {})
    if settings.pop("enabled", True) is False:
        return None, "indexing disabled in the settings"
    if start.get(INDEXING_KEY) is False or (isinstance(start.get("laue_live"), Mapping)
                                           and start["laue_live"].get(INDEXING_KEY) is False):
        return None, "indexing disabled by the start document"
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, keys in ((MATERIAL_KEY, (MATERIAL_KEY,)), (CALIBRATION_KEY, (CALIBRATION_KEY,)),
                       (ENERGY_RANGE_KEY, _ENERGY_KEYS)):
        from_start = _start_value(start, keys)
        from_settings = settings.pop(name, None)
        order = [("start", from_start), ("settings", from_settings)]
        if prefer == "settings":
            order.reverse()
        for source, value in order:
            if value not in (None, "", [], {}):
                values[name], sources[name] = value, source
                break
    options = {k: v for k, v in settings.items() if v is not None}
    for place in (start.get(INDEXING_KEY), (start.get("laue_live") or {}).get(INDEXING_KEY)
                  if isinstance(start.get("laue_live"), Mapping) else None):
        if isinstance(place, Mapping):
            options.update({k: v for k, v in place.items()
                            if k not in (MATERIAL_KEY, CALIBRATION_KEY, *_ENERGY_KEYS, "enabled")})
    if MATERIAL_KEY not in values:
        return None, "no material named (start document key 'material' or the settings)"
    if CALIBRATION_KEY not in values:
        return None, "no calibration named (start document key 'calibration' or the settings)"
    energy = values.get(ENERGY_RANGE_KEY)
    if energy is not None:
        try:
            e_min, e_max = (float(e) for e in energy)
        except (TypeError, ValueError):
            return None, f"energy_range must be [E_min, E_max] in keV, got {energy!r}"
        energy = (e_min, e_max)
    return IndexingRequest(values[MATERIAL_KEY], values[CALIBRATION_KEY], energy, options, sources), ""


# ------------------------------------------------------------------------------------------ raw run
def _is_image_shape(shape) -> bool:
    dims = [d for d in (shape or []) if d != 1]
    return len(dims) == 2 and all(d is None or d > 1 for d in dims)


def find_image_field(data_keys: Mapping[str, Mapping[str, Any]], configured: str | None = None) -> str | None:
    """Return the data key of a descriptor that holds detector frames, or None.

    Parameters
    ----------
    data_keys
        The descriptor's ``data_keys``.
    configured
        A name given by the user: used if present in ``data_keys``.

    Returns
    -------
    str or None
        ``configured`` if present, else the key with a 2-D shape (``(H, W)`` or ``(1, H, W)``),
        preferring names ending in ``_image``; None if the stream holds no frames.
    """
    if configured is not None:
        return configured if configured in data_keys else None
    candidates = [k for k, v in data_keys.items() if _is_image_shape(v.get("shape"))]
    if not candidates:
        return None
    preferred = [k for k in candidates if k.endswith("_image")]
    return (preferred or candidates)[0]


def scan_axes(start: Mapping[str, Any]) -> list[str]:
    """Return the (x, y) stage motor names: laue_live raster metadata, else the first two ``motors``."""
    laue = start.get("laue_live") or {}
    if isinstance(laue, Mapping) and laue.get("x_motor") and laue.get("y_motor"):
        return [laue["x_motor"], laue["y_motor"]]
    return list(start.get("motors") or [])[:2]


def position_fields(start: Mapping[str, Any], keys) -> tuple[str | None, str | None]:
    """Return the data keys (or table columns) holding the x and y stage positions, None if absent.

    For each motor of :func:`scan_axes`: the key named like the motor, else ``<motor>_user_readback``,
    ``<motor>_readback``, else the first ``<motor>_...`` key that is not a setpoint.
    """
    keys = list(keys)
    found: list[str | None] = []
    for motor in scan_axes(start):
        candidates = [motor, f"{motor}_user_readback", f"{motor}_readback"]
        candidates += [k for k in keys if k.startswith(f"{motor}_") and not k.endswith("_setpoint")]
        found.append(next((k for k in candidates if k in keys), None))
    found += [None] * (2 - len(found))
    return found[0], found[1]


# ------------------------------------------------------------------------------------------ raster
@dataclass(frozen=True)
class ScanGeometry:
    """The raster of a scan as its start document records it (bluesky's ``grid_scan`` keys).

    Attributes
    ----------
    shape
        ``(rows, cols)``, rows along the first (slow) axis; a 1-D scan is one row; None if unrecorded.
    ndim
        Dimensions recorded (1 or 2; 0 if no shape).
    extents
        ``[[slow_start, slow_stop], [fast_start, fast_stop]]`` in motor units, as recorded, or None.
    snaking
        ``(slow, fast)``: whether each axis runs backwards on every other pass.
    motors
        Motor names, slow axis first, as recorded, or None.
    units
        The motors' engineering units (``"um"`` for the simulated stage), from the raster plan's
        ``laue_live`` entry or a top-level ``units``; ``""`` if unrecorded.
    """

    shape: tuple[int, int] | None
    ndim: int
    extents: Any
    snaking: tuple[bool, bool]
    motors: Any
    units: str = ""

    @property
    def unit_label(self) -> str:
        """The units for an axis label: ``"µm"`` for ``um``/``micron``, else as recorded."""
        return {"um": "µm", "micron": "µm", "microns": "µm", "mum": "µm"}.get(self.units.lower(), self.units)


def _valid_shape(shape) -> bool:
    return isinstance(shape, list | tuple) and 1 <= len(shape) <= 2 and all(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n > 0 for n in shape)


def _snaking(value) -> tuple[bool, bool]:
    if isinstance(value, list | tuple):
        if len(value) >= 2:
            return bool(value[0]), bool(value[1])
        return (False, bool(value[0])) if value else (False, False)
    return False, bool(value)


def scan_geometry(start: Mapping[str, Any]) -> ScanGeometry:
    """Read the raster of a scan from a start document (raw or analysis run).

    The shape is ``shape`` (bluesky's ``grid_scan``; the analysis run copies it), else ``raw_shape``
    or ``scan_shape``, at the top level and then in the ``laue_live`` entry; ``extents``,
    ``snaking`` and ``motors`` come from the same place as the shape.
    """
    nested = start.get("laue_live")
    sources = [start, nested] if isinstance(nested, Mapping) else [start]
    units = next((str(src["units"]) for src in (start, *sources[1:])
                  if isinstance(src.get("units"), str)), "")
    for src in sources:
        for key in _SHAPE_KEYS:
            shape = src.get(key)
            if _valid_shape(shape):
                dims = [int(n) for n in shape]
                return ScanGeometry(shape=(1, dims[0]) if len(dims) == 1 else (dims[0], dims[1]),
                                    ndim=len(dims), extents=src.get("extents"),
                                    snaking=_snaking(src.get("snaking")), motors=src.get("motors"),
                                    units=units)
    return ScanGeometry(shape=None, ndim=0, extents=start.get("extents"),
                        snaking=_snaking(start.get("snaking")), motors=start.get("motors"), units=units)


def imshow_extent(extents, shape: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """Return the ``imshow`` extent (left, right, bottom, top) in motor units, or None if unusable.

    ``extents = [[slow_start, slow_stop], [fast_start, fast_stop]]`` as ``grid_scan`` records it;
    each cell is centred on its stage position (as bluesky's ``LiveGrid`` draws it), so the image
    reaches half a step beyond the first and last positions (half a motor unit for a single point).
    """
    try:
        (y0, y1), (x0, x1) = [(float(a), float(b)) for a, b in extents]
    except (TypeError, ValueError):
        return None
    rows, cols = shape
    hx = abs(x1 - x0) / (2 * (cols - 1)) if cols > 1 else 0.5
    hy = abs(y1 - y0) / (2 * (rows - 1)) if rows > 1 else 0.5
    sx = 1.0 if x1 >= x0 else -1.0
    sy = 1.0 if y1 >= y0 else -1.0
    return (x0 - sx * hx, x1 + sx * hx, y1 + sy * hy, y0 - sy * hy)


def frame_index(frame, shape: Sequence[int], snaking: bool = False):
    """Grid cell ``(row, col)`` of frame ``frame`` (0-based; an int or an array of them) in a raster.

    Frames fill row after row (the first scan axis is the slow one); with ``snaking`` every odd row
    runs backwards, as bluesky's ``grid_scan(..., snake_axes=True)`` moves.
    """
    cols = int(shape[1])
    row, col = np.divmod(np.asarray(frame, dtype=np.int64), cols)
    if snaking:
        col = np.where(row % 2 == 1, cols - 1 - col, col)
    if np.ndim(row) == 0:
        return int(row), int(col)
    return row, col
