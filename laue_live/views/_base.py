"""Shared plumbing of the live views: GUI-thread-safe redraws (the run contract is :mod:`laue_live._run`)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import matplotlib

__all__ = ["LiveView"]

logger = logging.getLogger(__name__)

_FILE_BACKENDS = ("agg", "pdf", "svg", "ps")  # nothing is on screen: no timer, no draw_idle


class LiveView:
    """Base of the live views: a document callback ``(name, doc)`` that draws with matplotlib.

    Documents may arrive on any thread (the analysis emits them from its worker). The view records
    them at once; drawing happens immediately on the main thread, otherwise on the GUI thread via
    a canvas timer (interactive backends) or when :meth:`flush` is called (Agg, tests).

    Attributes
    ----------
    n_updates
        Data updates so far (one per analysed frame).
    n_draws
        Redraws of the figure so far.
    """

    def __init__(self, ax=None, *, redraw_interval: float = 0.2):
        self.ax = ax
        self.redraw_interval = redraw_interval
        self.n_updates = 0
        self.n_draws = 0
        self._dirty = False
        self._lock = threading.RLock()
        self._timer = None

    # -- figure ------------------------------------------------------------------------------------
    def _ensure_axes(self):
        if self.ax is None:
            import matplotlib.pyplot as plt  # lazy: pyplot loads a GUI backend, ~0.4 s

            _, self.ax = plt.subplots()
        return self.ax

    def _start_timer(self) -> None:
        if self._timer is not None or matplotlib.get_backend().lower() in _FILE_BACKENDS:
            return
        try:
            self._timer = self.ax.figure.canvas.new_timer(interval=int(self.redraw_interval * 1000))
            self._timer.add_callback(self.flush)
            self._timer.start()
        except Exception:  # a canvas without timers: flush() on demand only
            logger.debug("no canvas timer; call flush() to redraw", exc_info=True)
            self._timer = None

    def _changed(self) -> None:
        self._dirty = True
        if threading.current_thread() is threading.main_thread():
            self.flush()

    def flush(self) -> None:
        """Redraw now if anything changed (call on the GUI/main thread)."""
        with self._lock:
            if not self._dirty:
                return
            self._ensure_axes()
            self._dirty = False
            self._draw()
        self.n_draws += 1
        # Nobody looks at an Agg canvas until savefig, which draws anyway: skip the full render.
        if matplotlib.get_backend().lower() not in _FILE_BACKENDS:
            self.ax.figure.canvas.draw_idle()

    def _draw(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def savefig(self, path, **kwargs) -> None:
        """Flush and save the figure (PNG by extension)."""
        self.flush()
        self.ax.figure.savefig(path, **kwargs)

    # -- documents ---------------------------------------------------------------------------------
    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Consume one document; errors are logged, never raised into the caller."""
        try:
            method = getattr(self, name, None)
            if method is not None:
                method(doc)
        except Exception:
            logger.exception("%s: error on %s document (ignored)", type(self).__name__, name)
