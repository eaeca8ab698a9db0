"""Analysis-run documents as the live callback composes them, for tests and benchmarks.

:func:`synthetic_analysis_documents` yields a whole run of random spot tables, with the data keys of
the live composer (:func:`laue_live.analysis.analysis_data_keys`) and the run contract of
:mod:`laue_live._run`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
from event_model import compose_run

from laue_live._run import ANALYSIS_KIND, FRAMES_STREAM, RAW_UID, SPOTS_STREAM
from laue_live._schema import SPOT_COLUMNS
from laue_live.analysis import analysis_data_keys

__all__ = ["synthetic_analysis_documents", "random_spot_table"]


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
    rng = np.random.default_rng(seed)
    counts = [spots_per_frame] * n_frames if isinstance(spots_per_frame, int) else list(spots_per_frame)
    md = {RAW_UID: raw_uid, "kind": ANALYSIS_KIND, "model": {"name": "fit", "version": "0"},
          "method": "fit", **(metadata or {})}
    run = compose_run(metadata=md)
    yield "start", run.start_doc
    spots = run.compose_descriptor(name=SPOTS_STREAM, data_keys=analysis_data_keys(SPOTS_STREAM))
    frames = run.compose_descriptor(name=FRAMES_STREAM, data_keys=analysis_data_keys(FRAMES_STREAM))
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
