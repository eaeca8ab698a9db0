"""What the dashboard knows about the live runs: fed from the service's 0MQ stream on one thread.

The feed thread does only cheap work per message (decode, a few reductions over one spot table), so
that it always keeps up with the publisher and never becomes the slow subscriber that fills its
queue. Everything heavier (pictures, Tiled reads) happens when a browser asks, at its own pace; the
web layer sends browsers what changed at a fixed cadence, so updates it cannot show are coalesced.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from laue_live._errors import WireError
from laue_live._maps import GRAIN_VALUE_NAMES, VALUE_NAMES, frame_values
from laue_live._run import ANALYSIS_KIND, INDEXING_KEY
from laue_live.stream import (
    TOPIC_DOC,
    TOPIC_GRAINS,
    TOPIC_HELLO,
    TOPIC_SPOTS,
    TOPIC_STATUS,
    SpotSubscriber,
    decode_grains,
    decode_spot_table,
)

__all__ = ["LiveRun", "LiveState", "LiveFeed", "GrainMaps"]

logger = logging.getLogger(__name__)

#: Status reports older than this many report intervals mean the service went silent.
_SILENT_AFTER = 3.0


def _science():
    # why: the indexer (scipy, gemmi, pandas: 1-4 s) loads with the first indexed frame, not with the page
    import laue_live.indexing as indexing

    return indexing


class GrainMaps:
    """The grain values of an indexed run's frames, in arrival order, as the dashboard's maps show them.

    ``frames[i]`` has ``values[name][i]`` for each of :data:`laue_live._maps.GRAIN_VALUE_NAMES` (NaN
    where the frame was indexed without a grain) and ``rgb[i]``, its orientation's inverse-pole-figure
    colour (IPF-z; None: no grain). The misorientation is to the run's first grain. ``materials`` are
    the materials shown, whose colour keys the page draws.
    """

    def __init__(self, indexing: Mapping[str, Any] | None = None):
        self.frames: list[int] = []
        self.values: dict[str, list[float]] = {name: [] for name in GRAIN_VALUE_NAMES}
        self.rgb: list[list[float] | None] = []
        self.materials: list[str] = []
        self.known = _science().materials_from_indexing(indexing) if indexing else {}
        self.reference = None
        self._seen: set[int] = set()

    def add(self, frame: int, grains, n_grains: int) -> None:
        """One indexed frame: its grains (a DataFrame of the ``grains`` table; none: no grain)."""
        row = None
        if grains is not None and len(grains):
            sci = _science()
            if "frame" not in grains:
                grains = grains.assign(frame=int(frame))
            if self.reference is None:
                self.reference = sci.u_matrices(sci.select_grains(grains).iloc[:1])[0]
            row = sci.grain_map_table(grains, reference=self.reference, materials=self.known).iloc[0]
        self.append(frame, row, n_grains)

    def append(self, frame: int, row, n_grains: int) -> None:
        """Put a frame on the maps: its row of :func:`laue_live.indexing.grain_map_table` (None: no grain)."""
        if int(frame) in self._seen:
            return  # a replay
        self._seen.add(int(frame))
        values = dict.fromkeys(GRAIN_VALUE_NAMES, float("nan"))
        rgb = None
        if row is not None:
            values = {name: float(row[name]) for name in GRAIN_VALUE_NAMES}
            rgb = [float(row["r"]), float(row["g"]), float(row["b"])]
            if row["material"] not in self.materials:
                self.materials.append(str(row["material"]))
        values["n_grains"] = float(n_grains)
        self.frames.append(int(frame))
        for name in GRAIN_VALUE_NAMES:
            self.values[name].append(values[name])
        self.rgb.append(rgb)

    def payload(self, start: int = 0) -> dict[str, Any]:
        """Return the frames from index ``start`` on, for the page (JSON-ready: NaN as None)."""
        nan_free = {k: [None if v != v else v for v in vs[start:]] for k, vs in self.values.items()}
        return {"frames": self.frames[start:], "values": nan_free, "rgb": self.rgb[start:],
                "materials": list(self.materials)}


class LiveRun:
    """One analysis run as seen on the stream: its start document, per-frame values, recent tables.

    Attributes
    ----------
    start
        The analysis start document (or the run header of the first spot table, if the dashboard
        joined after the start).
    frames
        Frame numbers in arrival order; ``values[name][i]`` belongs to ``frames[i]``.
    tables
        The spot tables of the newest ``keep`` frames (frame -> mapping column -> array).
    stop
        The stop document once the run ended.
    complete_start
        Whether the start document itself was seen (else the header stands in for it).
    """

    def __init__(self, start: Mapping[str, Any], *, keep: int, complete_start: bool):
        self.uid = str(start["uid"])
        self.start = dict(start)
        self.complete_start = complete_start
        self.frames: list[int] = []
        self.values: dict[str, list[float]] = {name: [] for name in VALUE_NAMES}
        self.errors: dict[int, str] = {}
        self.tables: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self.keep = keep
        self.stop: dict[str, Any] | None = None
        self.first_seen = time.time()
        self.latest: dict[str, Any] | None = None
        self.gaps = 0
        self.grains: GrainMaps | None = None  # made when the run's first indexing arrives

    def add(self, frame: int, table, summary: Mapping[str, Any]) -> None:
        values = frame_values(summary, table)
        self.frames.append(int(frame))
        for name in VALUE_NAMES:
            self.values[name].append(values[name])
        if summary.get("failed"):
            self.errors[int(frame)] = str(summary.get("error", ""))
        self.tables[int(frame)] = table
        self.tables.move_to_end(int(frame))
        while len(self.tables) > self.keep:
            self.tables.popitem(last=False)
        self.latest = {"frame": int(frame), "n_spots": int(summary.get("n_spots", 0) or 0),
                       "n_good": int(summary.get("n_good", 0) or 0), "failed": bool(summary.get("failed")),
                       "time": time.time()}

    def add_grains(self, frame: int, grains, summary: Mapping[str, Any]) -> bool:
        """One frame's indexing (a ``laue.grains`` message); False if it puts nothing on the maps."""
        if summary.get("status") not in ("indexed", "no_grain"):
            return False  # failed or not indexed: the maps leave it blank
        if self.grains is None:
            self.grains = GrainMaps(self.start.get(INDEXING_KEY))
        n = summary.get("n_grains")
        self.grains.add(frame, grains, int(n) if n is not None else (0 if grains is None else len(grains)))
        return True

    def merge(self, frames, values: Mapping[str, list], errors: Mapping[int, str]) -> int:
        """Add frames read back from Tiled that the stream did not bring (joined late, missed)."""
        seen = set(self.frames)
        added = 0
        for i, frame in enumerate(frames):
            if int(frame) in seen:
                continue
            self.frames.append(int(frame))
            for name in VALUE_NAMES:
                self.values[name].append(values[name][i])
            added += 1
        for frame, error in errors.items():
            self.errors.setdefault(int(frame), error)
        return added

    def summary(self) -> dict[str, Any]:
        """Run-level facts for the run picker and the page header."""
        s = self.start
        return {"uid": self.uid, "scan_id": s.get("raw_scan_id", s.get("scan_id")), "sample": s.get("sample"),
                "raw_uid": s.get("raw_uid"), "method": s.get("method"),
                "time": s.get("time", self.first_seen),
                "frames": len(self.frames), "ended": self.stop is not None,
                "exit_status": (self.stop or {}).get("exit_status"), "live": True,
                "indexed": bool((s.get(INDEXING_KEY) or {}).get("enabled"))}


