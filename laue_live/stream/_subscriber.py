"""The Python client of the spot stream: yields (run metadata, frame number, DataFrame) in order."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import zmq

from laue_live._errors import WireError
from laue_live.stream._address import CurveClient, apply_curve_client, normalize_address
from laue_live.stream._codec import (
    DEFAULT_MAX_BYTES,
    TOPIC_DOC,
    TOPIC_HELLO,
    TOPIC_SPOTS,
    TOPIC_STATUS,
    Message,
    decode_message,
    decode_spot_table,
)

__all__ = ["SpotFrame", "SpotSubscriber"]

logger = logging.getLogger(__name__)


@dataclass
class SpotFrame:
    """One analysed frame as received.

    Attributes
    ----------
    run
        Run metadata from the message header (analysis ``uid``, ``raw_uid``, ``scan_id``, ``shape``,
        ``model``, ``method`` when known), completed by the analysis start document if it was seen.
    frame
        Frame number within the raw run, 0-based.
    table
        The spot table (columns of :data:`laue_live.SPOT_COLUMNS`, read-only arrays).
    seq
        The publisher's message counter.
    """

    run: dict[str, Any]
    frame: int
    table: Any
    seq: int = 0
    header: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):  # unpack as (run, frame, table)
        return iter((self.run, self.frame, self.table))


class SpotSubscriber:
    """Subscribe to a :class:`~laue_live.stream.SpotPublisher` (or the ``laue-live serve`` service).

    Parameters
    ----------
    address
        ``"host:port"`` of the publisher.
    documents, status
        Also receive the analysis documents (``laue.doc``) / status reports (``laue.status``);
        read them with :meth:`messages` (tables alone need neither). ``documents`` may name the
        documents wanted, e.g. ``("start", "stop")``: the publisher then filters out the others
        (the spot pages, which the tables already carry) before they cross the socket.
    hwm
        Messages queued on this side before the publisher starts dropping them for us.
    max_bytes
        Largest accepted message in bytes; larger ones are rejected (:class:`WireError`, counted).
    curve
        CURVE client keys, when the publisher uses CURVE.

    Examples
    --------
    >>> with SpotSubscriber("127.0.0.1:5580") as sub:           # doctest: +SKIP
    ...     sub.wait_ready(timeout=5)
    ...     for run, frame, table in sub.frames(timeout=30):
    ...         print(frame, int(table["good"].sum()))
    """

    def __init__(self, address: str, *, documents: bool | Iterable[str] = False, status: bool = False,
                 hwm: int = 1000,
                 max_bytes: int = DEFAULT_MAX_BYTES, curve: CurveClient | None = None):
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, int(hwm))
        self._socket.setsockopt(zmq.LINGER, 0)
        self.max_bytes = max_bytes
        self.address = address
        try:
            apply_curve_client(self._socket, curve)
            # The hello topic first: the publisher's XPUB welcome message tells us we are connected.
            doc_topics = [TOPIC_DOC + b" "] if documents is True else [
                TOPIC_DOC + b" " + name.encode() + b" " for name in (documents or ())]
            for topic, wanted in ((TOPIC_HELLO + b" ", True), (TOPIC_SPOTS + b" ", True),
                                  *((t, True) for t in doc_topics), (TOPIC_STATUS + b" ", status)):
                if wanted:
                    self._socket.setsockopt(zmq.SUBSCRIBE, topic)
            self._socket.connect(normalize_address(address, bind=False))
        except Exception:
            self.close()
            raise
        self.ready = False
        self.received = 0
        self.rejected = 0
        self.missed = 0
        self.last_error: str | None = None
        self._last_seq: int | None = None
        self._runs: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] | None = None
        self._pending: list[Message] = []  # tables that arrived while waiting for the welcome
        self.closed = False

    # ------------------------------------------------------------------------------- low level
    def receive(self, timeout: float) -> Message | None:
        """Return the next valid message, or ``None`` after ``timeout`` seconds without one.

        Messages that fail to decode (pickled, truncated, oversized, unknown version) are counted in
        :attr:`rejected`, logged and skipped; they are never executed.
        """
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if not self._socket.poll(max(0, int(left * 1000)), zmq.POLLIN):
                return None
            frame = self._socket.recv(copy=False)
            try:
                message = decode_message(frame.buffer, max_bytes=self.max_bytes)
            except WireError as exc:
                self.rejected += 1
                self.last_error = str(exc)
                logger.warning("rejected a message from %s: %s", self.address, exc)
                continue
            self.received += 1
            self._observe(message)
            return message

    def _observe(self, message: Message) -> None:
        payload = message.payload
        if message.topic == TOPIC_HELLO:
            self.ready = True
        elif message.topic == TOPIC_DOC and message.name == "start":
            doc = payload.get("doc", {})
            if isinstance(doc, dict) and "uid" in doc:
                self._runs[doc["uid"]] = doc
                while len(self._runs) > 8:  # runs may overlap; keep the newest few: bounded memory
                    self._runs.pop(next(iter(self._runs)))
        elif message.topic == TOPIC_STATUS:
            self.status = payload.get("status")
        elif message.topic == TOPIC_SPOTS:
            self.ready = True
            seq = payload.get("seq")
            if isinstance(seq, int):
                if self._last_seq is not None and seq > self._last_seq + 1:
                    self.missed += seq - self._last_seq - 1
                    logger.warning("missed %d spot table(s) before seq %d (subscriber too slow?)",
                                   seq - self._last_seq - 1, seq)
                self._last_seq = seq

    def messages(self, timeout: float = 10.0) -> Iterator[Message]:
        """Yield valid messages until none came for ``timeout`` seconds."""
        while (message := self.receive(timeout)) is not None:
            yield message

    # ------------------------------------------------------------------------------- high level
    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Wait (bounded) for the publisher's welcome message, i.e. until connected and subscribed.

        Returns
        -------
        bool
            Whether the publisher answered within ``timeout`` seconds. Tables that arrive meanwhile
            are kept for :meth:`next_frame`.
        """
        deadline = time.monotonic() + timeout
        while not self.ready:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            message = self.receive(left)
            if message is not None and message.topic == TOPIC_SPOTS:
                self._pending.append(message)
        return True

    def next_frame(self, timeout: float = 10.0) -> SpotFrame | None:
        """Return the next spot table, or ``None`` if none arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if self._pending:
                message = self._pending.pop(0)
            else:
                message = self.receive(max(0.0, deadline - time.monotonic()))
                if message is None:
                    return None
            if message.topic != TOPIC_SPOTS:
                continue
            payload = message.payload
            try:
                table = decode_spot_table(payload)
            except WireError as exc:
                self.rejected += 1
                self.last_error = str(exc)
                logger.warning("rejected a spot table: %s", exc)
                continue
            header = {k: v for k, v in payload.items() if k not in ("columns", "names")}
            run = dict(payload.get("run") or {})
            start = self._runs.get(run.get("uid", ""))
            if start is not None:
                run = {**start, **run}
            return SpotFrame(run=run, frame=int(payload.get("frame", -1)), table=table,
                             seq=int(payload.get("seq", 0)), header=header)

    def frames(self, timeout: float = 10.0, *, limit: int | None = None) -> Iterator[SpotFrame]:
        """Yield spot tables in arrival (= publication) order until none came for ``timeout`` s.

        Parameters
        ----------
        timeout
            Longest wait for the next table, in seconds (a bounded wait: the iterator then ends).
        limit
            Stop after this many tables.
        """
        count = 0
        while limit is None or count < limit:
            item = self.next_frame(timeout)
            if item is None:
                return
            count += 1
            yield item

    def stats(self) -> dict[str, int]:
        """Counters: ``received`` and ``rejected`` messages, ``missed`` spot tables (sequence gaps)."""
        return {"received": self.received, "rejected": self.rejected, "missed": self.missed}

    def close(self) -> None:
        """Close the socket."""
        if getattr(self, "closed", False):
            return
        self.closed = True
        self._socket.close(linger=0)
        self._context.destroy(linger=0)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
