"""Where the dashboard listens, what it follows, and who may look: :class:`DashboardSettings`."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from laue_live._errors import SettingsError

__all__ = ["DashboardSettings", "DEFAULT_PORT", "make_viewer_key", "read_viewer_key"]

#: Default TCP port of the dashboard.
DEFAULT_PORT = 8765
ENV_KEY = "LAUE_LIVE_DASHBOARD_KEY"
ENV_KEY_FILE = "LAUE_LIVE_DASHBOARD_KEY_FILE"
ENV_STREAM = "LAUE_LIVE_DASHBOARD_STREAM"
_KEY_RE = re.compile(r"^[A-Za-z0-9_\-]{16,}$")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _check_key(key: str, origin: str) -> str:
    key = key.strip()
    if not _KEY_RE.match(key):
        # never echo the key: only where it came from and what is wrong with it
        raise SettingsError(f"dashboard viewer key from {origin} must be at least 16 characters of "
                            "A-Z, a-z, 0-9, '-' or '_'")
    return key


def read_viewer_key(path: str | os.PathLike, origin: str = "key file") -> str:
    """Read a viewer key from a file.

    Raises
    ------
    SettingsError
        The file cannot be read or the key is malformed.
    """
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read the dashboard key file {p} ({origin}): {exc.strerror}") from None
    return _check_key(text, f"file {p}")


def make_viewer_key(path: str | os.PathLike) -> Path:
    """Write a new random viewer key (32 hex characters) to ``path``, readable by its owner only.

    Raises
    ------
    SettingsError
        The file exists already (never overwritten) or cannot be written.
    """
    p = Path(path).expanduser()
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SettingsError(f"{p} exists already; not overwritten") from None
    except OSError as exc:
        raise SettingsError(f"cannot write the key file {p}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(16) + "\n")
    return p


@dataclass(frozen=True)
class DashboardSettings:
    """How the dashboard serves its page and where its data come from.

    Parameters
    ----------
    host, port
        Address the web server binds (127.0.0.1 by default; port 0: any free port). Any other
        address than a loopback one needs a ``key``.
    key
        Viewer key a browser must present once (login page; then a session cookie) or a script
        in an ``Authorization: Bearer`` header. Hidden in ``repr``, never logged. The dashboard
        only reads, so this key lets people view, nothing more.
    stream
        ``"host:port"`` of the analysis service's spot publisher (``laue-live serve --publish``),
        or ``None`` for past runs only.
    push_interval
        Seconds between two updates sent to a browser: what arrives in between is coalesced.
    latest_interval
        Seconds between two pictures of the latest frame in a browser (decimated on purpose).
    keep_tables
        Spot tables of the newest frames kept in memory for clicks on recent cells.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    key: str | None = field(default=None, repr=False)
    stream: str | None = "127.0.0.1:5579"
    push_interval: float = 0.5
    latest_interval: float = 2.0
    keep_tables: int = 256

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0..65535, got {self.port!r}")
        if self.key is not None:
            object.__setattr__(self, "key", _check_key(self.key, "settings"))
        if self.key is None and not _is_loopback(self.host):
            raise SettingsError(
                f"binding the dashboard to {self.host} needs a viewer key: put one in a file "
                f"(`laue-live dashboard --make-key FILE`) and pass --key-file FILE or set {ENV_KEY_FILE}; "
                "or keep 127.0.0.1 and reach it through an SSH tunnel")
        if self.push_interval <= 0 or self.latest_interval <= 0 or self.keep_tables < 1:
            raise SettingsError("push_interval, latest_interval and keep_tables must be positive")
        if self.stream is not None:
            from laue_live.stream import normalize_address

            normalize_address(self.stream, bind=False)

    @property
    def loopback(self) -> bool:
        """Whether the dashboard is reachable from this machine only."""
        return _is_loopback(self.host)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, key_file: str | os.PathLike | None = None,
                 **overrides) -> DashboardSettings:
        """Build settings from arguments, then the environment, then defaults.

        The environment: ``LAUE_LIVE_DASHBOARD_KEY`` or ``LAUE_LIVE_DASHBOARD_KEY_FILE``,
        ``LAUE_LIVE_DASHBOARD_STREAM``. A key is never taken from a command line.
        """
        env = os.environ if env is None else env
        values = dict(overrides)
        if key_file is not None:
            values["key"] = read_viewer_key(key_file, "argument")
        elif env.get(ENV_KEY):
            values["key"] = _check_key(env[ENV_KEY], f"environment {ENV_KEY}")
        elif env.get(ENV_KEY_FILE):
            values["key"] = read_viewer_key(env[ENV_KEY_FILE], f"environment {ENV_KEY_FILE}")
        if "stream" not in values and env.get(ENV_STREAM):
            values["stream"] = env[ENV_STREAM]
        return cls(**{k: v for k, v in values.items() if v is not None or k == "stream"})
