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
    "scan_id_key",
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


def _day(value: Any) -> tuple[dt.date, dt.date]:
    """``(day, next day)`` of a date, datetime or ISO date string (``YYYY-MM-DD``)."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise SettingsError(f"date={value!r} is not an ISO date (YYYY-MM-DD)") from None
    if isinstance(value, dt.datetime):
        value = value.date()
    if not isinstance(value, dt.date):
        raise SettingsError(f"date must be a date or an ISO string (YYYY-MM-DD), got {value!r}")
    return value, value + dt.timedelta(days=1)


def runs_query(*, sample: str | None = None, material: str | None = None, since: Any = None,
               until: Any = None, date: Any = None, raw_uid: str | None = None, kind: str | None = None,
               **equal: Any) -> list:
    """Tiled queries on start-document keys (combine them with successive ``search`` calls).

    Parameters
    ----------
    sample, material
        Exact match on ``start.sample`` / ``start.material``.
    since, until
        Runs started at or after ``since`` and before ``until`` (datetime, date, ISO string or
        epoch seconds; naive values are local time).
    date
        Runs started on this day (local time; a date or ``YYYY-MM-DD``): ``since`` = that day,
        ``until`` = the next. Scan ids restart with every session: a scan id and a date find a run.
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
    if date is not None:
        day, next_day = _day(date)
        qs.append(Comparison("ge", "start.time", _timestamp(day, "date")))
        qs.append(Comparison("lt", "start.time", _timestamp(next_day, "date")))
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


def scan_id_key(where: str) -> str:
    """Start-document key of the scan id: ``scan_id`` in a raw run, ``raw_scan_id`` in an analysis run."""
    return "scan_id" if where == "raw" else "raw_scan_id"


def find_runs(catalog, *, where: str = "analysis", queries: Iterable | None = None,
              limit: int | None = None, scan_id: int | None = None, **filters):
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
    scan_id
        Runs of this scan id (an analysis run: of the raw run's scan id). Scan ids restart with
        every session; add ``date`` (or ``since``/``until``) to tell them apart.
    **filters
        ``sample``, ``material``, ``since``, ``until``, ``date``, ``raw_uid``, ``kind``, or
        ``key=value``.

    Returns
    -------
    pandas.DataFrame
        Columns ``uid, scan_id, time, sample, material, raw_uid, method, model, model_version,
        plan_name, shape, exit_status, n_events``.
    """
    import pandas as pd  # lazy: pandas adds ~0.3 s to `import laue_live.catalog`

    container = _container(catalog, where)
    if scan_id is not None:
        filters[scan_id_key(where)] = int(scan_id)
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
        The id; a run client is returned as it is. A positive integer is a scan id (of the raw run,
        for an analysis run): the newest run with it, with a warning when there are several.
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
    if isinstance(key, int) and key > 0:
        try:
            return _by_scan_id(container, key, where)
        except NotInCatalogError:
            if key is run or len(run) < 8:
                raise
            try:  # not a scan id: a uid prefix made of digits only (one uid in 40 begins with 8 of them)
                return container[run]
            except (KeyError, IndexError, ValueError):
                pass
            raise
    try:
        return container[key]
    except (KeyError, IndexError, ValueError):
        listing = "laue-live query runs" + (" --raw" if where == "raw" else "")
        raise NotInCatalogError(f"no {where} run {run!r}: not found in the catalog (list them with "
                                f"`{listing}`)") from None


def _by_scan_id(container, scan_id: int, where: str):
    """Return the newest run of a scan id (of its raw run's, for an analysis run); warn if there are more."""
    result = search_runs(container, **{scan_id_key(where): scan_id})
    try:
        result = result.sort(("start.time", -1))
        runs = list(itertools.islice(result.values(), 2))
    except Exception:  # noqa: BLE001 - a server that cannot sort: sort here
        runs = sorted(result.values(), key=lambda r: r.metadata["start"].get("time", 0.0), reverse=True)
    if not runs:
        listing = "laue-live query runs" + (" --raw" if where == "raw" else "")
        raise NotInCatalogError(f"no {where} run of scan id {scan_id} in the catalog "
                                f"(list them with `{listing}`)")
    if len(runs) > 1:
        n = len(result)
        when = dt.datetime.fromtimestamp(runs[0].metadata["start"].get("time", 0.0))
        listing = f"laue-live query runs{' --raw' if where == 'raw' else ''} --scan-id {scan_id}"
        logger.warning("scan id %d matches %d %s runs: using the newest, started %s; list them with `%s` "
                       "(add --date YYYY-MM-DD) and pick one by uid", scan_id, n, where,
                       when.isoformat(timespec="seconds"), listing)
    return runs[0]


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
