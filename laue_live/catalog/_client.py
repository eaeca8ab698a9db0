"""Connect to a Tiled catalog and make sure its ``raw`` and ``analysis`` containers exist."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from laue_live._errors import SettingsError
from laue_live.catalog._serialize import serialize_tiled_writes
from laue_live.catalog._server import LocalTiledServer, find_running_server, running_server_tabular
from laue_live.catalog._settings import CatalogSettings, redact

__all__ = ["Catalog", "open_catalog", "catalog_session", "ensure_container", "BLUESKY_CATALOG_SPEC"]

logger = logging.getLogger(__name__)

BLUESKY_CATALOG_SPEC = {"name": "CatalogOfBlueskyRuns", "version": "3.0"}


def ensure_container(parent, path: str):
    """Return the container at ``path`` (``a/b``) under ``parent``, creating missing levels.

    The last level carries the ``CatalogOfBlueskyRuns`` spec so that its client offers
    ``c[-1]``, ``c[scan_id]``, search by start-document keys, and ``TiledWriter`` accepts it.
    """
    from tiled.structures.core import Spec  # lazy: tiled costs ~0.3-3 s to import

    node = parent
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        try:
            node = node[part]
        except KeyError:
            specs = [Spec(**BLUESKY_CATALOG_SPEC)] if last else []
            try:
                node = node.create_container(part, specs=specs)
            except Exception as exc:  # noqa: BLE001 - a concurrent creator won: look it up again
                try:
                    node = node[part]
                except KeyError:
                    raise exc from None
    return node


@dataclass
class Catalog:
    """A connected catalog: the root client plus its ``raw`` and ``analysis`` containers.

    ``catalog["raw"]`` and ``catalog["analysis"]`` return the containers (whatever their paths in
    the settings); any other key is looked up in the root.

    Attributes
    ----------
    root
        Tiled client of the server's root.
    raw, analysis
        ``CatalogOfBlueskyRuns`` clients of the raw-run and analysis-run containers.
    settings
        The settings used to connect.
    """

    root: Any
    raw: Any
    analysis: Any
    settings: CatalogSettings

    def __getitem__(self, key: str):
        if key == "raw":
            return self.raw
        if key == "analysis":
            return self.analysis
        return self.root[key]

    def __repr__(self) -> str:
        return (f"Catalog(uri={self.settings.uri!r}, raw={self.settings.raw_path!r}, "
                f"analysis={self.settings.analysis_path!r})")


def open_catalog(settings: CatalogSettings | None = None, *, create: bool = True,
                 connect_timeout_s: float = 10.0) -> Catalog:
    """Connect to the Tiled server of ``settings`` and return a :class:`Catalog`.

    Parameters
    ----------
    settings
        Where the server is; default :meth:`CatalogSettings.load` (arguments, env, file). For the
        embedded default, start a :class:`LocalTiledServer` first or use :func:`catalog_session`.
    create
        Create the ``raw`` and ``analysis`` containers if missing (needs a write-capable key).
    connect_timeout_s
        Bound on the first contact with the server, in seconds.

    Raises
    ------
    SettingsError
        No URI is set, the server cannot be reached or refuses the key.
    """
    from tiled.client import from_uri  # lazy: tiled costs ~0.3-3 s to import

    settings = settings or CatalogSettings.load()
    if settings.uri is None:
        uri = find_running_server(settings.data_dir)
        if uri is None:
            raise SettingsError(
                "no Tiled URI set (LAUE_LIVE_TILED_URI) and no laue-live server runs on "
                f"{settings.data_dir}; start one with `laue-live catalog serve` or use catalog_session()")
        settings = settings.with_server(uri, settings.embedded_api_key())
    # Tiled 0.2.20 corrupts concurrent appends to DuckDB, and SQLite refuses them (see _serialize.py):
    # writers take turns within this process, and across processes when the server is the embedded
    # one on this machine and keeps its tables in a file. PostgreSQL writers append at once.
    local_file_store = (find_running_server(settings.data_dir) == settings.uri
                        and running_server_tabular(settings.data_dir) in ("duckdb", "sqlite"))
    serialize_tiled_writes(settings.data_dir / "tables.lock" if local_file_store else None)
    try:
        # One quick probe first: tiled's client retries refused connections for ~25 s.
        httpx.get(f"{settings.uri}/api/v1/", timeout=connect_timeout_s)
    except httpx.TransportError as exc:
        raise SettingsError(f"cannot reach Tiled at {settings.uri}: "
                            f"{redact(str(exc), settings.api_key)}") from None
    try:
        root = from_uri(settings.uri, api_key=settings.api_key)
    except httpx.HTTPStatusError as exc:
        code = exc.response.status_code
        why = ("the API key was refused: check LAUE_LIVE_TILED_API_KEY_FILE (or LAUE_LIVE_TILED_API_KEY, "
               "TILED_API_KEY)") if code in (401, 403) else f"HTTP {code}"
        raise SettingsError(f"cannot open Tiled catalog at {settings.uri}: {why}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise SettingsError(f"cannot reach Tiled at {settings.uri}: "
                            f"{redact(str(exc), settings.api_key)}") from None
    except RuntimeError as exc:  # tiled: "requires API key" and the like
        if "api key" in str(exc).lower():  # tiled's text suggests from_uri(..., api_key=...): not for a shell
            raise SettingsError(f"Tiled at {settings.uri} needs an API key: put it in a file and set "
                                "LAUE_LIVE_TILED_API_KEY_FILE=FILE (or LAUE_LIVE_TILED_API_KEY)") from None
        raise SettingsError(f"cannot open Tiled catalog at {settings.uri}: "
                            f"{redact(str(exc), settings.api_key)}") from None

    def get(path):
        if create:
            return ensure_container(root, path)
        try:
            return root[path]
        except KeyError:
            raise SettingsError(f"container {path!r} not found at {settings.uri}") from None

    return Catalog(root=root, raw=get(settings.raw_path), analysis=get(settings.analysis_path),
                   settings=settings)


@contextlib.contextmanager
def catalog_session(settings: CatalogSettings | None = None, **server_kwargs) -> Iterator[Catalog]:
    """Yield an open :class:`Catalog`; for the embedded default start (and then stop) a local server.

    With a URI in ``settings`` this only connects. Without one it reuses a laue-live server that
    already runs on ``settings.data_dir``, or starts a :class:`LocalTiledServer` for the block.
    ``server_kwargs`` go to :class:`LocalTiledServer`.
    """
    settings = settings or CatalogSettings.load()
    if settings.uri is not None or find_running_server(settings.data_dir):
        yield open_catalog(settings)
        return
    server_kwargs.setdefault("tabular", settings.tabular)
    with LocalTiledServer(settings.data_dir, api_key=settings.api_key, **server_kwargs) as server:
        yield open_catalog(settings.with_server(server.uri, server.api_key))
