"""One lock for every write to Tiled's SQL tables from this process (workaround for Tiled 0.2.20).

Tiled's ``SQLStorage`` hands DuckDB a ``StaticPool``: one ADBC connection shared by all server
threads. Two clients appending at once (the raw run's ``TiledWriter`` on the RunEngine thread and the
analysis writer on its own thread, as in ``laue-live demo``) interleave their transactions on that
connection: the server answers 500 (``No active transaction, cannot commit``), retried requests that
had in fact succeeded duplicate rows, and under load the server process has died. Measured and
described in ``docs/live.md``. Serialising the table requests of one process removes the overlap
between the writers of that process; with a lock file, writers in several processes of one machine
(the RunEngine, ``laue-live serve``, Dask workers) take turns too. :func:`open_catalog` installs
both for the embedded server (lock file ``<data_dir>/tables.lock``). Writers on other machines need
the server fixed, or PostgreSQL as the tabular store (docs/catalog.md).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import threading

__all__ = ["serialize_tiled_writes", "TILED_TABLE_LOCK"]

logger = logging.getLogger(__name__)

#: Held around every appendable-table request of this process once :func:`serialize_tiled_writes` ran.
TILED_TABLE_LOCK = threading.RLock()
_install_lock = threading.Lock()
_installed = False
_lock_fd: int | None = None  # open lock file shared with other processes, if any
_depth = 0  # nesting of locked calls in the thread holding TILED_TABLE_LOCK


def _locked(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        global _depth
        with TILED_TABLE_LOCK:
            fd = _lock_fd
            if fd is not None and _depth == 0:
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while another process has a request in flight
            _depth += 1
            try:
                return method(*args, **kwargs)
            finally:
                _depth -= 1
                if fd is not None and _depth == 0:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    wrapper.__laue_live_locked__ = True
    return wrapper


def serialize_tiled_writes(lock_file: str | os.PathLike | None = None) -> threading.RLock:
    """Route every table append, table creation and table read of this process through one lock.

    Idempotent and process-wide (it wraps ``tiled.client.dataframe.DataFrameClient.append_partition``,
    ``.write_partition``, ``.read`` and ``tiled.client.container.Container.create_appendable_table``).
    Call it once before subscribing ``TiledWriter`` and the analysis writer. A request waits at most
    for the one in flight (~35 ms for a typical append).

    Parameters
    ----------
    lock_file
        Also hold an exclusive ``flock`` on this file around each request, so that the processes
        writing to one server from one machine take turns. The first lock file given wins.

    Returns
    -------
    threading.RLock
        The lock (:data:`TILED_TABLE_LOCK`).
    """
    global _installed, _lock_fd
    with _install_lock:
        if lock_file is not None and _lock_fd is None:
            with TILED_TABLE_LOCK:
                _lock_fd = os.open(os.fspath(lock_file), os.O_RDWR | os.O_CREAT, 0o600)
        if _installed:
            return TILED_TABLE_LOCK
        from tiled.client.container import Container  # lazy: tiled costs ~0.3-3 s to import
        from tiled.client.dataframe import DataFrameClient  # lazy: as above

        for cls, name in ((DataFrameClient, "append_partition"), (DataFrameClient, "write_partition"),
                          (DataFrameClient, "read"), (Container, "create_appendable_table")):
            method = getattr(cls, name, None)
            if method is not None and not getattr(method, "__laue_live_locked__", False):
                setattr(cls, name, _locked(method))
        _installed = True
        logger.info("Tiled table writes of this process are serialised (Tiled 0.2.20 DuckDB workaround)")
    return TILED_TABLE_LOCK
