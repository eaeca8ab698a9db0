"""Reprocess a campaign (many raw runs) on a Dask cluster; every worker reads and writes Tiled itself.

One task per raw run. A task opens the catalog, reads the run's frames from Tiled, analyses them
with the fast :class:`~laue_live.pipeline.FramePipeline` and writes one analysis run back through
:func:`laue_live.catalog.reprocess_run` (the same writer and layout as live analysis).

No duplicated rows, whatever fails:

* a task that raises is retried (``retries``); a worker that dies (crash, OOM, lost node) has its
  task rescheduled by the scheduler on another worker;
* every attempt first looks for an analysis run of the same raw run and campaign: finished (it has
  a stop document not marked ``interrupted``) -> nothing is done; interrupted (no stop document,
  e.g. its worker died, or a stop with ``interrupted: True``, e.g. its reading loop raised) ->
  it is completed in place: ``reprocess_run(resume=True)`` reads the frames already written
  (keyed by raw run uid + frame number) and analyses and appends only the missing ones.

What crosses the network: task arguments are strings, numbers and flat dicts; results are small
dicts; frames go Tiled -> worker over HTTP. (Dask itself pickles the task *function reference*;
run the scheduler and workers on trusted hosts, 127.0.0.1 by default.) The Tiled API key travels
in the task arguments only if ``pass_api_key=True``; on a shared cluster give it to the workers in
their environment (``LAUE_LIVE_TILED_API_KEY`` or ``..._FILE``) instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from laue_live.analysis import FrameAnalyzer
from laue_live.catalog import (
    CatalogSettings,
    find_analysis_runs,
    get_run,
    open_catalog,
    reprocess_run,
    run_finished,
)
from laue_live.parallel._cluster import gpu_count, open_cluster

__all__ = ["CampaignResult", "reprocess_campaign", "reprocess_task"]

log = logging.getLogger(__name__)

_local = threading.local()  # one FramePipeline per worker thread (it holds device buffers)
_sync_lock = threading.Lock()
_sync_users = 0
_sync_saved: Any = None


@contextlib.contextmanager
def _local_dask_reads() -> Iterator[None]:
    """Make dask compute in the calling thread while a task reads frames from Tiled.

    Tiled's ``ArrayClient.read`` computes a dask array with the default scheduler; inside a Dask
    task that is the worker's cluster client, so every frame read became tasks that the scheduler
    could place on any worker, and the bytes came back through it. With another worker frozen
    (see :data:`laue_live.parallel._cluster.NO_PROFILER`) a read waited for it forever: the
    campaign hung in CI. ``dask.config.set`` is process-wide, so tasks running side by side in one process
    (thread workers) share one reference-counted setting instead of restoring each other's.
    """
    import dask  # lazy: Dask costs ~0.1-0.5 s to import; only campaigns need it

    global _sync_users, _sync_saved
    with _sync_lock:
        if _sync_users == 0:
            _sync_saved = dask.config.get("scheduler", None)
            dask.config.set(scheduler="synchronous")
        _sync_users += 1
    try:
        yield
    finally:
        with _sync_lock:
            _sync_users -= 1
            if _sync_users == 0:
                dask.config.set(scheduler=_sync_saved)


@dataclass
class CampaignResult:
    """What :func:`reprocess_campaign` did.

    Attributes
    ----------
    campaign
        Campaign id, recorded in every analysis run's ``analysis_params.campaign``.
    runs
        One dict per raw run: ``raw_uid``, ``analysis_uid``, ``status`` (``"done"``, ``"skipped"``:
        already finished in this campaign, ``"failed"``), ``resumed``, ``frames_total``,
        ``frames_skipped``, ``seconds``, ``worker``, ``error``.
    cluster
        Description of the cluster (kind, workers, GPUs, scheduler address).
    seconds
        Wall time of the whole campaign, s.
    """

    campaign: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    cluster: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        """Runs that could not be reprocessed."""
        return [r for r in self.runs if r["status"] == "failed"]

    @property
    def frames(self) -> int:
        """Frames analysed in this call (skipped frames and runs not counted)."""
        return sum(
            r.get("frames_total", 0) - r.get("frames_skipped", 0) for r in self.runs if r["status"] == "done"
        )


def _settings_args(settings: CatalogSettings, pass_api_key: bool) -> dict[str, Any]:
    return {
        "uri": settings.uri,
        "api_key": settings.api_key if pass_api_key else None,
        "raw_path": settings.raw_path,
        "analysis_path": settings.analysis_path,
    }


def _worker_device(device: str) -> str:
    """``"auto"`` on a LocalCluster worker with several visible GPUs: worker ``k`` takes ``cuda:k``."""
    if device != "auto":
        return device
    n = gpu_count()
    if n <= 1:
        return "cuda" if n == 1 else "cpu"
    try:
        from distributed import get_worker  # lazy: distributed costs ~0.3-1.4 s to import

        name = get_worker().name
        k = int(name) if str(name).isdigit() else abs(hash(name))
    except (ValueError, ImportError):
        k = 0
    return f"cuda:{k % n}"


def _pipeline(method: str, device: str, model: str | None, precision: str, batch_frames: int | None):
    from laue_live.pipeline import FramePipeline  # lazy: the torch pipeline imports torch (~1 s)

    key = (method, device, model, precision, batch_frames)
    cache = getattr(_local, "pipelines", None)
    if cache is None:
        cache = _local.pipelines = {}
    if key not in cache:
        cache[key] = FramePipeline(
            method, device, model=model, precision=precision, batch_frames=batch_frames
        )
    return cache[key]


def reprocess_task(
    settings: dict[str, Any],
    raw_id: str,
    *,
    campaign: str,
    method: str = "fit",
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_frames: int | None = None,
    frames_per_call: int = 8,
    torch_threads: int | None = None,
    analyzer_factory: Callable | None = None,
) -> dict[str, Any]:
    """Reprocess one raw run on this worker (the Dask task; also callable directly).

    Parameters
    ----------
    settings
        ``uri``, ``api_key`` (or None: taken from this worker's environment), ``raw_path``,
        ``analysis_path``.
    raw_id
        Raw run uid (or scan id).
    campaign
        Campaign id: an analysis run of this raw run with this campaign and a stop document (not
        marked ``interrupted``) means the work is already done.
    method, model, device, precision, batch_frames
        The :class:`~laue_live.pipeline.FramePipeline` used on this worker.
    frames_per_call
        Frames read from Tiled and handed to the analyser at a time.
    torch_threads
        torch intra-op threads on this worker (default: leave torch's setting).
    analyzer_factory
        ``analyzer_factory(method=..., campaign=..., device=..., raw_uid=...) -> FrameAnalyzer`` to
        replace the default analyser (extension point; the tests inject a worker crash here). Its
        ``describe()["params"]`` must carry ``campaign``.

    Returns
    -------
    dict
        See :attr:`CampaignResult.runs`.
    """
    import torch  # lazy: ~1 s to import; the campaign's client process never needs it

    t0 = time.perf_counter()
    if torch_threads:
        torch.set_num_threads(int(torch_threads))
    worker = threading.current_thread().name
    try:
        from distributed import get_worker  # lazy: distributed costs ~0.3-1.4 s to import

        worker = str(get_worker().address)
    except (ValueError, ImportError):
        pass
    base = CatalogSettings.load(api_key=settings.get("api_key"))  # key: argument, else this worker's env
    cat_settings = CatalogSettings(
        uri=settings["uri"],
        api_key=base.api_key,
        raw_path=settings["raw_path"],
        analysis_path=settings["analysis_path"],
    )
    catalog = open_catalog(cat_settings, create=False)
    raw_uid = get_run(catalog, raw_id, "raw").metadata["start"]["uid"]
    out: dict[str, Any] = {
        "raw_uid": raw_uid,
        "analysis_uid": None,
        "status": "done",
        "resumed": False,
        "frames_total": 0,
        "frames_skipped": 0,
        "worker": worker,
        "error": "",
    }
    mine = [
        r
        for r in find_analysis_runs(catalog, raw_uid)
        if r.metadata["start"].get("analysis_params", {}).get("campaign") == campaign
    ]
    finished = [r for r in mine if run_finished(r)]  # a stop marked interrupted is unfinished
    if finished:
        out.update(
            status="skipped",
            analysis_uid=finished[-1].metadata["start"]["uid"],
            seconds=time.perf_counter() - t0,
        )
        log.info("raw run %s: already reprocessed in campaign %s", raw_uid[:8], campaign)
        return out
    dev = _worker_device(device)
    if analyzer_factory is not None:
        analyzer = analyzer_factory(method=method, campaign=campaign, device=dev, raw_uid=raw_uid)
    else:
        pipe = _pipeline(method, dev, model, precision, batch_frames)
        analyzer = FrameAnalyzer(
            method,
            model=model,
            func=pipe.process,
            campaign=campaign,
            pipeline="torch",
            device=str(pipe.device),
        )
    # resume only this campaign's interrupted run (a uid), never someone else's open run
    resume: bool | str = mine[-1].metadata["start"]["uid"] if mine else False
    with _local_dask_reads():
        res = reprocess_run(
            catalog, raw_uid, analyzer=analyzer, resume=resume, progress=False,
            batch_size=max(1, frames_per_call),
        )
    out.update(
        analysis_uid=res.analysis_uid,
        resumed=res.resumed,
        frames_total=res.frames_total,
        frames_skipped=res.frames_skipped,
        seconds=time.perf_counter() - t0,
    )
    return out


def reprocess_campaign(
    settings: CatalogSettings,
    raw_ids: Sequence[str | int],
    *,
    method: str = "fit",
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
    campaign: str | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    processes: bool = True,
    retries: int = 2,
    batch_frames: int | None = None,
    frames_per_call: int = 8,
    torch_threads: int | None = None,
    pass_api_key: bool = True,
    analyzer_factory: Callable | None = None,
    progress: bool = True,
    client=None,
) -> CampaignResult:
    """Reprocess many raw runs in parallel on Dask; each worker reads its frames from Tiled.

    Parameters
    ----------
    settings
        Where the catalog is (:class:`laue_live.catalog.CatalogSettings`, with a URI: workers
        connect to it over HTTP).
    raw_ids
        Raw run uids (or scan ids); duplicates are reprocessed once.
    method, model, device, precision, batch_frames, frames_per_call
        The analysis on each worker (:class:`~laue_live.pipeline.FramePipeline`, see
        :func:`reprocess_task`); ``device="auto"`` gives each worker its own GPU when there are several.
    campaign
        Campaign id recorded in each analysis run. Reuse an id to make a repeated call skip the
        runs already finished in that campaign; default: a new id.
    scheduler
        Address of an existing Dask scheduler; default a LocalCluster (see
        :func:`laue_live.parallel.open_cluster`).
    n_workers, processes
        Local cluster size and kind.
    retries
        Further attempts of a task that raised. (A task whose worker died is rescheduled by the
        scheduler anyway, up to its ``distributed.scheduler.allowed-failures``, default 3.)
    torch_threads
        torch threads per worker (default: cores / workers on a LocalCluster).
    pass_api_key
        Send the Tiled API key to the workers with each task (default; fine on 127.0.0.1); set
        False when the workers have it in their environment.
    analyzer_factory
        Replace the analyser built on each worker (see :func:`reprocess_task`).
    progress
        A tqdm progress bar over runs.
    client
        An existing :class:`distributed.Client` to use instead of opening a cluster.

    Returns
    -------
    CampaignResult
    """
    if settings.uri is None:
        raise ValueError("reprocess_campaign needs a catalog URI that the workers can reach (settings.uri)")
    campaign = campaign or f"campaign-{uuid.uuid4().hex[:12]}"
    ids = list(dict.fromkeys(str(r) for r in raw_ids))
    result = CampaignResult(campaign=campaign)
    t0 = time.perf_counter()

    def run(cl, info):
        threads = torch_threads or max(1, (os.cpu_count() or 1) // max(1, info.get("n_workers") or 1))
        args = _settings_args(settings, pass_api_key)
        futures = {
            cl.submit(
                reprocess_task,
                args,
                rid,
                campaign=campaign,
                method=method,
                model=model,
                device=device,
                precision=precision,
                batch_frames=batch_frames,
                frames_per_call=frames_per_call,
                torch_threads=threads,
                analyzer_factory=analyzer_factory,
                key=f"laue-reprocess-{campaign}-{rid}",
                retries=retries,
                pure=False,
            ): rid
            for rid in ids
        }
        from distributed import as_completed  # lazy: distributed costs ~0.3-1.4 s to import

        for fut in tqdm(
            as_completed(futures),
            total=len(futures),
            desc=f"reprocess {campaign}",
            unit="run",
            disable=not progress,
        ):
            rid = futures[fut]
            try:
                result.runs.append(fut.result())
            except Exception as exc:  # noqa: BLE001 - one run failing must not lose the others' results
                log.error("raw run %s failed after retries: %r", rid, exc)
                result.runs.append(
                    {
                        "raw_uid": rid,
                        "analysis_uid": None,
                        "status": "failed",
                        "resumed": False,
                        "frames_total": 0,
                        "frames_skipped": 0,
                        "worker": "",
                        "error": f"{type(exc).__name__}: {exc}",
                    }
                )
        result.cluster = info

    if client is not None:
        n = len(client.scheduler_info().get("workers", {}))
        run(client, {"kind": "client", "n_workers": n, "gpus": None, "address": client.scheduler.address})
    else:
        with open_cluster(scheduler, n_workers=n_workers, processes=processes) as (cl, info):
            run(cl, info)
    result.seconds = time.perf_counter() - t0
    log.info(
        "campaign %s: %d runs (%d failed) in %.1f s",
        campaign,
        len(result.runs),
        len(result.failed),
        result.seconds,
    )
    return result
