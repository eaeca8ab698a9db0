"""Publishers that never block their caller: the spot-table publisher and a safe document publisher.

Both use an XPUB socket, so that they see subscriptions arrive (:meth:`wait_for_subscribers` is a
readiness handshake that replaces "sleep and hope" for PUB/SUB slow joiners), send with
``NOBLOCK`` and count what they had to drop when a subscriber's queue (high-water mark) was full.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np
import zmq

from laue_live._errors import WireError
from laue_live._run import (
    FRAMES_STREAM,
    GRAINS_STREAM,
    INDEXING_STREAM,
    RAW_UID,
    SPOT_INDEX_STREAM,
    SPOTS_STREAM,
)
from laue_live._schema import GRAIN_COLUMNS, SPOT_COLUMNS, SPOT_INDEX_COLUMNS
from laue_live.stream._address import (
    LOOPBACK,
    CurveClient,
    CurveServer,
    apply_curve_client,
    apply_curve_server,
    bind_socket,
    normalize_address,
)
from laue_live.stream._codec import (
    TOPIC_DOC,
    TOPIC_HELLO,
    TOPIC_STATUS,
    dumps,
    encode_grains,
    encode_message,
    encode_spot_table,
)

__all__ = ["SpotPublisher", "DocumentPublisher"]

logger = logging.getLogger(__name__)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _XPub:
    """An XPUB socket with drop counting and subscription tracking (one thread at a time)."""

    def __init__(self, *, hwm: int, nodrop: bool, linger: float = 0.5):
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.XPUB)
        self._socket.setsockopt(zmq.SNDHWM, int(hwm))
        self._socket.setsockopt(zmq.LINGER, 0)
        # Every subscribe/unsubscribe reaches us (not only the first per topic): we count subscribers.
        self._socket.setsockopt(zmq.XPUB_VERBOSER, 1)
        # With NODROP a full subscriber queue makes send() raise EAGAIN, which we count as a drop;
        # without it libzmq drops silently and nobody can tell.
        self._socket.setsockopt(zmq.XPUB_NODROP, 1 if nodrop else 0)
        self._linger_ms = int(linger * 1000)
        self._auth = None
        self._lock = threading.Lock()  # 0MQ sockets are not thread-safe; callers may be
        self.sent = 0
        self.dropped = 0
        self.subscriptions = 0
        self.closed = False

    def _drain_subscriptions(self, timeout_ms: int = 0) -> int:
        seen = 0
        while self._socket.poll(timeout_ms, zmq.POLLIN):
            event = self._socket.recv(zmq.NOBLOCK)
            topic = event[1:]
            # A subscriber counts if its filter lets our topic through (b"" lets everything through).
            if not (topic.startswith(self._count_topic) or self._count_topic.startswith(topic)):
                continue
            if event[:1] == b"\x01":
                self.subscriptions += 1
                seen += 1
            elif event[:1] == b"\x00":
                self.subscriptions = max(0, self.subscriptions - 1)
            timeout_ms = 0
        return seen

    def _send(self, frame: bytes) -> bool:
        with self._lock:
            if self.closed:
                return False
            self._drain_subscriptions()
            try:
                self._socket.send(frame, zmq.NOBLOCK, copy=len(frame) < 65536)
            except zmq.Again:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    logger.warning("%s: a subscriber is not keeping up, %d message(s) dropped so far",
                                   type(self).__name__, self.dropped)
                return False
            self.sent += 1
            return True

    def wait_for_subscribers(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``n`` subscribers have subscribed (bounded wait).

        Parameters
        ----------
        n
            Number of subscribers to wait for.
        timeout
            Longest wait, in seconds.

        Returns
        -------
        bool
            Whether ``n`` subscribers are there.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                self._drain_subscriptions()
                if self.subscriptions >= n:
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._lock:
                self._socket.poll(int(min(left, 0.05) * 1000) + 1, zmq.POLLIN)

    def close(self) -> None:
        """Close the socket; messages still queued get ``linger`` seconds to leave, then are discarded."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._socket.close(linger=self._linger_ms)
            if self._auth is not None:
                self._auth.stop()
            self._context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SpotPublisher(_XPub):
    """Publish each analysed frame's spot table, and the analysis run's documents, on a PUB socket.

    A sink ``callable(name, doc)`` for the analysis run's documents (the live callback's output).
    For every ``spots`` event page (one per frame) it sends a :data:`~laue_live.stream.TOPIC_SPOTS`
    message with the table as typed column buffers; for every frame an indexed run has indexed (its
    ``indexing`` row) a :data:`~laue_live.stream.TOPIC_GRAINS` message with its grains and the Miller
    indices of its spots; every document also goes out on :data:`~laue_live.stream.TOPIC_DOC`.
    Sending never blocks: when a subscriber's queue holds ``hwm`` messages, the message is dropped
    and counted (:attr:`dropped`); Tiled keeps everything.

    Parameters
    ----------
    address
        ``"host:port"`` to bind; port 0 picks a free one (see :attr:`address`). Loopback by default.
    hwm
        High-water mark: messages queued per subscriber before dropping.
    curve
        CURVE server keys (encryption and optional client allow-list); ``None`` for plain TCP.
    nodrop
        ``True`` (default): a full subscriber queue makes the message count as dropped (for every
        subscriber); ``False``: libzmq drops silently per subscriber (subscribers still see gaps in
        ``seq``).
    publish_documents
        Also publish every analysis document on ``laue.doc``.
    """

    def __init__(self, address: str = f"{LOOPBACK}:0", *, hwm: int = 1000, curve: CurveServer | None = None,
                 nodrop: bool = True, publish_documents: bool = True):
        super().__init__(hwm=hwm, nodrop=nodrop)
        self._count_topic = TOPIC_HELLO
        try:
            self._auth = apply_curve_server(self._socket, curve)
            self._socket.setsockopt(zmq.XPUB_WELCOME_MSG, encode_message(
                TOPIC_HELLO, "hello", {"publisher": "laue_live.SpotPublisher", "curve": curve is not None}))
            self.address = bind_socket(self._socket, address)
        except Exception:
            self.close()
            raise
        self.publish_documents = publish_documents
        self.seq = 0
        self.tables = 0
        self.grain_seq = 0  # counter of grains messages (their own sequence: a spot subscriber sees no gap)
        self._state_lock = threading.RLock()
        self._runs: dict[str, dict[str, Any]] = {}  # analysis uid -> header
        self._streams: dict[str, tuple[str, str]] = {}  # descriptor uid -> (run uid, stream name)
        self._held: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        # (run, frame) -> {"grains": columns, "indexed_spots": columns}, until the frame's indexing row
        self._held_index: dict[tuple[str, int], dict[str, dict[str, np.ndarray]]] = {}
        logger.info("spot publisher on %s (CURVE %s, HWM %d)", self.address,
                    "on" if curve is not None else "off", hwm)

    def __repr__(self) -> str:
        return f"SpotPublisher({self.address!r}, sent={self.sent}, dropped={self.dropped})"

    # ----------------------------------------------------------------------------------- sink API
    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Consume one analysis document; never raises for a subscriber's sake, never blocks.

        Several analysis runs may be in flight at once (one worker thread per run), so state is
        kept per run and calls are serialised.
        """
        if self.closed:
            return
        with self._state_lock:
            if name == "start":
                self._runs[doc["uid"]] = self._run_header(doc)
            elif name == "descriptor":
                self._streams[doc["uid"]] = (doc.get("run_start", ""), doc.get("name", ""))
            elif name == "event_page":
                self._event_page(doc)
            elif name == "event":
                self._event_page({"descriptor": doc["descriptor"], "time": [doc.get("time")],
                                  "data": {k: [v] for k, v in doc["data"].items()}})
            elif name == "stop":
                self._flush_held(doc.get("run_start", ""))
            if self.publish_documents:
                try:
                    self._send(encode_message(TOPIC_DOC, name, {"doc": doc}))
                except WireError:
                    logger.exception("cannot encode the %s document for 0MQ; skipped", name)
            if name == "stop":
                run = doc.get("run_start", "")
                self._runs.pop(run, None)
                self._streams = {k: v for k, v in self._streams.items() if v[0] != run}

    @staticmethod
    def _run_header(doc: dict[str, Any]) -> dict[str, Any]:
        keep = ("uid", RAW_UID, "raw_scan_id", "plan_name", "shape", "snaking", "extents", "model_name",
                "method", "sample", "material")
        return {k: doc[k] for k in keep if k in doc and doc[k] is not None}

    def _event_page(self, page: dict[str, Any]) -> None:
        run, stream = self._streams.get(page.get("descriptor", ""), ("", ""))
        data = page.get("data", {})
        if stream == SPOTS_STREAM:
            # Held until the frame's summary event, which the analysis emits right after its spot
            # page: the table then goes out with its summary (position, counts, failure) in the header.
            frames = np.asarray(data.get("frame", []))
            for frame in dict.fromkeys(frames.tolist()):
                rows = frames == frame
                self._held[(run, int(frame))] = {k: np.asarray(v)[rows] for k, v in data.items()}
        elif stream == FRAMES_STREAM:
            keys = list(data)
            times = list(page.get("time") or [])
            for i, frame in enumerate(np.asarray(data.get("frame", [])).tolist()):
                summary = {k: _plain(data[k][i]) for k in keys}
                table = self._held.pop((run, int(frame)), None)
                # A frame without spots (or a failed one) has no spot page: it gets an empty table,
                # so that subscribers see exactly one table per frame.
                self.publish_table(self._empty_table() if table is None else table, frame=int(frame),
                                   run=self._runs.get(run, {"uid": run}), summary=summary,
                                   analysed_at=times[i] if i < len(times) else None)
        elif stream in (GRAINS_STREAM, SPOT_INDEX_STREAM):
            # held until the frame's indexing row, which the indexing stage emits right after them
            frames = np.asarray(data.get("frame", []))
            for frame in dict.fromkeys(frames.tolist()):
                rows = frames == frame
                self._held_index.setdefault((run, int(frame)), {})[stream] = {
                    k: np.asarray(v)[rows] for k, v in data.items()}
        elif stream == INDEXING_STREAM:
            keys = list(data)
            for i, frame in enumerate(np.asarray(data.get("frame", [])).tolist()):
                held = self._held_index.pop((run, int(frame)), {})
                self.publish_grains(held.get(GRAINS_STREAM), held.get(SPOT_INDEX_STREAM), frame=int(frame),
                                    run=self._runs.get(run, {"uid": run}),
                                    summary={k: _plain(data[k][i]) for k in keys})

    def _flush_held(self, run: str) -> None:
        for key in sorted(k for k in self._held if k[0] == run):
            self.publish_table(self._held.pop(key), frame=key[1], run=self._runs.get(run, {"uid": run}))
        for key in sorted(k for k in self._held_index if k[0] == run):
            held = self._held_index.pop(key)
            self.publish_grains(held.get(GRAINS_STREAM), held.get(SPOT_INDEX_STREAM), frame=key[1],
                                run=self._runs.get(run, {"uid": run}))

    @staticmethod
    def _empty_table() -> dict[str, np.ndarray]:
        return {c.name: np.empty(0, dtype=c.dtype) for c in SPOT_COLUMNS}

    # ------------------------------------------------------------------------------- direct API
    def publish_table(self, table, *, frame: int, run: dict[str, Any] | None = None,
                      summary: dict[str, Any] | None = None, analysed_at: float | None = None) -> bool:
        """Publish one frame's spot table (DataFrame or mapping column -> array) now.

        ``summary`` is the frame's per-frame row (:data:`laue_live._schema.FRAME_COLUMNS`), sent in
        the header; ``analysed_at`` (epoch seconds, the frame's summary event time) as ``time``, so
        that subscribers measure the analysis rate rather than their own arrival rate.

        Returns
        -------
        bool
            ``False`` if it was dropped (a subscriber queue full) or could not be encoded.
        """
        with self._state_lock:  # seq order == send order, whatever thread publishes
            self.seq += 1
            self.tables += 1
            try:
                extra = {k: v for k, v in (("summary", summary), ("time", analysed_at)) if v}
                message = encode_spot_table(table, frame=frame, seq=self.seq, run=run or {},
                                            extra=extra or None)
            except WireError:
                logger.exception("frame %s: spot table cannot be encoded; not published", frame)
                return False
            return self._send(message)

    def publish_grains(self, grains, spots, *, frame: int, run: dict[str, Any] | None = None,
                       summary: dict[str, Any] | None = None) -> bool:
        """Publish one frame's indexing now: grains and indexed spots (None: no rows), ``indexing`` row.

        Returns
        -------
        bool
            ``False`` if it was dropped (a subscriber queue full) or could not be encoded.
        """
        grains = {c.name: np.empty(0, dtype="U1" if c.dtype == "str" else c.dtype) for c in GRAIN_COLUMNS} \
            if grains is None else grains
        spots = {c.name: np.empty(0, dtype=c.dtype) for c in SPOT_INDEX_COLUMNS} if spots is None else spots
        with self._state_lock:  # seq order == send order
            self.grain_seq += 1
            try:
                message = encode_grains(grains, spots, frame=frame, seq=self.grain_seq, run=run or {},
                                        summary=summary)
            except WireError:
                logger.exception("frame %s: indexing cannot be encoded; not published", frame)
                return False
            return self._send(message)

    def publish_status(self, status: dict[str, Any]) -> bool:
        """Publish a state report on ``laue.status`` (frames/s, queue depth, dropped counts, ...)."""
        return self._send(encode_message(TOPIC_STATUS, "status", {"status": status}))

    def stats(self) -> dict[str, int]:
        """Counters: ``sent``, ``dropped``, ``tables`` and ``grains`` messages published, ``subscribers``."""
        with self._lock:
            if not self.closed:
                self._drain_subscriptions()
        return {"sent": self.sent, "dropped": self.dropped, "tables": self.tables, "grains": self.grain_seq,
                "subscribers": self.subscriptions}


class DocumentPublisher(_XPub):
    """A safe, non-blocking stand-in for :class:`bluesky.callbacks.zmq.Publisher` (RunEngine side).

    Connects to a proxy's input (:class:`~laue_live.stream.SafeProxy` or ``bluesky-0MQ-proxy``) and
    sends ``prefix b" " name b" " msgpack`` frames with :func:`~laue_live.stream.dumps`, never
    pickle. Unlike bluesky's Publisher it does not deep-copy documents (msgpack encodes them at
    once) and never blocks the RunEngine: when the queue is full the document is dropped and
    counted. Through an XSUB/XPUB proxy (:class:`~laue_live.stream.SafeProxy`) the subscriptions of
    downstream consumers reach it, so :meth:`wait_for_subscribers` tells when the analysis service
    is listening, before the first run starts.

    Parameters
    ----------
    address
        ``"host:port"`` of the proxy input.
    prefix
        bluesky's prefix (no spaces); subscribers can filter on it.
    hwm
        Documents queued before dropping (the RunEngine's documents are small unless frames are inline).
    curve
        CURVE client keys, when the proxy input is a CURVE server.
    nodrop
        See :class:`SpotPublisher`.
    linger
        On :meth:`close`, seconds queued documents get to reach the proxy (the last run's stop).
    """

    def __init__(self, address: str, *, prefix: bytes = b"", hwm: int = 10000,
                 curve: CurveClient | None = None, nodrop: bool = True, linger: float = 5.0):
        if b" " in prefix:
            raise ValueError(f"prefix {prefix!r} may not contain b' '")
        super().__init__(hwm=hwm, nodrop=nodrop, linger=linger)
        self._count_topic = prefix
        self._prefix = bytes(prefix)
        try:
            apply_curve_client(self._socket, curve)
            self._socket.connect(normalize_address(address, bind=False))
        except Exception:
            self.close()
            raise
        self.address = address

    def __repr__(self) -> str:
        return f"DocumentPublisher({self.address!r}, sent={self.sent}, dropped={self.dropped})"

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Send one document; an unencodable document is logged and skipped, never raised."""
        try:
            frame = b" ".join((self._prefix, name.encode(), dumps(doc)))
        except WireError:
            logger.exception("cannot encode the %s document for 0MQ; skipped", name)
            return
        self._send(frame)
