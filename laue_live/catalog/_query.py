"""Read analysis results back: spot tables, per-frame summaries, the raster, quality and grain maps.

Runs are found with :mod:`laue_live.catalog._runs`. Row selection inside a spot table is not done
by the server: Tiled's HTTP API selects columns only, so frame ranges and ``good_only`` are applied
in pandas after reading the needed columns. The indexing tables are read by
:mod:`laue_live.catalog._grains`; the maps of their values (orientation, misorientation, strain,
matched fraction) are placed on the raster here, like the quality maps.
"""

from __future__ import annotations

import logging

import numpy as np

from laue_live._errors import SettingsError
from laue_live._maps import ORIENTATION, MapValue, grain_value, map_value, run_values
from laue_live._run import FRAMES_STREAM, SPOTS_STREAM, frame_index, scan_geometry
from laue_live._schema import FRAME_COLUMNS, SPOT_COLUMNS, SPOT_INDEX_COLUMNS, empty_spot_table
from laue_live.catalog._grains import get_grains, get_spot_indices, run_materials
from laue_live.catalog._layout import stream_table_node
from laue_live.catalog._runs import get_raw_run, get_run

__all__ = [
    "get_spot_table",
    "frame_summary",
    "raster_geometry",
    "quality_map",
    "map_values",
    "orientation_map",
]

logger = logging.getLogger(__name__)

_SPOT_NAMES = [c.name for c in SPOT_COLUMNS]
_FRAME_NAMES = [c.name for c in FRAME_COLUMNS]


def get_spot_table(run, frames: tuple[int, int] | int | None = None, good_only: bool = False,
                   columns: list[str] | None = None, *, indexed: bool = False, catalog=None):
    """Return the spot table of an analysis run (all frames, frames ``i..j`` inclusive, or good spots only).

    Parameters
    ----------
    run
        Analysis-run client, or a uid (then ``catalog`` is needed).
    frames
        ``(first, last)`` inclusive frame range, a single frame, or None for all.
    good_only
        Keep only good spots (``good`` column true).
    columns
        Schema columns to return (default all); ``frame`` is always included.
    indexed
        Add the indexing's ``grain, h, k, l, deviation_px`` (the run's ``indexed_spots`` stream,
        joined on ``(frame, spot)``): ``grain = -1``, ``h = k = l = 0`` and NaN deviation for spots
        of no grain (and for every spot of a run or frame not indexed).
    catalog
        Catalog to look ``run`` up in when it is a uid.

    Returns
    -------
    pandas.DataFrame
        One row per spot, schema dtypes (:data:`laue_live._schema.SPOT_COLUMNS`), sorted by
        (frame, spot). Rows are filtered client-side: Tiled selects columns only.
    """
    import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.catalog`

    if isinstance(run, (str, int)):
        if catalog is None:
            raise TypeError("get_spot_table(uid) needs catalog=")
        run = get_run(catalog, run)
    wanted = list(columns) if columns else list(_SPOT_NAMES)
    unknown = [c for c in wanted if c not in _SPOT_NAMES]
    if unknown:
        raise KeyError(f"unknown spot-table column(s) {unknown}; known: {_SPOT_NAMES}")
    if "frame" not in wanted:
        wanted.insert(0, "frame")
    read = list(dict.fromkeys(wanted + (["good"] if good_only else []) + (["spot"] if "spot" not in wanted
                                                                          else [])))
    table = stream_table_node(run, SPOTS_STREAM)
    if table is None:
        df = empty_spot_table()
    else:
        df = table.read(columns=read)
    if frames is not None:
        lo, hi = (frames, frames) if isinstance(frames, (int, np.integer)) else frames
        df = df[(df["frame"] >= lo) & (df["frame"] <= hi)]
    if good_only:
        df = df[df["good"].astype(bool)]
    df = df.sort_values(["frame", "spot"], kind="stable")
    dtypes = {c.name: c.dtype for c in SPOT_COLUMNS}
    out = pd.DataFrame({c: df[c].to_numpy().astype(dtypes[c], copy=False) for c in wanted})
    if indexed:
        labels = get_spot_indices(run).set_index(["frame", "spot"])
        key = pd.MultiIndex.from_arrays([df["frame"].to_numpy(), df["spot"].to_numpy()])
        for c in SPOT_INDEX_COLUMNS[2:]:
            fill = np.nan if c.name == "deviation_px" else (-1 if c.name == "grain" else 0)
            values = labels[c.name].reindex(key).to_numpy() if len(labels) else np.full(len(df), np.nan)
            out[c.name] = np.where(pd.isna(values), fill, values).astype(c.dtype)
    return out


def frame_summary(run, *, catalog=None):
    """Return the per-frame summary (``frames`` stream) of an analysis run, one row per frame, sorted."""
    import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.catalog`

    if isinstance(run, (str, int)):
        run = get_run(catalog, run)
    table = stream_table_node(run, FRAMES_STREAM)
    if table is None:
        return pd.DataFrame({c.name: np.empty(0, dtype=object if c.dtype == "str" else c.dtype)
                             for c in FRAME_COLUMNS})
    df = table.read()
    cols = [c for c in _FRAME_NAMES if c in df.columns]
    # A frame re-analysed after a failure has two rows: keep the last one written.
    return df[cols].drop_duplicates("frame", keep="last").sort_values("frame").reset_index(drop=True)


