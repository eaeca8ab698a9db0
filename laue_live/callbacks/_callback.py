"""``LaueSpotCallback``: the Bluesky document callback that analyses every frame of one raw run."""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

from event_model import DocumentRouter

from laue_live._run import find_image_field, position_fields
from laue_live.analysis import (
    AnalysisRunComposer,
    AnalysisWorker,
    FrameAnalyzer,
    FrameTask,
    IndexerCache,
    IndexingConfig,
    IndexingSetup,
    loader_from_resource,
    loader_from_stream_resource,
    make_analyzer,
)

__all__ = ["LaueSpotCallback"]

#: Events held while their descriptor has not arrived (documents out of order), at most.
_MAX_EARLY = 1000

logger = logging.getLogger(__name__)


class LaueSpotCallback(DocumentRouter):
    """Analyse the detector frames of one Bluesky run and emit an analysis run to sinks.

    Subscribe it through a RunRouter (:func:`laue_live.callbacks.make_run_router`) so that each run
    gets its own instance. On the RunEngine thread it only records documents and queues frames
    (a few microseconds per event); a worker thread (:class:`laue_live.analysis.AnalysisWorker`)
    reads external files, analyses frames in batches and emits the analysis run's documents. No
    exception reaches the RunEngine: errors are logged and the frame is recorded as failed.

    Frames are found in events inline, in files named by ``stream_resource``/``stream_datum``
    documents (HDF5) or by legacy ``resource``/``datum`` documents (``AD_HDF5``, ``NPY_SEQ``).
    A run with no image field (a data key with a 2-D shape) is ignored: no analysis run is made.

    When the run's start document (keys ``material`` and ``calibration``, see :mod:`laue_live._run`)
    or ``indexing`` names a material and a calibration, every frame's spot table is also indexed, by
    a stage with a thread and a queue of its own that never holds the spot tables up
    (:class:`laue_live.analysis.IndexingStage`): the analysis run then has ``grains``,
    ``indexed_spots`` and ``indexing`` streams too.

    Parameters
    ----------
    sinks
        Callables ``sink(name, doc)`` that receive the analysis run's documents (e.g.
        ``laue_live.catalog.make_analysis_writer(client)``, a 0MQ publisher, a live view).
    method
        ``"fit"``, ``"cnn"`` or ``"auto"`` (the one measured better on the device:
        ``laue_live.describe.choose_method``).
    analyzer
        A :class:`laue_live.analysis.FrameAnalyzer` shared by all runs (the model is loaded
        once), or a function ``frames -> list[DataFrame]``; overrides ``method``.
    image_field
        Data key of the frames; by default the key with a 2-D shape (``*_image`` preferred).
    position_fields
        Data keys of the two stage positions (first and second scan axis); by default the
        start document's ``motors``.
    stream
        Name of the event stream to analyse; by default the first one holding the image field.
    queue_size, policy, block_timeout, batch_size
        Worker settings, see :class:`laue_live.analysis.AnalysisWorker` (policy ``"spill"``
        loses nothing; ``"drop_newest"`` drops and counts).
    metadata
        Extra keys for the analysis run's start document.
    handlers
        Extra legacy ``resource`` handlers: ``{spec: f(resource, datum_kwargs) -> loader}``.
    indexing
        :class:`laue_live.analysis.IndexingConfig` (defaults for runs that do not name a material or
        calibration, the stage's queue and policy), ``False`` to never index; default: index the
        runs whose start document names both.
    indexer_cache
        Indexers shared with other runs (:class:`laue_live.analysis.IndexerCache`).
    """

    def __init__(self, sinks: Iterable = (), *, method: str = "auto",
                 analyzer: FrameAnalyzer | Any | None = None, image_field: str | None = None,
                 position_fields: tuple[str, str] | None = None, stream: str | None = None,
                 queue_size: int = 32, policy: str = "spill", block_timeout: float = 0.02,
                 batch_size: int = 8, metadata: Mapping[str, Any] | None = None,
                 handlers: Mapping[str, Any] | None = None, indexing: IndexingConfig | bool | None = None,
                 indexer_cache: IndexerCache | None = None) -> None:
        super().__init__()
        self.sinks = list(sinks)
        self.analyzer = make_analyzer(method, analyzer)
        self.image_field = image_field
        self.position_fields = position_fields
        self.stream = stream
        self._worker_kw = dict(queue_size=queue_size, policy=policy, block_timeout=block_timeout,
                               batch_size=batch_size)
        self.metadata = dict(metadata or {})
        self.handlers = dict(handlers or {})
        self.indexing = _indexing_config(indexing)
        self.indexer_cache = indexer_cache or IndexerCache()
        self.raw_start: dict | None = None
        self.worker: AnalysisWorker | None = None
        self.composer: AnalysisRunComposer | None = None
        self.ignored_reason = ""
        # descriptor uid -> (image field, "inline" | "stream" | "datum")
        self._descs: dict[str, tuple[str, str]] = {}
        self._pos: tuple[str | None, str | None] = (None, None)
        self._stream_resources: dict[str, dict] = {}
        self._stream_datums: dict[str, list[dict]] = collections.defaultdict(list)  # by descriptor
        self._pending: dict[tuple[str, int], FrameTask] = {}  # external frames awaiting stream_datum
        self._resources: dict[str, dict] = {}
        self._datums: dict[str, dict] = {}
        # Time spent on the RunEngine thread per event/event_page document (s), for the benchmark.
        self.re_seconds: collections.deque[float] = collections.deque(maxlen=100_000)
        self.errors = 0
        # Input hygiene: frames already queued (a re-sent event must not give a second row), and
        # events that arrived before their descriptor (held, bounded, until it comes).
        self._seen: set[tuple[str, int]] = set()
        self._early: dict[str, list[tuple[str, dict]]] = collections.defaultdict(list)
        self.duplicates = 0
        self._other_descs: set[str] = set()

    # -- the RunEngine-facing entry point: never raises ----------------------------------------------
    def __call__(self, name: str, doc: dict, validate: bool = False):
        t0 = time.perf_counter()
        try:
            return super().__call__(name, doc, validate=validate)
        except Exception:
            self.errors += 1
            logger.exception("LaueSpotCallback: error on %s document (ignored; acquisition continues)", name)
        finally:
            if name in ("event", "event_page"):
                self.re_seconds.append(time.perf_counter() - t0)

    # -- state ----------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True once the run was found to hold frames (an analysis run is being made)."""
        return self.worker is not None

    @property
    def analysis_uid(self) -> str | None:
        """Return the analysis run's uid (None if the run holds no frames)."""
        return self.composer.uid if self.composer else None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the analysis run is complete (stop document emitted); True if done.

        Returns True at once for an ignored run.
        """
        return True if self.worker is None else self.worker.join(timeout)

    def stats(self) -> dict[str, Any]:
        """Worker counters plus the RunEngine-thread time per event (``re_ms_mean``, ``re_ms_max``).

        With indexing, the indexing stage's counters are under ``"indexing"``.
        """
        d: dict[str, Any] = self.worker.stats.as_dict() if self.worker else {}
        if self.worker is not None and self.worker.indexing is not None:
            d["indexing"] = self.worker.indexing.stats.as_dict()
        if self.re_seconds:
            s = sorted(self.re_seconds)
            d.update(re_ms_mean=1e3 * sum(s) / len(s), re_ms_p99=1e3 * s[int(0.99 * (len(s) - 1))],
                     re_ms_max=1e3 * s[-1], re_events=len(s))
        d["callback_errors"] = self.errors
        return d

    # -- documents ------------------------------------------------------------------------------------
    def start(self, doc):
        self.raw_start = doc
        return doc

    def _positions(self, data_keys: Mapping[str, Any]) -> tuple[str | None, str | None]:
        if self.position_fields:
            return tuple(k if k in data_keys else None for k in self.position_fields)  # type: ignore[return-value]
        return position_fields(self.raw_start or {}, data_keys)

    def descriptor(self, doc):
        if self.raw_start is None:
            logger.warning("descriptor before start document: ignored")
            return doc
        if self.stream is not None and doc.get("name") != self.stream:
            self._other_descs.add(doc["uid"])
            self._early.pop(doc["uid"], None)
            return doc
        field = find_image_field(doc.get("data_keys", {}), self.image_field)
        if field is None:
            if not self.active:
                self.ignored_reason = f"stream {doc.get('name')!r} has no image field"
            self._other_descs.add(doc["uid"])
            self._early.pop(doc["uid"], None)
            return doc
        self.stream = doc.get("name")
        dk = doc["data_keys"][field]
        external = dk.get("external")
        kind = "inline" if not external else ("stream" if str(external).startswith("STREAM") else "datum")
        self._descs[doc["uid"]] = (field, kind)
        if self.worker is None:
            self._pos = self._positions(doc["data_keys"])
            md = {**self.metadata, "raw_stream": self.stream,
                  "position_fields": [p for p in self._pos if p is not None]}
            self.composer = AnalysisRunComposer(self.sinks, self.raw_start, self.analyzer.describe(),
                                                image_field=field, metadata=md)
            # cheap here (plain values); materials and calibration are resolved on the worker's thread
            setup = IndexingSetup.for_run(self.raw_start, self.indexing, self.indexer_cache)
            self.worker = AnalysisWorker(self.composer, self.analyzer,
                                         name=f"laue-live-analysis-{self.raw_start['uid'][:8]}",
                                         indexing=setup, **self._worker_kw)
            logger.info("run %s: analysing %r of stream %r (%s) into analysis run %s",
                        self.raw_start["uid"][:8], field, self.stream, kind, self.composer.uid[:8])
        for name, early in self._early.pop(doc["uid"], []):
            logger.warning("%s received before its descriptor: analysed now", name)
            getattr(self, name)(early)
        return doc

    def _task(self, desc_uid: str, seq_num: int, data: Mapping[str, Any], filled: Mapping[str, Any]) -> None:
        field, kind = self._descs[desc_uid]
        if (desc_uid, seq_num) in self._seen:
            self.duplicates += 1
            logger.warning("event seq_num %d of descriptor %s received twice: the copy is ignored",
                           seq_num, desc_uid[:8])
            return
        self._seen.add((desc_uid, seq_num))
        px, py = self._pos
        x = data.get(px, math.nan) if px else math.nan
        y = data.get(py, math.nan) if py else math.nan
        task = FrameTask(seq_num - 1, _num(x), _num(y))
        if kind == "stream":
            self._attach_stream_frame(desc_uid, seq_num, task)
            return
        value = data.get(field)
        if kind == "datum" and isinstance(value, str) and filled.get(field) is not True:
            datum = self._datums.get(value)
            resource = self._resources.get(datum["resource"]) if datum else None
            if datum is None or resource is None:
                task.error = f"no datum/resource document for datum id {value!r}"
            else:
                try:
                    task.source = loader_from_resource(resource, datum, self.handlers)
                except Exception as exc:
                    task.error = f"{type(exc).__name__}: {exc}"
        else:
            task.source = value  # the array itself: never copied on the RunEngine thread
        self.worker.submit(task)

    def _attach_stream_frame(self, desc_uid: str, seq_num: int, task: FrameTask) -> None:
        for sd in reversed(self._stream_datums.get(desc_uid, ())):
            sn, ix = sd["seq_nums"], sd["indices"]
            if sn["start"] <= seq_num < sn["stop"]:
                sres = self._stream_resources.get(sd["stream_resource"])
                if sres is None:
                    task.error = f"no stream_resource {sd['stream_resource']!r}"
                else:
                    try:
                        task.source = loader_from_stream_resource(sres, ix["start"] + seq_num - sn["start"])
                    except Exception as exc:
                        task.error = f"{type(exc).__name__}: {exc}"
                self.worker.submit(task)
                return
        self._pending[(desc_uid, seq_num)] = task  # its stream_datum comes later

    def _hold_early(self, name: str, doc: dict) -> bool:
        # An event before its descriptor (documents out of order): keep it until the descriptor
        # arrives (bounded); events of streams without frames are dropped at the stop document.
        desc = doc["descriptor"]
        if desc in self._descs or desc in self._other_descs:  # known: a stream with or without frames
            return False
        if sum(len(v) for v in self._early.values()) < _MAX_EARLY:
            self._early[desc].append((name, doc))
        else:
            logger.error("%s of unknown descriptor %s dropped: too many documents out of order",
                         name, desc[:8])
        return True

    def event(self, doc):
        if doc["descriptor"] not in self._descs and self._hold_early("event", doc):
            return doc
        if self.worker is None or doc["descriptor"] not in self._descs:
            return doc
        # A malformed event without data still names its frame: it is recorded as failed.
        data = doc.get("data")
        self._task(doc["descriptor"], doc["seq_num"], data if isinstance(data, Mapping) else {},
                   doc.get("filled") or {})
        return doc

    def event_page(self, doc):
        if doc["descriptor"] not in self._descs and self._hold_early("event_page", doc):
            return doc
        if self.worker is None or doc["descriptor"] not in self._descs:
            return doc
        data, filled = doc.get("data"), doc.get("filled") or {}
        data = data if isinstance(data, Mapping) else {}
        keys = list(data)
        for i, seq_num in enumerate(doc["seq_num"]):
            self._task(doc["descriptor"], seq_num, {k: data[k][i] for k in keys},
                       {k: v[i] for k, v in filled.items()})
        return doc

    def stream_resource(self, doc):
        self._stream_resources[doc["uid"]] = doc
        return doc

    def stream_datum(self, doc):
        desc = doc.get("descriptor")
        sres = self._stream_resources.get(doc["stream_resource"], {})
        if desc not in self._descs or sres.get("data_key") not in (None, self._descs[desc][0]):
            return doc
        self._stream_datums[desc].append(doc)
        if self._pending:
            sn = doc["seq_nums"]
            for seq in range(sn["start"], sn["stop"]):
                task = self._pending.pop((desc, seq), None)
                if task is not None:
                    self._attach_stream_frame(desc, seq, task)
        return doc

    def resource(self, doc):
        self._resources[doc["uid"]] = doc
        return doc

    def datum(self, doc):
        self._datums[doc["datum_id"]] = doc
        return doc

    def datum_page(self, doc):
        ids = doc["datum_id"]
        kwargs = doc.get("datum_kwargs", {})
        for i, datum_id in enumerate(ids):
            self._datums[datum_id] = {"resource": doc["resource"], "datum_id": datum_id,
                                      "datum_kwargs": {k: v[i] for k, v in kwargs.items()}}
        return doc

    def stop(self, doc):
        early = sum(len(v) for v in self._early.values())
        if early:
            logger.error("%d event document(s) of descriptors never received were not analysed", early)
            self._early.clear()
        if self.worker is None:
            if self.raw_start is not None:
                logger.info("run %s ignored: %s", self.raw_start["uid"][:8],
                            self.ignored_reason or "no image field")
            return doc
        for task in self._pending.values():
            task.error = "no stream_datum document for this frame"
            self.worker.submit(task)
        self._pending.clear()
        self.worker.close(doc.get("exit_status"), doc.get("reason", "") or "")
        return doc


def _indexing_config(indexing: IndexingConfig | bool | None) -> IndexingConfig:
    if isinstance(indexing, IndexingConfig):
        return indexing
    if indexing is None or indexing is True:
        return IndexingConfig()
    if indexing is False:
        return IndexingConfig(enabled=False)
    raise TypeError(f"indexing must be an IndexingConfig, True, False or None, not {type(indexing).__name__}")


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan
