"""Training cutouts from historical raw runs in the catalog, with the exact fit cached on disk.

:class:`CatalogCutoutSource` follows ``laue_live.cnn.CutoutSource``: ``name`` and ``chunks()``
yielding ``(cutouts (N, 32, 32) float32, table)`` per frame. Frames are read one at a time from
Tiled (never a whole run in memory); the peak search + exact fit of each frame is cached under
``cache_dir/<raw uid>/<frame>-<params hash>.npz`` so a second training on the same runs does not
refit (nor even read the frame).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from laue_live._rules import CUTOUT_SIZE
from laue_live._schema import SCHEMA_VERSION
from laue_live.catalog._layout import image_array
from laue_live.catalog._runs import oldest_first, search_runs

__all__ = ["CatalogCutoutSource", "TiledFrameLoader", "read_frames"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TiledFrameLoader:
    """Frame loader (a ``FrameTask.source``): frame ``index`` of a Tiled array node."""

    node: Any
    index: int

    def __call__(self) -> np.ndarray:
        return np.asarray(self.node[self.index])


def read_frames(run, stream: str = "primary", image_field: str | None = None,
                frames: range | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame number, 2-D frame)`` of a raw run, one request per frame (streamed)."""
    arr = image_array(run, stream, image_field)
    n = arr.shape[0]
    for i in frames if frames is not None else range(n):
        if 0 <= i < n:
            frame = np.asarray(arr[i])
            while frame.ndim > 2 and frame.shape[0] == 1:
                frame = frame[0]
            yield i, frame


