"""One lock for every write to Tiled's DuckDB tables from this process (workaround for Tiled 0.2.20).

Tiled's ``SQLStorage`` hands DuckDB a ``StaticPool``: one ADBC connection shared by all server
threads (reproducer: ``docs/upstream/tiled-duckdb-concurrent-appends.md``). Two clients appending
at once (the raw run's ``TiledWriter`` on the RunEngine thread and the analysis writer on its own
thread, as in ``laue-live demo``) interleave their transactions on that
connection: the server answers 500 (``No active transaction, cannot commit``), retried requests that
had in fact succeeded duplicate rows, and under load the server process has died. Measured and
described in ``docs/live.md``. Serialising the table requests of one process removes the overlap
between the writers of that process; with a lock file, writers in several processes of one machine
(the RunEngine, ``laue-live serve``, Dask workers) take turns too. :func:`open_catalog` installs
both for the embedded server on DuckDB (lock file ``<data_dir>/tables.lock``). Writers on other machines need
the server fixed, or PostgreSQL as the tabular store (docs/catalog.md).

The lock is taken only for servers whose table storage is a single file, DuckDB or SQLite (or not
known yet): concurrent SQLite writes fail with "database is locked" (measured in
``benchmarks/bench_tiled_sink.py``). PostgreSQL writers append at once. A process learns a
server's store from the first table it touches (the table's asset URI, one request per server).
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import threading
from urllib.parse import urlparse

__all__ = ["serialize_tiled_writes", "TILED_TABLE_LOCK", "table_store"]

logger = logging.getLogger(__name__)

#: Held around every appendable-table request of this process once :func:`serialize_tiled_writes` ran.
TILED_TABLE_LOCK = threading.RLock()
_install_lock = threading.Lock()
_installed = False
_lock_fd: int | None = None  # open lock file shared with other processes, if any
_depth = 0  # nesting of locked calls in the thread holding TILED_TABLE_LOCK
#: Table store of each server this process has written to: API URI -> "duckdb", "postgresql", ...
_STORES: dict[str, str] = {}
#: Stores whose writers need no lock: a server that Tiled reaches through a connection pool.
#: (SQLite also gets a pool, but its single-file writes then fail with "database is locked".)
_POOLED = frozenset({"postgresql"})


def _server_key(client) -> str | None:
    try:
        return str(client.context.api_uri)
    except AttributeError:
        return None


def table_store(client) -> str | None:
    """Return the SQL store (``"duckdb"``, ``"postgresql"``, ``"sqlite"``) of ``client``'s server.

    Known once a table of that server was seen by this process (:func:`_learn`), else ``None``.
    """
    key = _server_key(client)
    return None if key is None else _STORES.get(key)


def _learn(client) -> None:
    """Record the store of ``client``'s server from the asset URI of a table (one request)."""
    key = _server_key(client)
    if key is None or key in _STORES:
        return
    try:
        uri = client.data_sources()[0].assets[0].data_uri
    except Exception:  # noqa: BLE001 - no permission, no asset, old server: stay conservative
        return
    scheme = urlparse(uri).scheme
    if scheme:
        _STORES[key] = scheme


def _needs_lock(client) -> bool:
    return table_store(client) not in _POOLED


def _locked(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        client = args[0] if args else None
        if type(client).__name__ == "DataFrameClient" and table_store(client) is None:
            _learn(client)
        if client is not None and not _needs_lock(client):
            result = method(*args, **kwargs)
        else:
            result = _call_locked(method, args, kwargs)
        if result is not None and type(result).__name__ == "DataFrameClient":
            _learn(result)  # a table just created tells us its server's store
        return result

    wrapper.__laue_live_locked__ = True
    return wrapper


def _call_locked(method, args, kwargs):
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


def serialize_tiled_writes(lock_file: str | os.PathLike | None = None) -> threading.RLock:
    """Route every table append, table creation and table read of this process through one lock.

    Only requests to servers whose table store is DuckDB or SQLite (or not yet known) take the lock; see the
    module docstring. Idempotent and process-wide (it wraps
    ``tiled.client.dataframe.DataFrameClient.append_partition``, ``.write_partition``, ``.read``
    and ``tiled.client.container.Container.create_appendable_table``).
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
        logger.info("Tiled table requests of this process to DuckDB-backed servers take turns "
                    "(Tiled 0.2.20 workaround)")
    return TILED_TABLE_LOCK
