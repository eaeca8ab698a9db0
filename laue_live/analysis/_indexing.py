"""The live indexing stage: each frame's spot table -> grains, on its own thread, never holding the spots up.

What a run asks for is read on the RunEngine's thread by :meth:`IndexingSetup.for_run` (plain
values: :func:`laue_live._run.indexing_request` on the raw run's start document, else the user's
:class:`IndexingConfig`); on the analysis worker's thread, :meth:`IndexingSetup.open` turns it into
materials, a calibration and indexer settings (:func:`resolve_indexing`; the science is imported
there, ~1 s the first time, never on the RunEngine's thread), records it in the analysis run's start
document (:meth:`ResolvedIndexing.metadata`) and starts the run's :class:`IndexingStage`, which takes
the spot tables the
:class:`~laue_live.analysis.AnalysisWorker` has emitted, indexes them with
:class:`laue_live.indexing.Indexer` objects built once per setup (:class:`IndexerCache`, shared by the
runs; built on the stage's thread, ~0.3 s per material, never on the RunEngine's) and emits each
frame's ``grains``, ``indexed_spots`` and ``indexing`` rows through the run's composer.

Its queue has the analysis worker's policies (:mod:`laue_live.analysis._queue`): ``spill`` (default:
every frame is indexed, late rather than never), ``drop_newest`` (a frame over the bound is recorded
as ``not_indexed``, reason ``dropped: ...``) or ``block`` (the analysis worker waits: the spot rows
are already out, but the next frames' are held; use only where indexing must keep pace). Nothing is
dropped silently: every frame handed over gets exactly one ``indexing`` row, also when the run closes
before the stage caught up (``close_timeout``: the rest are recorded ``not_indexed``, and
``laue-live index RUN`` indexes them later).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from laue_live._errors import SettingsError
from laue_live._run import IndexingRequest, indexing_request
from laue_live.analysis._queue import QUEUE_POLICIES, LatencyStats, PolicyQueue, QueueThread

if TYPE_CHECKING:  # pragma: no cover
    from laue_live.geometry import Calibration, Material
    from laue_live.indexing import Indexer, IndexerSettings

__all__ = [
    "IndexingConfig",
    "IndexingSetup",
    "ResolvedIndexing",
    "resolve_indexing",
    "IndexerCache",
    "IndexingStage",
    "IndexingStats",
]

logger = logging.getLogger(__name__)

_DEFAULT_ENERGY = (5.0, 23.0)


def _setting_names() -> set[str]:
    # why: the indexer (scipy, gemmi, pandas: 1-4 s) loads when a run is indexed, not with the package
    from laue_live.indexing import IndexerSettings

    return {f.name for f in fields(IndexerSettings)}


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = set(options) - _setting_names()
    if unknown:
        raise SettingsError(f"unknown indexer option(s) {sorted(unknown)}; known: {sorted(_setting_names())}")


# ------------------------------------------------------------------------------------------ settings
@dataclass(frozen=True)
class IndexingConfig:
    """The user's indexing settings (callback arguments, ``laue-live serve`` options).

    Parameters
    ----------
    material, calibration, energy_range
        Defaults for runs whose start document does not name them (see
        :data:`laue_live._run.MATERIAL_KEY`, :data:`~laue_live._run.CALIBRATION_KEY`; a
        :class:`~laue_live.geometry.Material` or :class:`~laue_live.geometry.Calibration` object is
        accepted too). A run is indexed when material and calibration are known from either place.
    enabled
        False: never index.
    prefer
        ``"start"`` (default): a start document's values win over these; ``"settings"``: these win.
    options
        :class:`laue_live.indexing.IndexerSettings` fields (``max_grains``, ``refine_strain``, ...).
    queue_size, policy, block_timeout
        The stage's queue: frames waiting before the policy applies, ``"spill"`` (default, loses
        nothing), ``"drop_newest"`` or ``"block"``, and the one wait before it applies (s).
    close_timeout
        At the end of a run, seconds the stage may take to index what is queued before the rest is
        recorded as ``not_indexed``; None: until done.
    """

    material: Any = None
    calibration: Any = None
    energy_range: tuple[float, float] | None = None
    enabled: bool = True
    prefer: str = "start"
    options: Mapping[str, Any] = field(default_factory=dict)
    queue_size: int = 64
    policy: str = "spill"
    block_timeout: float = 0.02
    close_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.policy not in QUEUE_POLICIES:
            raise SettingsError(f"indexing queue policy must be one of {QUEUE_POLICIES}, not {self.policy!r}")
        if self.prefer not in ("start", "settings"):
            raise SettingsError(f"prefer must be 'start' or 'settings', not {self.prefer!r}")
        if self.queue_size < 1:
            raise SettingsError("the indexing queue size must be >= 1")
        if self.options:
            _check_options(self.options)

    def settings(self) -> dict[str, Any]:
        """Return the mapping :func:`laue_live._run.indexing_request` takes as the user's settings."""
        return {"material": self.material, "calibration": self.calibration,
                "energy_range": self.energy_range, "enabled": self.enabled, **dict(self.options)}


