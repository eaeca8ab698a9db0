"""Feed document callbacks (the live views) from the service's 0MQ stream, on a background thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from laue_live.stream import TOPIC_DOC, SpotSubscriber

__all__ = ["follow_stream"]

logger = logging.getLogger(__name__)


def follow_stream(address: str, callbacks: Iterable[Callable[[str, dict], None]], *, curve=None,
                  stop: threading.Event | None = None,
                  poll: float = 0.5) -> tuple[threading.Thread, threading.Event]:
    """Deliver the analysis documents published at ``address`` to ``callbacks`` until ``stop`` is set.

    Parameters
    ----------
    address
        ``"host:port"`` of a :class:`~laue_live.stream.SpotPublisher` (``laue-live serve --publish``).
    callbacks
        Document callbacks, e.g. ``[LiveSpotMap(), LiveSpotFrame()]``; they are called on the thread
        (the views redraw on the GUI thread by their timer).
    curve
        :class:`~laue_live.stream.CurveClient` when the publisher uses CURVE.
    stop
        Set it to end the thread (a new Event if ``None``; returned).
    poll
        Seconds between checks of ``stop``.

    Returns
    -------
    (thread, stop)
    """
    callbacks = list(callbacks)
    stop = stop or threading.Event()
    sub = SpotSubscriber(address, documents=True, curve=curve)

    def run() -> None:
        try:
            while not stop.is_set():
                message = sub.receive(poll)
                if message is None or message.topic != TOPIC_DOC:
                    continue
                for cb in callbacks:
                    try:
                        cb(message.name, message.payload["doc"])
                    except Exception:
                        logger.exception("view %r failed on a %s document", cb, message.name)
        finally:
            sub.close()

    thread = threading.Thread(target=run, name="laue-live-follow", daemon=True)
    thread.start()
    return thread, stop
