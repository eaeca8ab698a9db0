"""Real 0MQ PUB/SUB on loopback: complete ordered tables, pickle refused, stalled subscribers, CURVE."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from laue_live import SettingsError
from laue_live.stream import (
    TOPIC_SPOTS,
    CurveClient,
    CurveServer,
    SpotPublisher,
    SpotSubscriber,
    encode_spot_table,
    normalize_address,
)

WAIT = 10.0  # seconds: the bound on every positive wait


def _connected(pub: SpotPublisher, sub: SpotSubscriber) -> None:
    # The publisher's socket only attaches new peers while it is used: let it work first.
    assert pub.wait_for_subscribers(1, WAIT), "the subscription did not reach the publisher"
    assert sub.wait_ready(WAIT), "no welcome message from the publisher"


def test_addresses_are_strings_and_loopback_by_default():
    with pytest.raises(SettingsError, match="bare port"):
        normalize_address(5567, bind=True)
    with pytest.raises(SettingsError):
        normalize_address("127.0.0.1:0", bind=False)
    with pytest.raises(SettingsError, match="host"):
        normalize_address(":5567", bind=True)
    assert normalize_address("127.0.0.1:0", bind=True) == "tcp://127.0.0.1:*"
    with SpotPublisher() as pub:
        host, port = pub.address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0


def test_tables_arrive_complete_and_in_order(spot_table_factory):
    tables = [spot_table_factory(frame=i, n=(i * 37) % 300) for i in range(60)]
    with SpotPublisher() as pub, SpotSubscriber(pub.address) as sub:
        _connected(pub, sub)
        for i, table in enumerate(tables):
            assert pub.publish_table(table, frame=i, run={"uid": "run-1", "shape": [6, 10]})
        got = list(sub.frames(timeout=WAIT, limit=len(tables)))
    assert [f.frame for f in got] == list(range(len(tables)))
    assert [f.seq for f in got] == list(range(1, len(tables) + 1))
    for f, table in zip(got, tables, strict=True):
        run, frame, received = f  # unpacks as (run metadata, frame number, DataFrame)
        assert run["uid"] == "run-1" and run["shape"] == [6, 10]
        assert list(received.columns) == list(table.columns)
        for name in table.columns:
            assert received[name].dtype == table[name].dtype
            np.testing.assert_array_equal(received[name].to_numpy(), table[name].to_numpy())
    assert sub.stats() == {"received": len(tables) + 1, "rejected": 0, "missed": 0}  # + welcome


class _Marker:
    """Unpickling this creates a file: proof of code execution if it ever happens."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_payload_is_rejected_not_executed(tmp_path, spot_table_factory):
    import pickle

    marker = tmp_path / "executed"
    context = zmq.Context()
    attacker = context.socket(zmq.XPUB)  # a hostile publisher speaking bluesky's pickle framing
    attacker.setsockopt(zmq.LINGER, 0)
    attacker.bind("tcp://127.0.0.1:*")
    address = attacker.getsockopt(zmq.LAST_ENDPOINT).decode().removeprefix("tcp://")
    try:
        with SpotSubscriber(address, documents=True) as sub:
            assert attacker.poll(int(WAIT * 1000)), "no subscription reached the attacker"
            for protocol in (0, 2, 5):
                evil = pickle.dumps({"v": 1, "names": [], "columns": _Marker(marker)}, protocol=protocol)
                attacker.send(TOPIC_SPOTS + b" spots " + evil)
            attacker.send(b"laue.doc start " + pickle.dumps(_Marker(marker)))
            attacker.send(encode_spot_table(spot_table_factory(frame=7, n=5), frame=7, seq=1))
            good = sub.next_frame(WAIT)
            assert good is not None and good.frame == 7 and len(good.table) == 5
            assert sub.rejected == 4
            assert "pickle" in (sub.last_error or "")
    finally:
        attacker.close()
        context.term()
    assert not marker.exists(), "a pickled payload was executed"


def test_stalled_subscriber_does_not_stall_the_publisher(spot_table_factory):
    table = spot_table_factory(frame=0, n=1000)  # ~90 kB per message
    n = 400
    with SpotPublisher(hwm=4) as pub, SpotSubscriber(pub.address, hwm=4) as sub:
        _connected(pub, sub)
        # The subscriber reads nothing while the publisher sends: every call must return at once.
        results = [pub.publish_table(table, frame=i) for i in range(n)]
        stats = pub.stats()
        assert stats["dropped"] > 0, "the stalled subscriber's queue never filled"
        assert stats["tables"] == n and stats["sent"] + stats["dropped"] == n + 0
        assert results.count(False) == stats["dropped"]
        received = _until_marker(pub, sub, table, n)
    # What arrives is in order, and the gaps are reported as missed.
    got = [f.frame for f in received]
    assert got == sorted(got) and 0 < len(got) - 1 < n and got[-1] == n
    seqs = [f.seq for f in received]
    assert sub.missed == (seqs[-1] - seqs[0] + 1) - len(seqs)


