"""Read analysis results back: run lists, spot tables, per-frame summaries, quality maps.

Run-level selection (sample, material, dates, raw uid) is a Tiled query evaluated by the server.
Row selection inside a spot table is not: Tiled's HTTP API selects columns only, so frame ranges
and ``good_only`` are applied in pandas after reading the needed columns.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np

from laue_live._errors import SettingsError
from laue_live._schema import FRAME_COLUMNS, SPOT_COLUMNS, empty_spot_table

__all__ = [
    "stream_table_node",
    "runs_query",
    "search_runs",
    "find_runs",
    "list_analysis_runs",
    "get_run",
    "get_raw_run",
    "get_spot_table",
    "frame_summary",
    "raster_geometry",
    "quality_map",
]

logger = logging.getLogger(__name__)

_SPOT_NAMES = [c.name for c in SPOT_COLUMNS]
_FRAME_NAMES = [c.name for c in FRAME_COLUMNS]


def _timestamp(value: Any, name: str) -> float:
    """Seconds since the epoch (UTC) of a datetime, date, ISO string or number."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not an ISO date (YYYY-MM-DD[THH:MM[:SS]])") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.astimezone()  # naive: local time, as people type it
        return value.timestamp()
    raise SettingsError(f"{name} must be a date, datetime, ISO string or epoch seconds, got {value!r}")


def runs_query(*, sample: str | None = None, material: str | None = None, since: Any = None,
               until: Any = None, raw_uid: str | None = None, kind: str | None = None,
               **equal: Any) -> list:
    """Tiled queries on start-document keys (combine them with successive ``search`` calls).

    Parameters
    ----------
    sample, material
        Exact match on ``start.sample`` / ``start.material``.
    since, until
        Runs started at or after ``since`` and before ``until`` (datetime, date, ISO string or
        epoch seconds; naive values are local time).
    raw_uid
        Analysis runs of this raw run (``start.raw_uid``).
    kind
        ``start.kind`` (``"laue-spots"`` for analysis runs).
    **equal
        Further exact matches, ``key=value`` on ``start.<key>`` (dots for nested keys).
    """
    from tiled.queries import Comparison, Key

    qs = []
    for key, value in {"sample": sample, "material": material, "raw_uid": raw_uid, "kind": kind,
                       **equal}.items():
        if value is not None:
            qs.append(Key(f"start.{key}") == value)
    if since is not None:
        qs.append(Comparison("ge", "start.time", _timestamp(since, "since")))
    if until is not None:
        qs.append(Comparison("lt", "start.time", _timestamp(until, "until")))
    return qs


def search_runs(container, queries: Iterable | dict | None = None, **filters):
    """Search ``container`` with Tiled queries and/or :func:`runs_query` filters; return the result node."""
    if isinstance(queries, dict):
        filters = {**queries, **filters}
        queries = None
    result = container
    for q in [*(queries or []), *runs_query(**filters)]:
        result = result.search(q)
    return result


def _summary_row(key: str, md: dict) -> dict:
    start, stop = md.get("start", {}) or {}, md.get("stop", {}) or {}
    model = start.get("model") or {}
    return {
        "uid": start.get("uid", key),
        "scan_id": start.get("scan_id", start.get("raw_scan_id")),
        "time": dt.datetime.fromtimestamp(start["time"]).isoformat(timespec="seconds") if "time" in start
        else None,
        "sample": start.get("sample"),
        "material": start.get("material"),
        "raw_uid": start.get("raw_uid"),
        "method": start.get("method"),
        "model": model.get("name", start.get("model_name")) if isinstance(model, dict) else model,
        "model_version": model.get("version", start.get("model_version")) if isinstance(model, dict)
        else start.get("model_version"),
        "plan_name": start.get("plan_name"),
        "shape": "x".join(map(str, start["shape"])) if isinstance(start.get("shape"), list) else None,
        "exit_status": stop.get("exit_status"),
        "n_events": sum((stop.get("num_events") or {}).values()) if stop else None,
    }


def find_runs(catalog, *, where: str = "analysis", queries: Iterable | None = None,
              limit: int | None = None, **filters):
    """One row per run matching the filters, newest first.

    Parameters
    ----------
    catalog
        A :class:`~laue_live.catalog.Catalog` (or a Tiled container of runs).
    where
        ``"analysis"`` or ``"raw"``: which container of the catalog to search.
    queries
        Extra Tiled query objects.
    limit
        At most this many runs (newest first).
    **filters
        ``sample``, ``material``, ``since``, ``until``, ``raw_uid``, ``kind``, or ``key=value``.

    Returns
    -------
    pandas.DataFrame
        Columns ``uid, scan_id, time, sample, material, raw_uid, method, model, model_version,
        plan_name, shape, exit_status, n_events``.
    """
    import pandas as pd

    container = catalog[where] if hasattr(catalog, "analysis") else catalog
    result = search_runs(container, queries, **filters)
    rows = []
    # Sorted by the server, newest first, so that `limit` stops the paging early; items() pages
    # through the results with their metadata: one request per page, not per run.
    try:
        result = result.sort(("start.time", -1))
    except Exception:  # noqa: BLE001 - a server that cannot sort: sorted below instead
        logger.debug("server-side sort unavailable", exc_info=True)
    for key, node in itertools.islice(result.items(), limit):
        rows.append(_summary_row(key, dict(node.metadata)))
    df = pd.DataFrame(rows, columns=list(_summary_row("", {}).keys()))
    df = df.sort_values("time", ascending=False, na_position="last").reset_index(drop=True)
    return df.head(limit) if limit else df


