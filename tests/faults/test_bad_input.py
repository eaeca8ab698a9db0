"""Bad input: malformed documents, 0MQ messages and model files; fuzzed with hypothesis.

Each gets a clear error (a laue-live exception class saying what is wrong) or a recorded failure,
never a crash of the service and never a silently wrong table.
"""

from __future__ import annotations

import copy
import pickle
import struct

import msgpack
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from laue_live import ModelError, WireError
from laue_live.analysis import FrameAnalyzer
from laue_live.callbacks import LaueSpotCallback
from laue_live.stream import TOPIC_SPOTS, decode_message, decode_spot_table, loads

from ._helpers import Collect, InlineDetector, n_spots

pytestmark = [pytest.mark.faults, pytest.mark.timeout(240)]

N = 3


@pytest.fixture(scope="module")
def raw_docs():
    """The documents of a real 3-frame run (inline frames)."""
    docs = []
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(count([InlineDetector(name="laue")], N))
    return docs


def _feed(docs, analyzer):
    sink = Collect()
    cb = LaueSpotCallback([sink], analyzer=analyzer)
    for name, doc in docs:
        cb(name, doc)  # never raises (an exception here fails the test)
    if cb.worker is not None and not any(n == "stop" for n, _ in docs):
        assert not cb.wait(0.2), "no stop document: the analysis run stays open until told"
        cb.worker.close("unknown", "the raw run sent no stop document")
    assert cb.wait(30), "the analysis run was never closed"
    return cb, sink


def _consistent(sink):
    """No frame twice; spot rows agree with each frame's summary; stop counts agree with the rows."""
    desc = {d["uid"]: d["name"] for d in sink.of("descriptor")}
    rows = [e["data"] for e in sink.of("event") if desc.get(e["descriptor"]) == "frames"]
    frames = [r["frame"] for r in rows]
    assert len(frames) == len(set(frames)), f"a frame recorded twice: {frames}"
    spots = sink.spot_rows()
    for r in rows:
        assert spots.get(r["frame"], 0) == r["n_spots"]
        assert r["failed"] == bool(r["error"])
    for stop in sink.of("stop"):
        assert stop["frames_analysed"] + stop["frames_failed"] + stop["frames_dropped"] == len(rows)
    return {r["frame"]: r for r in rows}


