"""The terminal view of the live stream: one line per frame, rates, warnings (used by ``laue-live watch``)."""

from __future__ import annotations

import collections
import math
import time
from typing import Any

__all__ = ["FrameTicker"]


class FrameTicker:
    """Turn received spot tables into terminal lines: per-frame counts, rates and quality warnings.

    Parameters
    ----------
    min_good
        Warn when a frame has fewer good spots than this.
    min_mean_sim
        Warn when a frame's mean Sim is below this.
    window
        Seconds over which frames/s and spots/s are averaged.
    every
        Print one ordinary line every ``every`` frames (warnings always print).
    """

    def __init__(self, *, min_good: int = 5, min_mean_sim: float = 0.3, window: float = 10.0, every: int = 1):
        self.min_good = min_good
        self.min_mean_sim = min_mean_sim
        self.window = window
        self.every = max(1, every)
        self.frames = 0
        self.warnings = 0
        self._times: collections.deque[tuple[float, int]] = collections.deque()
        self._run: str | None = None

    def rates(self, now: float | None = None) -> tuple[float, float]:
        """Frames/s and spots/s over the last ``window`` seconds."""
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0][0] > self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0, 0.0
        span = max(now - self._times[0][0], 1e-9)
        return (len(self._times) - 1) / span, sum(n for _, n in list(self._times)[1:]) / span

    def lines(self, run: dict[str, Any], frame: int, table, summary: dict[str, Any] | None = None,
              now: float | None = None) -> list[str]:
        """Return the lines to print for one received frame (possibly none)."""
        now = time.monotonic() if now is None else now
        out = []
        uid = run.get("uid")
        if uid != self._run:
            self._run = uid
            self._times.clear()
            shape = run.get("shape")
            out.append(f"== analysis run {str(uid)[:8]} of raw run {str(run.get('raw_uid', '?'))[:8]}"
                       f" (scan {run.get('raw_scan_id', run.get('scan_id', '?'))}, shape {shape},"
                       f" method {run.get('method', '?')})")
        summary = summary or {}
        n = int(summary.get("n_spots", len(table)))
        good = int(summary.get("n_good", int(table["good"].sum()) if len(table) else 0))
        mean_sim = summary.get("mean_sim", float(table["sim"].mean()) if len(table) else math.nan)
        mean_sim = math.nan if mean_sim is None else float(mean_sim)
        self.frames += 1
        self._times.append((now, n))
        fps, sps = self.rates(now)
        sim = "n/a" if math.isnan(mean_sim) else f"{mean_sim:.2f}"
        if summary.get("failed"):
            self.warnings += 1
            out.append(f"WARNING frame {frame}: analysis failed: {summary.get('error', '')}")
        elif good < self.min_good or (not math.isnan(mean_sim) and mean_sim < self.min_mean_sim):
            self.warnings += 1
            out.append(f"WARNING frame {frame}: {good} good spots, mean Sim {sim}")
        elif self.frames % self.every == 0:
            out.append(f"frame {frame:6d}: {good:5d} good / {n:5d} spots, mean Sim {sim}  "
                       f"[{fps:6.1f} frames/s, {sps:8.0f} spots/s]")
        return out

    @staticmethod
    def status_line(status: dict[str, Any]) -> str:
        """One line from a service status report."""
        keys = ("state", "frames_per_s", "frames_analysed", "queue_depth", "dropped", "device")
        return "STATUS " + ", ".join(f"{k}={status[k]}" for k in keys if k in status)
