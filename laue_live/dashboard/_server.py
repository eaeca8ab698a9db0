"""Run the dashboard: a uvicorn server on a thread, in the foreground, or as a child process.

A thread for tests and embedding, the foreground for the CLI, and a child process beside the analysis
service or the demo, so that it never shares their interpreter lock.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from laue_live._errors import SettingsError
from laue_live.dashboard._app import create_app
from laue_live.dashboard._history import CatalogReader
from laue_live.dashboard._live import LiveFeed, LiveState
from laue_live.dashboard._settings import DashboardSettings

__all__ = ["DashboardServer", "DashboardProcess", "READY_LINE"]

logger = logging.getLogger(__name__)

#: The line ``laue-live dashboard`` prints once it listens, followed by its URL.
READY_LINE = "laue-live dashboard: "


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SettingsError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)  # connections made before uvicorn's loop runs wait in the backlog
    return sock


class DashboardServer:
    """The dashboard web server with its live feed and its catalog reader.

    Parameters
    ----------
    settings
        :class:`DashboardSettings` (bind address, viewer key, spot stream).
    catalog_settings
        :class:`laue_live.catalog.CatalogSettings` of the catalog to read past runs from, or
        ``None`` (live stream only). A key with read scopes is enough: the dashboard never writes.
    curve
        :class:`~laue_live.stream.CurveClient` when the spot publisher uses CURVE.

    Attributes
    ----------
    url
        Where browsers find the page (``http://host:port/``).
    state
        The :class:`LiveState` (runs and status seen on the stream).
    """

    def __init__(self, settings: DashboardSettings, *, catalog_settings=None, curve=None):
        import uvicorn

        self.settings = settings
        self.state = LiveState(keep_tables=settings.keep_tables)
        self.reader = CatalogReader(catalog_settings)
        self.app = create_app(settings, self.state, self.reader)
        self._sock = _bind(settings.host, settings.port)
        self.port = self._sock.getsockname()[1]
        host = settings.host
        if host in ("0.0.0.0", "::"):
            host = socket.gethostname()
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"
        # No access log: it would record every request of every browser, for nobody's benefit.
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, ws_ping_interval=20.0)
        self._server = uvicorn.Server(config)
        self.feed = LiveFeed(settings.stream, self.state, curve=curve) if settings.stream else None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._backfill = threading.Thread(target=self._backfill_loop, name="laue-live-dashboard-backfill",
                                          daemon=True)

    def _backfill_loop(self) -> None:
        # Frames the stream did not bring (joined late, missed tables) come from Tiled, off the feed.
        while not self._stop.wait(2.0):
            if self.state.backfill and self.reader.configured:
                self.state.backfill_from(self.reader)

    def _start_helpers(self) -> None:
        if self.feed is not None:
            self.feed.start()
            self._backfill.start()

    def __repr__(self) -> str:
        return f"DashboardServer({self.url!r}, stream={self.settings.stream!r})"

    def start(self, timeout: float = 30.0) -> DashboardServer:
        """Serve on a background thread; returns once the server accepts connections (bounded wait)."""
        self._start_helpers()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="laue-live-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start within {timeout:.0f} s")
            self._thread.join(0.05)
        logger.info("dashboard at %s", self.url)
        return self

    def serve(self, *, parent_pid: int | None = None) -> None:
        """Serve in the foreground until SIGINT/SIGTERM (uvicorn handles both).

        Parameters
        ----------
        parent_pid
            Stop as well when this process is gone (checked every second): a dashboard started
            beside ``laue-live serve`` must not outlive it, even when the service is SIGKILLed and
            cannot stop it.
        """
        self._start_helpers()
        if parent_pid is not None:
            threading.Thread(target=self._exit_with_parent, args=(parent_pid,), daemon=True,
                             name="laue-live-dashboard-parent").start()
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self.close()

    def _exit_with_parent(self, parent_pid: int) -> None:
        # Re-parenting (the parent died) changes getppid(); polling is the portable way to see it.
        while not self._stop.wait(1.0):
            if os.getppid() != parent_pid:
                logger.warning("the process that started the dashboard (pid %d) is gone: stopping",
                               parent_pid)
                self._server.should_exit = True
                return

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving (bounded wait) and close the feed."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        """Stop the feed and its helper, close the listening socket."""
        self._stop.set()
        if self.feed is not None:
            self.feed.stop()
        self._sock.close()

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class DashboardProcess:
    """``laue-live dashboard`` in a child process, e.g. beside ``laue-live serve`` or the demo.

    A process of its own keeps the dashboard's work (web requests, pictures) off the analysis'
    interpreter and its crash off the analysis. Secrets go through the environment, never the
    command line (which ``ps`` shows). Its output goes to a log file, so that it may outlive its
    parent (``laue-live demo --keep-server``).

    Parameters
    ----------
    args
        Arguments after ``laue-live dashboard`` (``--stream``, ``--host``, ``--port`` ...).
    log_path
        File the child's output is appended to.
    env
        Extra environment variables (``LAUE_LIVE_TILED_URI``, ``LAUE_LIVE_TILED_API_KEY``,
        ``LAUE_LIVE_DASHBOARD_KEY`` ...) on top of this process's.
    exit_with_parent
        The child stops when this process is gone, even if it was killed without a chance to stop
        it; ``False`` for a dashboard meant to outlive its parent (``--keep-server``).
    """

    def __init__(self, args: Sequence[str], log_path: str | os.PathLike,
                 env: Mapping[str, str] | None = None, *, exit_with_parent: bool = True):
        self.args = list(args) + (["--exit-with-parent", str(os.getpid())] if exit_with_parent else [])
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self._lock = threading.Lock()  # start() may run on another thread than stop()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        """Process id of the child, while it is ours."""
        return None if self.process is None else self.process.pid

    def start(self, timeout: float = 60.0) -> str:
        """Start the child and wait (bounded) for its address; returns the URL.

        Raises
        ------
        RuntimeError
            The dashboard exited or printed no address within ``timeout`` seconds (its last output
            line is in the message).
        """
        cmd = [sys.executable, "-c", "from laue_live.cli import main; main()", "dashboard", *self.args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self._lock, open(self.log_path, "ab") as log:
            if self._stopped:
                raise RuntimeError("stopped before it started")
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while self.url is None and time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                lines = log.read().decode("utf-8", "replace").splitlines()
            for line in lines:
                if line.startswith(READY_LINE):
                    self.url = line[len(READY_LINE):].split()[0]
            if self.url is None:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)  # polling a child's log file: there is nothing to wait on instead
        if self.url is None:
            last = [ln for ln in lines if ln.strip()][-1:]
            self.stop()
            raise RuntimeError(f"the dashboard did not start within {timeout:.0f} s"
                               + (f": {last[0]}" if last else f" (see {self.log_path})"))
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        with self._lock:
            self._stopped = True
            process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def detach(self) -> None:
        """Leave the child running after this process exits (``--keep-server``)."""
        self.process = None
