"""Find runs in the catalog: by metadata and date (a Tiled query the server evaluates), or one by id.

One lookup of a single run (:func:`get_run`: uid, uid prefix, scan id, negative index, ``"latest"``)
for every command and function, raw or analysis; one search (:func:`search_runs`) behind the run
lists (:func:`find_runs` as a table, :func:`find_analysis_runs` as clients).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from collections.abc import Iterable
from typing import Any

from laue_live._errors import SettingsError
from laue_live._run import RAW_UID
from laue_live.catalog._layout import NotInCatalogError

__all__ = [
    "runs_query",
    "search_runs",
    "find_runs",
    "list_analysis_runs",
    "find_analysis_runs",
    "oldest_first",
    "get_run",
    "get_raw_run",
    "run_finished",
]

logger = logging.getLogger(__name__)


def _timestamp(value: Any, name: str) -> float:
    """Seconds since the epoch (UTC) of a datetime, date, ISO string or number."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not an ISO date (YYYY-MM-DD[THH:MM[:SS]])") from None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.astimezone()  # naive: local time, as people type it
        return value.timestamp()
    raise SettingsError(f"{name} must be a date, datetime, ISO string or epoch seconds, got {value!r}")


def runs_query(*, sample: str | None = None, material: str | None = None, since: Any = None,
               until: Any = None, raw_uid: str | None = None, kind: str | None = None,
               **equal: Any) -> list:
    """Tiled queries on start-document keys (combine them with successive ``search`` calls).

    Parameters
    ----------
    sample, material
        Exact match on ``start.sample`` / ``start.material``.
    since, until
        Runs started at or after ``since`` and before ``until`` (datetime, date, ISO string or
        epoch seconds; naive values are local time).
    raw_uid
        Analysis runs of this raw run (``start.raw_uid``).
    kind
        ``start.kind`` (:data:`laue_live._run.ANALYSIS_KIND`, ``"laue-spots"``, for analysis runs).
    **equal
        Further exact matches, ``key=value`` on ``start.<key>`` (dots for nested keys).
    """
    from tiled.queries import Comparison, Key  # lazy: tiled costs ~0.3-3 s to import

    qs = []
    for key, value in {"sample": sample, "material": material, RAW_UID: raw_uid, "kind": kind,
                       **equal}.items():
        if value is not None:
            qs.append(Key(f"start.{key}") == value)
    if since is not None:
        qs.append(Comparison("ge", "start.time", _timestamp(since, "since")))
    if until is not None:
        qs.append(Comparison("lt", "start.time", _timestamp(until, "until")))
    return qs


def search_runs(container, queries: Iterable | dict | None = None, **filters):
    """Search ``container`` with Tiled queries and/or :func:`runs_query` filters; return the result node."""
    if isinstance(queries, dict):
        filters = {**queries, **filters}
        queries = None
    result = container
    for q in [*(queries or []), *runs_query(**filters)]:
        result = result.search(q)
    return result


def _summary_row(key: str, md: dict) -> dict:
    start, stop = md.get("start", {}) or {}, md.get("stop", {}) or {}
    model = start.get("model") or {}
    return {
        "uid": start.get("uid", key),
        "scan_id": start.get("scan_id", start.get("raw_scan_id")),
        "time": dt.datetime.fromtimestamp(start["time"]).isoformat(timespec="seconds") if "time" in start
        else None,
        "sample": start.get("sample"),
        "material": start.get("material"),
        "raw_uid": start.get(RAW_UID),
        "method": start.get("method"),
        "model": model.get("name", start.get("model_name")) if isinstance(model, dict) else model,
        "model_version": model.get("version", start.get("model_version")) if isinstance(model, dict)
        else start.get("model_version"),
        "plan_name": start.get("plan_name"),
        "shape": "x".join(map(str, start["shape"])) if isinstance(start.get("shape"), list) else None,
        "exit_status": stop.get("exit_status"),
        "n_events": sum((stop.get("num_events") or {}).values()) if stop else None,
    }


