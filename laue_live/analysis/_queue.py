"""The bounded queue with the documented queue-full policies, shared by the analysis and indexing workers.

Queue-full policy
-----------------
The producer calls :meth:`PolicyQueue.put`, which never raises and never waits longer than
``block_timeout`` (except with ``"block"``):

``"spill"`` (default, loses nothing)
    When ``maxsize`` items are waiting, ``put`` waits up to ``block_timeout`` seconds for room
    (once: while the queue stays over its bound, later items spill at once, until the backlog is
    down to half the bound), then queues the item anyway, beyond its bound (counted in ``spilled``).
``"drop_newest"``
    After the same (single) wait the item is not kept: ``on_drop(item)`` turns it into a small
    marker that is queued in its place (so that the consumer records it as dropped, in order), and
    it is counted in ``dropped``.
``"block"``
    Wait until there is room (slows the producer down to the consumer's rate; never loses an item).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PolicyQueue", "QUEUE_POLICIES", "LatencyStats", "QueueThread"]

QUEUE_POLICIES = ("spill", "drop_newest", "block")


@dataclass
class LatencyStats:
    """Base of a worker's counters: the latency of each item (read the counters any time)."""

    #: seconds from hand-over to documents emitted, for the last 100,000 items
    latencies: collections.deque = field(default_factory=lambda: collections.deque(maxlen=100_000))

    def as_dict(self) -> dict[str, Any]:
        """Return the counters as a plain dict (latencies summarised as p50 and max)."""
        d = {k: v for k, v in self.__dict__.items() if k != "latencies"}
        if self.latencies:
            lat = sorted(self.latencies)
            d["latency_p50_s"] = lat[len(lat) // 2]
            d["latency_max_s"] = lat[-1]
        return d


class PolicyQueue:
    """A FIFO with a soft bound and a queue-full policy, for one consumer thread.

    Parameters
    ----------
    maxsize
        Items waiting before the policy applies.
    policy
        ``"spill"``, ``"drop_newest"`` or ``"block"`` (module docstring).
    block_timeout
        Seconds ``put`` may wait for room before the policy applies (s).
    alive
        Returns False once the consumer is gone (``"block"`` then stops waiting).

    Attributes
    ----------
    cond
        The condition (re-entrant lock) guarding the queue; a producer may hold it around ``put``.
    closing
        Set by :meth:`close`: no more items are expected.
    spilled, dropped, max_depth
        Counters.
    """

    def __init__(self, maxsize: int, policy: str = "spill", block_timeout: float = 0.02,
                 alive: Callable[[], bool] = lambda: True) -> None:
        if policy not in QUEUE_POLICIES:
            raise ValueError(f"queue policy must be one of {QUEUE_POLICIES}, not {policy!r}")
        if maxsize < 1:
            raise ValueError("queue size must be >= 1")
        self.maxsize = int(maxsize)
        self.policy = policy
        self.block_timeout = float(block_timeout)
        self.alive = alive
        self.cond = threading.Condition(threading.RLock())
        self.closing = False
        self.spilled = 0
        self.dropped = 0
        self.max_depth = 0
        self._items: collections.deque = collections.deque()
        self._overflowing = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Any, *, on_drop: Callable[[Any], Any] | None = None, exempt: bool = False) -> str:
        """Queue ``item`` under the policy; returns ``"queued"``, ``"spilled"`` or ``"dropped"``.

        Parameters
        ----------
        item
            What to queue.
        on_drop
            ``on_drop(item) -> marker``: with ``"drop_newest"``, what is queued instead of a dropped item.
        exempt
            Queue without applying the policy (markers of items that failed already).
        """
        with self.cond:
            outcome = "queued"
            if self._overflowing and len(self._items) <= self.maxsize // 2:
                self._overflowing = False  # the consumer has caught up: wait briefly again next time
            if len(self._items) >= self.maxsize and not exempt:
                if self.policy == "block":
                    while len(self._items) >= self.maxsize and self.alive():
                        self.cond.wait(0.5)
                else:
                    if not self._overflowing:
                        # Wait briefly once, for a burst to pass; while the queue stays full, spill
                        # or drop at once so that a slow consumer does not slow every item down.
                        self.cond.wait_for(lambda: len(self._items) < self.maxsize, self.block_timeout)
                    if len(self._items) >= self.maxsize:
                        self._overflowing = True
                        if self.policy == "drop_newest":
                            self.dropped += 1
                            outcome = "dropped"
                            item = on_drop(item) if on_drop is not None else item
                        else:
                            self.spilled += 1
                            outcome = "spilled"
            self._items.append(item)
            self.max_depth = max(self.max_depth, len(self._items))
            self.cond.notify_all()
            return outcome

    def take(self, n: int) -> list | None:
        """Wait for items; return up to ``n`` of them, or None once closing and drained."""
        with self.cond:
            self.cond.wait_for(lambda: self._items or self.closing)
            if not self._items:
                return None
            batch = [self._items.popleft() for _ in range(min(n, len(self._items)))]
            self.cond.notify_all()
            return batch

    def drain(self) -> list:
        """Remove and return every waiting item."""
        with self.cond:
            items = list(self._items)
            self._items.clear()
            self.cond.notify_all()
            return items

    def close(self) -> None:
        """No more items: :meth:`take` returns None once the queue is empty."""
        with self.cond:
            self.closing = True
            self.cond.notify_all()


class QueueThread:
    """What the analysis worker and the indexing stage share: a thread draining a :class:`PolicyQueue`.

    A subclass sets ``_queue`` (its :class:`PolicyQueue`) and ``_done`` (a :class:`threading.Event`
    set once its last document is out).
    """

    _queue: PolicyQueue
    _done: threading.Event

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the thread's last document is out; True if it was within ``timeout`` seconds."""
        return self._done.wait(timeout)

    @property
    def depth(self) -> int:
        """Frames waiting in the queue."""
        return len(self._queue)

    @property
    def done(self) -> bool:
        """True once the thread's last document is out (the analysis' stop, the last indexing row)."""
        return self._done.is_set()
