"""Analysis-run documents as the live callback composes them, for tests and benchmarks.

:func:`analysis_data_keys` is the data-key layout of the ``spots`` and ``frames`` streams; any
composer (the live callback, reprocess) may use it so that every analysis run has the same
descriptors. :func:`synthetic_analysis_documents` yields a whole run of random spot tables.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from laue_live._schema import FRAME_COLUMNS, SPOT_COLUMNS

__all__ = ["analysis_data_keys", "synthetic_analysis_documents", "random_spot_table"]


def _data_key(c, source: str) -> dict:
    kind = np.dtype(c.dtype).kind if c.dtype != "str" else "U"
    dtype = {"b": "boolean", "i": "integer", "u": "integer", "f": "number"}.get(kind, "string")
    dk = {"source": source, "dtype": dtype, "shape": [], "units": c.unit, "description": c.description}
    if dtype != "string":
        dk["dtype_numpy"] = np.dtype(c.dtype).str
    return dk


def analysis_data_keys(stream: str, source: str = "laue_live") -> dict[str, dict]:
    """Event-descriptor ``data_keys`` of the ``"spots"`` or ``"frames"`` stream of an analysis run."""
    cols = {"spots": SPOT_COLUMNS, "frames": FRAME_COLUMNS}[stream]
    return {c.name: _data_key(c, source) for c in cols}


def random_spot_table(frame: int, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Columns of a plausible random spot table of ``n`` spots for ``frame`` (schema dtypes)."""
    out: dict[str, np.ndarray] = {}
    for c in SPOT_COLUMNS:
        dt = np.dtype(c.dtype)
        if dt.kind == "b":
            out[c.name] = rng.random(n) < 0.6
        elif dt.kind in "iu":
            out[c.name] = rng.integers(0, 2000, n).astype(dt)
        else:
            out[c.name] = rng.random(n).astype(dt)
    out["frame"] = np.full(n, frame, dtype=np.int64)
    out["spot"] = np.arange(n, dtype=np.int32)
    out["parent"] = np.full(n, -1, dtype=np.int32)
    out["component"] = np.zeros(n, dtype=np.int8)
    return out


def synthetic_analysis_documents(
    n_frames: int, spots_per_frame: int | list[int], *, raw_uid: str = "raw-uid",
    metadata: dict | None = None, seed: int = 0, shape: tuple[int, int] | None = None,
    as_lists: bool = True,
) -> Iterator[tuple[str, dict]]:
    """Documents ``(name, doc)`` of an analysis run: start, 2 descriptors, a page of spots per frame.

    Parameters
    ----------
    n_frames
        Frames of the run.
    spots_per_frame
        Spots of every frame, or a list with one count per frame.
    raw_uid
        ``raw_uid`` recorded in the start document.
    metadata
        Extra start-document metadata.
    seed
        Seed of the random spot tables.
    shape
        Raster shape (rows, cols) used for the frames' stage positions.
    as_lists
        Page columns as Python lists (what ``compose_event_page`` validates) or numpy arrays.
    """
    from event_model import compose_run

    rng = np.random.default_rng(seed)
    counts = [spots_per_frame] * n_frames if isinstance(spots_per_frame, int) else list(spots_per_frame)
    md = {"raw_uid": raw_uid, "kind": "laue-spots", "model": {"name": "fit", "version": "0"},
          "method": "fit", **(metadata or {})}
    run = compose_run(metadata=md)
    yield "start", run.start_doc
    spots = run.compose_descriptor(name="spots", data_keys=analysis_data_keys("spots"))
    frames = run.compose_descriptor(name="frames", data_keys=analysis_data_keys("frames"))
    yield "descriptor", spots.descriptor_doc
    yield "descriptor", frames.descriptor_doc
    seq = 1
    ncols = shape[1] if shape else max(n_frames, 1)
    for i, n in enumerate(counts):
        t = time.time()
        table = random_spot_table(i, n, rng)
        page = spots.compose_event_page(
            data={k: v.tolist() if as_lists else v for k, v in table.items()},
            timestamps={k: [t] * n if as_lists else np.full(n, t) for k in table},
            seq_num=list(range(seq, seq + n)), time=[t] * n, uid=[f"{run.start_doc['uid']}-s{seq + j}"
                                                                 for j in range(n)], validate=False)
        seq += n
        if n:  # like the live composer: a frame without spots has a summary event only
            yield "event_page", page
        good = table["good"]
        summary = {"frame": i, "x": float(i % ncols), "y": float(i // ncols), "n_spots": n,
                   "n_good": int(good.sum()), "mean_sim": float(table["sim"].mean()) if n else float("nan"),
                   "seconds": 0.01, "failed": False, "error": ""}
        yield "event", frames.compose_event(data=summary, timestamps={k: t for k in summary},
                                            seq_num=i + 1, validate=False)
    yield "stop", run.compose_stop(exit_status="success")