class LiveState:
    """The dashboard's live model: runs seen on the stream, the service's status, the stream's health.

    Thread-safe: the feed thread writes, the web layer reads. :attr:`version` grows with every change,
    so a reader can tell cheaply whether anything is new.

    Parameters
    ----------
    keep_runs
        Runs kept in memory (the newest ones; older runs are read from Tiled).
    keep_tables
        Spot tables kept per run (the newest frames), for a click on a recent cell.
    """

    def __init__(self, *, keep_runs: int = 8, keep_tables: int = 256):
        self.keep_runs = keep_runs
        self.keep_tables = keep_tables
        self.lock = threading.RLock()
        self.runs: collections.OrderedDict[str, LiveRun] = collections.OrderedDict()
        self.current: str | None = None
        self.status: dict[str, Any] | None = None
        self.status_received: float | None = None
        self.stream: dict[str, Any] = {"address": None, "connected": False, "received": 0, "rejected": 0,
                                       "missed": 0, "last_message": None}
        self.version = 0
        self.backfill: set[str] = set()  # runs whose earlier frames must be read from Tiled

    # -- writers (feed thread) -----------------------------------------------------------------------
    def _run(self, header: Mapping[str, Any], *, complete: bool) -> LiveRun:
        uid = str(header["uid"])
        run = self.runs.get(uid)
        if run is None:
            run = LiveRun(header, keep=self.keep_tables, complete_start=complete)
            self.runs[uid] = run
            while len(self.runs) > self.keep_runs:
                self.runs.popitem(last=False)
        elif complete and not run.complete_start:
            run.start, run.complete_start = dict(header), True
        return run

    def start_run(self, doc: Mapping[str, Any]) -> None:
        """Take an analysis start document: this run becomes the current one."""
        if doc.get("kind") != ANALYSIS_KIND or "uid" not in doc:
            return
        with self.lock:
            self._run(doc, complete=True)
            self.current = str(doc["uid"])
            for uid, run in self.runs.items():  # older runs' tables are in Tiled: bounded memory
                if uid != self.current:
                    run.tables.clear()
            self.version += 1
        logger.info("following analysis run %s (scan %s)", str(doc["uid"])[:8], doc.get("raw_scan_id"))

    def stop_run(self, doc: Mapping[str, Any]) -> None:
        """Take an analysis stop document; frames the stream missed are then read from Tiled."""
        with self.lock:
            run = self.runs.get(str(doc.get("run_start", "")))
            if run is None:
                return
            run.stop = dict(doc)
            expected = int(doc.get("frames_analysed", 0) or 0) + int(doc.get("frames_failed", 0) or 0)
            if expected > len(run.frames) or not run.complete_start:
                self.backfill.add(run.uid)
            self.version += 1

    def add_frame(self, header: Mapping[str, Any], frame: int, table, summary: Mapping[str, Any] | None,
                  seq_gap: int = 0) -> None:
        """One analysed frame arrived: its values go on the map, its table into the recent ones."""
        if "uid" not in header:
            return
        with self.lock:
            run = self.runs.get(str(header["uid"]))
            if run is None:  # joined mid-run: the table header stands in for the start document
                run = self._run(header, complete=False)
                self.current = run.uid
                self.backfill.add(run.uid)
            if seq_gap:
                run.gaps += seq_gap
                self.backfill.add(run.uid)
            if summary is None:  # a table flushed without its summary: count what the table says
                n = len(table["good"]) if "good" in table else 0
                summary = {"n_spots": n, "n_good": int(sum(table["good"])) if n else 0, "failed": False}
            run.add(frame, table, summary)
            self.version += 1

    def add_grains(self, header: Mapping[str, Any], frame: int, grains, summary: Mapping[str, Any]) -> None:
        """One frame's indexing arrived: its grain values go on the grain maps of its run."""
        with self.lock:
            run = self.runs.get(str(header.get("uid", "")))
            if run is None:
                return  # its spot table (which opens the run) never came: Tiled has it
            if run.add_grains(frame, grains, summary):
                self.version += 1

    def backfill_from(self, reader) -> int:
        """Read from Tiled the frames of live runs that the stream did not bring; returns frames added.

        Runs are marked for this when the dashboard joined after their start, when the publisher's
        sequence numbers show missed tables, or when a stop document counts more frames than seen.
        A run whose read fails stays marked (the reader retries Tiled later).
        """
        added = 0
        for uid in sorted(self.backfill):
            try:
                data = reader.run(uid)
            except Exception as exc:  # noqa: BLE001 - Tiled away or the run not written yet: later
                logger.info("frames of run %s not read from Tiled yet: %s", uid[:8], exc)
                continue
            with self.lock:
                self.backfill.discard(uid)
                run = self.runs.get(uid)
                if run is None:
                    continue
                n = run.merge(data["frames"], data["values"], data["errors"])
                if data.get("start") and not run.complete_start:
                    run.start, run.complete_start = {**run.start, **data["start"]}, True
                if n:
                    self.version += 1
                    added += n
        return added

    def set_status(self, status: Mapping[str, Any]) -> None:
        """Take a service status report."""
        with self.lock:
            self.status = dict(status)
            self.status_received = time.time()
            self.version += 1

    def set_stream(self, **facts: Any) -> None:
        """Update the stream's own counters (connected, received, missed, rejected)."""
        with self.lock:
            changed = any(self.stream.get(k) != v for k, v in facts.items() if k != "last_message")
            self.stream.update(facts)
            if changed:
                self.version += 1

    # -- readers (web layer) -------------------------------------------------------------------------
    def get(self, uid: str) -> LiveRun | None:
        """Return the live run ``uid``, if it is still held."""
        with self.lock:
            return self.runs.get(uid)

    def table(self, uid: str, frame: int):
        """Return the spot table of a recent frame of a live run, or None (then read it from Tiled)."""
        with self.lock:
            run = self.runs.get(uid)
            return None if run is None else run.tables.get(int(frame))

    def health(self) -> dict[str, Any]:
        """Return the run's and the service's health: counts, rates, backlog, sinks, errors, stream."""
        with self.lock:
            status = dict(self.status or {})
            run = self.runs.get(self.current) if self.current else None
            now = time.time()
            interval = float(status.get("status_interval", 5.0) or 5.0)
            age = None if self.status_received is None else now - self.status_received
            silent = age is not None and age > _SILENT_AFTER * max(interval, 1.0) + 5.0
            out: dict[str, Any] = {"stream": dict(self.stream), "status": status,
                                   "status_age_s": None if age is None else round(age, 1),
                                   "service_silent": silent}
            if run is not None:
                failed = sum(1 for v in run.values["failed"] if v == 1.0)
                recent = list(run.errors.items())[-5:]
                out["run"] = {**run.summary(), "analysed": len(run.frames) - failed, "failed": failed,
                              "gaps": run.gaps, "errors": [f"frame {f}: {e}" for f, e in recent]}
                if run.stop is not None:
                    out["run"]["dropped"] = int(run.stop.get("frames_dropped", 0) or 0)
            return out


