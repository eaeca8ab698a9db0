"""Which Dask cluster reprocessing runs on: a scheduler address, one worker per GPU, or a LocalCluster."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

__all__ = ["open_cluster", "gpu_count", "NO_PROFILER"]

log = logging.getLogger(__name__)

#: Dask workers sample every thread's stack (``sys._current_frames``) every 10 ms for their profile.
#: On CPython 3.11 before 3.11.9 that can deadlock the worker against the garbage collector
#: (python/cpython#106883, dask/distributed#8616): a campaign hung in CI with a worker frozen in
#: ``Worker.trigger_profile``. The profile is only a dashboard aid, so local workers run without it;
#: start the workers of a remote cluster with the same setting (docs/performance.md).
NO_PROFILER = {"distributed.worker.profile.enabled": False}


def gpu_count() -> int:
    """Count the CUDA devices visible to this process (0 without CUDA)."""
    try:
        import torch  # lazy: ~1 s to import, only to count the GPUs

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA install counts as no GPU
        return 0


@contextlib.contextmanager
def open_cluster(
    scheduler: str | None = None,
    *,
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    processes: bool = True,
    gpus: str | int = "auto",
    dashboard: bool = False,
) -> Iterator[tuple[object, dict]]:
    """Yield a connected :class:`distributed.Client` and a description of its cluster.

    Parameters
    ----------
    scheduler
        Address of a running Dask scheduler (``tcp://host:8786``); the cluster is not started
        nor stopped here. Workers there must have laue-live installed and reach the Tiled server.
    n_workers
        Local workers (default: one per GPU when there are GPUs, else one per two cores, at least 1).
    threads_per_worker
        Threads of each local worker. Keep 1: a worker analyses one run at a time and torch uses
        its own threads.
    processes
        Local workers as processes (default; a crashed worker is restarted by its nanny) or as
        threads of this process (quicker to start, for small jobs and tests).
    gpus
        ``"auto"``: one worker per visible GPU, through ``dask_cuda.LocalCUDACluster`` when
        ``dask-cuda`` is installed (each worker then sees only its GPU), else a LocalCluster
        whose worker ``k`` uses ``cuda:k``; ``0``: ignore GPUs.
    dashboard
        Serve the Dask dashboard on 127.0.0.1 (a free port), off by default.

    Yields
    ------
    client, info
        ``info`` holds ``kind`` (``"scheduler"``, ``"local-cuda"``, ``"local"``), ``n_workers``,
        ``gpus`` and ``address``.
    """
    import dask  # lazy: Dask costs ~0.1-0.5 s to import
    from distributed import Client  # lazy: distributed costs ~0.3-1.4 s to import

    if scheduler:
        client = Client(scheduler)
        try:
            n = len(client.scheduler_info().get("workers", {}))
            yield client, {"kind": "scheduler", "n_workers": n, "gpus": None, "address": scheduler}
        finally:
            client.close()
        return
    with dask.config.set(NO_PROFILER):  # nannies copy the config into the workers they (re)start
        n_gpu = gpu_count() if gpus == "auto" else int(gpus)
        yield from _local_cluster(n_workers, threads_per_worker, processes, n_gpu=n_gpu, dashboard=dashboard)


def _local_cluster(n_workers, threads_per_worker, processes, *, n_gpu: int, dashboard: bool):
    from distributed import Client, LocalCluster  # lazy: distributed costs ~0.3-1.4 s to import

    # None still lets distributed try its fixed port 8787: a free loopback port either way
    dash = "127.0.0.1:0"
    common: dict = {"threads_per_worker": threads_per_worker, "dashboard_address": dash,
                    "scheduler_kwargs": {"dashboard": dashboard}}
    if processes:
        common["host"] = "127.0.0.1"  # sockets on loopback only (thread workers talk in-process)
    if n_gpu > 0 and processes:
        try:
            # lazy and optional: dask-cuda gives one worker per GPU, CUDA_VISIBLE_DEVICES set for each
            from dask_cuda import LocalCUDACluster
        except ImportError:
            LocalCUDACluster = None
            log.info("dask-cuda is not installed: one LocalCluster worker per GPU, worker k on cuda:k")
        if LocalCUDACluster is not None:
            n = n_workers or n_gpu
            with LocalCUDACluster(n_workers=n, **common) as cluster, Client(cluster) as client:
                yield (
                    client,
                    {
                        "kind": "local-cuda",
                        "n_workers": n,
                        "gpus": n_gpu,
                        "address": cluster.scheduler_address,
                    },
                )
            return
    n = n_workers or (n_gpu or max(1, (os.cpu_count() or 2) // 2))
    with LocalCluster(n_workers=n, processes=processes, **common) as cluster, Client(cluster) as client:
        yield client, {"kind": "local", "n_workers": n, "gpus": n_gpu, "address": cluster.scheduler_address}
