"""The embedded default: a real Tiled server process on 127.0.0.1, one data directory.

Layout of ``data_dir``::

    catalog.db        SQLite catalog (nodes, metadata, search)
    data/             file storage: arrays (zarr) and write_table (Parquet)
    tables.duckdb     SQL storage: appendable tables (spot tables, event streams)
    detector/         default readable storage for detector HDF5 files (StreamResource)
    api_key           the server's API key (mode 0600) unless one is given
    tiled-config.yml  generated server configuration (holds no secret: the key comes from the env)
    server.json       {"uri", "pid"} while a server runs, so other processes can find it
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
from pathlib import Path

import httpx
import yaml

from laue_live._errors import SettingsError
from laue_live.catalog._settings import CatalogSettings, redact

__all__ = ["LocalTiledServer", "init_catalog", "find_running_server", "free_port", "write_server_config"]

logger = logging.getLogger(__name__)

#: Storage list recorded in the catalog: entries may be added later but never removed or reordered
#: (a catalog records its storage URIs in its assets; dropping one breaks the nodes stored there).
_STORAGE_RECORD = "storage.json"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port the OS reports free on ``host`` (bind to port 0, read it back, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _tiled_command() -> list[str]:
    exe = Path(sys.executable).with_name("tiled")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "tiled"]


def _storage(data_dir: Path, tabular: str, readable: list[Path]) -> dict:
    """Storage lists for ``data_dir``, merged with what the catalog already recorded."""
    record = data_dir / _STORAGE_RECORD
    if record.exists():
        stored = json.loads(record.read_text())
    else:
        table_uri = (f"duckdb:///{data_dir / 'tables.duckdb'}" if tabular == "duckdb"
                     else f"sqlite:///{data_dir / 'tables.sqlite'}")
        if tabular not in ("duckdb", "sqlite"):
            raise SettingsError(f"tabular storage must be 'duckdb' or 'sqlite', got {tabular!r}")
        stored = {"writable": [str(data_dir / "data"), table_uri],
                  "readable": [str(data_dir / "detector")]}
    for p in readable:
        if str(p) not in stored["readable"]:
            stored["readable"].append(str(p))
    record.write_text(json.dumps(stored, indent=1))
    return stored


def write_server_config(data_dir: Path, *, tabular: str = "duckdb",
                        readable_storage: list[Path] | None = None,
                        public: bool = False) -> Path:
    """Write ``data_dir/tiled-config.yml`` for ``tiled serve config`` and return its path.

    The API key is not in the file: it is read from ``$TILED_SINGLE_USER_API_KEY`` by the server.

    Parameters
    ----------
    data_dir
        Absolute data directory (created if missing).
    tabular
        SQL storage of appendable tables: ``"duckdb"`` (faster appends, locked while the server
        runs) or ``"sqlite"`` (readable by other processes while the server writes).
    readable_storage
        Extra directories the server may read detector files from.
    public
        Allow anonymous reads (writes still need the key).
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    storage = _storage(data_dir, tabular, [Path(p).resolve() for p in readable_storage or []])
    for p in [storage["writable"][0], *storage["readable"]]:
        Path(p).mkdir(parents=True, exist_ok=True)
    catalog_db = data_dir / "catalog.db"
    config = {
        "authentication": {"single_user_api_key": "${TILED_SINGLE_USER_API_KEY}",
                           **({"allow_anonymous_access": True} if public else {})},
        "trees": [{
            "path": "/",
            "tree": "catalog",
            "args": {
                "uri": f"sqlite:///{catalog_db}",
                # alembic costs ~3 s per start; skip it when a (copied) catalog already exists
                "init_if_not_exists": not catalog_db.exists(),
                "writable_storage": storage["writable"],
                "readable_storage": storage["readable"],
            },
        }],
        "media_types": {"BlueskyRun": {
            "application/json-seq": "bluesky_tiled_plugins.exporters:json_seq_exporter"}},
    }
    path = data_dir / "tiled-config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def init_catalog(data_dir: str | os.PathLike, *, tabular: str = "duckdb") -> Path:
    """Create and initialise the catalog database of ``data_dir`` (idempotent); return its path.

    Takes ~3 s (tiled runs its database migrations). A test suite initialises one template and
    copies ``catalog.db`` + ``storage.json`` per test instead.
    """
    from tiled.catalog import from_uri as catalog_from_uri  # lazy: tiled's server side, ~1-3 s to import

    data_dir = Path(data_dir).resolve()
    storage = _storage(data_dir, tabular, [])
    for p in [storage["writable"][0], *storage["readable"]]:
        Path(p).mkdir(parents=True, exist_ok=True)
    catalog_db = data_dir / "catalog.db"
    catalog_from_uri(f"sqlite:///{catalog_db}", init_if_not_exists=True,
                     writable_storage=storage["writable"], readable_storage=storage["readable"])
    return catalog_db


def find_running_server(data_dir: str | os.PathLike) -> str | None:
    """URI of a live laue-live server on ``data_dir`` (from ``server.json``), else ``None``."""
    path = Path(data_dir) / "server.json"
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return str(info["uri"])


