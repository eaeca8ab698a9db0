"""The laue-live 0MQ wire format: topics and message framing on top of the project's codec.

Every 0MQ message is one frame ``TOPIC b" " NAME b" " PAYLOAD`` (the framing bluesky's
``Publisher``/``RemoteDispatcher`` use, so a stock ``RemoteDispatcher(prefix=b"laue.doc",
deserializer=loads)`` can consume the analysis documents). ``PAYLOAD`` is a msgpack map in the
project's encoding (:mod:`laue_live._codec`: a version field ``"v"``, numpy arrays as typed
buffers, never pickle). See ``docs/stream.md`` for the full layout.

Truncated, oversized, unknown-version and malformed messages raise
:class:`~laue_live._errors.WireError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from laue_live._codec import DEFAULT_MAX_BYTES, WIRE_VERSION, pack_payload, unpack_payload
from laue_live._errors import WireError
from laue_live._schema import SCHEMA_VERSION

__all__ = [
    "WIRE_VERSION",
    "DEFAULT_MAX_BYTES",
    "TOPIC_DOC",
    "TOPIC_SPOTS",
    "TOPIC_STATUS",
    "TOPIC_HELLO",
    "Message",
    "dumps",
    "loads",
    "make_loads",
    "pack_payload",
    "unpack_payload",
    "encode_message",
    "decode_message",
    "encode_spot_table",
    "decode_spot_table",
    "TOPIC_GRAINS",
    "encode_grains",
    "decode_grains",
]

TOPIC_DOC = b"laue.doc"  #: analysis-run documents; NAME is the document name
TOPIC_SPOTS = b"laue.spots"  #: one spot table per analysed frame; NAME is ``spots``
TOPIC_STATUS = b"laue.status"  #: service / publisher state; NAME is ``status``
TOPIC_HELLO = b"laue.hello"  #: 0MQ welcome message sent to each new subscriber; NAME is ``hello``
#: one frame's indexing (its grains and the Miller indices of its spots); NAME is ``grains``
TOPIC_GRAINS = b"laue.grains"


# ------------------------------------------------------------------------------------------- encoding
def dumps(doc: dict[str, Any]) -> bytes:
    """Encode one bluesky document (``serializer=`` of :class:`bluesky.callbacks.zmq.Publisher`)."""
    return pack_payload({"doc": doc})


def encode_message(topic: bytes, name: str, payload: dict[str, Any]) -> bytes:
    """One 0MQ frame ``topic b" " name b" " msgpack(payload)``; neither topic nor name may hold a space."""
    bname = name.encode()
    if b" " in topic or b" " in bname:
        raise WireError(f"topic {topic!r} and name {name!r} may not contain spaces")
    return b" ".join((topic, bname, pack_payload(payload)))


# ------------------------------------------------------------------------------------------- decoding
def make_loads(max_bytes: int = DEFAULT_MAX_BYTES):
    """Make a :func:`loads` with another size limit (for ``RemoteDispatcher(deserializer=...)``)."""

    def _loads(data: bytes) -> dict[str, Any]:
        return loads(data, max_bytes=max_bytes)

    return _loads


def loads(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Decode one bluesky document (``deserializer=`` of :class:`bluesky.callbacks.zmq.RemoteDispatcher`).

    Raises
    ------
    WireError
        See :func:`unpack_payload`; also when the payload holds no document map.
    """
    doc = unpack_payload(data, max_bytes=max_bytes).get("doc")
    if not isinstance(doc, dict):
        raise WireError("payload holds no document map under 'doc'")
    return doc


@dataclass(frozen=True)
class Message:
    """A decoded 0MQ message: ``topic`` and ``name`` from the frame, ``payload`` the checked map."""

    topic: bytes
    name: str
    payload: dict[str, Any]


