"""RunEngine documents through the safe proxy: no pickle, subscriptions travel upstream, bounded backlog."""

from __future__ import annotations

import pickle
import time

import numpy as np

from laue_live.stream import DocumentPublisher, SafeProxy, SafeRemoteDispatcher

WAIT = 10.0


class _Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _receive_until(dispatcher: SafeRemoteDispatcher, done, timeout: float = WAIT) -> None:
    """Poll until ``done()``: everything sent has been counted in; fail after ``timeout`` s.

    Completion is what was sent arriving, never a pause in the traffic (a slow machine pauses).
    """
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {dispatcher.received} received"
        dispatcher.poll_once(0.05)


def test_documents_flow_in_order_and_pickle_is_refused(tmp_path):
    marker = tmp_path / "executed"
    received = []
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        assert proxy.in_address.startswith("127.0.0.1:") and proxy.out_address.startswith("127.0.0.1:")
        dispatcher = SafeRemoteDispatcher(proxy.out_address)
        dispatcher.subscribe(lambda name, doc: received.append((name, doc)))
        with DocumentPublisher(proxy.in_address) as pub:
            # Readiness handshake: the dispatcher's subscription crossed the proxy to us. No sleep.
            assert pub.wait_for_subscribers(1, WAIT)
            pub("start", {"uid": "s1", "time": 0.0})
            for i in range(50):
                pub("event", {"uid": f"e{i}", "seq_num": i + 1, "data": {"img": np.full((4, 5), i, "<u2")}})
            pub("stop", {"uid": "t1", "run_start": "s1"})
            _receive_until(dispatcher, lambda: len(received) == 52)
            # What bluesky's default Publisher sends (its framing + pickle): rejected, never unpickled.
            pub._send(b" ".join([b"", b"start", pickle.dumps(_Marker(marker))]))
            pub("start", {"uid": "s2"})
            _receive_until(dispatcher, lambda: dispatcher.received == 54 and len(received) == 53)
        dispatcher.stop()
        assert dispatcher.closed
    names = [n for n, _ in received]
    assert names == ["start"] + ["event"] * 50 + ["stop", "start"]
    assert [d["seq_num"] for n, d in received if n == "event"] == list(range(1, 51))
    np.testing.assert_array_equal(received[10][1]["data"]["img"], np.full((4, 5), 9, "<u2"))
    assert dispatcher.rejected == 1 and "pickle" in dispatcher.last_error
    assert not marker.exists()


def test_backlog_is_bounded_by_the_socket_not_memory():
    n = 300
    big = {"uid": "x", "data": {"blob": np.zeros(64 * 1024, dtype="u1")}}  # 64 kB documents
    with SafeProxy(hwm=5) as proxy:
        proxy.start_in_thread()
        dispatcher = SafeRemoteDispatcher(proxy.out_address, max_backlog=5)
        got = []
        dispatcher.subscribe(lambda name, doc: got.append(name))
        with DocumentPublisher(proxy.in_address, hwm=5) as pub:
            assert pub.wait_for_subscribers(1, WAIT)
            # The dispatcher is not reading: the publisher must neither block nor queue without bound.
            for _ in range(n):
                pub("event", big)
            assert pub.sent + pub.dropped == n
            # The end of what got through: a marker sent (again, while the full queues drop it) until
            # it arrives. One path, in order: when it is here, every event that made it is here too.
            deadline = time.monotonic() + WAIT
            while "stop" not in got:
                assert time.monotonic() < deadline, "the end marker never came through"
                pub("stop", {"uid": "end"})
                dispatcher.poll_once(0.05)
        dispatcher.stop()
    # What was not read was dropped along the way (proxy / publisher HWM), never piled up in memory.
    events = got.index("stop")
    assert 0 < events < n and set(got[:events]) == {"event"}
    assert dispatcher.received == len(got)


