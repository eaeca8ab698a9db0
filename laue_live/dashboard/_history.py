"""What the dashboard reads from Tiled: the run list, a past run's map, a frame's spots and its image.

Everything goes through :mod:`laue_live.catalog`'s queries. Tiled's HTTP API selects columns, not
rows, so the spots of one frame of a finished run are read with the whole run's table once and kept
(for the newest few runs); frames come from where the raw run points, the detector's HDF5 file
directly when this machine can read it, else through Tiled.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np

from laue_live._errors import LaueLiveError
from laue_live._maps import run_values
from laue_live._run import INDEXING_KEY
from laue_live.dashboard._live import GrainMaps

__all__ = ["CatalogReader", "plain"]

logger = logging.getLogger(__name__)

#: Spot columns needed for the map values that the per-frame summary does not hold.
_VALUE_COLUMNS = ["frame", "intensity", "sigma_row", "sigma_col"]
#: Seconds between two attempts to reach an unreachable Tiled server.
_RETRY_S = 10.0


def plain(obj: Any) -> Any:
    """``obj`` as plain JSON-able Python (Tiled's metadata views, numpy scalars, NaN -> None)."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class CatalogReader:
    """Read-only access to the catalog for the dashboard (a reader key is enough).

    Connects lazily and again after a failure (at most every 10 s), so that the dashboard starts and
    shows the live stream while Tiled is away. Requests are serialised: one Tiled client, one at a time.

    Parameters
    ----------
    settings
        :class:`laue_live.catalog.CatalogSettings`, or ``None`` for no catalog (live stream only).
    keep_tables
        Finished runs whose whole spot table is kept in memory for frame clicks.
    """

    def __init__(self, settings=None, *, keep_tables: int = 2):
        self.settings = settings
        self.keep_tables = keep_tables
        self.error: str | None = None
        self._catalog = None
        self._next_try = 0.0
        self._lock = threading.RLock()
        self._tables: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._values: collections.OrderedDict[str, dict] = collections.OrderedDict()

    @property
    def configured(self) -> bool:
        """Whether a catalog was given at all."""
        return self.settings is not None

    def catalog(self):
        """Return the open :class:`~laue_live.catalog.Catalog`.

        Raises
        ------
        LaueLiveError
            No catalog is configured, or it cannot be reached now (the reason is kept in :attr:`error`).
        """
        # Tiled's client only when the catalog is read (the live view does without it)
        from laue_live.catalog import open_catalog

        with self._lock:
            if self._catalog is not None:
                return self._catalog
            if self.settings is None:
                raise LaueLiveError("no catalog configured: only the live stream is shown")
            if time.monotonic() < self._next_try:
                raise LaueLiveError(f"Tiled unreachable: {self.error}")
            try:
                self._catalog = open_catalog(self.settings, create=False)
            except LaueLiveError as exc:
                self.error = str(exc)
                self._next_try = time.monotonic() + _RETRY_S
                logger.warning("catalog: %s", exc)
                raise
            self.error = None
            return self._catalog

    def _failed(self, exc: Exception) -> LaueLiveError:
        # An HTTP or connection error from Tiled: reconnect next time, say why in one line.
        with self._lock:
            self._catalog = None
            self.error = f"{type(exc).__name__}: {exc}"
            self._next_try = time.monotonic() + _RETRY_S
        # Tiled's client only when the catalog is read (the live view does without it)
        from laue_live.catalog import redact

        key = getattr(self.settings, "api_key", None)
        return LaueLiveError(redact(f"Tiled request failed: {self.error}", key))

    # -- runs ------------------------------------------------------------------------------------------
    def runs(self, *, scan_id: int | None = None, sample: str | None = None, since: str | None = None,
             until: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Analysis runs matching the filters, newest first (:func:`laue_live.catalog.find_runs`)."""
        # Tiled's client only when the catalog is read (the live view does without it)
        from laue_live.catalog import find_runs

        filters: dict[str, Any] = {k: v for k, v in (("sample", sample), ("since", since), ("until", until))
                                   if v not in (None, "")}
        if scan_id is not None:
            filters["raw_scan_id"] = int(scan_id)
        with self._lock:
            cat = self.catalog()
            try:
                df = find_runs(cat, where="analysis", limit=limit, **filters)
            except LaueLiveError:
                raise
            except Exception as exc:  # noqa: BLE001 - Tiled down or a refused query: one line
                raise self._failed(exc) from None
        return [plain(row) for row in df.to_dict("records")]

    def _run_client(self, uid: str):
        # Tiled's client only when the catalog is read (the live view does without it)
        from laue_live.catalog import get_run

        cat = self.catalog()
        try:
            return get_run(cat, uid)
        except KeyError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc) from None

    def run(self, uid: str) -> dict[str, Any]:
        """Return a run's start and stop documents, every map value of every frame and its grain maps.

        ``grains`` is None for a run that is not indexed, else the :class:`GrainMaps` payload of its
        frames indexed with or without a grain, in frame order.

        Raises
        ------
        KeyError
            No such analysis run.
        """
        # Tiled's client only when the catalog is read (the live view does without it)
        from laue_live.catalog import frame_summary, get_spot_table

        with self._lock:
            if uid in self._values:
                self._values.move_to_end(uid)
                return self._values[uid]
            run = self._run_client(uid)
            try:
                md = run.metadata
                start, stop = plain(md.get("start") or {}), plain(md.get("stop") or {})
                summary = frame_summary(run)
                spots = get_spot_table(run, columns=_VALUE_COLUMNS) if len(summary) else None
                grains = _grain_maps(run, start)
            except Exception as exc:  # noqa: BLE001
                raise self._failed(exc) from None
            out = {"start": start, "stop": stop or None, **run_values(summary, spots), "grains": grains}
            if stop:  # finished: it will not change any more
                self._values[uid] = out
                while len(self._values) > 4:
                    self._values.popitem(last=False)
            return out

    def spots(self, uid: str, frame: int, *, finished: bool):
        """Return the spot table of one frame (a DataFrame, schema columns, sorted by spot)."""
        # Tiled's client only when the catalog is read (the live view does without it)
        from laue_live.catalog import get_spot_table

        with self._lock:
            table = self._tables.get(uid)
            if table is None:
                run = self._run_client(uid)
                try:
                    full = get_spot_table(run)
                except Exception as exc:  # noqa: BLE001
                    raise self._failed(exc) from None
                frames = full["frame"].to_numpy()
                table = (full, frames)
                if finished:
                    self._tables[uid] = table
                    while len(self._tables) > self.keep_tables:
                        self._tables.popitem(last=False)
            else:
                self._tables.move_to_end(uid)
        full, frames = table
        lo, hi = np.searchsorted(frames, [frame, frame + 1])
        return full.iloc[lo:hi].reset_index(drop=True)

    # -- frames ----------------------------------------------------------------------------------------
    def image_source(self, uid: str, start: Mapping[str, Any] | None = None):
        """Return a callable ``read(frame) -> 2-D array`` for the raw frames of analysis run ``uid``.

        The detector's HDF5 file is read directly when the raw run registers one this machine can
        open; otherwise the frame comes through Tiled.

        Raises
        ------
        KeyError
            The raw run or its image field is not in the catalog.
        """
        # the raw run's frame loader only when a frame is shown
        from laue_live.analysis import HDF5FrameLoader
        from laue_live.catalog import get_raw_run

        with self._lock:
            run = self._run_client(uid)
            start = dict(start or plain(run.metadata.get("start") or {}))
            field = start.get("image_field")
            if not field:
                raise KeyError(f"analysis run {uid[:8]} does not name the raw run's image field")
            try:
                raw = get_raw_run(self.catalog(), run)
                if raw is None:
                    raise KeyError(f"raw run {str(start.get('raw_uid'))[:8]} is not in the catalog")
                node = raw[start.get("raw_stream", "primary")][field]
                sources = node.data_sources() if hasattr(node, "data_sources") else []
            except KeyError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise self._failed(exc) from None
        direct = _local_hdf5(sources)
        if direct is not None:
            path, dataset = direct

            def read(frame: int) -> np.ndarray:
                return HDF5FrameLoader(path, dataset, int(frame), timeout=1.0)()
        else:
            def read(frame: int) -> np.ndarray:
                with self._lock:
                    try:
                        return np.asarray(node[int(frame)])
                    except Exception as exc:  # noqa: BLE001
                        raise self._failed(exc) from None
        return read


def _grain_maps(run, start: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the grain maps of an indexed run read from Tiled (a :class:`GrainMaps` payload), or None."""
    # Tiled's client only when the catalog is read (the live view does without it)
    from laue_live.catalog import get_grains, indexing_summary

    info = start.get(INDEXING_KEY) or {}
    if not info.get("enabled"):
        return None
    summary = indexing_summary(run)
    maps = GrainMaps(info)
    if not len(summary):
        return maps.payload()
    from laue_live.indexing import grain_map_table  # why: the indexer loads with an indexed run

    table = grain_map_table(get_grains(run, positions=False), materials=maps.known)
    done = summary[summary["status"].isin(["indexed", "no_grain"])].sort_values("frame")
    for frame, n in zip(done["frame"].to_numpy(int), done["n_grains"].to_numpy(int), strict=True):
        maps.append(int(frame), table.loc[frame] if frame in table.index else None, int(n))
    return maps.payload()


def _local_hdf5(sources) -> tuple[str, str] | None:
    """``(path, dataset)`` of a single-file HDF5 data source readable on this machine, else None."""
    if len(sources) != 1:
        return None
    source = sources[0]
    mimetype = str(getattr(source, "mimetype", "") or "")
    assets = list(getattr(source, "assets", None) or [])
    if "hdf5" not in mimetype.lower() or len(assets) != 1:
        return None
    uri = getattr(assets[0], "data_uri", "") or ""
    parsed = urlparse(uri)
    path = unquote(parsed.path)
    if parsed.scheme not in ("", "file") or not os.access(path, os.R_OK):
        return None
    params = dict(getattr(source, "parameters", None) or {})
    dataset = params.get("dataset") or "/entry/data/data"
    if isinstance(dataset, list | tuple):
        dataset = "/" + "/".join(dataset)
    return path, str(dataset)
