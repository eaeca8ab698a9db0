"""RunEngine documents through the safe proxy: no pickle, subscriptions travel upstream, bounded backlog."""

from __future__ import annotations

import pickle

import numpy as np

from laue_live.stream import DocumentPublisher, SafeProxy, SafeRemoteDispatcher

WAIT = 10.0


class _Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _drain(dispatcher: SafeRemoteDispatcher, idle: float = 0.5) -> None:
    while dispatcher.poll_once(idle):
        pass


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
            _drain(dispatcher)
            # What bluesky's default Publisher sends (its framing + pickle): rejected, never unpickled.
            pub._send(b" ".join([b"", b"start", pickle.dumps(_Marker(marker))]))
            pub("start", {"uid": "s2"})
            _drain(dispatcher)
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
            _drain(dispatcher)
        dispatcher.stop()
    # What was not read was dropped along the way (proxy / publisher HWM), never piled up in memory.
    assert 0 < len(got) < n
    assert dispatcher.received == len(got)
