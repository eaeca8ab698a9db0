"""A bluesky ``RemoteDispatcher`` with the safe codec and a bounded backlog."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import zmq
from bluesky.run_engine import Dispatcher, DocumentNames

from laue_live._errors import WireError
from laue_live.stream._address import CurveClient, apply_curve_client, normalize_address
from laue_live.stream._codec import DEFAULT_MAX_BYTES, loads

__all__ = ["SafeRemoteDispatcher"]

logger = logging.getLogger(__name__)


class SafeRemoteDispatcher(Dispatcher):
    """Dispatch documents received from a 0MQ proxy to subscribed callbacks; no pickle, bounded memory.

    A drop-in for :class:`bluesky.callbacks.zmq.RemoteDispatcher` (``subscribe``, ``start``,
    ``stop``) with four differences: documents are decoded with :func:`~laue_live.stream.loads`
    (never pickle; bad messages are counted and logged, not raised); a subscribed callback that
    raises is logged and counted (:attr:`callback_errors`) and the other callbacks still get the
    document (bluesky's dispatcher re-raises, which ends ``start``); each document is processed
    before the next is read, so the backlog stays in the 0MQ socket, bounded by ``max_backlog``
    messages (bluesky's version reads everything into an unbounded in-memory queue); and
    :meth:`stop` may be called from any thread or a signal handler.

    Parameters
    ----------
    address
        ``"host:port"`` of the proxy's output (``SafeProxy`` or ``bluesky-0MQ-proxy``).
    prefix
        Only documents published with this prefix (no spaces) are dispatched; ``b""`` for all.
    max_backlog
        Receive high-water mark: messages 0MQ holds for us while a callback is busy; beyond it the
        proxy drops messages for this subscriber.
    max_bytes
        Largest accepted message, in bytes.
    curve
        CURVE client keys, when the proxy output is a CURVE server.
    poll_interval
        Longest wait for a message, in seconds, between checks of :meth:`stop`.
    on_poll
        Called with no arguments after every message and every ``poll_interval`` without one
        (e.g. periodic status); its exceptions are logged.
    """

    def __init__(self, address: str, *, prefix: bytes = b"", max_backlog: int = 1000,
                 max_bytes: int = DEFAULT_MAX_BYTES, curve: CurveClient | None = None,
                 poll_interval: float = 0.2, on_poll: Callable[[], None] | None = None):
        super().__init__()
        if b" " in prefix:
            raise ValueError(f"prefix {prefix!r} may not contain b' '")
        self.address = address
        self._prefix = bytes(prefix)
        self.max_bytes = max_bytes
        self.poll_interval = poll_interval
        self.on_poll = on_poll
        self._stop = threading.Event()
        self._running = False
        self.closed = False
        self.received = 0
        self.rejected = 0
        self.callback_errors = 0
        self.last_error: str | None = None
        # A failing callback (a Tiled writer whose server went away) is logged and counted in
        # process(); it never ends the dispatch loop nor keeps the document from the others.
        self.cb_registry.ignore_exceptions = True
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, int(max_backlog))
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            apply_curve_client(self._socket, curve)
            self._socket.setsockopt(zmq.SUBSCRIBE, self._prefix + b" " if self._prefix else b"")
            # Connect now, not in start(): the subscription travels while the caller sets up.
            self._socket.connect(normalize_address(address, bind=False))
        except Exception:
            self._close()
            raise

    def __repr__(self) -> str:
        return f"SafeRemoteDispatcher({self.address!r}, received={self.received}, rejected={self.rejected})"

    def _decode(self, message: bytes) -> tuple[DocumentNames, dict[str, Any]] | None:
        try:
            prefix, name, payload = message.split(b" ", 2)
            if self._prefix and prefix != self._prefix:
                return None
            kind = DocumentNames[name.decode()]
            return kind, loads(payload, max_bytes=self.max_bytes)
        except (ValueError, KeyError, UnicodeDecodeError, WireError) as exc:
            self.rejected += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.warning("rejected a message from %s: %s", self.address, self.last_error)
            return None

    def process(self, name: DocumentNames, doc: dict[str, Any]) -> None:
        """Give one document to every subscribed callback; a callback's exception is logged and counted."""
        for exc, _traceback in self.cb_registry.process(name, name.name, doc):
            self.callback_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            logger.error("a callback failed on a %s document (the other callbacks got it): %s",
                         name.name, self.last_error)

    def poll_once(self, timeout: float) -> bool:
        """Receive and dispatch at most one document, waiting up to ``timeout`` s; ``True`` if one came."""
        if not self._socket.poll(max(0, int(timeout * 1000)), zmq.POLLIN):
            return False
        message = self._socket.recv()
        self.received += 1
        if len(message) > self.max_bytes:
            self.rejected += 1
            self.last_error = f"message of {len(message)} bytes exceeds {self.max_bytes}"
            logger.warning("rejected a message from %s: %s", self.address, self.last_error)
            return True
        decoded = self._decode(message)
        if decoded is not None:
            self.process(*decoded)
        return True

    def start(self) -> None:
        """Receive and dispatch documents until :meth:`stop` is called (blocks)."""
        if self.closed:
            raise RuntimeError("this SafeRemoteDispatcher was stopped; create a new one")
        self._running = True
        try:
            while not self._stop.is_set():
                self.poll_once(self.poll_interval)
                if self.on_poll is not None:
                    try:
                        self.on_poll()
                    except Exception:
                        logger.exception("on_poll hook failed (ignored)")
        finally:
            self._close()

    def start_in_thread(self, name: str = "laue-live-dispatcher") -> threading.Thread:
        """Run :meth:`start` in a daemon thread and return it."""
        thread = threading.Thread(target=self.start, name=name, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask :meth:`start` to return (thread- and signal-safe); it closes the socket on the way out.

        If :meth:`start` is not running, the socket is closed at once.
        """
        self._stop.set()
        if not self._running:
            self._close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._socket.close(linger=0)
        self._context.destroy(linger=0)
