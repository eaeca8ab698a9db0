"""Frames recorded without Bluesky -> a raw run in the catalog (TiledWriter, as the RunEngine would).

A folder of frame files, a glob or an HDF5 stack becomes one raw run: a start document that looks
like :func:`laue_live.plans.raster_scan`'s (``laue_live`` entry: scan shape, motors, detector,
calibration, the source files), a ``primary`` stream with the frame (``laue_image``, uint16 kept
as uint16) and the stage position (``x``, ``y``) of each event, a stop document. The documents go
through ``bluesky_tiled_plugins.TiledWriter`` into the catalog's raw container, exactly as a live
scan's would, so that quality maps, ``laue-live reprocess``, training and queries work on it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from laue_live._errors import LaueLiveError, SettingsError

__all__ = ["import_frames", "frame_run_documents", "scan_positions", "IMPORT_IMAGE_KEY"]

log = logging.getLogger(__name__)

#: Data key of the frames in imported runs.
IMPORT_IMAGE_KEY = "laue_image"


def scan_positions(sources: Sequence, *, csv: str | Path | None = None, x_dataset: str | None = None,
                   y_dataset: str | None = None, grid: tuple[int, int] | None = None,
                   step: tuple[float, float] = (1.0, 1.0), snake: bool = False):
    """Stage positions of each frame and the raster shape, when known.

    Parameters
    ----------
    sources
        The frames (:class:`laue_live.io.FrameSource`), in order.
    csv
        Table with columns ``x`` and ``y`` (motor units), one row per frame in order, or with a
        ``file`` column naming each frame (file name, ``name[index]`` for stacks).
    x_dataset, y_dataset
        HDF5 datasets (paths in the stack's file) holding one position per frame.
    grid
        ``(nx, ny)``: a raster, x fastest; positions ``x = i % nx * step[0]``, ``y = i // nx *
        step[1]`` unless given otherwise; sets the run's scan shape.
    step
        Grid steps, motor units.
    snake
        The grid runs x backwards on odd rows.

    Returns
    -------
    x, y, scan_shape
        float arrays (NaN where unknown) and ``[ny, nx]`` or None.

    Raises
    ------
    SettingsError
        A table or dataset that does not give one position per frame, or a grid of another size.
    """
    n = len(sources)
    x, y = np.full(n, math.nan), np.full(n, math.nan)
    shape = None
    if grid is not None:
        nx, ny = (int(v) for v in grid)
        if nx < 1 or ny < 1 or nx * ny != n:
            raise SettingsError(f"grid {nx} x {ny} = {nx * ny} points, but there are {n} frames")
        i = np.arange(n)
        row, col = i // nx, i % nx
        if snake:
            col = np.where(row % 2 == 1, nx - 1 - col, col)
        x, y = col * float(step[0]), row * float(step[1])
        shape = [ny, nx]
    if csv is not None:
        import pandas as pd

        try:
            table = pd.read_csv(csv)
        except (OSError, ValueError) as exc:
            raise SettingsError(f"cannot read positions {csv}: {exc}") from None
        if not {"x", "y"} <= set(table.columns):
            raise SettingsError(f"positions {csv} needs columns x and y, has {list(table.columns)}")
        if "file" in table.columns:
            by = dict(zip(table["file"].astype(str), zip(table["x"], table["y"], strict=True), strict=True))
            missing = [s.label for s in sources if s.label not in by and s.path.name not in by]
            if missing:
                raise SettingsError(f"positions {csv} has no row for {missing[:3]}"
                                    + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""))
            xy = np.array([by.get(s.label, by.get(s.path.name)) for s in sources], dtype=float)
        else:
            if len(table) != n:
                raise SettingsError(f"positions {csv} has {len(table)} rows for {n} frames")
            xy = table[["x", "y"]].to_numpy(float)
        x, y = xy[:, 0], xy[:, 1]
    if x_dataset or y_dataset:
        files = {s.path for s in sources}
        if len(files) != 1:
            raise SettingsError("--x-dataset/--y-dataset read positions from one HDF5 stack")
        import h5py

        with h5py.File(next(iter(files)), "r") as f:
            for name, out in ((x_dataset, x), (y_dataset, y)):
                if name is None:
                    continue
                if name not in f:
                    raise SettingsError(f"no dataset {name!r} in {next(iter(files))}")
                v = np.asarray(f[name][()], dtype=float).ravel()
                if len(v) != n:
                    raise SettingsError(f"{name} holds {len(v)} positions for {n} frames")
                out[:] = v
    return x, y, shape


def frame_run_documents(frames: Iterator[np.ndarray], n: int, frame_shape: tuple[int, int], dtype,
                        x: np.ndarray, y: np.ndarray, *, scan_shape=None, snake: bool = False,
                        metadata: dict | None = None, laue: dict | None = None) -> Iterator[tuple[str, dict]]:
    """Bluesky documents of a raw run made of ``frames`` (start, descriptor, one event each, stop).

    ``laue`` extends the start document's ``laue_live`` entry (calibration, detector, sources). With
    a ``scan_shape`` the start document also records ``shape``, ``extents``, ``snaking`` and
    ``motors`` (slow axis first) as bluesky's ``grid_scan`` does, for the quality maps.
    A frame that cannot be read, or of another shape or dtype than the run's, ends the run: the
    stop document (``exit_status="fail"``, the reason) is emitted, then the error is raised, so the
    frames before it are kept in a well-formed run.
    """
    from event_model import compose_run

    md = {k: v for k, v in (metadata or {}).items() if v is not None}
    entry = {"version": 1, "plan": "import_frames", "fast_axis": "x", "snake": False, "x_motor": "x",
             "y_motor": "y", "detectors": ["laue"], "image_keys": [IMPORT_IMAGE_KEY], "imported": True}
    if scan_shape is not None:
        entry["scan_shape"] = list(scan_shape)
        entry["snake"] = bool(snake)
        md.setdefault("shape", [int(v) for v in scan_shape])
        md.setdefault("snaking", [False, bool(snake)])
        md.setdefault("motors", ["y", "x"])
        if np.isfinite(x).all() and np.isfinite(y).all():
            md.setdefault("extents", [[float(y.min()), float(y.max())], [float(x.min()), float(x.max())]])
    entry.update({k: v for k, v in (laue or {}).items() if v is not None})
    md["laue_live"] = entry
    md.setdefault("plan_name", "import_frames")
    md.setdefault("motors", ["x", "y"])
    md.setdefault("num_points", int(n))
    if entry.get("material"):
        md.setdefault("sample", str(entry["material"]))
    bundle = compose_run(metadata=md)
    yield "start", bundle.start_doc
    dt = np.dtype(dtype)
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            IMPORT_IMAGE_KEY: {"source": "file", "dtype": "array", "shape": list(frame_shape),
                               "dtype_numpy": dt.str},
            "x": {"source": "file", "dtype": "number", "shape": []},
            "y": {"source": "file", "dtype": "number", "shape": []},
        },
        hints={"laue": {"fields": [IMPORT_IMAGE_KEY]}},
        object_keys={"laue": [IMPORT_IMAGE_KEY], "x": ["x"], "y": ["y"]},
    )
    yield "descriptor", desc.descriptor_doc
    done = 0
    it = iter(frames)
    while True:
        try:
            frame = next(it, None)
            if frame is not None and (frame.shape != tuple(frame_shape) or frame.dtype != dt):
                raise SettingsError(f"frame {done} is {frame.shape} {frame.dtype}, the run's frames are "
                                    f"{tuple(frame_shape)} {dt}")
        except LaueLiveError as exc:
            yield "stop", bundle.compose_stop(exit_status="fail", reason=str(exc))
            raise
        if frame is None:
            break
        t = time.time()
        yield "event", desc.compose_event(
            data={IMPORT_IMAGE_KEY: frame, "x": float(x[done]), "y": float(y[done])},
            timestamps={IMPORT_IMAGE_KEY: t, "x": t, "y": t}, seq_num=done + 1, validate=False)
        done += 1
    yield "stop", bundle.compose_stop(exit_status="success" if done == n else "abort")


def import_frames(catalog, sources: Sequence, *, x=None, y=None, scan_shape=None, snake: bool = False,
                  metadata: dict | None = None, calibration=None, detector=None,
                  progress: Callable[[int], None] | None = None) -> str:
    """Write frames as one raw run into ``catalog.raw`` through TiledWriter; return its uid.

    Parameters
    ----------
    catalog
        A :class:`laue_live.catalog.Catalog`.
    sources
        :class:`laue_live.io.FrameSource` of each frame, in scan order (read one at a time).
    x, y, scan_shape, snake
        Stage positions (NaN: unknown), ``[ny, nx]`` and snaking (:func:`scan_positions`).
    metadata
        Extra start-document keys (``sample``, ``material``, ``proposal``...).
    calibration
        :class:`laue_live.geometry.Calibration`, recorded as the live scans record it.
    detector
        :class:`laue_live.geometry.Detector` preset, recorded by name.
    progress
        Called with 1 after each frame.

    Raises
    ------
    SettingsError
        Frames of different shapes or dtypes, or no frame.
    FrameFileError
        A frame that cannot be read.
    """
    from bluesky_tiled_plugins import TiledWriter

    from laue_live.catalog._serialize import serialize_tiled_writes

    n = len(sources)
    if n == 0:
        raise SettingsError("no frame to import")
    first = sources[0].read()
    x = np.full(n, math.nan) if x is None else np.asarray(x, float)
    y = np.full(n, math.nan) if y is None else np.asarray(y, float)
    laue = {"calibration": None if calibration is None else calibration.to_dict(),
            "detector": None if detector is None else detector.name,
            "sources": sorted({str(s.path) for s in sources})[:1000]}
    md = dict(metadata or {})
    if md.get("material"):
        laue["material"] = md["material"]

    def frames():
        yield first
        if progress:
            progress(1)
        for s in sources[1:]:
            frame = s.read()
            yield frame
            if progress:
                progress(1)

    serialize_tiled_writes()
    writer = TiledWriter(catalog.raw, batch_size=1)
    uid = None
    for name, doc in frame_run_documents(frames(), n, first.shape, first.dtype, x, y, scan_shape=scan_shape,
                                         snake=snake, metadata=md, laue=laue):
        if name == "start":
            uid = doc["uid"]
        writer(name, doc)
    log.info("imported %d frames as raw run %s", n, uid)
    return uid
