"""The wire codec: round trips, typed buffers, and refusal of pickled, truncated, oversized, unknown data."""

from __future__ import annotations

import pickle

import msgpack
import numpy as np
import pytest

from laue_live import WireError
from laue_live._schema import spot_column_names
from laue_live.stream import (
    TOPIC_SPOTS,
    WIRE_VERSION,
    decode_message,
    decode_spot_table,
    dumps,
    encode_message,
    encode_spot_table,
    loads,
    pack_payload,
    unpack_payload,
)


def test_document_round_trip_keeps_arrays_and_dtypes():
    image = np.arange(12, dtype=">u2").reshape(3, 4)  # big-endian input is sent little-endian
    doc = {"uid": "abc", "time": 1.5, "data": {"img": image, "n": np.int64(7), "f": np.float32(0.25),
                                               "pos": (1.0, 2.0)}, "none": None}
    out = loads(dumps(doc))
    assert out["data"]["img"].dtype == np.dtype("<u2")
    np.testing.assert_array_equal(out["data"]["img"], image)
    assert out["data"]["n"] == 7 and isinstance(out["data"]["n"], int)
    assert out["data"]["f"] == 0.25
    assert out["data"]["pos"] == [1.0, 2.0]  # tuples become lists, like JSON
    assert out["none"] is None and out["uid"] == "abc"


def test_typed_buffer_is_plain_msgpack_readable_without_laue_live():
    data = msgpack.unpackb(dumps({"a": np.array([1.5, 2.5], dtype="<f8")}), raw=False)
    assert data["v"] == WIRE_VERSION
    buf = data["doc"]["a"]
    assert buf == {"__ndarray__": 1, "dtype": "<f8", "shape": [2], "data": np.array([1.5, 2.5]).tobytes()}


def test_spot_table_round_trip(spot_table_factory):
    table = spot_table_factory(frame=3, n=50)
    frame = encode_spot_table(table, frame=3, seq=9, run={"uid": "u", "shape": [4, 5]})
    message = decode_message(frame)
    assert message.topic == TOPIC_SPOTS and message.name == "spots"
    assert message.payload["seq"] == 9 and message.payload["run"]["shape"] == [4, 5]
    out = decode_spot_table(message.payload)
    assert list(out.columns) == spot_column_names()
    for name in out.columns:
        assert out[name].dtype == table[name].dtype, name
        np.testing.assert_array_equal(out[name].to_numpy(), table[name].to_numpy())


def test_empty_spot_table_round_trip(spot_table_factory):
    table = spot_table_factory(frame=0, n=0)
    out = decode_spot_table(decode_message(encode_spot_table(table, frame=0, seq=1)).payload)
    assert len(out) == 0 and list(out.columns) == spot_column_names()


class _Boom:
    def __reduce__(self):
        return (pytest.fail, ("the pickled payload was executed",))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_pickled_payload_is_rejected_not_executed(protocol):
    with pytest.raises(WireError):
        loads(pickle.dumps({"doc": _Boom()}, protocol=protocol))


def test_truncated_payload_is_rejected():
    data = dumps({"a": np.zeros(100)})
    for cut in (1, 10, len(data) // 2, len(data) - 1):
        with pytest.raises(WireError):
            loads(data[:cut])


def test_typed_buffer_with_wrong_length_is_rejected():
    bad = msgpack.packb({"v": 1, "doc": {"a": {"__ndarray__": 1, "dtype": "<f8", "shape": [10],
                                                "data": b"\x00" * 16}}})
    with pytest.raises(WireError, match="truncated or corrupt"):
        loads(bad)


@pytest.mark.parametrize("dtype", ["|O", "V8", "[('a', '<f8')]", "not-a-dtype", ">f8"])
def test_unsafe_or_bad_dtype_is_rejected(dtype):
    bad = msgpack.packb({"v": 1, "doc": {"a": {"__ndarray__": 1, "dtype": dtype, "shape": [1],
                                                "data": b"\x00" * 8}}})
    with pytest.raises(WireError):
        loads(bad)


def test_oversized_message_is_rejected_with_a_configurable_limit():
    data = dumps({"a": np.zeros(1000)})
    assert loads(data, max_bytes=len(data))["a"].shape == (1000,)
    with pytest.raises(WireError, match="exceeds"):
        loads(data, max_bytes=len(data) - 1)


def test_unknown_version_and_non_map_are_rejected():
    with pytest.raises(WireError, match="version"):
        unpack_payload(msgpack.packb({"v": 99, "doc": {}}))
    with pytest.raises(WireError, match="version"):
        unpack_payload(msgpack.packb({"doc": {}}))
    with pytest.raises(WireError, match="map"):
        unpack_payload(msgpack.packb([1, 2, 3]))
    with pytest.raises(WireError, match="extension"):
        unpack_payload(msgpack.packb({"v": 1, "x": msgpack.ExtType(5, b"abc")}))


def test_message_framing_errors():
    with pytest.raises(WireError, match="separators"):
        decode_message(b"no-separators-here")
    with pytest.raises(WireError):
        encode_message(b"a b", "x", {})
    assert decode_message(encode_message(b"t", "n", {"k": 1})).payload == {"v": 1, "k": 1}


def test_unencodable_objects_raise_wire_error():
    with pytest.raises(WireError):
        pack_payload({"x": object()})
    with pytest.raises(WireError):
        dumps({"x": np.array([object()], dtype=object)})


def test_grains_message_decodes_with_plain_msgpack_and_round_trips():
    from laue_live._schema import GRAIN_COLUMNS, SPOT_INDEX_COLUMNS
    from laue_live.stream import TOPIC_GRAINS, decode_grains, encode_grains

    grains = {c.name: np.zeros(2, dtype=object if c.dtype == "str" else c.dtype) for c in GRAIN_COLUMNS}
    grains["material"] = np.array(["Si", "GaN"], dtype=object)
    grains["u11"] = np.array([0.5, -0.25])
    spots = {c.name: np.arange(3).astype(c.dtype) for c in SPOT_INDEX_COLUMNS}
    summary = {"frame": 7, "status": "indexed", "n_grains": 2, "reason": ""}
    frame = encode_grains(grains, spots, frame=7, seq=3, run={"uid": "a"}, summary=summary)
    topic, name, payload = frame.split(b" ", 2)
    assert (topic, name) == (TOPIC_GRAINS, b"grains")
    # without laue-live: msgpack + numpy, as docs/stream.md shows
    msg = msgpack.unpackb(payload, raw=False)
    assert msg["v"] == WIRE_VERSION and msg["frame"] == 7 and msg["summary"]["status"] == "indexed"
    cols = {k: np.frombuffer(c["data"], dtype=c["dtype"]).reshape(c["shape"])
            for k, c in msg["grains"]["columns"].items()}
    assert cols["material"].tolist() == ["Si", "GaN"] and cols["u11"].tolist() == [0.5, -0.25]
    assert msg["spots"]["names"] == [c.name for c in SPOT_INDEX_COLUMNS]
    g, s = decode_grains(decode_message(frame).payload)
    assert g["material"].tolist() == ["Si", "GaN"] and len(s) == 3 and s["h"].dtype == np.int32
    broken = decode_message(frame).payload
    broken["spots"]["n_rows"] = 5
    with pytest.raises(WireError, match="expected"):
        decode_grains(broken)
    with pytest.raises(WireError, match="lacks"):
        decode_grains({"grains": broken["grains"]})
