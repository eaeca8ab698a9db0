"""Where a Bluesky run's data live in Tiled: the one module that knows TiledWriter's layout.

A run is a container ``<run uid>`` holding one node per event stream (``BlueskyEventStream`` +
``composite`` specs; its client's ``.base`` is the plain container). The rows of a stream's scalar
data keys are the appendable SQL table ``<run>/<stream>/internal`` (:data:`laue_live._run.TABLE_KEY`)
with TiledWriter's columns: ``seq_num``, ``time``, the data keys, and ``ts_<key>`` per data key where
timestamps are kept. Array-valued data keys (detector frames) are array nodes ``<run>/<stream>/<key>``.
Every reader and writer of laue-live (the analysis writer, resume, replay, queries, reprocessing,
the training source) goes through these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from laue_live._errors import DocumentError
from laue_live._run import FRAMES_STREAM, SPOTS_STREAM, TABLE_KEY, find_image_field

__all__ = [
    "NotInCatalogError",
    "stream_node",
    "stream_table_node",
    "create_stream_table",
    "read_stream_table",
    "written_frames",
    "stream_frames",
    "ensure_stream_nodes",
    "frames_node",
    "image_array",
    "column_dtype",
]


class NotInCatalogError(DocumentError, KeyError):
    """A run, a stream or an image field is not in the catalog (a :class:`KeyError` too)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def stream_node(run, stream: str):
    """Return the plain container of ``stream`` in a run, or None if the run has no such stream."""
    try:
        node = run[stream]
    except KeyError:
        return None
    return getattr(node, "base", node)  # the composite stream client -> its plain container


def stream_table_node(run, stream: str):
    """Return the appendable table node of ``stream`` in a run in Tiled, or None if it has none yet."""
    node = stream_node(run, stream)
    if node is None:
        return None
    try:
        return node[TABLE_KEY]
    except KeyError:
        return None


def create_stream_table(run, stream: str, schema, metadata: dict[str, Any]):
    """Create the appendable table of ``stream`` (its node must exist) and return it; if it exists, return it.

    Parameters
    ----------
    run
        Tiled client of the run.
    stream
        Stream name (its descriptor made the node).
    schema
        ``pyarrow.Schema`` of the rows.
    metadata
        The data keys of the columns (TiledWriter keeps them in the table's metadata).
    """
    node = stream_node(run, stream)
    if node is None:
        raise NotInCatalogError(f"run {run.metadata['start']['uid']} has no stream {stream!r}")
    try:
        return node.create_appendable_table(schema, key=TABLE_KEY, metadata=metadata)
    except Exception as exc:  # noqa: BLE001 - it may exist already (TiledWriter or another writer made it)
        try:
            return node[TABLE_KEY]
        except KeyError:
            raise exc from None


def read_stream_table(run, stream: str, columns: list[str] | None = None):
    """Read the rows of ``stream`` of a run in Tiled as a DataFrame (empty if none yet)."""
    import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.catalog`

    table = stream_table_node(run, stream)
    if table is None:
        return pd.DataFrame()
    return table.read(columns=columns) if columns else table.read()


def stream_frames(run, stream: str) -> set[int]:
    """Frame numbers that have rows in ``stream`` of an analysis run in Tiled (empty if none yet)."""
    table = read_stream_table(run, stream, ["frame"])
    return set(table["frame"].astype(int).tolist()) if len(table) else set()


def written_frames(run) -> tuple[set[int], set[int]]:
    """Frame numbers of an analysis run that have a ``frames`` row, and those that have ``spots`` rows."""
    return stream_frames(run, FRAMES_STREAM), stream_frames(run, SPOTS_STREAM)


def ensure_stream_nodes(run, descriptors: list[dict]) -> list[str]:
    """Create the stream nodes whose descriptor never reached Tiled, as TiledWriter would; return them."""
    from tiled.structures.core import Spec  # lazy: tiled costs ~0.3-3 s to import

    made = []
    for doc in descriptors:
        name = doc["name"]
        try:
            run[name]
            continue
        except KeyError:
            pass
        metadata = {k: v for k, v in doc.items() if k not in {"name", "object_keys", "run_start"}}
        run.create_container(key=name, metadata=metadata,
                             specs=[Spec("BlueskyEventStream", version="3.0"), Spec("composite")])
        made.append(name)
    return made


def frames_node(run, stream: str = "primary", image_field: str | None = None) -> tuple[str, Any]:
    """Return ``(image field, array node)`` of the detector frames of a raw run.

    Raises
    ------
    NotInCatalogError
        The run has no such stream, or no 2-D image field in it.
    """
    uid = run.metadata["start"]["uid"]
    node = stream_node(run, stream)
    if node is None:
        raise NotInCatalogError(f"raw run {uid} has no stream {stream!r}")
    data_keys = dict(node.metadata.get("data_keys", {}))
    field = find_image_field(data_keys, image_field) if data_keys else image_field
    if field is None:
        raise NotInCatalogError(f"stream {stream!r} of raw run {uid} has no image field")
    try:
        return field, node[field]
    except KeyError:
        raise NotInCatalogError(f"stream {stream!r} of raw run {uid} has no array {field!r}") from None


def image_array(run, stream: str = "primary", image_field: str | None = None):
    """Return the Tiled array client of a raw run's frames, shape ``(N, H, W)`` or ``(N, 1, H, W)``.

    Raises
    ------
    NotInCatalogError
        (a :class:`KeyError`) The run has no such stream or no 2-D image field in it.
    """
    return frames_node(run, stream, image_field)[1]


def column_dtype(data_key: dict) -> np.dtype | None:
    """Return the numpy dtype a data key declares for its column; None (let numpy infer) for strings."""
    dt = data_key.get("dtype_numpy")
    if not dt or data_key.get("dtype") == "string":
        return None  # "<U0" and the like would truncate every string
    dt = np.dtype(dt)
    return None if dt.kind in "USO" else dt
