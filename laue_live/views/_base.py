"""Shared plumbing of the live views: analysis-run detection and GUI-thread-safe redraws."""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

__all__ = ["ANALYSIS_KIND", "LiveView", "scan_shape", "frame_index", "scan_extent"]

logger = logging.getLogger(__name__)

#: ``kind`` of an analysis run's start document (see laue_live.analysis).
ANALYSIS_KIND = "laue-spots"


def scan_shape(start: dict[str, Any]) -> tuple[int, int] | None:
    """Return the raster shape ``(rows, cols)`` of a scan from a start document, or ``None`` if unknown.

    The analysis start document copies the raw run's ``shape`` (bluesky's ``grid_scan`` convention:
    first motor slow). A 1-D shape ``[n]`` is one row.
    """
    nested = start.get("laue_live") if isinstance(start.get("laue_live"), dict) else {}
    candidates = (start.get("shape"), start.get("raw_shape"), start.get("scan_shape"),
                  nested.get("scan_shape"))
    for shape in candidates:
        if isinstance(shape, list | tuple) and 1 <= len(shape) <= 2 and all(
                isinstance(n, int | np.integer) and n > 0 for n in shape):
            return (1, int(shape[0])) if len(shape) == 1 else (int(shape[0]), int(shape[1]))
    return None


def scan_extent(start: dict[str, Any], shape: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """Return the ``imshow`` extent (left, right, bottom, top) in motor units from ``extents``, or ``None``.

    bluesky's ``grid_scan`` records ``extents = [[slow_start, slow_stop], [fast_start, fast_stop]]``;
    each cell is centred on its stage position (as ``LiveGrid`` draws it).
    """
    extents = start.get("extents")
    try:
        (y0, y1), (x0, x1) = [(float(a), float(b)) for a, b in extents]
    except (TypeError, ValueError):
        return None
    rows, cols = shape
    hx = abs(x1 - x0) / (2 * (cols - 1)) if cols > 1 else 0.5
    hy = abs(y1 - y0) / (2 * (rows - 1)) if rows > 1 else 0.5
    sx = 1.0 if x1 >= x0 else -1.0
    sy = 1.0 if y1 >= y0 else -1.0
    return (x0 - sx * hx, x1 + sx * hx, y1 + sy * hy, y0 - sy * hy)


def frame_index(frame: int, shape: tuple[int, int], snaking: bool = False) -> tuple[int, int]:
    """Grid cell ``(row, col)`` of frame ``frame`` (0-based) in a raster of ``shape``.

    Frames fill row after row (the first scan axis is the slow one); with ``snaking`` every odd row
    runs backwards, as bluesky's ``grid_scan(..., snake_axes=True)`` moves.
    """
    row, col = divmod(int(frame), shape[1])
    if snaking and row % 2 == 1:
        col = shape[1] - 1 - col
    return row, col


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
            import matplotlib.pyplot as plt

            _, self.ax = plt.subplots()
        return self.ax

    def _start_timer(self) -> None:
        import matplotlib

        if self._timer is not None or matplotlib.get_backend().lower() in ("agg", "pdf", "svg", "ps"):
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
        import matplotlib

        # Nobody looks at an Agg canvas until savefig, which draws anyway: skip the full render.
        if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps"):
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
