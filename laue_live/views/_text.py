"""Terminal views: one line per frame, rates and warnings (``laue-live watch``), and a LiveTable.

:class:`FrameTicker` turns the spot tables of the 0MQ stream into lines; :class:`LiveSpotTable` is a
document callback in the spirit of bluesky's ``LiveTable``: a table row per analysed frame, for
sessions without plots (a terminal over ssh, a queueserver worker's log).
"""

from __future__ import annotations

import collections
import math
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, TextIO

import numpy as np

from laue_live._maps import LENGTH_UNITS_UM
from laue_live._run import ANALYSIS_KIND, FRAMES_STREAM

__all__ = ["FrameTicker", "LiveSpotTable"]


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
        """Frames/s and spots/s over the last ``window`` seconds (of analysis time when known)."""
        now = time.monotonic() if now is None else now
        while self._times and now - self._times[0][0] > self.window:
            self._times.popleft()
        if len(self._times) < 2:
            return 0.0, 0.0
        span = max(now - self._times[0][0], 1e-9)
        return (len(self._times) - 1) / span, sum(n for _, n in list(self._times)[1:]) / span

    def lines(self, run: dict[str, Any], frame: int, table, summary: dict[str, Any] | None = None,
              now: float | None = None, analysed_at: float | None = None) -> list[str]:
        """Return the lines to print for one received frame (possibly none).

        ``analysed_at`` is when the service finished the frame (the spot table's ``time``, epoch
        seconds): the rates are then the service's, not how fast tables reach this terminal (a
        backlog arrives in a burst when a subscriber connects late or the network stalls).
        """
        if analysed_at is not None:
            now = float(analysed_at)
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
                       f"[{fps:6.1f} frames/s, {sps:8.0f} spots/s analysed]")
        return out

    @staticmethod
    def status_line(status: dict[str, Any]) -> str:
        """One line from a service status report."""
        keys = ("state", "frames_per_s", "frames_analysed", "queue_depth", "dropped", "device")
        return "STATUS " + ", ".join(f"{k}={status[k]}" for k in keys if k in status)


class LiveSpotTable:
    """A table row per analysed frame on a terminal, like bluesky's ``LiveTable``, for sessions without plots.

    Subscribe it to the analysis run's documents (a sink of the live callback, or fed from the
    service's stream by :func:`~laue_live.views.follow_stream`). At each analysis run's start it
    prints a header (the scan, the method, the columns), then one row per frame: frame number,
    stage position (µm when the motors' units are lengths), spots, good spots, mean Sim and the
    analysis time, with a note for a failed frame or a poor one; at the stop, the totals.

    Parameters
    ----------
    min_good
        Note frames with fewer good spots than this.
    min_mean_sim
        Note frames whose mean Sim is lower.
    file
        Where the lines go (default ``sys.stdout``).
    """

    _COLUMNS = (("frame", 7), ("x", 10), ("y", 10), ("spots", 6), ("good", 6), ("mean Sim", 8), ("time s", 7))

    def __init__(self, *, min_good: int = 5, min_mean_sim: float = 0.3, file: TextIO | None = None):
        self.min_good = min_good
        self.min_mean_sim = min_mean_sim
        self.file = file
        self.rows = 0
        self._lock = threading.Lock()
        self._runs: dict[str, dict[str, Any]] = {}
        self._frames_descriptors: set[str] = set()
        self._totals: dict[str, list[int]] = {}
        self._current = ""  # the analysis run whose rows are printed

    def _print(self, text: str) -> None:
        print(text, file=self.file or sys.stdout, flush=True)  # the table is terminal output (as LiveTable)

    def _rule(self) -> str:
        return "+" + "+".join("-" * (w + 2) for _, w in self._COLUMNS) + "+"

    def __call__(self, name: str, doc: Mapping[str, Any]) -> None:
        """Consume one analysis document (others are ignored)."""
        with self._lock:
            if name == "start" and doc.get("kind") == ANALYSIS_KIND:
                self._start(doc)
            elif name == "descriptor" and doc.get("run_start") in self._runs:
                if doc.get("name") == FRAMES_STREAM:
                    self._frames_descriptors.add(doc["uid"])
            elif name == "event" and doc.get("descriptor") in self._frames_descriptors:
                self._row(doc["data"])
            elif name == "event_page" and doc.get("descriptor") in self._frames_descriptors:
                data = doc["data"]
                for i in range(len(data.get("frame", []))):
                    self._row({k: v[i] for k, v in data.items()})
            elif name == "stop" and doc.get("run_start") in self._runs:
                self._stop(doc)

    def _start(self, doc: Mapping[str, Any]) -> None:
        laue = doc.get("laue_live") if isinstance(doc.get("laue_live"), Mapping) else {}
        units = str(laue.get("units") or "").strip()
        scale = LENGTH_UNITS_UM.get(units)
        self._runs[doc["uid"]] = {"scale": scale, "unit": "µm" if scale else (units or "motor units")}
        self._current = doc["uid"]
        self._totals[doc["uid"]] = [0, 0, 0, 0]  # frames, spots, good, failed
        scan = doc.get("raw_scan_id", doc.get("scan_id", "?"))
        shape = doc.get("shape")
        self._print(f"analysis run {doc['uid'][:8]} of scan {scan}"
                    + (f" ({' x '.join(map(str, shape))} raster)" if isinstance(shape, list | tuple) else "")
                    + f", {doc.get('method', '?')} analysis; positions in {self._runs[doc['uid']]['unit']}")
        self._print(self._rule())
        self._print("|" + "|".join(f" {title:^{w}} " for title, w in self._COLUMNS) + "|")
        self._print(self._rule())

    def _row(self, d: Mapping[str, Any]) -> None:
        info = self._runs.get(self._current, {"scale": None})
        scale = info["scale"] or 1.0

        def num(key: str, fmt: str, width: int, factor: float = 1.0) -> str:
            v = d.get(key)
            try:
                v = float(v) * factor
            except (TypeError, ValueError):
                return " " * width
            return f"{v:{width}{fmt}}" if math.isfinite(v) else f"{'-':>{width}}"

        failed = bool(d.get("failed", False))
        n, good = int(d.get("n_spots", 0) or 0), int(d.get("n_good", 0) or 0)
        cells = [f"{int(d.get('frame', -1)):7d}", num("x", ".3f", 10, scale), num("y", ".3f", 10, scale),
                 f"{n:6d}", f"{good:6d}", num("mean_sim", ".3f", 8), num("seconds", ".3f", 7)]
        mean_sim = d.get("mean_sim")
        note = ""
        if failed:
            note = f"  FAILED: {d.get('error', '')}"
        elif good < self.min_good or (mean_sim is not None and np.isfinite(mean_sim)
                                      and float(mean_sim) < self.min_mean_sim):
            note = "  <- few good spots" if good < self.min_good else "  <- low mean Sim"
        self._print("| " + " | ".join(cells) + " |" + note)
        self.rows += 1
        totals = self._totals.get(self._current)
        if totals is not None:
            totals[0] += 1
            totals[1] += n
            totals[2] += good
            totals[3] += failed

    def _stop(self, doc: Mapping[str, Any]) -> None:
        uid = doc["run_start"]
        frames, spots, good, failed = self._totals.pop(uid, [0, 0, 0, 0])
        self._runs.pop(uid, None)
        self._print(self._rule())
        self._print(f"analysis run {uid[:8]} {doc.get('exit_status', '?')}: {frames} frames, {spots} spots, "
                    f"{good} good, {failed} failed")
