"""The Python client of the spot stream: yields (run metadata, frame number, DataFrame) in order.

With ``grains=True`` it also receives each indexed frame's grains (:meth:`SpotSubscriber.next_grains`).
"""

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
    TOPIC_GRAINS,
    TOPIC_HELLO,
    TOPIC_SPOTS,
    TOPIC_STATUS,
    Message,
    decode_grains,
    decode_message,
    decode_spot_table,
)

__all__ = ["SpotFrame", "GrainFrame", "SpotSubscriber"]

_MAX_PENDING = 10_000  # messages kept for the other reader (spot tables while reading grains...)

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


@dataclass
class GrainFrame:
    """One indexed frame as received (:data:`~laue_live.stream.TOPIC_GRAINS`).

    Attributes
    ----------
    run
        Run metadata, as for :class:`SpotFrame`.
    frame
        Frame number within the raw run, 0-based.
    grains
        The frame's grains (columns of :data:`laue_live._schema.GRAIN_COLUMNS`; no rows: no grain).
    spots
        ``frame, spot, grain, h, k, l, deviation_px`` of the frame's indexed spots.
    summary
        The frame's ``indexing`` row: ``status`` (indexed, no_grain, failed, not_indexed), counts,
        ``reason``, the best rejected candidate's statistics.
    seq
        The publisher's counter of grains messages.
    """

    run: dict[str, Any]
    frame: int
    grains: Any
    spots: Any
    summary: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def __iter__(self):  # unpack as (run, frame, grains)
        return iter((self.run, self.frame, self.grains))


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
    grains
        Also receive each indexed frame's grains (``laue.grains``): :meth:`next_grains`, :meth:`grain_frames`.
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
                 max_bytes: int = DEFAULT_MAX_BYTES, curve: CurveClient | None = None, grains: bool = False):
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
                                  *((t, True) for t in doc_topics), (TOPIC_STATUS + b" ", status),
                                  (TOPIC_GRAINS + b" ", grains)):
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
        self.missed_grains = 0
        self.grains = grains
        self.last_error: str | None = None
        self._last_seq: int | None = None
        self._last_grain_seq: int | None = None
        self._runs: dict[str, dict[str, Any]] = {}
        self.status: dict[str, Any] | None = None
        # spot tables (and grains) that arrived while waiting for the welcome or reading the other kind
        self._pending: list[Message] = []
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
        elif message.topic == TOPIC_GRAINS:
            self.ready = True
            seq = payload.get("seq")
            if isinstance(seq, int):
                if self._last_grain_seq is not None and seq > self._last_grain_seq + 1:
                    self.missed_grains += seq - self._last_grain_seq - 1
                    logger.warning("missed %d grains message(s) before seq %d",
                                   seq - self._last_grain_seq - 1, seq)
                self._last_grain_seq = seq

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
            if message is not None and message.topic in (TOPIC_SPOTS, TOPIC_GRAINS):
                self._pending.append(message)
        return True

    def _next(self, topic: bytes, timeout: float) -> Message | None:
        """Return the next message of ``topic``; spot tables and grains of the other kind are kept."""
        for i, message in enumerate(self._pending):
            if message.topic == topic:
                return self._pending.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            message = self.receive(max(0.0, deadline - time.monotonic()))
            if message is None or message.topic == topic:
                return message
            if message.topic in (TOPIC_SPOTS, TOPIC_GRAINS) and len(self._pending) < _MAX_PENDING:
                self._pending.append(message)

    def _run_of(self, payload: dict[str, Any]) -> dict[str, Any]:
        run = dict(payload.get("run") or {})
        start = self._runs.get(run.get("uid", ""))
        return {**start, **run} if start is not None else run

    def next_grains(self, timeout: float = 10.0) -> GrainFrame | None:
        """Return the next indexed frame, or ``None`` after ``timeout`` s without one (``grains=True``)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(TOPIC_GRAINS, max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            payload = message.payload
            try:
                grains, spots = decode_grains(payload)
            except WireError as exc:
                self.rejected += 1
                self.last_error = str(exc)
                logger.warning("rejected a grains message: %s", exc)
                continue
            summary = payload.get("summary")
            return GrainFrame(run=self._run_of(payload), frame=int(payload.get("frame", -1)), grains=grains,
                              spots=spots, summary=summary if isinstance(summary, dict) else {},
                              seq=int(payload.get("seq", 0)))

    def grain_frames(self, timeout: float = 10.0, *, limit: int | None = None) -> Iterator[GrainFrame]:
        """Yield indexed frames in publication order until none came for ``timeout`` s (bounded waits)."""
        count = 0
        while limit is None or count < limit:
            item = self.next_grains(timeout)
            if item is None:
                return
            count += 1
            yield item

    def next_frame(self, timeout: float = 10.0) -> SpotFrame | None:
        """Return the next spot table, or ``None`` if none arrived within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            message = self._next(TOPIC_SPOTS, max(0.0, deadline - time.monotonic()))
            if message is None:
                return None
            payload = message.payload
            try:
                table = decode_spot_table(payload)
            except WireError as exc:
                self.rejected += 1
                self.last_error = str(exc)
                logger.warning("rejected a spot table: %s", exc)
                continue
            header = {k: v for k, v in payload.items() if k not in ("columns", "names")}
            return SpotFrame(run=self._run_of(payload), frame=int(payload.get("frame", -1)), table=table,
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
        """Counters: ``received``, ``rejected``, ``missed`` tables (+ ``missed_grains`` if ``grains``)."""
        out = {"received": self.received, "rejected": self.rejected, "missed": self.missed}
        if self.grains:
            out["missed_grains"] = self.missed_grains
        return out

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