@dataclass
class CatalogCutoutSource:
    """Cutouts and exact-fit descriptors of raw runs selected in the catalog by a Tiled query.

    Parameters
    ----------
    client
        A :class:`~laue_live.catalog.Catalog` (its ``raw`` container is searched) or a Tiled
        container of raw runs.
    query
        Run selection: a dict of :func:`~laue_live.catalog.runs_query` filters (``sample``,
        ``material``, ``since``, ``until``, ``key=value``), a Tiled query, a list of them, or None
        (every raw run).
    runs
        Explicit run uids instead of (or within) the query.
    stream, image_field
        Where the frames are (image field found from the descriptor if None).
    cache_dir
        Ground-truth cache; default ``$LAUE_LIVE_CACHE_DIR`` or ``~/.cache/laue-live/cutouts``.
    find_peaks_kwargs, fit_kwargs
        Arguments of :func:`laue_live.spots.find_peaks` and :func:`laue_live.characterize`;
        part of the cache key.
    max_frames_per_run
        Read at most this many frames per run (the first ones).
    progress
        Show a tqdm progress bar over frames.
    name
        Label of the source.
    """

    client: Any
    query: Any = None
    runs: list[str] | None = None
    stream: str = "primary"
    image_field: str | None = None
    cache_dir: str | Path | None = None
    find_peaks_kwargs: dict = field(default_factory=dict)
    fit_kwargs: dict = field(default_factory=dict)
    max_frames_per_run: int | None = None
    progress: bool = True
    name: str = "catalog"
    stats: dict = field(default_factory=lambda: {"frames": 0, "cache_hits": 0, "fitted": 0, "spots": 0})

    def __post_init__(self) -> None:
        default = os.environ.get("LAUE_LIVE_CACHE_DIR") or Path.home() / ".cache" / "laue-live" / "cutouts"
        self.cache_dir = Path(self.cache_dir or default)

    @property
    def params_hash(self) -> str:
        """Hash of everything that changes the ground truth (peak search, fit, schema)."""
        params = {"find_peaks": self.find_peaks_kwargs, "fit": {"method": "fit", **self.fit_kwargs},
                  "cutout": CUTOUT_SIZE, "schema": SCHEMA_VERSION}
        blob = json.dumps(params, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def select_runs(self) -> list:
        """Return the raw-run clients selected by ``query`` and ``runs``, oldest first."""
        container = self.client["raw"] if hasattr(self.client, "raw") else self.client
        if isinstance(self.query, dict):
            result = search_runs(container, None, **self.query)
        elif self.query is None:
            result = container
        else:
            qs = self.query if isinstance(self.query, (list, tuple)) else [self.query]
            result = search_runs(container, qs)
        if self.runs is not None:
            return [result[uid] for uid in self.runs]
        return oldest_first(result)

    def _cache_path(self, uid: str, frame: int) -> Path:
        return Path(self.cache_dir) / uid / f"{frame:06d}-{self.params_hash}.npz"

    def _load(self, path: Path):
        import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.catalog`

        with np.load(path, allow_pickle=False) as z:
            table = pd.DataFrame({k[4:]: z[k] for k in z.files if k.startswith("col_")})
            return z["cutouts"], table

    def _save(self, path: Path, cutouts: np.ndarray, table) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cols = {f"col_{c}": table[c].to_numpy() for c in table.columns if table[c].dtype.kind in "biuf"}
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, cutouts=cutouts, **cols)
        os.replace(tmp, path)  # atomic: a killed training never leaves a half-written entry

    def _fit_frame(self, frame: np.ndarray, number: int):
        import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.catalog`

        from laue_live.describe import characterize  # lazy: the science, ~0.3-1 s; only training needs it
        from laue_live.spots import cutout_edge_mask, extract_cutouts, find_peaks  # lazy: as above

        peaks = np.asarray(find_peaks(frame, **self.find_peaks_kwargs), dtype=np.int64).reshape(-1, 2)
        if len(peaks) == 0:
            empty = pd.DataFrame({"frame": np.zeros(0, np.int64)})
            return np.zeros((0, CUTOUT_SIZE, CUTOUT_SIZE), np.float32), empty
        cutouts = np.asarray(extract_cutouts(frame, peaks), dtype=np.float32)
        table = characterize(cutouts, method="fit", **self.fit_kwargs)
        table["row0"] = peaks[:, 0].astype(np.int32)
        table["col0"] = peaks[:, 1].astype(np.int32)
        table["edge"] = cutout_edge_mask(frame.shape, peaks)
        table["frame"] = np.int64(number)
        return cutouts, table

    def chunks(self) -> Iterator[tuple[np.ndarray, Any]]:
        """Yield ``(cutouts, table)`` for every frame of every selected run (one frame per chunk)."""
        runs = self.select_runs()
        plan = []
        for run in runs:
            try:
                n = image_array(run, self.stream, self.image_field).shape[0]
            except KeyError as exc:
                logger.warning("skipping run: %s", exc)
                continue
            if self.max_frames_per_run is not None:
                n = min(n, self.max_frames_per_run)
            plan.append((run, n))
        logger.info("catalog source: %d run(s), %d frame(s)", len(plan), sum(n for _, n in plan))
        with tqdm(total=sum(n for _, n in plan), desc=f"{self.name}: frames", unit="frame",
                  disable=not self.progress) as bar:
            for run, n in plan:
                uid = run.metadata["start"]["uid"]
                todo = []
                for i in range(n):
                    path = self._cache_path(uid, i)
                    if path.exists():
                        try:
                            cutouts, table = self._load(path)
                        except (OSError, ValueError) as exc:  # corrupted entry: refit it
                            logger.warning("cache entry %s unreadable (%s); refitting", path, exc)
                            todo.append(i)
                            continue
                        self.stats["cache_hits"] += 1
                        self.stats["frames"] += 1
                        self.stats["spots"] += len(cutouts)
                        bar.update(1)
                        yield cutouts, table
                    else:
                        todo.append(i)
                if not todo:
                    continue
                for i, frame in read_frames(run, self.stream, self.image_field, frames=todo):
                    cutouts, table = self._fit_frame(frame, i)
                    del frame  # only one frame of a run is ever held
                    self._save(self._cache_path(uid, i), cutouts, table)
                    self.stats["fitted"] += 1
                    self.stats["frames"] += 1
                    self.stats["spots"] += len(cutouts)
                    bar.update(1)
                    yield cutouts, table