# ----------------------------------------------------------------------------------------- resolving
def _material(value: Any) -> list[Material]:
    from laue_live.geometry import Material, read_cif  # why: see _setting_names
    from laue_live.indexing import material_from_metadata  # why: as above

    if isinstance(value, Material):
        return [value]
    if isinstance(value, str):
        return [material_from_metadata(value)]
    if isinstance(value, Mapping):
        if value.get("cif"):
            return [read_cif(value["cif"], name=value.get("name"))]
        if not (value.get("name") or value.get("lattice")):
            raise SettingsError(f"material mapping needs 'name', 'cif' or 'lattice' + 'space_group': "
                                f"{value!r}")
        return [material_from_metadata(value)]
    if isinstance(value, list | tuple) and value:
        return [m for v in value for m in _material(v)]
    raise SettingsError(f"material must be a name, a list of names or a mapping, not {value!r}")


def _number(value: Any, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"calibration {what} must be a number, got {value!r}") from None


def _calibration(value: Any) -> tuple[Calibration, str]:
    from laue_live.geometry import Calibration, read_det  # why: see _setting_names

    if isinstance(value, Calibration):
        return value, "settings (Calibration object)"
    if isinstance(value, str | os.PathLike):
        return read_det(value)[0], str(value)
    if isinstance(value, Mapping):
        kw: dict[str, Any] = {}
        params = value.get("CCDCalibParameters", value.get("ccd_calib_parameters"))
        if params is not None:
            if not isinstance(params, list | tuple) or len(params) < 5:
                raise SettingsError("CCDCalibParameters must be [dd, xcen, ycen, xbet, xgam]")
            kw.update(zip(("dd", "xcen", "ycen", "xbet", "xgam"),
                          (_number(v, "parameter") for v in params[:5]), strict=True))
        for key in ("dd", "xcen", "ycen", "xbet", "xgam"):
            if key in value:
                kw[key] = _number(value[key], key)
        missing = [k for k in ("dd", "xcen", "ycen", "xbet", "xgam") if k not in kw]
        if missing:
            raise SettingsError(f"calibration mapping lacks {missing} (LaueTools' dd, xcen, ycen, xbet, "
                                "xgam)")
        pix = next((value[k] for k in ("pixel_size", "pixelsize", "xpixelsize") if k in value), None)
        if pix is not None:
            kw["pixel_size"] = _number(pix, "pixel size")
        shape = next((value[k] for k in ("frame_shape", "framedim") if k in value), None)
        if shape is not None:
            try:
                kw["frame_shape"] = (int(shape[0]), int(shape[1]))
            except (TypeError, ValueError, IndexError):
                raise SettingsError(f"calibration frame_shape must be [rows, cols], got {shape!r}") from None
        return Calibration(**kw), "start document parameters"
    if isinstance(value, list | tuple) and len(value) in (5, 6, 8):
        nums = [_number(v, "parameter") for v in value]
        kw = dict(zip(("dd", "xcen", "ycen", "xbet", "xgam"), nums[:5], strict=True))
        if len(nums) >= 6:
            kw["pixel_size"] = nums[5]
        if len(nums) == 8:
            kw["frame_shape"] = (int(nums[6]), int(nums[7]))
        return Calibration(**kw), "start document parameters"
    raise SettingsError("calibration must be a .det path, a mapping of LaueTools parameters or "
                        f"[dd, xcen, ycen, xbet, xgam(, pixelsize, rows, cols)], not {value!r}")


