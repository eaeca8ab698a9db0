"""One lock for every write to Tiled's SQL tables from this process (workaround for Tiled 0.2.20).

Tiled's ``SQLStorage`` hands DuckDB a ``StaticPool``: one ADBC connection shared by all server
threads. Two clients appending at once (the raw run's ``TiledWriter`` on the RunEngine thread and the
analysis writer on its own thread, as in ``laue-live demo``) interleave their transactions on that
connection: the server answers 500 (``No active transaction, cannot commit``), retried requests that
had in fact succeeded duplicate rows, and under load the server process has died. Measured and
described in ``docs/live.md``. Serialising the table requests of one process removes the overlap
between the writers of that process; writers in other processes still need the server fixed (or
PostgreSQL as the tabular store).
"""

from __future__ import annotations

import functools
import logging
import threading

__all__ = ["serialize_tiled_writes", "TILED_TABLE_LOCK"]

logger = logging.getLogger(__name__)

#: Held around every appendable-table request of this process once :func:`serialize_tiled_writes` ran.
TILED_TABLE_LOCK = threading.RLock()
_install_lock = threading.Lock()
_installed = False


def _locked(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with TILED_TABLE_LOCK:
            return method(*args, **kwargs)

    wrapper.__laue_live_locked__ = True
    return wrapper


def serialize_tiled_writes() -> threading.RLock:
    """Route every table append, table creation and table read of this process through one lock.

    Idempotent and process-wide (it wraps ``tiled.client.dataframe.DataFrameClient.append_partition``,
    ``.write_partition``, ``.read`` and ``tiled.client.container.Container.create_appendable_table``).
    Call it once before subscribing ``TiledWriter`` and the analysis writer. A request waits at most
    for the one in flight (~35 ms for a typical append).

    Returns
    -------
    threading.RLock
        The lock (:data:`TILED_TABLE_LOCK`).
    """
    global _installed
    with _install_lock:
        if _installed:
            return TILED_TABLE_LOCK
        from tiled.client.container import Container
        from tiled.client.dataframe import DataFrameClient

        for cls, name in ((DataFrameClient, "append_partition"), (DataFrameClient, "write_partition"),
                          (DataFrameClient, "read"), (Container, "create_appendable_table")):
            method = getattr(cls, name, None)
            if method is not None and not getattr(method, "__laue_live_locked__", False):
                setattr(cls, name, _locked(method))
        _installed = True
        logger.info("Tiled table writes of this process are serialised (Tiled 0.2.20 DuckDB workaround)")
    return TILED_TABLE_LOCK
