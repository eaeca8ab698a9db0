"""The embedded default: a real Tiled server process on 127.0.0.1, one data directory.

Layout of ``data_dir``::

    catalog.db        SQLite catalog (nodes, metadata, search); in PostgreSQL with tabular="postgresql"
    data/             file storage: arrays (zarr) and write_table (Parquet)
    tables.duckdb     SQL storage: appendable tables (spot tables, event streams); tables.sqlite with
                      tabular="sqlite"; the database laue_tables of postgres/ with "postgresql"
    postgres/         the PostgreSQL cluster of tabular="postgresql" (:class:`LocalPostgres`)
    detector/         default readable storage for detector HDF5 files (StreamResource)
    storage.json      the storage list recorded at creation (only ever extended)
    api_key           the server's API key (mode 0600) unless one is given
    tiled-config.yml  generated server configuration (holds no secret: keys come from the env)
    server.json       {"uri", "pid", "tabular"} while a server runs, so other processes can find it
    last_port         the port of the last start: a restarted server comes back on it when free
    logs/tiled-server.log
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import yaml

from laue_live._errors import SettingsError
from laue_live.catalog._postgres import LocalPostgres, parent_death_signal
from laue_live.catalog._process import log_tail, stop_child
from laue_live.catalog._settings import CatalogSettings, prepare_data_dir, redact

__all__ = ["LocalTiledServer", "init_catalog", "find_running_server", "free_port", "write_server_config",
           "TABULAR_STORES"]

logger = logging.getLogger(__name__)

#: Storage list recorded in the catalog: entries may be added later but never removed or reordered
#: (a catalog records its storage URIs in its assets; dropping one breaks the nodes stored there).
_STORAGE_RECORD = "storage.json"
#: SQL stores of appendable tables; "postgresql" puts the catalog in PostgreSQL too.
TABULAR_STORES = ("duckdb", "sqlite", "postgresql")
_PG_PLACEHOLDER = "postgresql:///"  # recorded without host/port: tiled matches PostgreSQL assets by name


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port the OS reports free on ``host`` (bind to port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tiled_command() -> list[str]:
    exe = Path(sys.executable).with_name("tiled")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tiled"]


def _recorded_tabular(stored: dict) -> str:
    if "tabular" in stored:
        return stored["tabular"]
    return "sqlite" if stored["writable"][1].startswith("sqlite:") else "duckdb"


def _storage(data_dir: Path, tabular: str | None, readable: list[Path], *,
             database_prefix: str = "laue") -> dict:
    """Storage lists for ``data_dir``, merged with what the catalog already recorded.

    ``tabular=None`` takes the recorded store (``"duckdb"`` for a new directory). A store other
    than the recorded one is refused: the catalog's nodes point at the store they were written to.
    """
    if tabular is not None and tabular not in TABULAR_STORES:
        raise SettingsError(f"tabular storage must be one of {', '.join(TABULAR_STORES)}, got {tabular!r}")
    record = data_dir / _STORAGE_RECORD
    if record.exists():
        stored = json.loads(record.read_text())
        if tabular is not None and tabular != _recorded_tabular(stored):
            raise SettingsError(
                f"{data_dir} holds a catalog with {_recorded_tabular(stored)} table storage; it cannot be "
                f"served with {tabular} (use another --data-dir for a {tabular} catalog)")
    else:
        tabular = tabular or "duckdb"
        if tabular == "postgresql":
            table_uri = f"{_PG_PLACEHOLDER}{database_prefix}_tables"
        elif tabular == "duckdb":
            table_uri = f"duckdb:///{data_dir / 'tables.duckdb'}"
        else:
            table_uri = f"sqlite:///{data_dir / 'tables.sqlite'}"
        stored = {"tabular": tabular, "writable": [str(data_dir / "data"), table_uri],
                  "readable": [str(data_dir / "detector")]}
        if tabular == "postgresql":
            stored["catalog"] = f"{database_prefix}_catalog"
    for p in readable:
        if str(p) not in stored["readable"]:
            stored["readable"].append(str(p))
    record.write_text(json.dumps(stored, indent=1))
    return stored


def _pg_databases(stored: dict) -> tuple[str, str]:
    """(catalog database, tables database) of a PostgreSQL record."""
    return stored["catalog"], stored["writable"][1][len(_PG_PLACEHOLDER):]


def _resolve_pg(uris: list[str], pg: LocalPostgres | None) -> list[str]:
    """Storage URIs with the recorded ``postgresql:///db`` given the running server's address."""
    return [pg.uri(u[len(_PG_PLACEHOLDER):]) if u.startswith(_PG_PLACEHOLDER) else u for u in uris]


