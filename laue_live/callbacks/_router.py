"""One :class:`LaueSpotCallback` per run: the RunRouter factory and a RunRouter that can be waited on."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from event_model import RunRouter

from laue_live.analysis import IndexerCache, make_analyzer
from laue_live.callbacks._callback import LaueSpotCallback

__all__ = ["LaueSpotCallbackFactory", "laue_spot_callback_factory", "make_run_router", "LaueRunRouter"]

logger = logging.getLogger(__name__)

_LIVE: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _drain_at_exit() -> None:  # pragma: no cover - runs at interpreter exit
    # Worker threads are daemons: give queued frames a bounded chance to be written before exit.
    for factory in list(_LIVE):
        factory.wait(timeout=factory.exit_timeout)


class LaueSpotCallbackFactory:
    """A RunRouter factory: ``factory(name, start_doc) -> ([LaueSpotCallback], [])``.

    The analyser (and its model) is built once and shared by the callbacks of all runs.

    Parameters
    ----------
    sinks
        Callables ``sink(name, doc)`` for the analysis runs' documents.
    sink_factory
        Optional ``sink_factory(raw_start_doc) -> list of sinks`` called per run, whose sinks
        are added to ``sinks`` for that run (e.g. a per-run live plot).
    method, analyzer
        See :class:`LaueSpotCallback`.
    exit_timeout
        At interpreter exit, seconds to wait for queued frames to be analysed and written (s).
    pipeline, device
        ``"numpy"``, ``"torch"`` or ``"auto"`` (torch when CUDA is present) and the torch device,
        for the analyser made here (see :class:`laue_live.analysis.FrameAnalyzer`; ignored when
        ``analyzer`` is a ready :class:`~laue_live.analysis.FrameAnalyzer`).
    **options
        Passed to :class:`LaueSpotCallback` (``image_field``, ``queue_size``, ``policy``,
        ``indexing`` ...). The indexers (one build per material and calibration, ~0.3 s) are shared
        by the callbacks of all runs.
    """

    def __init__(self, sinks: Iterable[Callable] = (), *, method: str = "auto", analyzer: Any = None,
                 sink_factory: Callable[[dict], Iterable[Callable]] | None = None,
                 exit_timeout: float = 60.0, pipeline: str = "auto", device: str | None = None,
                 **options: Any) -> None:
        if callable(sinks):
            raise TypeError("sinks must be a list of callables sink(name, doc), not one callable")
        self.sinks = list(sinks)
        self.sink_factory = sink_factory
        self.analyzer = make_analyzer(method, analyzer, pipeline=pipeline, device=device)
        self.options = options
        self.options.setdefault("indexer_cache", IndexerCache())
        self.exit_timeout = exit_timeout
        self.callbacks: list[LaueSpotCallback] = []
        self._lock = threading.Lock()
        _LIVE.add(self)

    def __call__(self, name: str, start_doc: dict):
        sinks = [*self.sinks, *(self.sink_factory(start_doc) if self.sink_factory else ())]
        cb = LaueSpotCallback(sinks, analyzer=self.analyzer, **self.options)
        with self._lock:
            # Runs ignored (no frames) are dropped from the list; the last 1000 analysed are kept.
            self.callbacks = [c for c in self.callbacks if c.active][-999:]
            self.callbacks.append(cb)
        return [cb], []

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every run seen so far has its analysis run complete; True if all done in time."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for cb in list(self.callbacks):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not cb.wait(left):
                return False
        return True

    @property
    def analysis_uids(self) -> list[str]:
        """List the uids of the analysis runs made so far (ignored runs have none)."""
        return [cb.analysis_uid for cb in self.callbacks if cb.analysis_uid]


def laue_spot_callback_factory(sinks: Iterable[Callable] = (), *, method: str = "auto",
                               analyzer: Any = None, **options: Any) -> LaueSpotCallbackFactory:
    """Make a RunRouter factory giving each run its own :class:`LaueSpotCallback`.

    Examples
    --------
    >>> from event_model import RunRouter
    >>> factory = laue_spot_callback_factory([writer], method="fit")  # doctest: +SKIP
    >>> RE.subscribe(RunRouter([factory]))                           # doctest: +SKIP
    """
    return LaueSpotCallbackFactory(sinks, method=method, analyzer=analyzer, **options)


class LaueRunRouter(RunRouter):
    """A RunRouter holding one :class:`LaueSpotCallbackFactory`; adds :meth:`wait` and :attr:`factory`."""

    def __init__(self, factory: LaueSpotCallbackFactory, **kwargs: Any) -> None:
        super().__init__([factory], **kwargs)
        self.factory = factory

    def __call__(self, name: str, doc: dict, validate: bool = False):
        # A RunRouter error would reach the RunEngine and abort the scan: log it instead.
        try:
            return super().__call__(name, doc, validate=validate)
        except Exception:
            logger.exception("Laue run router: error on %s document (ignored)", name)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until all analysis runs so far are complete; True if done within ``timeout`` (s)."""
        return self.factory.wait(timeout)

    @property
    def callbacks(self) -> list[LaueSpotCallback]:
        """The per-run callbacks made so far."""
        return self.factory.callbacks


def make_run_router(sinks: Iterable[Callable] = (), *, method: str = "auto",
                    analyzer: Any = None, **options: Any) -> LaueRunRouter:
    """Make a RunRouter to subscribe to a RunEngine: each run gets its own :class:`LaueSpotCallback`.

    Parameters
    ----------
    sinks
        Receivers of the analysis runs' documents (``sink(name, doc)``), e.g.
        ``[laue_live.catalog.make_analysis_writer(client), publisher]``.
    method
        ``"fit"``, ``"cnn"`` or ``"auto"``.
    analyzer
        A shared :class:`laue_live.analysis.FrameAnalyzer` or a function ``frames -> tables``.
    **options
        Passed to :class:`LaueSpotCallback`.

    Examples
    --------
    >>> router = make_run_router([writer], method="fit")   # doctest: +SKIP
    >>> RE.subscribe(router); RE(plan); router.wait(60)      # doctest: +SKIP
    """
    return LaueRunRouter(laue_spot_callback_factory(sinks, method=method, analyzer=analyzer, **options))