def raster_geometry(run, *, catalog=None) -> dict:
    """Raster of the scan behind an analysis (or raw) run: shape, extents, snaking, motors.

    Read from the run's start document (``shape``, ``extents``, ``snaking``, ``motors`` as
    bluesky's ``grid_scan`` records them; :func:`laue_live._run.scan_geometry`), else from the raw
    run's.

    Returns
    -------
    dict
        ``shape`` (rows, cols), ``extents`` ((row_start, row_stop), (col_start, col_stop)) or None,
        ``snaking`` (bool, bool), ``motors`` (names, slow axis first) or None, and ``start``: the
        start document they were read from (for :func:`laue_live._maps.map_geometry`).

    Raises
    ------
    KeyError
        Neither start document records a 2-D shape.
    """
    starts = [dict(run.metadata["start"])]
    if catalog is not None:
        raw = get_raw_run(catalog, run)
        if raw is not None:
            starts.append(dict(raw.metadata["start"]))
    for start in starts:
        geom = scan_geometry(start)
        if geom.ndim == 2:
            return {"shape": geom.shape, "extents": geom.extents, "snaking": geom.snaking,
                    "motors": geom.motors, "start": start}
    raise KeyError("no 2-D raster shape in the start document of the run or of its raw run")


def quality_map(run, value: str | MapValue = "n_good", *, catalog=None, shape: tuple[int, int] | None = None,
                snaking: tuple[bool, bool] | None = None, spots: str | None = None,
                statistic: str = "mean", grain: str | int = "largest", reference="first") -> np.ndarray:
    """Return one value per frame as a 2-D array over the raster (rows: slow motor, columns: fast motor).

    Parameters
    ----------
    run
        Analysis-run client (or uid with ``catalog``).
    value
        What to map (:func:`laue_live._maps.map_value`): a per-frame value (``n_good``, ``n_spots``,
        ``good_fraction`` in %, ``mean_sim``, ``total_intensity``, ``median_width``, ``seconds``,
        ``failed``), another numeric column of the run's per-frame table, or a spot-table column
        (``sigma_row``, ``intensity``...) summarised per frame by ``statistic`` over the ``spots``
        family; or of an indexed run, a grain value (:data:`laue_live._maps.GRAIN_VALUES`:
        ``misorientation`` in degrees, ``strain_xx`` ... ``equivalent_strain`` in 1e-3,
        ``matched_fraction``, ``deviation_px``, ``n_grains``...; :func:`orientation_map` for the
        orientation); or a :class:`~laue_live._maps.MapValue`.
    catalog
        Used to read the raw run's start document when the analysis run lacks the raster shape.
    shape, snaking
        Override the raster read from the start documents.
    spots, statistic
        For a spot column: the family (``all``, ``good``, ``bad``, ``edge``, ``saturated``,
        ``double``) and the statistic (``mean``, ``median``, ``min``, ``max``, ``sum``, ``count``).
    grain
        Grain values: which grain of a frame, ``"largest"`` (most matched spots) or a grain number.
    reference
        ``misorientation``: ``"first"`` (the first indexed frame's grain) or a 3 x 3 orientation matrix.

    Returns
    -------
    numpy.ndarray
        float64 ``shape``-sized array; NaN where a frame is missing or failed (or has no grain).

    Raises
    ------
    laue_live.SettingsError
        An unknown value, family or statistic (the message lists what may be mapped).
    KeyError
        No 2-D raster shape is recorded (and ``shape`` is not given).
    """
    run, shape, snaking = _raster(run, catalog, shape, snaking)
    frames, values = map_values(run, value, spots=spots, statistic=statistic, grain=grain,
                                reference=reference)
    return _place(frames, values, shape, snaking)