def write_server_config(data_dir: Path, *, tabular: str | None = None,
                        readable_storage: list[Path] | None = None,
                        public: bool = False, postgres: LocalPostgres | None = None) -> Path:
    """Write ``data_dir/tiled-config.yml`` for ``tiled serve config`` and return its path.

    The API key is not in the file: it is read from ``$TILED_SINGLE_USER_API_KEY`` by the server;
    the PostgreSQL user and password come from ``$PGUSER``/``$PGPASSWORD`` likewise.

    Parameters
    ----------
    data_dir
        Absolute data directory (created if missing).
    tabular
        SQL storage of appendable tables: ``"duckdb"`` (fast appends, one writer at a time, locked
        while the server runs), ``"sqlite"`` (readable by other processes while the server writes)
        or ``"postgresql"`` (catalog and tables in PostgreSQL: concurrent writers). ``None``: the
        store recorded for ``data_dir`` (``"duckdb"`` for a new one).
    readable_storage
        Extra directories the server may read detector files from.
    public
        Allow anonymous reads (writes still need the key).
    postgres
        The running PostgreSQL server of a ``"postgresql"`` catalog.
    """
    data_dir = prepare_data_dir(Path(data_dir).resolve())
    storage = _storage(data_dir, tabular, [Path(p).resolve() for p in readable_storage or []])
    for p in [storage["writable"][0], *storage["readable"]]:
        Path(p).mkdir(parents=True, exist_ok=True)
    if _recorded_tabular(storage) == "postgresql":
        if postgres is None or postgres.port is None:
            raise SettingsError("a PostgreSQL catalog needs its PostgreSQL server running")
        catalog_uri = postgres.uri(storage["catalog"])
        # alembic costs ~3 s per start: skip it once the catalog was initialised
        init = not storage.get("initialised", False)
    else:
        catalog_db = data_dir / "catalog.db"
        catalog_uri = f"sqlite:///{catalog_db}"
        init = not catalog_db.exists()  # a (copied) catalog already exists: no migrations
    config = {
        "authentication": {"single_user_api_key": "${TILED_SINGLE_USER_API_KEY}",
                           **({"allow_anonymous_access": True} if public else {})},
        "trees": [{
            "path": "/",
            "tree": "catalog",
            "args": {
                "uri": catalog_uri,
                "init_if_not_exists": init,
                "writable_storage": _resolve_pg(storage["writable"], postgres),
                "readable_storage": storage["readable"],
            },
        }],
        "media_types": {"BlueskyRun": {
            "application/json-seq": "bluesky_tiled_plugins.exporters:json_seq_exporter"}},
    }
    path = data_dir / "tiled-config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _tiled_init(catalog_uri: str, env: dict[str, str]) -> None:
    """Run tiled's catalog migrations on ``catalog_uri`` (``tiled catalog init``; ~3 s)."""
    r = subprocess.run([*_tiled_command(), "catalog", "init", "--if-not-exists", catalog_uri],
                       env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise SettingsError(f"tiled catalog init failed: {r.stderr.strip()[-500:]}")


def init_catalog(data_dir: str | os.PathLike, *, tabular: str | None = None,
                 postgres: LocalPostgres | None = None) -> Path | str:
    """Create and initialise the catalog of ``data_dir`` (idempotent); return where it is.

    Takes ~3 s (tiled runs its database migrations). A test suite initialises one template and
    copies it per test instead (:meth:`LocalTiledServer.copy_catalog`).

    Parameters
    ----------
    data_dir
        The data directory (created if missing).
    tabular
        ``"duckdb"``, ``"sqlite"`` or ``"postgresql"``; ``None``: as recorded, else ``"duckdb"``.
    postgres
        For ``"postgresql"``: a running server to hold the databases (they get a unique name
        prefix); default: the data directory's own cluster, ``data_dir/postgres``, started for the
        initialisation.

    Returns
    -------
    Path or str
        The SQLite catalog file, or the PostgreSQL catalog database's URI.
    """
    from tiled.catalog import from_uri as catalog_from_uri  # lazy: tiled's server side, ~1-3 s to import

    data_dir = prepare_data_dir(Path(data_dir).resolve())
    prefix = "laue" if postgres is None else f"laue_{uuid.uuid4().hex[:10]}"
    storage = _storage(data_dir, tabular, [], database_prefix=prefix)
    for p in [storage["writable"][0], *storage["readable"]]:
        Path(p).mkdir(parents=True, exist_ok=True)
    if _recorded_tabular(storage) != "postgresql":
        catalog_db = data_dir / "catalog.db"
        catalog_from_uri(f"sqlite:///{catalog_db}", init_if_not_exists=True,
                         writable_storage=storage["writable"], readable_storage=storage["readable"])
        return catalog_db
    own = postgres is None
    pg = LocalPostgres(data_dir / "postgres") if own else postgres
    try:
        if own:
            pg.start()
        catalog, tables = _pg_databases(storage)
        pg.create_database(tables)
        uri = pg.create_database(catalog)
        if not storage.get("initialised"):
            _tiled_init(uri, pg.client_env())
            storage["initialised"] = True
            (data_dir / _STORAGE_RECORD).write_text(json.dumps(storage, indent=1))
        return uri
    finally:
        if own:
            pg.stop()


def find_running_server(data_dir: str | os.PathLike) -> str | None:
    """URI of a live laue-live server on ``data_dir`` (from ``server.json``), else ``None``."""
    info = _running_info(data_dir)
    return None if info is None else str(info["uri"])


def running_server_tabular(data_dir: str | os.PathLike) -> str | None:
    """Table store (``"duckdb"``, ``"sqlite"``, ``"postgresql"``) of the server running on ``data_dir``."""
    info = _running_info(data_dir)
    return None if info is None else info.get("tabular", "duckdb")


def _running_info(data_dir: str | os.PathLike) -> dict | None:
    path = Path(data_dir) / "server.json"
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
        str(info["uri"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as uvicorn binds: SO_REUSEADDR, so that connections in TIME_WAIT do not count as "in use"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


class LocalTiledServer:
    """A real ``tiled serve config`` process on 127.0.0.1, its port and an API key.

    Use as a context manager; ``__enter__`` returns the server with ``uri``, ``api_key`` and
    ``settings`` (a :class:`CatalogSettings` pointing at it). Leaving the block stops the process
    (and the PostgreSQL server it started) and removes ``server.json``; the data directory (the
    catalog itself) stays.

    Parameters
    ----------
    data_dir
        Data directory (see the module docstring); created if missing.
    api_key
        Alphanumeric key; default: ``data_dir/api_key``, generated on first use.
    tabular
        ``"duckdb"``, ``"sqlite"`` or ``"postgresql"`` storage for appendable tables (fixed at
        creation; ``None``: as recorded, ``"duckdb"`` for a new directory). ``"postgresql"`` keeps
        the catalog in PostgreSQL too, and runs PostgreSQL from ``data_dir/postgres`` unless
        ``postgres`` is given.
    readable_storage
        Extra directories the server may read detector files from (HDF5 written by detectors).
    startup_timeout_s
        Bound on the wait for the server to answer ``/healthz``, in seconds.
    public
        Allow anonymous reads (writes still need the key).
    port
        TCP port; default: the port of this data directory's last start when it is free (a
        restarted server comes back where its writers expect it), else one the OS reports free.
        An explicit port that is taken is an error.
    postgres
        A running :class:`LocalPostgres` that holds this catalog's databases (not stopped here);
        default for ``"postgresql"``: the data directory's own cluster, started and stopped with
        the server.
    die_with_parent
        Have Linux stop Tiled (and PostgreSQL) if this process dies, even by SIGKILL. Only for a
        server started from the main thread of a long-lived process (``laue-live catalog serve``):
        the signal follows the thread that started the child.
    """

    def __init__(self, data_dir: str | os.PathLike = "laue-live-data", *, api_key: str | None = None,
                 tabular: str | None = None, readable_storage: list[str | os.PathLike] | None = None,
                 startup_timeout_s: float = 60.0, public: bool = False, host: str = "127.0.0.1",
                 port: int | None = None, postgres: LocalPostgres | None = None,
                 die_with_parent: bool = False) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.api_key = CatalogSettings(api_key=api_key, data_dir=self.data_dir).embedded_api_key()
        self.tabular = tabular
        self.readable_storage = [Path(p) for p in readable_storage or []]
        self.startup_timeout_s = startup_timeout_s
        self.public = public
        self.host = host
        self.requested_port = port
        self.die_with_parent = die_with_parent
        self.postgres = postgres
        self._owns_postgres = False
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log_thread = None

    def __repr__(self) -> str:
        return f"LocalTiledServer(data_dir={str(self.data_dir)!r}, uri={self.uri!r}, api_key='***')"

    @property
    def uri(self) -> str | None:
        """``http://127.0.0.1:PORT`` while running, else ``None``."""
        return None if self.port is None else f"http://{self.host}:{self.port}"

    @property
    def settings(self) -> CatalogSettings:
        """Settings that point clients at this server."""
        if self.uri is None:
            raise RuntimeError("the server is not running")
        return CatalogSettings(uri=self.uri, api_key=self.api_key, data_dir=self.data_dir)

    @property
    def log_path(self) -> Path:
        """The server's log file (stdout and stderr of the process)."""
        return self.data_dir / "logs" / "tiled-server.log"

    @property
    def store(self) -> str:
        """The table store of this data directory: ``"duckdb"``, ``"sqlite"`` or ``"postgresql"``."""
        record = self.data_dir / _STORAGE_RECORD
        if record.exists():
            return _recorded_tabular(json.loads(record.read_text()))
        return self.tabular or "duckdb"

    def _ports(self):
        """Ports to try: the requested one only; else the last one (if free), then free ones."""
        if self.requested_port is not None:
            if _port_in_use(self.host, self.requested_port):
                raise SettingsError(f"port {self.requested_port} on {self.host} is in use; stop what "
                                    "listens there or choose another --port")
            yield self.requested_port
            return
        try:
            last = int((self.data_dir / "last_port").read_text())
        except (OSError, ValueError):
            last = None
        if last and not _port_in_use(self.host, last):
            yield last
        for _ in range(3):
            yield free_port(self.host)

    def start(self) -> LocalTiledServer:
        """Start the process and wait (bounded) until it answers; retry on a lost port race."""
        if self.process is not None:
            return self
        prepare_data_dir(self.data_dir)
        other = find_running_server(self.data_dir)
        if other is not None:
            raise SettingsError(f"a laue-live Tiled server already runs on {self.data_dir} at {other}; "
                                "point clients at it (LAUE_LIVE_TILED_URI) or stop it first")
        _storage(self.data_dir, self.tabular, [])  # refuses another store than the recorded one
        env = {**os.environ, "TILED_SINGLE_USER_API_KEY": self.api_key}
        env.pop("TILED_API_KEY", None)
        if self.store == "postgresql":
            self._start_postgres()
            env.update(self.postgres.client_env())
        config = write_server_config(self.data_dir, tabular=self.tabular,
                                     readable_storage=self.readable_storage, public=self.public,
                                     postgres=self.postgres)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for port in self._ports():
            self.port = port
            cmd = [*_tiled_command(), "serve", "config", str(config), "--host", self.host,
                   "--port", str(self.port)]
            logger.info("starting Tiled: %s", " ".join(cmd))
            # own session: a Ctrl-C in the terminal reaches us, and we stop the server cleanly
            self.process = subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=parent_death_signal if self.die_with_parent else None)
            # tiled prints its URL *with* the key at startup: copy its output through a redactor
            self._log_thread = threading.Thread(target=self._pump_log, args=(self.process,),
                                              name="tiled-server-log", daemon=True)
            self._log_thread.start()
            ok, last_error = self._wait_ready()
            if ok:
                self._mark_started()
                logger.info("Tiled server ready at %s (data in %s)", self.uri, self.data_dir)
                return self
            self._terminate()
            if "address already in use" not in last_error.lower():
                break
        self.port = None
        self._stop_postgres()
        raise RuntimeError(f"the local Tiled server did not start: {redact(last_error, self.api_key)}"
                           f" (log: {self.log_path})")

    def _mark_started(self) -> None:
        (self.data_dir / "server.json").write_text(
            json.dumps({"uri": self.uri, "pid": self.process.pid, "tabular": self.store}))
        (self.data_dir / "last_port").write_text(str(self.port))
        record = self.data_dir / _STORAGE_RECORD
        stored = json.loads(record.read_text())
        if self.store == "postgresql" and not stored.get("initialised"):
            stored["initialised"] = True  # tiled ran its migrations on this start
            record.write_text(json.dumps(stored, indent=1))

    def _start_postgres(self) -> None:
        if self.postgres is None:
            self.postgres = LocalPostgres(self.data_dir / "postgres")
            self._owns_postgres = True
        if self._owns_postgres:
            self.postgres.start(die_with_parent=self.die_with_parent)
        catalog, tables = _pg_databases(json.loads((self.data_dir / _STORAGE_RECORD).read_text()))
        self.postgres.create_database(tables)
        self.postgres.create_database(catalog)

    def _stop_postgres(self) -> None:
        if self._owns_postgres and self.postgres is not None:
            self.postgres.stop()

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + self.startup_timeout_s
        delay = 0.05
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False, f"process exited with code {self.process.returncode}: {log_tail(self.log_path)}"
            try:
                r = httpx.get(f"{self.uri}/healthz", timeout=2.0)
                if r.status_code == 200:
                    return True, ""
            except httpx.HTTPError:
                pass
            time.sleep(delay)  # polling an external process: a bounded back-off, not a synchronisation
            delay = min(delay * 1.5, 0.5)
        return False, f"no answer within {self.startup_timeout_s:.0f} s: {log_tail(self.log_path)}"

    def _terminate(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        stop_child(proc, "Tiled server", signal.SIGTERM, timeout_s)
        if self._log_thread is not None:
            self._log_thread.join(timeout_s)
            self._log_thread = None

    def _pump_log(self, proc: subprocess.Popen) -> None:
        with open(self.log_path, "a", encoding="utf-8", errors="replace") as log:
            for raw in iter(proc.stdout.readline, b""):
                log.write(redact(raw.decode("utf-8", "replace"), self.api_key))
                log.flush()
            proc.stdout.close()

    def stop(self) -> None:
        """Stop Tiled (SIGTERM, then SIGKILL after 10 s), then its PostgreSQL; remove ``server.json``."""
        self._terminate()
        self._stop_postgres()
        info = self.data_dir / "server.json"
        try:
            if json.loads(info.read_text()).get("uri") == self.uri:
                info.unlink()
        except (OSError, ValueError):
            pass
        self.port = None

    def wait(self) -> int:
        """Block until the process exits (foreground serving); return its exit code."""
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.wait()

    def __enter__(self) -> LocalTiledServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @staticmethod
    def copy_catalog(template_dir: str | os.PathLike, data_dir: str | os.PathLike,
                     postgres: LocalPostgres | None = None) -> Path | str:
        """Copy an initialised catalog (``catalog.db`` + storage record) into a new ``data_dir``.

        Starting a server on the copy skips tiled's ~3 s database migration. The storage paths
        are those of the new directory (they are recorded per node, not in the empty template).
        A PostgreSQL template (made by :func:`init_catalog` with ``postgres=``) is copied into new
        databases of ``postgres`` (``CREATE DATABASE ... TEMPLATE``, milliseconds).

        Returns
        -------
        Path or str
            The new SQLite catalog file, or the new PostgreSQL catalog database's URI.
        """
        template_dir, data_dir = Path(template_dir), Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        record = json.loads((template_dir / _STORAGE_RECORD).read_text())
        old, new = str(template_dir.resolve()), str(data_dir.resolve())
        record = {k: [p.replace(old, new) for p in v] if isinstance(v, list) else v
                  for k, v in record.items()}
        if _recorded_tabular(record) == "postgresql":
            if postgres is None:
                raise SettingsError("copying a PostgreSQL catalog needs the PostgreSQL server that holds it")
            prefix = f"laue_{uuid.uuid4().hex[:10]}"
            catalog, tables = _pg_databases(record)
            uri = postgres.create_database(f"{prefix}_catalog", template=catalog)
            postgres.create_database(f"{prefix}_tables", template=tables)
            record["catalog"] = f"{prefix}_catalog"
            record["writable"][1] = f"{_PG_PLACEHOLDER}{prefix}_tables"
            (data_dir / _STORAGE_RECORD).write_text(json.dumps(record, indent=1))
            return uri
        shutil.copy2(template_dir / "catalog.db", data_dir / "catalog.db")
        (data_dir / _STORAGE_RECORD).write_text(json.dumps(record, indent=1))
        return data_dir / "catalog.db"