@dataclass(frozen=True)
class ResolvedIndexing:
    """Materials, calibration, beam band and indexer settings of a run's indexing.

    Attributes
    ----------
    materials
        Tried in order, each on the spots the previous left (:func:`laue_live.indexing.index_materials`).
    calibration
        Detector geometry.
    energy_range
        ``(E_min, E_max)`` keV.
    settings
        Search settings.
    calibration_source
        Where the calibration came from (a ``.det`` path, or the start document's parameters).
    sources
        ``"start"`` or ``"settings"`` for ``material``, ``calibration``, ``energy_range``.
    """

    materials: tuple[Material, ...]
    calibration: Calibration
    energy_range: tuple[float, float]
    settings: IndexerSettings
    calibration_source: str = ""
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple:
        """What an indexer depends on (for :class:`IndexerCache`)."""
        return (self.materials, self.calibration, self.energy_range, self.settings)

    def metadata(self) -> dict[str, Any]:
        """Return the analysis start document's ``indexing`` entry (plain JSON)."""
        default = type(self.settings)()
        options = {f.name: getattr(self.settings, f.name) for f in fields(self.settings)
                   if getattr(self.settings, f.name) != getattr(default, f.name)}
        return {"enabled": True, "material": [m.name for m in self.materials],
                "materials": [m.to_dict() for m in self.materials], "calibration": self.calibration.to_dict(),
                "calibration_source": self.calibration_source, "energy_range": list(self.energy_range),
                "options": {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
                "sources": dict(self.sources)}


def resolve_indexing(request: IndexingRequest) -> ResolvedIndexing:
    """Turn a request (plain values) into materials, a calibration and indexer settings.

    Raises
    ------
    SettingsError
        An unknown material or option, an unreadable or incomplete calibration, a bad energy range.
    """
    from laue_live.indexing import IndexerSettings  # why: see _setting_names

    materials = tuple(_material(request.material))
    calibration, source = _calibration(request.calibration)
    energy = tuple(request.energy_range or _DEFAULT_ENERGY)
    if not (0 < energy[0] < energy[1] < np.inf):
        raise SettingsError(f"energy_range must be 0 < E_min < E_max (keV), got {list(energy)}")
    options = dict(request.options)
    _check_options(options)
    try:
        settings = IndexerSettings(**options)
    except TypeError as exc:
        raise SettingsError(f"bad indexer options {options!r}: {exc}") from None
    return ResolvedIndexing(materials, calibration, (float(energy[0]), float(energy[1])), settings, source,
                            dict(request.sources))


class IndexingSetup:
    """Whether and how one run is to be indexed.

    Read cheaply on the RunEngine's thread (:meth:`for_run`), opened on the analysis worker's (:meth:`open`).

    Parameters
    ----------
    request
        What the run asks for (:func:`laue_live._run.indexing_request`), or an already resolved setup
        (e.g. what an analysis run was indexed with, when it is resumed).
    config
        The user's settings (queue, policy, close timeout).
    cache
        Indexers shared across runs.
    """

    def __init__(self, request: IndexingRequest | ResolvedIndexing, config: IndexingConfig | None = None,
                 cache: IndexerCache | None = None) -> None:
        self.request = request
        self.config = config or IndexingConfig()
        self.cache = cache

    @classmethod
    def for_run(cls, raw_start: Mapping[str, Any], config: IndexingConfig | None = None,
                cache: IndexerCache | None = None) -> IndexingSetup | None:
        """Return the setup of a raw run, or None if indexing is not asked for (pure Python, cheap).

        Indexing is asked for when the start document and the settings together name a material
        and a calibration, and neither disables it.
        """
        config = config or IndexingConfig()
        request, why = indexing_request(raw_start, config.settings(), prefer=config.prefer)
        if request is None:
            logger.debug("run %s not indexed: %s", str(raw_start.get("uid", ""))[:8], why)
            return None
        return cls(request, config, cache)

    def resolve(self) -> tuple[ResolvedIndexing | None, dict[str, Any]]:
        """Return ``(resolved, start-document entry)``, or ``(None, {"enabled": False, "reason": ...})``."""
        if isinstance(self.request, ResolvedIndexing):
            return self.request, self.request.metadata()
        try:
            resolved = resolve_indexing(self.request)
        except (SettingsError, OSError) as exc:
            return None, {"enabled": False, "reason": str(exc)}
        return resolved, resolved.metadata()

    def open(self, composer, name: str = "laue-live-indexing") -> IndexingStage | None:
        """Resolve the request, record it in the composer's start document and start the stage.

        Call before the composer's start document is emitted. An impossible request (unknown
        material, unreadable calibration...) is logged as an error and recorded in the start document
        (``indexing: {"enabled": false, "reason": ...}``); the run goes on without indexing.
        """
        resolved, md = self.resolve()
        composer.set_indexing(md)
        if resolved is None:
            logger.error("analysis run %s: indexing asked for but not possible: %s", composer.uid[:8],
                         md["reason"])
            return None
        return IndexingStage.from_config(composer, resolved, self.config, self.cache, name=name)


class IndexerCache:
    """The indexers of each setup, built once and shared by every run (thread-safe, bounded).

    Parameters
    ----------
    max_setups
        Setups (materials, calibration, band, settings) kept; the least recently used goes first.
    """

    def __init__(self, max_setups: int = 8) -> None:
        self.max_setups = max_setups
        self._lock = threading.Lock()
        self._building: dict[tuple, threading.Lock] = {}
        self._indexers: collections.OrderedDict[tuple, list[Indexer]] = collections.OrderedDict()
        self.builds = 0

    def get(self, resolved: ResolvedIndexing) -> list[Indexer]:
        """Return the indexers of ``resolved`` (one per material); built the first time, ~0.3 s each."""
        from laue_live.indexing import Indexer  # why: see _setting_names

        key = resolved.key
        with self._lock:
            if key in self._indexers:
                self._indexers.move_to_end(key)
                return self._indexers[key]
            build_lock = self._building.setdefault(key, threading.Lock())
        with build_lock:  # two runs of a new setup at once: one builds, the other waits for it
            with self._lock:
                if key in self._indexers:
                    return self._indexers[key]
            t0 = time.perf_counter()
            indexers = [Indexer(m, resolved.calibration, resolved.energy_range, resolved.settings)
                        for m in resolved.materials]
            logger.info("indexers for %s built in %.2f s", "+".join(m.name for m in resolved.materials),
                        time.perf_counter() - t0)
            with self._lock:
                self.builds += 1
                self._indexers[key] = indexers
                self._building.pop(key, None)
                while len(self._indexers) > self.max_setups:
                    self._indexers.popitem(last=False)
            return indexers


# ---------------------------------------------------------------------------------------------- stage
@dataclass
class IndexingStats(LatencyStats):
    """Counters of one indexing stage (read them any time); frames by the status of their row."""

    submitted: int = 0
    indexed: int = 0
    no_grain: int = 0
    failed: int = 0
    not_indexed: int = 0
    dropped: int = 0
    spilled: int = 0
    max_depth: int = 0
    grains: int = 0
    index_seconds: float = 0.0


@dataclass
class _Item:
    frame: int
    table: Any
    reason: str
    status: str  # "" to index, else "failed" / "not_indexed"
    received: float
    n_spots: int = 0


class IndexingStage(QueueThread):
    """Index one analysis run's spot tables on a thread of their own and emit the results.

    Parameters
    ----------
    composer
        The run's :class:`~laue_live.analysis.AnalysisRunComposer` (made with ``indexing=`` enabled):
        results go out through :meth:`~laue_live.analysis.AnalysisRunComposer.indexed`.
    resolved
        What to index with.
    cache
        Indexers shared across runs (a private one if None).
    queue_size, policy, block_timeout, close_timeout
        See :class:`IndexingConfig`.
    name
        Thread name.
    """

    def __init__(self, composer, resolved: ResolvedIndexing, *, cache: IndexerCache | None = None,
                 queue_size: int = 64, policy: str = "spill", block_timeout: float = 0.02,
                 close_timeout: float | None = None, name: str = "laue-live-indexing") -> None:
        self.composer = composer
        self.resolved = resolved
        self.cache = cache or IndexerCache(1)
        self.close_timeout = close_timeout
        self.stats = IndexingStats()
        self._queue = PolicyQueue(queue_size, policy, block_timeout, alive=lambda: self._thread.is_alive())
        self._abandon = threading.Event()
        self._sealed = False  # set when the stage gave up on its thread: late results are not emitted
        self._emit_lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, composer, resolved: ResolvedIndexing, config: IndexingConfig | None,
                    cache: IndexerCache | None = None, name: str = "laue-live-indexing") -> IndexingStage:
        """Make a stage with the queue settings of ``config``."""
        config = config or IndexingConfig()
        return cls(composer, resolved, cache=cache, queue_size=config.queue_size, policy=config.policy,
                   block_timeout=config.block_timeout, close_timeout=config.close_timeout, name=name)

    # -- producer side (the analysis worker's thread): cheap, never raises ------------------------------
    def submit(self, frame: int, table, reason: str = "") -> bool:
        """Hand over one frame's spot table (None, with ``reason``, if the frame failed).

        Returns False if the frame was dropped by the ``drop_newest`` policy (it is still recorded,
        as ``not_indexed``).
        """
        item = _Item(int(frame), table, reason, "failed" if table is None else "", time.monotonic(),
                     0 if table is None else len(table))
        if table is None and not reason:
            item.reason = "no spot table"
        with self._queue.cond:
            self.stats.submitted += 1
            if self._queue.closing:
                logger.error("frame %d handed to the indexing stage after the run closed: not indexed", frame)
                if self._done.is_set():
                    return False
                item.status, item.reason, item.table = "not_indexed", "arrived after the run closed", None
            outcome = self._queue.put(item, on_drop=_mark_dropped, exempt=bool(item.status))
            self.stats.dropped, self.stats.spilled = self._queue.dropped, self._queue.spilled
            self.stats.max_depth = self._queue.max_depth
        return outcome != "dropped"

    def close(self, timeout: float | None = None) -> bool:
        """No more frames: index what is queued (at most ``timeout`` s, default ``close_timeout``).

        Frames still queued when the time is up are recorded as ``not_indexed``. Returns True if
        every frame was indexed in time.
        """
        timeout = self.close_timeout if timeout is None else timeout
        self._queue.close()
        if self._done.wait(timeout):
            return True
        left = len(self._queue)
        logger.warning("indexing not finished %s s after the run's last frame: %d frame(s) recorded as "
                       "not indexed (index them later with `laue-live index RUN`)", timeout, left)
        self._abandon.set()
        with self._queue.cond:
            self._queue.cond.notify_all()
        if not self._done.wait(60.0):  # the frame on the indexer now: one indexing call, normally < 1 s
            with self._emit_lock:
                self._sealed = True
            for item in self._queue.drain():
                self._record(item, "not_indexed", "indexing stage stuck when the run closed", sealed_ok=True)
            logger.error("indexing thread of %s still busy after 60 s; its last frame is not recorded",
                         self.composer.uid[:8])
        return False

    # -- the stage's thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        indexers, setup_error = None, ""
        try:
            try:
                indexers = self.cache.get(self.resolved)
            except Exception as exc:  # noqa: BLE001 - recorded on every frame, never raised
                setup_error = f"indexer setup failed: {type(exc).__name__}: {exc}"
                logger.error("run %s: %s", self.composer.uid[:8], setup_error)
            while (batch := self._queue.take(1)) is not None:
                item = batch[0]
                if item.status:
                    self._record(item, item.status, item.reason)
                elif self._abandon.is_set():
                    self._record(item, "not_indexed", "the run closed before the indexing caught up")
                elif indexers is None:
                    self._record(item, "failed", setup_error)
                else:
                    self._index(item, indexers)
        except Exception:  # a bug here must not lose the frames: record them
            logger.exception("indexing stage crashed; remaining frames recorded as failed")
            for item in self._queue.drain():
                self._record(item, "failed", "indexing stage crashed")
        finally:
            self._done.set()

    def _index(self, item: _Item, indexers) -> None:
        from laue_live.indexing import index_materials  # why: see _setting_names (loaded by now)

        t0 = time.perf_counter()
        try:
            result = index_materials(indexers, item.table)
        except Exception as exc:  # noqa: BLE001 - a bad table fails its frame only
            logger.error("frame %d: indexing failed: %s", item.frame, exc)
            self._record(item, "failed", f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)
            return
        dt = time.perf_counter() - t0
        self.stats.index_seconds += dt
        with self._emit_lock:
            if self._sealed:
                return
            # counted before the documents go out: whoever sees them sees the counts too
            if result.grains:
                self.stats.indexed += 1
                self.stats.grains += len(result.grains)
            else:
                self.stats.no_grain += 1
            try:
                self.composer.indexed(item.frame, result, seconds=dt)
            except Exception:
                logger.exception("frame %d: could not emit its indexing documents", item.frame)
        self.stats.latencies.append(time.monotonic() - item.received)

    def _record(self, item: _Item, status: str, reason: str, *, seconds: float = 0.0,
                sealed_ok: bool = False) -> None:
        with self._emit_lock:
            if self._sealed and not sealed_ok:
                return
            setattr(self.stats, status, getattr(self.stats, status) + 1)
            try:
                self.composer.indexed(item.frame, None, n_spots=item.n_spots, seconds=seconds, status=status,
                                      reason=reason)
            except Exception:
                logger.exception("frame %d: could not emit its indexing row", item.frame)
        self.stats.latencies.append(time.monotonic() - item.received)


def _mark_dropped(item: _Item) -> _Item:
    item.status, item.table = "not_indexed", None
    item.reason = "dropped: indexing queue full (policy drop_newest)"
    return item