CASES = {
    "duplicated event": lambda d: d[:3] + [d[2]] + d[3:],
    "duplicated start": lambda d: d[:1] + d,
    "duplicated descriptor": lambda d: d[:2] + [d[1]] + d[2:],
    "event before its descriptor": lambda d: [d[0], d[2], d[1], *d[3:]],
    "stop before the events": lambda d: d[:2] + [d[-1]] + d[2:-1],
    "no start document": lambda d: d[1:],
    "no stop document (closed later)": lambda d: d[:-1],
    "unknown fields everywhere": lambda d: [(n, {**x, "zzz_unknown": {"a": [1, 2]}}) for n, x in d],
    "event without data": lambda d: (
        d[:2] + [(d[2][0], {k: v for k, v in d[2][1].items() if k != "data"})] + d[3:]
    ),
    "event without seq_num": lambda d: (
        d[:2] + [(d[2][0], {k: v for k, v in d[2][1].items() if k != "seq_num"})] + d[3:]
    ),
    "descriptor without data_keys": lambda d: [
        d[0],
        (d[1][0], {k: v for k, v in d[1][1].items() if k != "data_keys"}),
        *d[2:],
    ],
    "image replaced by a string": lambda d: (
        d[:2] + [(d[2][0], {**d[2][1], "data": {**d[2][1]["data"], "laue_image": "garbage"}})] + d[3:]
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_document_streams(raw_docs, analyzer, case, fault_report):
    docs = CASES[case](copy.deepcopy(raw_docs))
    cb, sink = _feed(docs, analyzer)
    rows = _consistent(sink)
    ok = {f: r for f, r in rows.items() if not r["failed"]}
    for f, r in ok.items():  # an analysed frame is right, never silently wrong
        assert r["n_spots"] == n_spots(f)
    # frames the input identifies (an event with a seq_num under an image descriptor) without a row
    named = {d["seq_num"] - 1 for n, d in docs if n == "event" and isinstance(d.get("seq_num"), int)}
    if case in ("descriptor without data_keys", "no start document"):
        # no image field declared / no run to attach frames to: a clear log, no analysis run
        assert not rows and not sink.of("start")
        lost = f"n/a ({len(named)} frames, no run)"
    elif case == "stop before the events":
        # the run is closed before its frames arrive: each is recorded failed or refused with an error
        late = named - set(rows)
        lost = f"n/a ({len(late)} frames after the stop)" if late else 0
    else:
        lost = len(named - set(rows))
        assert lost == 0, f"frames without a row: {sorted(named - set(rows))}"
    if case in (
        "duplicated event",
        "duplicated descriptor",
        "event before its descriptor",
        "unknown fields everywhere",
        "duplicated start",
        "no stop document (closed later)",
    ):
        assert sorted(ok) == list(range(N)), "every frame analysed once"
    elif case in ("image replaced by a string", "event without data"):
        assert rows[0]["failed"] and sorted(ok) == [1, 2]
    elif case == "stop before the events":
        assert all(r["failed"] and "after the run's stop" in r["error"] for r in rows.values())
    result = (
        f"{len(ok)} of {N} frames analysed once, {len(rows) - len(ok)} recorded failed, "
        f"{cb.errors} document error(s) logged; no exception reached the RunEngine"
    )
    if case == "event without seq_num":
        result += " (the event names no frame: logged as a document error, the others analysed)"
    if case == "stop before the events":
        result += (
            "; frames after the stop cannot join the closed run: recorded failed while the run is still "
            "open, else refused with an error log naming the frame"
        )
    if case == "no start document":
        result = (
            "no analysis run: the descriptor and events belong to no run (warning logged); nothing raised"
        )
    elif case == "descriptor without data_keys":
        result = "no analysis run: the run declares no image field (logged, as for a run without images)"
    fault_report.add("documents", case, result, lost)


# -- hypothesis: random mutations of a real document stream ----------------------------------------
_JUNK = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.text(max_size=5),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
_MUTATION = st.one_of(
    st.tuples(st.just("drop"), st.integers(0, 10)),
    st.tuples(st.just("dup"), st.integers(0, 10)),
    st.tuples(st.just("swap"), st.integers(0, 10), st.integers(0, 10)),
    st.tuples(
        st.just("delkey"),
        st.integers(0, 10),
        st.sampled_from(
            ["uid", "data", "seq_num", "descriptor", "run_start", "data_keys", "name", "time", "exit_status"]
        ),
    ),
    st.tuples(
        st.just("junk"),
        st.integers(0, 10),
        st.sampled_from(["uid", "data", "seq_num", "descriptor", "data_keys", "name", "filled"]),
        _JUNK,
    ),
    st.tuples(
        st.just("rename"),
        st.integers(0, 10),
        st.sampled_from(["event", "event_page", "stop", "start", "descriptor", "datum", "bogus"]),
    ),
)


def _mutate(docs, mutations):
    docs = copy.deepcopy(docs)
    for m in mutations:
        if not docs:
            break
        i = m[1] % len(docs)
        if m[0] == "drop":
            docs.pop(i)
        elif m[0] == "dup":
            docs.insert(i, copy.deepcopy(docs[i]))
        elif m[0] == "swap":
            j = m[2] % len(docs)
            docs[i], docs[j] = docs[j], docs[i]
        elif m[0] == "delkey":
            docs[i][1].pop(m[2], None)
        elif m[0] == "junk":
            docs[i][1][m[2]] = m[3]
        elif m[0] == "rename":
            docs[i] = (m[2], docs[i][1])
    return docs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(_MUTATION, min_size=1, max_size=4))
def _fuzzed_document_stream(raw_docs, analyzer, mutations):
    docs = _mutate(raw_docs, mutations)
    sink = Collect()
    cb = LaueSpotCallback([sink], analyzer=analyzer)
    for name, doc in docs:
        cb(name, doc)  # must never raise
    if cb.worker is not None and not cb.worker.done:
        cb.worker.close("unknown", "fuzz: stream ended")
    assert cb.wait(30)
    rows = _consistent(sink)
    # Frames were not altered by the mutations (only documents were): an analysed frame is exact.
    for f, r in rows.items():
        if not r["failed"] and 0 <= f < N:
            assert r["n_spots"] == n_spots(f)


def test_fuzzed_document_streams(raw_docs, analyzer, fault_report):
    """60 random streams; the report row is written only once every one of them passed."""
    _fuzzed_document_stream(raw_docs=raw_docs, analyzer=analyzer)
    fault_report.add(
        "documents",
        "hypothesis: 60 random streams (drop/duplicate/swap/delete key/junk value/wrong name)",
        "never raised; no frame twice; rows agree with summaries; analysed frames exact",
        0,
    )


# -- 0MQ messages ------------------------------------------------------------------------------------
def _good_message():
    from laue_live.catalog import random_spot_table
    from laue_live.stream import encode_spot_table

    return encode_spot_table(random_spot_table(3, 20, np.random.default_rng(1)), frame=3, seq=1)


WIRE_CASES = {
    "truncated (half)": lambda m: m[: len(m) // 2],
    "truncated (header only)": lambda m: m[:12],
    "oversized (> max_bytes)": lambda m: m + b"\x00" * 4096,
    "unknown wire version": lambda m: b"laue.spots spots " + msgpack.packb({"v": 99, "frame": 1}),
    "pickled payload": lambda m: b"laue.spots spots " + pickle.dumps({"v": 1, "frame": 1}),
    "pickle that would run code": lambda m: b"laue.doc start " + pickle.dumps(_Evil()),
    "no separators": lambda m: m.replace(b" ", b"_"),
    "array with a lying length": lambda m: (
        b"laue.doc event "
        + msgpack.packb(
            {"v": 1, "doc": {"x": {"__ndarray__": 1, "dtype": "<f8", "shape": [1000], "data": b"\0" * 8}}}
        )
    ),
    "object dtype array": lambda m: (
        b"laue.doc event "
        + msgpack.packb(
            {"v": 1, "doc": {"x": {"__ndarray__": 1, "dtype": "|O", "shape": [1], "data": b"\0" * 8}}}
        )
    ),
    "msgpack extension type": lambda m: (
        b"laue.doc event " + msgpack.packb({"v": 1, "doc": msgpack.ExtType(5, b"x")})
    ),
}


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/laue-live-pwned",))


@pytest.mark.parametrize("case", list(WIRE_CASES))
def test_malformed_wire_messages(case, fault_report, tmp_path):
    import os

    bad = WIRE_CASES[case](_good_message())
    with pytest.raises(WireError) as info:
        m = decode_message(bad, max_bytes=len(_good_message()) + 100)
        if m.topic == TOPIC_SPOTS:
            decode_spot_table(m.payload)
        else:
            loads(bad.split(b" ", 2)[2])
    assert not os.path.exists("/tmp/laue-live-pwned")
    fault_report.add("0MQ message", case, f"WireError: `{str(info.value)[:70]}`", 0)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2048))
def _fuzz_wire_decoder_random_bytes(data):
    for candidate in (data, b"laue.spots spots " + data, b"laue.doc event " + data):
        try:
            m = decode_message(candidate)
            if m.topic == TOPIC_SPOTS:
                decode_spot_table(m.payload)
        except WireError:
            pass  # the one allowed failure


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=16),
)


@settings(max_examples=300, deadline=None)
@given(
    obj=st.recursive(
        _LEAF,
        lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(st.text(max_size=6), c, max_size=4)),
        max_leaves=20,
    ),
    nd=st.fixed_dictionaries(
        {
            "__ndarray__": st.sampled_from([1, 2]),
            "dtype": st.sampled_from(["<f4", "<u2", "|b1", "<c16", ">f8", "|O", "V8", "<M8[s]", "xx", 3]),
            "shape": st.one_of(
                st.lists(st.one_of(st.integers(-2, 5), st.integers(-(2**63), 2**64 - 1)), max_size=3),
                st.integers(-(2**63), 2**64 - 1),
            ),
            "data": st.one_of(st.binary(max_size=64), st.text(max_size=4)),
        }
    ),
)
def _fuzz_wire_decoder_structured(obj, nd):
    for payload in (
        {"v": 1, "doc": obj},
        {"v": 1, "doc": {"a": nd}},
        {"v": 1, "names": obj, "columns": [nd]},
    ):
        raw = msgpack.packb(payload, use_bin_type=True)
        try:
            loads(raw)
            m = decode_message(b"laue.spots spots " + raw)
            decode_spot_table(m.payload)
        except WireError:
            continue
        # accepted: any array it yields must be consistent with its declared shape and dtype
        doc = loads(raw)
        a = doc.get("a") if isinstance(doc, dict) else None
        if isinstance(a, np.ndarray):
            assert a.size * a.itemsize == len(nd["data"])