class LiveFeed:
    """Follow a :class:`~laue_live.stream.SpotPublisher` (``laue-live serve``) into a :class:`LiveState`.

    Parameters
    ----------
    address
        ``"host:port"`` of the publisher.
    state
        Where the runs, frames and status go.
    curve
        :class:`~laue_live.stream.CurveClient` when the publisher uses CURVE.
    """

    def __init__(self, address: str, state: LiveState, *, curve=None):
        self.address = address
        self.state = state
        # start/stop documents only: the spot pages would repeat what the tables already carry
        self._sub = SpotSubscriber(address, documents=("start", "stop"), status=True, curve=curve,
                                   grains=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="laue-live-dashboard-feed", daemon=True)
        state.set_stream(address=address)

    def start(self) -> LiveFeed:
        """Start the feed thread."""
        self._thread.start()
        return self

    def _loop(self) -> None:
        sub, state = self._sub, self.state
        last_seq: int | None = None
        try:
            while not self._stop.is_set():
                message = sub.receive(0.5)
                if message is None:
                    continue
                state.set_stream(connected=True, received=sub.received, rejected=sub.rejected,
                                 missed=sub.missed, last_message=time.time())
                try:
                    if message.topic == TOPIC_SPOTS:
                        payload = message.payload
                        table = decode_spot_table(payload)
                        seq = payload.get("seq")
                        gap = seq - last_seq - 1 if isinstance(seq, int) and last_seq is not None else 0
                        last_seq = seq if isinstance(seq, int) else last_seq
                        state.add_frame(payload.get("run") or {}, int(payload.get("frame", -1)), table,
                                        payload.get("summary"), seq_gap=max(gap, 0))
                    elif message.topic == TOPIC_GRAINS:
                        payload = message.payload
                        grains, _ = decode_grains(payload)
                        state.add_grains(payload.get("run") or {}, int(payload.get("frame", -1)), grains,
                                         payload.get("summary") or {})
                    elif message.topic == TOPIC_DOC:
                        doc = message.payload.get("doc") or {}
                        if message.name == "start":
                            state.start_run(doc)
                        elif message.name == "stop":
                            state.stop_run(doc)
                    elif message.topic == TOPIC_STATUS:
                        state.set_status(message.payload.get("status") or {})
                    elif message.topic == TOPIC_HELLO:
                        logger.info("connected to the spot stream at %s", self.address)
                except (WireError, KeyError, TypeError, ValueError) as exc:
                    logger.warning("skipped a malformed %s message: %s", message.topic.decode(), exc)
        except Exception:  # the feed must never take the web server down with it
            logger.exception("the live feed from %s stopped", self.address)
            state.set_stream(connected=False)
        finally:
            self._sub.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the socket (bounded wait)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
