"""laue-live's msgpack encoding: a version field, numpy arrays as typed buffers, never pickle.

The one binary format of the project: the 0MQ wire messages (:mod:`laue_live.stream`) and the local
journals (:mod:`laue_live._journal`) are payloads encoded here. A payload is a msgpack map with the
key ``"v"`` (:data:`WIRE_VERSION`); a numpy array anywhere in it is the map
``{"__ndarray__": 1, "dtype": "<f4", "shape": [n, ...], "data": <bin: raw little-endian bytes, C order>}``.
See ``docs/stream.md`` for the full layout and a decoder in a dozen lines of any language.

The decoder never calls pickle: a pickled payload fails msgpack decoding (and is recognised for a
clearer message); truncated, oversized, unknown-version and malformed payloads raise
:class:`~laue_live._errors.WireError`.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np

from laue_live._errors import WireError

__all__ = ["WIRE_VERSION", "DEFAULT_MAX_BYTES", "pack_payload", "unpack_payload"]

#: Version of the encoding; a decoder refuses any other.
WIRE_VERSION = 1
#: Largest payload the decoder accepts by default, in bytes (a raw 2018 x 2016 uint16 frame is 8 MB).
DEFAULT_MAX_BYTES = 256 * 2**20

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
    """msgpack-encode a payload map, adding the version ``"v"``.

    Raises
    ------
    WireError
        If the payload holds something msgpack cannot carry (a Python object, an object array).
    """
    try:
        return msgpack.packb({"v": WIRE_VERSION, **payload}, default=_default, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot encode payload: {exc}") from exc


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
        Largest accepted size in bytes; larger payloads are refused before decoding.

    Raises
    ------
    WireError
        Oversized, pickled, truncated or otherwise malformed data, or a version other than
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