def test_fuzzed_wire_messages(fault_report):
    """Random bytes and random msgpack structures; the report row only once both runs passed."""
    _fuzz_wire_decoder_random_bytes()
    _fuzz_wire_decoder_structured()
    fault_report.add(
        "0MQ message",
        "hypothesis: 300 random byte strings x 3 framings, 300 random msgpack structures with typed buffers",
        "WireError or a consistent decode, nothing else",
        0,
    )


# -- model files -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import torch

    from laue_live.cnn import Architecture, SpotCNN, save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "small.safetensors"
    save_model(path, SpotCNN(Architecture(widths=(4, 4, 8, 8, 8, 8), dense=(8,))).eval())
    return path


def _damage(kind, src, dst):
    data = src.read_bytes()
    if kind == "truncated":
        dst.write_bytes(data[: len(data) // 2])
    elif kind == "bit flips in the header":
        b = bytearray(data)
        for i in range(10, 60, 7):
            b[i] ^= 0xFF
        dst.write_bytes(bytes(b))
    elif kind == "header length lies":
        dst.write_bytes(struct.pack("<Q", 10**12) + data[8:])
    elif kind == "empty file":
        dst.write_bytes(b"")
    elif kind == "pickled torch checkpoint (.pt renamed)":
        import torch

        torch.save({"w": torch.zeros(3)}, dst)
    elif kind == "NaN weights":
        from safetensors.torch import load_file, save_file

        from laue_live.cnn._io import read_metadata

        tensors = load_file(src)
        name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
        tensors[name][0] = float("nan")
        import json

        save_file(tensors, dst, metadata={"laue_live": json.dumps(read_metadata(src))})
    return dst


MODEL_CASES = [
    "truncated",
    "bit flips in the header",
    "header length lies",
    "empty file",
    "pickled torch checkpoint (.pt renamed)",
    "NaN weights",
    "missing file",
]


@pytest.mark.parametrize("kind", MODEL_CASES)
def test_damaged_model_files(model_file, tmp_path, kind, fault_report):
    from laue_live.cnn import load_model

    dst = tmp_path / "bad.safetensors"
    if kind != "missing file":
        _damage(kind, model_file, dst)
    with pytest.raises(ModelError) as info:
        load_model(dst)
    fault_report.add("model file", kind, f"ModelError: `{str(info.value).replace(str(dst), 'FILE')[:90]}`", 0)


def test_model_of_another_architecture(model_file, fault_report):
    from laue_live.cnn import Architecture, load_model

    with pytest.raises(ModelError, match="architecture"):
        load_model(model_file, expect=Architecture())
    fault_report.add(
        "model file",
        "another architecture than expected",
        "ModelError: `holds architecture ..., expected ...`",
        0,
    )


def test_damaged_model_in_a_live_scan_fails_frames_not_the_service(model_file, tmp_path, fault_report):
    """The CNN analyser with a corrupted model: every frame recorded failed with the ModelError."""
    bad = _damage("truncated", model_file, tmp_path / "bad.safetensors")
    analyzer = FrameAnalyzer("cnn", model=str(bad), device="cpu")
    docs = []
    RE = RunEngine({}, call_returns_result=False)
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(count([InlineDetector(name="laue")], 2))
    cb, sink = _feed(docs, analyzer)
    rows = _consistent(sink)
    assert sorted(rows) == [0, 1]
    assert all(r["failed"] and "ModelError" in r["error"] for r in rows.values()), rows
    fault_report.add(
        "model file",
        "truncated model given to the live analysis",
        "each frame recorded failed with the ModelError; RunEngine and callback unaffected",
        0,
    )


def test_pickle_is_refused_where_data_crosses_a_process_boundary(model_file):
    """Nothing in laue_live unpickles: torch.load only with weights_only=True, no pickle.loads."""
    import re
    from pathlib import Path

    import laue_live

    root = Path(laue_live.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(
            r"pickle\.loads?\(|cPickle|dill\.|joblib\.load|pd\.read_pickle|np\.load\([^)]*"
            r"allow_pickle\s*=\s*True|\.recv_pyobj\(|\.send_pyobj\(",
            text,
        ):
            offenders.append(f"{path.relative_to(root)}: {m.group(0)}")
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{path.relative_to(root)}: {m.group(0)}")
    assert not offenders, offenders