def list_analysis_runs(catalog, *, limit: int | None = None, **filters):
    """Analysis runs of the catalog, newest first (see :func:`find_runs` for the filters)."""
    return find_runs(catalog, where="analysis", limit=limit, **filters)


def get_run(catalog, run: str | int, where: str = "analysis"):
    """Return a run client by uid, partial uid, scan id, negative index or ``"latest"`` (= ``-1``)."""
    if not isinstance(run, (str, int)):
        return run  # already a run client
    if catalog is None:
        raise TypeError(f"looking up run {run!r} needs a catalog")
    container = catalog[where] if hasattr(catalog, "analysis") else catalog
    if run == "latest":
        run = -1
    if isinstance(run, str) and run.lstrip("-").isdigit():
        run = int(run)
    try:
        return container[run]
    except (KeyError, IndexError, ValueError) as exc:
        raise KeyError(f"no {where} run {run!r}: {exc}") from None


def get_raw_run(catalog, analysis_run):
    """Return the raw run an analysis run was computed from (its ``raw_uid``), or None if absent."""
    raw_uid = analysis_run.metadata["start"].get("raw_uid")
    if raw_uid is None:
        return None
    try:
        return catalog["raw"][raw_uid]
    except KeyError:
        return None


def stream_table_node(run, stream: str):
    """Return the appendable table node of ``stream`` in a run in Tiled, or None if it has none yet."""
    try:
        node = run[stream]
    except KeyError:
        return None
    node = getattr(node, "base", node)
    try:
        return node["internal"]
    except KeyError:
        return None


def get_spot_table(run, frames: tuple[int, int] | int | None = None, good_only: bool = False,
                   columns: list[str] | None = None, *, catalog=None):
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
    catalog
        Catalog to look ``run`` up in when it is a uid.

    Returns
    -------
    pandas.DataFrame
        One row per spot, schema dtypes (:data:`laue_live._schema.SPOT_COLUMNS`), sorted by
        (frame, spot). Rows are filtered client-side: Tiled selects columns only.
    """
    import pandas as pd

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
    table = stream_table_node(run, "spots")
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
    return pd.DataFrame({c: df[c].to_numpy().astype(dtypes[c], copy=False) for c in wanted})


def frame_summary(run, *, catalog=None):
    """Return the per-frame summary (``frames`` stream) of an analysis run, one row per frame, sorted."""
    import pandas as pd

    if isinstance(run, (str, int)):
        run = get_run(catalog, run)
    table = stream_table_node(run, "frames")
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
    bluesky's ``grid_scan`` records them, or ``laue_live.shape`` ...), else from the raw run's.

    Returns
    -------
    dict
        ``shape`` (rows, cols), ``extents`` ((row_start, row_stop), (col_start, col_stop)) or None,
        ``snaking`` (bool, bool), ``motors`` (names, slow axis first) or None.

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
        for src in (start, start.get("laue_live") or {}):
            shape = src.get("shape")
            if isinstance(shape, (list, tuple)) and len(shape) == 2:
                snaking = src.get("snaking") or [False, False]
                return {"shape": (int(shape[0]), int(shape[1])),
                        "extents": src.get("extents"),
                        "snaking": (bool(snaking[0]), bool(snaking[1])) if len(snaking) >= 2
                        else (False, False),
                        "motors": src.get("motors")}
    raise KeyError("no 2-D raster shape in the start document of the run or of its raw run")


def quality_map(run, value: str = "n_good", *, catalog=None, shape: tuple[int, int] | None = None,
                snaking: tuple[bool, bool] | None = None) -> np.ndarray:
    """Return a per-frame value as a 2-D array over the raster (rows: slow motor, columns: fast motor).

    Parameters
    ----------
    run
        Analysis-run client (or uid with ``catalog``).
    value
        Column of the per-frame summary (``n_good``, ``n_spots``, ``mean_sim``, ``seconds``...), or
        ``good_fraction`` (n_good / n_spots).
    catalog
        Used to read the raw run's start document when the analysis run lacks the raster shape.
    shape, snaking
        Override the raster read from the start documents.

    Returns
    -------
    numpy.ndarray
        float64 ``shape``-sized array; NaN where a frame is missing or failed.
    """
    if isinstance(run, (str, int)):
        run = get_run(catalog, run)
    if shape is None:
        geom = raster_geometry(run, catalog=catalog)
        shape, snaking = geom["shape"], snaking or geom["snaking"]
    snaking = snaking or (False, False)
    df = frame_summary(run)
    if value == "good_fraction":
        with np.errstate(divide="ignore", invalid="ignore"):
            values = df["n_good"].to_numpy(float) / df["n_spots"].to_numpy(float)
    elif value in df.columns:
        values = df[value].to_numpy(float)
    else:
        raise KeyError(f"unknown per-frame value {value!r}; known: {list(df.columns)} or good_fraction")
    if "failed" in df:
        values = np.where(df["failed"].to_numpy(bool), np.nan, values)
    out = np.full(shape, np.nan)
    frames = df["frame"].to_numpy(np.int64)
    ok = (frames >= 0) & (frames < shape[0] * shape[1])
    if not ok.all():
        logger.warning("%d frame(s) outside the %s raster ignored", int((~ok).sum()), shape)
    rows, cols = np.divmod(frames[ok], shape[1])
    if snaking[1]:  # bluesky snakes the fast axis: odd rows run backwards
        cols = np.where(rows % 2 == 1, shape[1] - 1 - cols, cols)
    out[rows, cols] = values[ok]
    return out