def _until_marker(pub, sub, table, marker: int) -> list:
    """Read until the table of frame ``marker`` arrives, publishing it until it is not dropped.

    One publisher, one subscriber: messages arrive in order, so once the marker is here every table
    that survived before it is here too. Completion is the marker, never a pause in the traffic.
    """
    received = []
    sent = False
    deadline = time.monotonic() + WAIT
    while not received or received[-1].frame != marker:
        assert time.monotonic() < deadline, f"frame {marker} never arrived ({len(received)} tables read)"
        if not sent:  # dropped (nodrop mode says so) or lost (lossy mode: nothing came): again
            sent = pub.publish_table(table, frame=marker)
        batch = list(sub.frames(timeout=0.05, limit=64))
        sent = sent and bool(batch)
        received += batch
    return received


def test_analysis_documents_become_tables_one_per_frame(spot_table_factory):
    """The sink API: a spots event page per frame -> one table; a frame without spots -> empty table."""
    from event_model import compose_run

    bundle = compose_run(metadata={"raw_uid": "raw-1", "shape": [1, 3], "method": "fit"})
    spots = bundle.compose_descriptor(name="spots", data_keys={
        c: {"source": "t", "dtype": "number", "shape": []} for c in spot_table_factory(0, 1).columns})
    frames = bundle.compose_descriptor(name="frames", data_keys={
        k: {"source": "t", "dtype": "number", "shape": []} for k in ("frame", "n_spots")})
    with SpotPublisher() as pub, SpotSubscriber(pub.address, documents=True) as sub:
        _connected(pub, sub)
        pub("start", bundle.start_doc)
        pub("descriptor", spots.descriptor_doc)
        pub("descriptor", frames.descriptor_doc)
        for i, n in enumerate([4, 0, 2]):
            if n:
                t = spot_table_factory(frame=i, n=n)
                data = {k: t[k].to_numpy() for k in t.columns}
                pub("event_page", spots.compose_event_page(
                    data=data, timestamps={k: [0.0] * n for k in data}, seq_num=list(range(1, n + 1)),
                    time=[0.0] * n, validate=False))
            pub("event", frames.compose_event(data={"frame": i, "n_spots": n},
                                              timestamps={"frame": 0.0, "n_spots": 0.0}))
        pub("stop", bundle.compose_stop())
        got = list(sub.frames(timeout=WAIT, limit=3))
    assert [(f.frame, len(f.table)) for f in got] == [(0, 4), (1, 0), (2, 2)]
    assert all(f.run["raw_uid"] == "raw-1" and f.run["shape"] == [1, 3] for f in got)
    assert got[0].run["method"] == "fit"  # completed from the start document
    assert [f.header["summary"]["n_spots"] for f in got] == [4, 0, 2]  # the frame's summary rides along


def test_curve_encrypts_and_admits_only_listed_clients(curve_certs, spot_table_factory):
    server = CurveServer(curve_certs["server_secret"], curve_certs["client_keys_dir"])
    client = CurveClient(curve_certs["client_secret"], curve_certs["server_public"])
    stranger = CurveClient(curve_certs["stranger_secret"], curve_certs["server_public"])
    with SpotPublisher(curve=server) as pub:
        with SpotSubscriber(pub.address, curve=stranger) as intruder, SpotSubscriber(pub.address) as plain:
            # Neither completes the handshake: no subscription, no welcome, nothing published reaches them.
            assert not pub.wait_for_subscribers(1, 1.0)
            with SpotSubscriber(pub.address, curve=client) as sub:
                _connected(pub, sub)
                pub.publish_table(spot_table_factory(frame=1, n=10), frame=1)
                got = sub.next_frame(WAIT)
                assert got is not None and got.frame == 1 and len(got.table) == 10
            assert not intruder.wait_ready(0.2) and not plain.wait_ready(0.2)
            assert intruder.next_frame(0.2) is None and plain.next_frame(0.2) is None
            assert intruder.received == 0 and plain.received == 0


def test_lossy_mode_drops_per_subscriber_and_subscribers_see_the_gaps(spot_table_factory):
    table = spot_table_factory(frame=0, n=1000)
    n = 400
    with SpotPublisher(hwm=4, nodrop=False) as pub, SpotSubscriber(pub.address, hwm=4) as sub:
        _connected(pub, sub)
        results = [pub.publish_table(table, frame=i) for i in range(n)]
        assert all(results) and pub.stats()["dropped"] == 0  # libzmq drops silently in this mode
        # Drops may all be at the tail, which a subscriber cannot see until a later message comes:
        # one more table, read until it arrives, ends what survived the flood and reveals the gap.
        received = _until_marker(pub, sub, table, n)
    got, seqs = [f.frame for f in received], [f.seq for f in received]
    assert got == sorted(got) and 0 < len(got) < n and got[-1] == n
    assert sub.missed == (seqs[-1] - seqs[0] + 1) - len(seqs) > 0


def test_concurrent_analysis_threads_publish_in_seq_order(spot_table_factory):
    import threading

    tables = [spot_table_factory(frame=i, n=20) for i in range(50)]
    with SpotPublisher() as pub, SpotSubscriber(pub.address) as sub:
        _connected(pub, sub)

        def worker(run: str) -> None:
            for i, t in enumerate(tables):
                pub.publish_table(t, frame=i, run={"uid": run})

        threads = [threading.Thread(target=worker, args=(f"run-{k}",)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
        got = list(sub.frames(timeout=WAIT, limit=150))
    assert [f.seq for f in got] == list(range(1, 151))  # one counter, no gap, no duplicate
    for k in range(3):
        assert [f.frame for f in got if f.run["uid"] == f"run-{k}"] == list(range(50))