def find_runs(catalog, *, where: str = "analysis", queries: Iterable | None = None,
              limit: int | None = None, **filters):
    """One row per run matching the filters, newest first.

    Parameters
    ----------
    catalog
        A :class:`~laue_live.catalog.Catalog` (or a Tiled container of runs).
    where
        ``"analysis"`` or ``"raw"``: which container of the catalog to search.
    queries
        Extra Tiled query objects.
    limit
        At most this many runs (newest first).
    **filters
        ``sample``, ``material``, ``since``, ``until``, ``raw_uid``, ``kind``, or ``key=value``.

    Returns
    -------
    pandas.DataFrame
        Columns ``uid, scan_id, time, sample, material, raw_uid, method, model, model_version,
        plan_name, shape, exit_status, n_events``.
    """
    import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.catalog`

    container = _container(catalog, where)
    result = search_runs(container, queries, **filters)
    rows = []
    # Sorted by the server, newest first, so that `limit` stops the paging early; items() pages
    # through the results with their metadata: one request per page, not per run.
    try:
        result = result.sort(("start.time", -1))
    except Exception:  # noqa: BLE001 - a server that cannot sort: sorted below instead
        logger.debug("server-side sort unavailable", exc_info=True)
    for key, node in itertools.islice(result.items(), limit):
        rows.append(_summary_row(key, dict(node.metadata)))
    df = pd.DataFrame(rows, columns=list(_summary_row("", {}).keys()))
    df = df.sort_values("time", ascending=False, na_position="last").reset_index(drop=True)
    return df.head(limit) if limit else df


def list_analysis_runs(catalog, *, limit: int | None = None, **filters):
    """Analysis runs of the catalog, newest first (see :func:`find_runs` for the filters)."""
    return find_runs(catalog, where="analysis", limit=limit, **filters)


def _container(catalog, where: str):
    """Return the ``raw`` or ``analysis`` container of a ``Catalog``, or ``catalog`` itself."""
    return catalog[where] if hasattr(catalog, "analysis") else catalog


def oldest_first(result) -> list:
    """Return the run clients of a container or search result, oldest first (one request per page)."""
    return sorted(result.values(), key=lambda r: r.metadata.get("start", {}).get("time", 0.0))


def find_analysis_runs(catalog, raw_uid: str) -> list:
    """Analysis runs of ``raw_uid`` (clients), oldest first.

    Parameters
    ----------
    catalog
        A :class:`~laue_live.catalog.Catalog` or the Tiled container of the analysis runs.
    raw_uid
        Uid of the raw run.
    """
    return oldest_first(search_runs(_container(catalog, "analysis"), raw_uid=raw_uid))


def get_run(catalog, run: str | int, where: str = "analysis"):
    """Return a run client by uid, partial uid, scan id, negative index or ``"latest"``/``"last"`` (= ``-1``).

    Parameters
    ----------
    catalog
        A :class:`~laue_live.catalog.Catalog` (its ``where`` container is used) or a container of runs.
    run
        The id; a run client is returned as it is.
    where
        ``"analysis"`` or ``"raw"``.

    Raises
    ------
    NotInCatalogError
        (a :class:`KeyError` and a :class:`~laue_live._errors.DocumentError`) No such run.
    """
    if not isinstance(run, (str, int)):
        return run  # already a run client
    if catalog is None:
        raise TypeError(f"looking up run {run!r} needs a catalog")
    key: Any = run
    if isinstance(run, str) and run.lower() in ("latest", "last"):
        key = -1
    elif isinstance(run, str) and run.lstrip("-").isdigit():
        key = int(run)
    container = _container(catalog, where)
    try:
        return container[key]
    except (KeyError, IndexError, ValueError):
        pass
    if key is not run and len(run) >= 8:
        try:  # not a scan id: a uid prefix made of digits only (one uid in 40 begins with 8 of them)
            return container[run]
        except (KeyError, IndexError, ValueError):
            pass
    raise NotInCatalogError(f"no {where} run {run!r}: not found in the catalog")


def get_raw_run(catalog, analysis_run):
    """Return the raw run an analysis run was computed from (its ``raw_uid``), or None if absent."""
    raw_uid = analysis_run.metadata["start"].get(RAW_UID)
    if raw_uid is None:
        return None
    try:
        return catalog["raw"][raw_uid]
    except KeyError:
        return None


def run_finished(run) -> bool:
    """Return True if an analysis run has a stop document that does not mark it interrupted.

    A run without a stop (its process died) or with ``interrupted: True`` in its stop (the
    reprocessing loop raised) lacks frames: ``reprocess_run(resume=...)`` completes it.
    """
    stop = run.metadata.get("stop") or {}
    return bool(stop) and not stop.get("interrupted", False)
