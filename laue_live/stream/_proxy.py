"""A 0MQ forwarder for bluesky documents that binds loopback by default and passes subscriptions on."""

from __future__ import annotations

import logging
import threading

import zmq

from laue_live.stream._address import (
    LOOPBACK,
    CurveServer,
    apply_curve_server,
    bind_socket,
    bound_address,
)

__all__ = ["SafeProxy"]

logger = logging.getLogger(__name__)


class SafeProxy:
    """An XSUB/XPUB forwarder: RunEngines publish into ``in_address``, consumers subscribe to ``out_address``.

    Differs from :class:`bluesky.callbacks.zmq.Proxy` in that both addresses are ``"host:port"``
    strings on 127.0.0.1 by default (bluesky's turns an int into ``0.0.0.0:port`` and ``None`` into
    every interface), subscriptions travel upstream (so a
    :class:`~laue_live.stream.DocumentPublisher` can wait for its consumers instead of sleeping), and
    :meth:`stop` ends it cleanly from any thread. It forwards bytes and never decodes them.
    Wire-compatible with ``bluesky-0MQ-proxy`` for publishers and subscribers.

    Parameters
    ----------
    in_address, out_address
        ``"host:port"`` to bind; port 0 picks a free port (read :attr:`in_address` / :attr:`out_address`).
    in_curve, out_curve
        CURVE server keys for either side, or ``None``.
    hwm
        Messages queued per subscriber (out) and from publishers (in) before dropping.
    """

    def __init__(self, in_address: str = f"{LOOPBACK}:0", out_address: str = f"{LOOPBACK}:0", *,
                 in_curve: CurveServer | None = None, out_curve: CurveServer | None = None,
                 hwm: int = 10000):
        self._context = zmq.Context()
        self._auth = None
        self._frontend = self._context.socket(zmq.XSUB)
        self._backend = self._context.socket(zmq.XPUB)
        self._control_url = f"inproc://laue-live-proxy-{id(self)}"
        self._control = self._context.socket(zmq.PAIR)
        self._lock = threading.Lock()
        self.closed = False
        self._started = False
        try:
            for sock, address, curve, domain in ((self._frontend, in_address, in_curve, "laue-in"),
                                                 (self._backend, out_address, out_curve, "laue-out")):
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.RCVHWM, hwm)
                sock.setsockopt(zmq.SNDHWM, hwm)
                # One authenticator per context, one ZAP domain (allow-list) per side.
                self._auth = apply_curve_server(sock, curve, auth=self._auth, domain=domain)
                bind_socket(sock, address)
            self._control.bind(self._control_url)
        except Exception:
            self._close()
            raise
        self.in_address = bound_address(self._frontend)
        self.out_address = bound_address(self._backend)

    def __repr__(self) -> str:
        return f"SafeProxy(in_address={self.in_address!r}, out_address={self.out_address!r})"

    def start(self) -> None:
        """Forward messages until :meth:`stop` (blocks)."""
        if self.closed or self._started:
            raise RuntimeError("a SafeProxy runs once; create a new one")
        self._started = True
        logger.info("0MQ proxy: publishers -> %s, subscribers <- %s", self.in_address, self.out_address)
        try:
            zmq.proxy_steerable(self._frontend, self._backend, None, self._control)
        except zmq.ContextTerminated:
            pass
        finally:
            self._close()

    def start_in_thread(self) -> threading.Thread:
        """Run :meth:`start` in a daemon thread and return it."""
        thread = threading.Thread(target=self.start, name="laue-live-proxy", daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop forwarding (thread-safe); safe to call more than once."""
        with self._lock:
            if self.closed:
                return
            if not self._started:
                self._close()
                return
            sock = self._context.socket(zmq.PAIR)
            sock.setsockopt(zmq.LINGER, int(timeout * 1000))
            sock.connect(self._control_url)
            sock.send(b"TERMINATE")
            sock.close()

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in (self._frontend, self._backend, self._control):
            sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.destroy(linger=0)  # also any socket a failed setup left behind

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