def map_values(run, value: str | MapValue = "n_good", *, spots: str | None = None, statistic: str = "mean",
               grain: str | int = "largest", reference="first") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(frames, values)``: one value per analysed (or, grain values, indexed) frame of a run.

    See :func:`quality_map`; only the spot columns the value needs are read from Tiled.
    """
    summary = frame_summary(run)
    if not isinstance(value, MapValue):
        value = map_value(value, spots, statistic, frame_columns=list(summary.columns))
    if value is ORIENTATION:
        raise SettingsError("the orientation is mapped in colours: use orientation_map")
    if grain_value(value) is not None:
        from laue_live.indexing import grain_values  # why: the indexer (scipy, gemmi) loads with a grain map

        series = grain_values(get_grains(run, positions=False), value.name, grain=grain, reference=reference,
                              materials=run_materials(run))
        return series.index.to_numpy(np.int64), series.to_numpy(float)
    wanted = []
    if value.per_spot:
        wanted = ["frame", value.name, "good", "edge", "masked", "saturated", "component"]
    elif value.name in ("total_intensity", "median_width"):
        wanted = ["frame", "intensity", "sigma_row", "sigma_col"]
    table = None
    node = stream_table_node(run, SPOTS_STREAM) if wanted else None
    if node is not None:
        present = set(node.structure().columns)  # a run of an older schema lacks newer flags
        if value.per_spot and value.name not in present:
            raise SettingsError(f"the spot table of this run has no column {value.name!r}")
        table = node.read(columns=[c for c in dict.fromkeys(wanted) if c in present])
    result = run_values(summary, table if table is not None and len(table) else None, value)
    return np.asarray(result["frames"], np.int64), np.asarray(result["values"][value.name], float)


def _raster(run, catalog, shape, snaking):
    """``(run client, shape, snaking)``: the raster of a map, read from the start documents unless given."""
    if isinstance(run, (str, int)):
        run = get_run(catalog, run)
    if shape is None:
        geom = raster_geometry(run, catalog=catalog)
        shape, snaking = geom["shape"], snaking or geom["snaking"]
    return run, shape, snaking or (False, False)


def _place(frames: np.ndarray, values: np.ndarray, shape, snaking) -> np.ndarray:
    """Per-frame values (or RGB rows) on the raster; NaN where there is none."""
    values = np.asarray(values, dtype=float)
    out = np.full(tuple(shape) + values.shape[1:], np.nan)
    ok = (frames >= 0) & (frames < shape[0] * shape[1])
    if not ok.all():
        logger.warning("%d frame(s) outside the %s raster ignored", int((~ok).sum()), shape)
    rows, cols = frame_index(frames[ok], shape, snaking[1])  # bluesky snakes the fast axis
    out[rows, cols] = values[ok]
    return out


def orientation_map(run, direction="z", *, grain: str | int = "largest", catalog=None,
                    shape: tuple[int, int] | None = None, snaking: tuple[bool, bool] | None = None):
    """Return the orientation map of an indexed run: inverse-pole-figure colours over the raster.

    Parameters
    ----------
    run
        Analysis-run client (or uid with ``catalog``).
    direction
        Sample direction whose crystal direction is coloured: ``"x"`` (beam), ``"y"``, ``"z"`` (up),
        LaueTools' lab frame, or a 3-vector.
    grain
        Which grain of a frame: ``"largest"`` (most matched spots) or a grain number.
    catalog, shape, snaking
        As for :func:`quality_map`.

    Returns
    -------
    rgb, sectors
        ``(rows, cols, 3)`` float RGB in [0, 1] (NaN where no grain), and the fundamental sector of
        each material shown (:class:`laue_live.indexing.IPFSector`, for the colour key), by name.
    """
    from laue_live.indexing import ipf_sector, orientation_colors  # why: the indexer loads with a map

    run, shape, snaking = _raster(run, catalog, shape, snaking)
    materials = run_materials(run)
    colours = orientation_colors(get_grains(run, positions=False), direction, grain=grain,
                                 materials=materials)
    rgb = _place(colours.index.to_numpy(np.int64), colours[["r", "g", "b"]].to_numpy(float), shape, snaking)
    sectors = {name: ipf_sector(materials.get(name, name)) for name in colours["material"].unique()}
    return rgb, sectors
