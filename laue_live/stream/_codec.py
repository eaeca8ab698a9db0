"""The laue-live wire codec: msgpack with a version field, numpy arrays as typed buffers, no pickle.

Every 0MQ message is one frame ``TOPIC b" " NAME b" " PAYLOAD`` (the framing bluesky's
``Publisher``/``RemoteDispatcher`` use, so a stock ``RemoteDispatcher(prefix=b"laue.doc",
deserializer=loads)`` can consume the analysis documents). ``PAYLOAD`` is a msgpack map with the key
``"v"`` (wire version, :data:`WIRE_VERSION`). A numpy array anywhere in a payload is the map
``{"__ndarray__": 1, "dtype": "<f4", "shape": [n, ...], "data": <bin: raw little-endian bytes, C order>}``.
See ``docs/stream.md`` for the full layout and a decoder in a dozen lines of any language.

The decoder never calls pickle: a pickled payload fails msgpack decoding (and is recognised for a
clearer message); truncated, oversized, unknown-version and malformed messages raise
:class:`~laue_live._errors.WireError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

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
]

#: Version of the wire format; a decoder refuses any other.
WIRE_VERSION = 1
#: Largest message the decoder accepts by default, in bytes (a raw 2018 x 2016 uint16 frame is 8 MB).
DEFAULT_MAX_BYTES = 256 * 2**20

TOPIC_DOC = b"laue.doc"  #: analysis-run documents; NAME is the document name
TOPIC_SPOTS = b"laue.spots"  #: one spot table per analysed frame; NAME is ``spots``
TOPIC_STATUS = b"laue.status"  #: service / publisher state; NAME is ``status``
TOPIC_HELLO = b"laue.hello"  #: 0MQ welcome message sent to each new subscriber; NAME is ``hello``

_ND = "__ndarray__"
_ND_KEYS = frozenset((_ND, "dtype", "shape", "data"))
# Plain-data dtypes only: object/void dtypes could smuggle references or need pickle.
_ALLOWED_KINDS = frozenset("biufcmMUS")
_MAX_NDIM = 32
# Magic of pickle protocols 2-5: b"\x80" + protocol byte.
_PICKLE_PROTOCOLS = frozenset((2, 3, 4, 5))


# ------------------------------------------------------------------------------------------- encoding
def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _array_to_wire(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot put a {type(obj).__name__} on the wire (only msgpack types and numpy arrays)")


def _array_to_wire(array: np.ndarray) -> dict[str, Any]:
    if array.dtype.kind not in _ALLOWED_KINDS:
        if array.dtype.kind == "O":
            # Object arrays of str (pandas' string columns) travel as lists; anything else is refused.
            return array.tolist()  # type: ignore[return-value]
        raise TypeError(f"numpy dtype {array.dtype} cannot go on the wire")
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    array = np.ascontiguousarray(array, dtype=dtype)
    data = memoryview(array.reshape(-1).view(np.uint8)) if array.size else b""
    return {_ND: 1, "dtype": dtype.str, "shape": list(array.shape), "data": data}


def pack_payload(payload: dict[str, Any]) -> bytes:
    """msgpack-encode a payload map, adding the wire version ``"v"``.

    Raises
    ------
    WireError
        If the payload holds something msgpack cannot carry (a Python object, an object array).
    """
    try:
        return msgpack.packb({"v": WIRE_VERSION, **payload}, default=_default, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot encode payload: {exc}") from exc


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
def _array_from_wire(obj: dict[str, Any]) -> np.ndarray:
    try:
        dtype = np.dtype(obj["dtype"])
    except (TypeError, ValueError) as exc:
        raise WireError(f"typed buffer has an invalid dtype {obj['dtype']!r}") from exc
    if dtype.kind not in _ALLOWED_KINDS or dtype.byteorder == ">" or dtype.fields is not None:
        raise WireError(f"typed buffer dtype {obj['dtype']!r} is not allowed on the wire")
    shape = obj["shape"]
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(isinstance(n, int) and n >= 0 for n in shape)):
        raise WireError(f"typed buffer has an invalid shape {shape!r}")
    data = obj["data"]
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WireError("typed buffer data must be msgpack bin")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise WireError(f"typed buffer of {shape} {dtype.str} needs {expected} bytes, got {len(data)} "
                        "(truncated or corrupt)")
    # Read-only view on the received bytes: zero copy; callers copy if they need to write.
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _object_hook(obj: dict[str, Any]) -> Any:
    if _ND in obj:
        if obj.keys() != _ND_KEYS or obj[_ND] != 1:
            raise WireError(f"malformed typed buffer with keys {sorted(obj)}")
        return _array_from_wire(obj)
    return obj


def _ext_hook(code: int, data: bytes) -> Any:
    raise WireError(f"msgpack extension type {code} is not part of the laue-live wire format")


def _looks_pickled(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x80 and data[1] in _PICKLE_PROTOCOLS


def unpack_payload(data: bytes | memoryview, *, max_bytes: int = DEFAULT_MAX_BYTES) -> dict[str, Any]:
    """Decode and check a payload (the inverse of :func:`pack_payload`).

    Parameters
    ----------
    data
        The msgpack bytes.
    max_bytes
        Largest accepted size in bytes; larger messages are refused before decoding.

    Raises
    ------
    WireError
        Oversized, pickled, truncated or otherwise malformed data, or a wire version other than
        :data:`WIRE_VERSION`.
    """
    size = len(data)
    if size > max_bytes:
        raise WireError(f"message of {size} bytes exceeds the limit of {max_bytes} bytes")
    if size == 0:
        raise WireError("empty payload")
    if _looks_pickled(bytes(data[:2])):
        raise WireError("refusing a pickled payload: laue-live never unpickles network data")
    try:
        payload = msgpack.unpackb(data, raw=False, strict_map_key=True, object_hook=_object_hook,
                                  ext_hook=_ext_hook, use_list=True)
    except WireError:
        raise
    except msgpack.ExtraData as exc:
        raise WireError("payload has trailing bytes after the msgpack map (not laue-live wire data)") from exc
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        # Truncation raises ValueError("Unpack failed: incomplete input") in msgpack >= 1.0.
        raise WireError(f"cannot decode payload ({exc}): truncated or not msgpack") from exc
    if not isinstance(payload, dict):
        raise WireError(f"payload must be a msgpack map, got {type(payload).__name__}")
    version = payload.get("v")
    if version != WIRE_VERSION:
        raise WireError(f"unknown wire version {version!r} (this decoder reads version {WIRE_VERSION})")
    return payload


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
    items = list(table.items())  # DataFrame.items() avoids a column lookup per name
    names = [str(c) for c, _ in items]
    columns = {}
    n_rows = None
    for name, values in zip(names, (v for _, v in items), strict=True):
        array = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)
        if array.ndim != 1:
            raise WireError(f"spot-table column {name!r} is not 1-D")
        if n_rows is None:
            n_rows = len(array)
        elif len(array) != n_rows:
            raise WireError(f"spot-table column {name!r} has {len(array)} rows, not {n_rows}")
        columns[name] = array
    payload = {"seq": int(seq), "frame": int(frame), "schema_version": SCHEMA_VERSION,
               "n_rows": int(n_rows or 0), "run": run or {}, "names": names, "columns": columns,
               **(extra or {})}
    return encode_message(TOPIC_SPOTS, "spots", payload)


def decode_spot_table(payload: dict[str, Any]):
    """Return the spot table of a decoded :data:`TOPIC_SPOTS` payload as a pandas DataFrame.

    Raises
    ------
    WireError
        Missing columns, columns of unequal length, or a row count that disagrees with ``n_rows``.
    """
    import pandas as pd

    try:
        names, columns, n_rows = payload["names"], payload["columns"], payload["n_rows"]
    except KeyError as exc:
        raise WireError(f"spot-table message lacks {exc}") from None
    if not isinstance(names, list) or not isinstance(columns, dict) or set(names) != set(columns):
        raise WireError("spot-table message: 'names' and 'columns' disagree")
    data = {}
    for name in names:
        column = columns[name]
        array = column if isinstance(column, np.ndarray) else np.asarray(column)
        if array.ndim != 1 or len(array) != n_rows:
            raise WireError(f"spot-table column {name!r} has shape {array.shape}, expected ({n_rows},)")
        data[name] = array
    # A dict keeps the column order; without ``columns=`` pandas takes its fast path (3x faster).
    return pd.DataFrame(data) if data else pd.DataFrame(columns=names)