def test_stock_bluesky_publisher_and_remote_dispatcher_interoperate():
    """bluesky's own Publisher/RemoteDispatcher work with the safe codec (serializer=/deserializer=)."""
    import threading

    from bluesky.callbacks.zmq import Publisher, RemoteDispatcher

    from laue_live.stream import SpotPublisher, dumps, loads

    # 1) stock Publisher (pickle replaced by dumps) -> SafeProxy -> SafeRemoteDispatcher
    with SafeProxy() as proxy:
        proxy.start_in_thread()
        dispatcher = SafeRemoteDispatcher(proxy.out_address)
        got = []
        dispatcher.subscribe(lambda name, doc: got.append(doc))
        stock = Publisher(proxy.in_address, serializer=dumps)
        # The stock Publisher cannot see subscriptions: probe until one arrives (bounded, no sleep).
        deadline = time.monotonic() + WAIT
        while not got and time.monotonic() < deadline:
            stock("start", {"uid": "probe"})
            dispatcher.poll_once(0.05)
        assert got, "no probe came through"
        got.clear()
        for i in range(20):
            stock("event", {"seq_num": i + 1, "data": {"a": np.arange(3) * i}})
        _receive_until(dispatcher, lambda: len(got) == 20)
        stock.close()
        dispatcher.stop()
    got = [d for d in got if d.get("uid") != "probe"]
    assert [d["seq_num"] for d in got] == list(range(1, 21))
    np.testing.assert_array_equal(got[-1]["data"]["a"], np.arange(3) * 19)

    # 2) SpotPublisher's analysis documents -> stock RemoteDispatcher(prefix=b"laue.doc", deserializer=loads)
    with SpotPublisher() as pub:
        remote = RemoteDispatcher(pub.address, prefix=b"laue.doc", deserializer=loads)
        docs = []
        remote.subscribe(lambda name, doc: docs.append((name, doc)))
        thread = threading.Thread(target=lambda: _run_quietly(remote), daemon=True)
        thread.start()
        # Its subscription (to everything, b"") reached the publisher: it is listening.
        assert pub.wait_for_subscribers(1, WAIT)
        pub("start", {"uid": "a1", "time": 0.0, "raw_uid": "r1"})
        pub("stop", {"uid": "s1", "run_start": "a1", "time": 1.0})
        deadline = time.monotonic() + WAIT
        while len(docs) < 2 and time.monotonic() < deadline:
            thread.join(0.05)
        remote.loop.call_soon_threadsafe(remote._task.cancel)
        thread.join(WAIT)
    assert [n for n, _ in docs] == ["start", "stop"] and docs[0][1]["raw_uid"] == "r1"


def _run_quietly(dispatcher) -> None:
    import asyncio

    try:
        dispatcher.start()
    except (asyncio.CancelledError, RuntimeError):
        pass


def test_curve_on_both_sides_of_the_proxy(curve_certs):
    from laue_live.stream import CurveClient, CurveServer

    server = CurveServer(curve_certs["server_secret"], curve_certs["client_keys_dir"])
    client = CurveClient(curve_certs["client_secret"], curve_certs["server_public"])
    stranger = CurveClient(curve_certs["stranger_secret"], curve_certs["server_public"])
    got, spied = [], []
    with SafeProxy(in_curve=server, out_curve=server) as proxy:
        proxy.start_in_thread()
        spy = SafeRemoteDispatcher(proxy.out_address, curve=stranger)  # not in the allowed keys
        spy.subscribe(lambda name, doc: spied.append(doc))
        dispatcher = SafeRemoteDispatcher(proxy.out_address, curve=client)
        dispatcher.subscribe(lambda name, doc: got.append(doc))
        with DocumentPublisher(proxy.in_address, curve=client) as pub:
            assert pub.wait_for_subscribers(1, WAIT)
            for i in range(5):
                pub("event", {"seq_num": i + 1})
            _receive_until(dispatcher, lambda: len(got) == 5)
        spy.poll_once(0.5)  # an absence can only be waited for a bounded time: the spy never connects
        spy.stop()
        dispatcher.stop()
    assert [d["seq_num"] for d in got] == [1, 2, 3, 4, 5]
    assert spied == [] and spy.received == 0