def decode_message(frame: bytes | memoryview, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Message:
    """Split and decode one frame ``topic b" " name b" " payload``.

    Raises
    ------
    WireError
        A frame without the two separators, a non-UTF-8 name, or a bad payload (see
        :func:`unpack_payload`).
    """
    if len(frame) > max_bytes:
        raise WireError(f"message of {len(frame)} bytes exceeds the limit of {max_bytes} bytes")
    view = memoryview(frame)
    head = bytes(view[:256])
    first = head.find(b" ")
    second = head.find(b" ", first + 1) if first >= 0 else -1
    if first < 0 or second < 0:
        raise WireError("message is not 'topic name payload' (missing separators)")
    try:
        name = head[first + 1:second].decode()
    except UnicodeDecodeError as exc:
        raise WireError("message name is not UTF-8") from exc
    payload = unpack_payload(view[second + 1:], max_bytes=max_bytes)
    return Message(head[:first], name, payload)


# ---------------------------------------------------------------------------------------- spot tables
def _column_buffers(table, what: str) -> tuple[list[str], dict[str, np.ndarray], int]:
    """``(names, {name: 1-D array}, n_rows)`` of a DataFrame or a mapping of equal-length columns."""
    items = list(table.items())  # DataFrame.items() avoids a column lookup per name
    names = [str(c) for c, _ in items]
    columns = {}
    n_rows = None
    for name, values in zip(names, (v for _, v in items), strict=True):
        array = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
        if array.dtype == object:  # strings (a material name): a fixed-width unicode buffer
            array = array.astype(str)
        if array.ndim != 1:
            raise WireError(f"{what} column {name!r} is not 1-D")
        if n_rows is None:
            n_rows = len(array)
        elif len(array) != n_rows:
            raise WireError(f"{what} column {name!r} has {len(array)} rows, not {n_rows}")
        columns[name] = array
    return names, columns, int(n_rows or 0)


def encode_spot_table(table, *, frame: int, seq: int, run: dict[str, Any] | None = None,
                      extra: dict[str, Any] | None = None) -> bytes:
    """One :data:`TOPIC_SPOTS` message carrying a frame's spot table.

    Parameters
    ----------
    table
        pandas DataFrame or mapping ``column -> 1-D array`` (all the same length); columns keep
        their order and dtype.
    frame
        Frame number within the raw run, 0-based.
    seq
        The publisher's message counter (1, 2, ...): gaps tell a subscriber what it missed.
    run
        Small run metadata (analysis ``uid``, ``raw_uid``, ``scan_id``, scan ``shape``, ...).
    extra
        More header keys (e.g. per-frame summary values).
    """
    names, columns, n_rows = _column_buffers(table, "spot-table")
    payload = {"seq": int(seq), "frame": int(frame), "schema_version": SCHEMA_VERSION,
               "n_rows": n_rows, "run": run or {}, "names": names, "columns": columns,
               **(extra or {})}
    return encode_message(TOPIC_SPOTS, "spots", payload)


def encode_grains(grains, spots, *, frame: int, seq: int, run: dict[str, Any] | None = None,
                  summary: dict[str, Any] | None = None) -> bytes:
    """One :data:`TOPIC_GRAINS` message carrying a frame's indexing.

    Parameters
    ----------
    grains
        The frame's rows of the ``grains`` table (:data:`laue_live._schema.GRAIN_COLUMNS`; none if no
        grain was found), DataFrame or mapping of columns.
    spots
        The frame's rows of the ``indexed_spots`` table (:data:`laue_live._schema.SPOT_INDEX_COLUMNS`).
    frame
        Frame number within the raw run, 0-based.
    seq
        The publisher's counter of grains messages (1, 2, ...; apart from the spot tables').
    run
        Small run metadata, as for :func:`encode_spot_table`.
    summary
        The frame's ``indexing`` row (:data:`laue_live._schema.INDEXING_COLUMNS`): status, counts,
        the best rejected candidate's statistics when no grain was found.
    """
    tables = {}
    for key, table in (("grains", grains), ("spots", spots)):
        names, columns, n_rows = _column_buffers(table, key)
        tables[key] = {"names": names, "columns": columns, "n_rows": n_rows}
    payload = {"seq": int(seq), "frame": int(frame), "schema_version": SCHEMA_VERSION, "run": run or {},
               "summary": summary or {}, **tables}
    return encode_message(TOPIC_GRAINS, "grains", payload)


def _decode_table(names, columns, n_rows, what: str):
    import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.stream`; only readers need it

    if not isinstance(names, list) or not isinstance(columns, dict) or set(names) != set(columns):
        raise WireError(f"{what} message: 'names' and 'columns' disagree")
    data = {}
    for name in names:
        column = columns[name]
        array = column if isinstance(column, np.ndarray) else np.asarray(column)
        if array.ndim != 1 or len(array) != n_rows:
            raise WireError(f"{what} column {name!r} has shape {array.shape}, expected ({n_rows},)")
        data[name] = array
    # A dict keeps the column order; without ``columns=`` pandas takes its fast path (3x faster).
    return pd.DataFrame(data) if data else pd.DataFrame(columns=names)


def decode_grains(payload: dict[str, Any]):
    """Return ``(grains, spots)`` DataFrames of a decoded :data:`TOPIC_GRAINS` payload.

    Raises
    ------
    WireError
        A missing table, columns of unequal length, or a row count that disagrees with ``n_rows``.
    """
    out = []
    for key in ("grains", "spots"):
        table = payload.get(key)
        if not isinstance(table, dict):
            raise WireError(f"grains message lacks its {key!r} table")
        try:
            out.append(_decode_table(table["names"], table["columns"], table["n_rows"], f"grains/{key}"))
        except KeyError as exc:
            raise WireError(f"grains message: {key!r} table lacks {exc}") from None
    return out[0], out[1]


def decode_spot_table(payload: dict[str, Any]):
    """Return the spot table of a decoded :data:`TOPIC_SPOTS` payload as a pandas DataFrame.

    Raises
    ------
    WireError
        Missing columns, columns of unequal length, or a row count that disagrees with ``n_rows``.
    """
    try:
        names, columns, n_rows = payload["names"], payload["columns"], payload["n_rows"]
    except KeyError as exc:
        raise WireError(f"spot-table message lacks {exc}") from None
    return _decode_table(names, columns, n_rows, "spot-table")
