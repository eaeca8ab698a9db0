"""The latest analysed frame with its spots marked by quality."""

from __future__ import annotations

import collections
import logging
from typing import Any

import numpy as np

from laue_live._run import ANALYSIS_KIND, FRAMES_STREAM, RAW_UID, SPOTS_STREAM, find_image_field
from laue_live.analysis import loader_from_stream_resource
from laue_live.views._base import LiveView
from laue_live.views._draw import draw_frame

__all__ = ["LiveSpotFrame"]

#: Spot columns kept for the drawing (:func:`~laue_live.views._draw.draw_frame`).
_DRAWN = ("row", "col", "sigma_row", "sigma_col", "good", "edge", "saturated", "component", "sim")

logger = logging.getLogger(__name__)


class LiveSpotFrame(LiveView):
    """Show the latest analysed frame (log grey scale, labelled) with its spots as fitted ellipses.

    Subscribe it both to the RunEngine (raw documents: the frames, inline in the events or in HDF5
    files named by ``stream_resource``/``stream_datum`` documents, read only for the frame shown)
    and to the analysis run's documents (the spots). Without the raw image (a remote session that
    gets only the analysis stream) the spots are drawn on an empty detector area.

    Parameters
    ----------
    ax
        matplotlib Axes; a new figure if ``None``.
    keep
        Raw frames kept in memory waiting for their analysis (the newest ones).
    color_by
        ``"good"`` (default: green good, red bad, counted in the legend as in the summary) or a spot
        column (e.g. ``"sim"``) for a labelled colour scale (see :func:`~laue_live.views._draw.draw_frame`).
    """

    def __init__(self, ax=None, *, keep: int = 8, color_by: str = "good", redraw_interval: float = 0.2):
        super().__init__(ax, redraw_interval=redraw_interval)
        self.color_by = color_by
        self._images: collections.OrderedDict[tuple[str, int], np.ndarray] = collections.OrderedDict()
        self._keep = keep
        self._raw_fields: dict[str, str] = {}  # raw descriptor uid -> image key
        self._raw_run: dict[str, str] = {}  # raw descriptor uid -> raw run uid
        self._resources: dict[str, dict] = {}  # stream_resource uid -> document (current raw run)
        self._external: collections.OrderedDict[tuple[str, int], tuple[str, int]] = collections.OrderedDict()
        self._raw_uid = ""
        self._analysis: dict[str, dict] = {}  # analysis uid -> start doc
        self._streams: dict[str, tuple[str, str]] = {}  # analysis descriptor uid -> (run uid, stream)
        self._tables: dict[tuple[str, int], dict[str, np.ndarray]] = {}
        self.latest: dict[str, Any] | None = None
        self._colorbars: dict = {}

    # -- raw run -------------------------------------------------------------------------------------
    def start(self, doc: dict[str, Any]) -> None:
        if doc.get("kind") == ANALYSIS_KIND:
            self._analysis = {doc["uid"]: doc}  # the current analysis only: bounded memory
        else:
            self._raw_uid = doc["uid"]
            self._resources = {}

    def stream_resource(self, doc: dict[str, Any]) -> None:
        self._resources[doc["uid"]] = doc

    def stream_datum(self, doc: dict[str, Any]) -> None:
        # External frames: remember where frame (seq_num - 1) lives; read it only if it is shown.
        seq, idx = doc.get("seq_nums", {}), doc.get("indices", {})
        for k in range(int(seq.get("stop", 0)) - int(seq.get("start", 0))):
            self._external[(self._raw_uid, int(seq["start"]) + k - 1)] = (doc["stream_resource"],
                                                                        int(idx.get("start", 0)) + k)
        while len(self._external) > 4096:
            self._external.popitem(last=False)

    def descriptor(self, doc: dict[str, Any]) -> None:
        run = doc.get("run_start", "")
        if run in self._analysis:
            self._streams[doc["uid"]] = (run, doc.get("name", ""))
            return
        # frames inline in the events (external ones are read through stream_resource/stream_datum)
        key = find_image_field({k: v for k, v in doc.get("data_keys", {}).items() if not v.get("external")})
        if key is not None:
            self._raw_fields[doc["uid"]] = key
            self._raw_run[doc["uid"]] = run

    def event(self, doc: dict[str, Any]) -> None:
        self.event_page({"descriptor": doc["descriptor"], "seq_num": [doc.get("seq_num", 0)],
                         "data": {k: [v] for k, v in doc["data"].items()}})

    def event_page(self, doc: dict[str, Any]) -> None:
        desc = doc.get("descriptor", "")
        if desc in self._raw_fields:
            key = self._raw_fields[desc]
            for seq, image in zip(doc.get("seq_num", []), doc["data"].get(key, []), strict=False):
                image = np.asarray(image)
                if image.ndim == 3 and image.shape[0] == 1:
                    image = image[0]
                if image.ndim == 2:
                    self._images[(self._raw_run[desc], int(seq) - 1)] = image
                    while len(self._images) > self._keep:
                        self._images.popitem(last=False)
            return
        run, stream = self._streams.get(desc, ("", ""))
        data = doc.get("data", {})
        if stream == SPOTS_STREAM:
            frames = np.asarray(data["frame"])
            for frame in np.unique(frames):
                sel = frames == frame
                self._tables[(run, int(frame))] = {k: np.asarray(v)[sel] for k, v in data.items()
                                                   if k in _DRAWN or k == self.color_by}
        elif stream == FRAMES_STREAM:
            for i, frame in enumerate(data["frame"]):
                summary = {k: v[i] for k, v in data.items()}
                self._show(run, int(frame), summary)

    def _show(self, run: str, frame: int, summary: dict[str, Any]) -> None:
        start = self._analysis.get(run, {})
        table = self._tables.pop((run, frame), None)
        image = self._images.get((start.get(RAW_UID, ""), frame))
        if image is None:
            image = self._load_external(start.get(RAW_UID, ""), frame)
        with self._lock:
            self.latest = {"frame": frame, "summary": summary, "table": table, "image": image,
                           "scan": start.get("raw_scan_id", "")}
            self.n_updates += 1
        # Tables of frames never shown (failed summaries) must not pile up.
        for key in [k for k in self._tables if k[0] != run or k[1] < frame - 64]:
            del self._tables[key]
        self._changed()

    def _load_external(self, raw_uid: str, frame: int) -> np.ndarray | None:
        where = self._external.get((raw_uid, frame))
        if where is None or where[0] not in self._resources:
            return None
        try:
            loader = loader_from_stream_resource(self._resources[where[0]], where[1], timeout=0.5)
            image = np.asarray(loader())
        except Exception as exc:  # the view must never fail the acquisition
            logger.info("frame %d: cannot read the detector file for display: %s", frame, exc)
            return None
        return image[0] if image.ndim == 3 and image.shape[0] == 1 else image

    # -- drawing ------------------------------------------------------------------------------------
    def _draw(self) -> None:
        ax = self._ensure_axes()
        latest = self.latest
        if latest is None:
            return
        ax.clear()
        image, table, summary = latest["image"], latest["table"], latest["summary"]
        self._colorbars = draw_frame(ax, image, table, color_by=self.color_by, colorbars=self._colorbars)
        mean_sim = summary.get("mean_sim")
        sim_text = "n/a" if mean_sim is None or not np.isfinite(mean_sim) else f"{mean_sim:.2f}"
        status = f" FAILED: {summary.get('error')}" if summary.get("failed") else ""
        scan = f"scan {latest['scan']}, " if latest.get("scan") not in ("", None) else ""
        ax.set_title(f"{scan}frame {latest['frame']}: {summary.get('n_good', 0)} good / "
                     f"{summary.get('n_spots', 0)} spots, mean Sim {sim_text}{status}", fontsize="medium")
        self._start_timer()