class LocalTiledServer:
    """A real ``tiled serve config`` process on 127.0.0.1, a free port and an API key.

    Use as a context manager; ``__enter__`` returns the server with ``uri``, ``api_key`` and
    ``settings`` (a :class:`CatalogSettings` pointing at it). Leaving the block stops the process
    and removes ``server.json``; the data directory (the catalog itself) stays.

    Parameters
    ----------
    data_dir
        Data directory (see the module docstring); created if missing.
    api_key
        Alphanumeric key; default: ``data_dir/api_key``, generated on first use.
    tabular
        ``"duckdb"`` or ``"sqlite"`` SQL storage for appendable tables (fixed at creation).
    readable_storage
        Extra directories the server may read detector files from (HDF5 written by detectors).
    startup_timeout_s
        Bound on the wait for the server to answer ``/healthz``, in seconds.
    public
        Allow anonymous reads (writes still need the key).
    """

    def __init__(self, data_dir: str | os.PathLike = "laue-live-data", *, api_key: str | None = None,
                 tabular: str = "duckdb", readable_storage: list[str | os.PathLike] | None = None,
                 startup_timeout_s: float = 60.0, public: bool = False, host: str = "127.0.0.1") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.api_key = CatalogSettings(api_key=api_key, data_dir=self.data_dir).embedded_api_key()
        self.tabular = tabular
        self.readable_storage = [Path(p) for p in readable_storage or []]
        self.startup_timeout_s = startup_timeout_s
        self.public = public
        self.host = host
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

    def start(self) -> LocalTiledServer:
        """Start the process and wait (bounded) until it answers; retry on a lost port race."""
        if self.process is not None:
            return self
        other = find_running_server(self.data_dir)
        if other is not None:
            raise SettingsError(f"a laue-live Tiled server already runs on {self.data_dir} at {other}; "
                                "point clients at it (LAUE_LIVE_TILED_URI) or stop it first")
        config = write_server_config(self.data_dir, tabular=self.tabular,
                                     readable_storage=self.readable_storage, public=self.public)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(3):
            self.port = free_port(self.host)
            env = {**os.environ, "TILED_SINGLE_USER_API_KEY": self.api_key}
            env.pop("TILED_API_KEY", None)
            cmd = [*_tiled_command(), "serve", "config", str(config), "--host", self.host,
                   "--port", str(self.port)]
            logger.info("starting Tiled: %s", " ".join(cmd))
            # own session: a Ctrl-C in the terminal reaches us, and we stop the server cleanly
            self.process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
            # tiled prints its URL *with* the key at startup: copy its output through a redactor
            self._log_thread = threading.Thread(target=self._pump_log, args=(self.process,),
                                              name="tiled-server-log", daemon=True)
            self._log_thread.start()
            ok, last_error = self._wait_ready()
            if ok:
                (self.data_dir / "server.json").write_text(
                    json.dumps({"uri": self.uri, "pid": self.process.pid}))
                logger.info("Tiled server ready at %s (data in %s)", self.uri, self.data_dir)
                return self
            self._terminate()
            if "address already in use" not in last_error.lower():
                break
        self.port = None
        raise RuntimeError(f"the local Tiled server did not start: {redact(last_error, self.api_key)}"
                           f" (log: {self.log_path})")

    def _wait_ready(self) -> tuple[bool, str]:
        deadline = time.monotonic() + self.startup_timeout_s
        delay = 0.05
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False, f"process exited with code {self.process.returncode}: {self._log_tail()}"
            try:
                r = httpx.get(f"{self.uri}/healthz", timeout=2.0)
                if r.status_code == 200:
                    return True, ""
            except httpx.HTTPError:
                pass
            time.sleep(delay)  # polling an external process: a bounded back-off, not a synchronisation
            delay = min(delay * 1.5, 0.5)
        return False, f"no answer within {self.startup_timeout_s:.0f} s: {self._log_tail()}"

    def _log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def _terminate(self, timeout_s: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("Tiled server (pid %d) ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait(timeout=timeout_s)
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
        """Stop the process (SIGTERM, then SIGKILL after 10 s) and remove ``server.json``."""
        self._terminate()
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
    def copy_catalog(template_dir: str | os.PathLike, data_dir: str | os.PathLike) -> Path:
        """Copy an initialised catalog (``catalog.db`` + storage record) into a new ``data_dir``.

        Starting a server on the copy skips tiled's ~3 s database migration. The storage paths
        are those of the new directory (they are recorded per node, not in the empty template).
        """
        template_dir, data_dir = Path(template_dir), Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(template_dir / "catalog.db", data_dir / "catalog.db")
        record = json.loads((template_dir / _STORAGE_RECORD).read_text())
        old, new = str(template_dir.resolve()), str(data_dir.resolve())
        record = {k: [p.replace(old, new) for p in v] for k, v in record.items()}
        (data_dir / _STORAGE_RECORD).write_text(json.dumps(record, indent=1))
        return data_dir / "catalog.db"
