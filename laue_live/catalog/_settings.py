"""Where the catalog is and how to authenticate: :class:`CatalogSettings`.

Precedence, highest first: explicit arguments, environment, settings file, defaults. The API key
is never accepted on a command line (it would show in ``ps`` and shell history) and never shown in
a ``repr`` or a log line.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from laue_live._errors import SettingsError

__all__ = ["CatalogSettings", "generate_api_key", "redact", "prepare_data_dir"]

logger = logging.getLogger(__name__)

ENV_URI = "LAUE_LIVE_TILED_URI"
ENV_API_KEY = "LAUE_LIVE_TILED_API_KEY"
ENV_TILED_API_KEY = "TILED_API_KEY"  # tiled's own variable, honoured as a fallback
ENV_API_KEY_FILE = "LAUE_LIVE_TILED_API_KEY_FILE"
ENV_DATA_DIR = "LAUE_LIVE_DATA_DIR"
ENV_SETTINGS_FILE = "LAUE_LIVE_CATALOG_SETTINGS"

DEFAULT_DATA_DIR = Path("laue-live-data")
_KEY_RE = re.compile(r"^[A-Za-z0-9]+$")
_FILE_KEYS = {"uri", "api_key", "api_key_file", "data_dir", "raw_path", "analysis_path", "tabular"}
_TABULAR = ("duckdb", "sqlite", "postgresql")


def generate_api_key() -> str:
    """Generate a random API key: 32 hexadecimal characters (Tiled accepts only alphanumeric keys)."""
    return secrets.token_hex(16)


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` (and an ``api_key=`` query value) masked."""
    if secret:
        text = text.replace(secret, "***")
    return re.sub(r"(api_key=)[^&\s'\"]+", r"\1***", text)


def prepare_data_dir(path: str | os.PathLike) -> Path:
    """Create the data directory ``path`` (and its parents) if missing and return it.

    Raises
    ------
    SettingsError
        One line saying why when it cannot be: a file is in the way, or no permission.
    """
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise SettingsError(f"the data directory {path} is a file, not a directory") from None
    except NotADirectoryError:
        raise SettingsError(f"the data directory {path} cannot be created: part of its path is a file") \
            from None
    except OSError as exc:
        raise SettingsError(f"cannot create the data directory {path}: {exc.strerror}") from None
    return path


def _check_key(key: str, origin: str) -> str:
    key = key.strip()
    if not key:
        raise SettingsError(f"empty Tiled API key from {origin}")
    if not _KEY_RE.match(key):
        # Never echo the key itself: only its origin and what is wrong.
        raise SettingsError(
            f"Tiled API key from {origin} must be alphanumeric (A-Z, a-z, 0-9); Tiled refuses others"
        )
    return key


def _read_key_file(path: str | os.PathLike, origin: str) -> str:
    p = Path(path).expanduser()
    try:
        text = p.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read the API key file {p} ({origin}): {exc.strerror}") from None
    return _check_key(text, f"file {p}")


def _check_uri(uri: str, origin: str) -> str:
    uri = uri.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+", uri):
        raise SettingsError(f"Tiled URI from {origin} must start with http:// or https://, got {uri!r}")
    if "api_key=" in uri:
        raise SettingsError(
            f"Tiled URI from {origin} carries an api_key query parameter; give the key through "
            f"{ENV_API_KEY}, {ENV_API_KEY_FILE} or a settings file instead"
        )
    return uri


def _load_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SettingsError(f"cannot read catalog settings file {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
            data = data.get("catalog", data)
        else:
            data = yaml.safe_load(text) or {}
            if isinstance(data, dict):
                data = data.get("catalog", data)
    except Exception as exc:  # noqa: BLE001 - any parse error is a settings error
        raise SettingsError(f"catalog settings file {path} cannot be parsed: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"catalog settings file {path} must hold a mapping (optionally under 'catalog')")
    unknown = set(data) - _FILE_KEYS
    if unknown:
        raise SettingsError(f"unknown key(s) {sorted(unknown)} in {path}; allowed: {sorted(_FILE_KEYS)}")
    return data


@dataclass(frozen=True)
class CatalogSettings:
    """How to reach the Tiled catalog.

    Parameters
    ----------
    uri
        Base URI of a running Tiled server (``http://host:port``), or ``None`` for the embedded
        default: a local server started by laue-live on 127.0.0.1 (:class:`LocalTiledServer`).
    api_key
        Tiled API key, alphanumeric. Hidden in ``repr``. ``None`` for a public server; for the
        embedded server one is generated and kept in ``data_dir/api_key`` (mode 0600).
    data_dir
        Directory of the embedded server: SQLite catalog, array/table storage, logs.
    raw_path, analysis_path
        Container paths (``/``-separated) of raw runs and of analysis runs within the catalog.
    tabular
        Table store of a *new* embedded catalog: ``"duckdb"``, ``"sqlite"`` or ``"postgresql"``
        (catalog and tables in PostgreSQL); ``None``: what the data directory recorded, else duckdb.
    """

    uri: str | None = None
    api_key: str | None = field(default=None, repr=False)
    data_dir: Path = DEFAULT_DATA_DIR
    raw_path: str = "raw"
    analysis_path: str = "analysis"
    tabular: str | None = None

    def __post_init__(self) -> None:
        if self.tabular is not None and self.tabular not in _TABULAR:
            raise SettingsError(f"tabular must be one of {', '.join(_TABULAR)}, got {self.tabular!r}")
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if self.uri is not None:
            object.__setattr__(self, "uri", _check_uri(self.uri, "settings"))
        if self.api_key is not None:
            object.__setattr__(self, "api_key", _check_key(self.api_key, "settings"))
        for name in ("raw_path", "analysis_path"):
            value = getattr(self, name).strip("/")
            if not value or not re.match(r"^[A-Za-z0-9_.\-/]+$", value):
                raise SettingsError(f"{name} must be a non-empty container path, got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return (f"CatalogSettings(uri={self.uri!r}, api_key={key}, data_dir={str(self.data_dir)!r}, "
                f"raw_path={self.raw_path!r}, analysis_path={self.analysis_path!r}, "
                f"tabular={self.tabular!r})")

    @property
    def embedded(self) -> bool:
        """True when no URI is set: laue-live runs its own local Tiled server."""
        return self.uri is None

    def with_server(self, uri: str, api_key: str | None) -> CatalogSettings:
        """Return a copy pointing at a running server (used once the embedded server is up)."""
        return replace(self, uri=uri, api_key=api_key)

    @classmethod
    def load(
        cls,
        *,
        uri: str | None = None,
        api_key: str | None = None,
        api_key_file: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
        settings_file: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CatalogSettings:
        """Build settings from arguments, then environment, then a settings file, then defaults.

        Parameters
        ----------
        uri, api_key, api_key_file, data_dir
            Explicit values; they win over everything else.
        settings_file
            YAML or TOML file with keys ``uri``, ``api_key``, ``api_key_file``, ``data_dir``,
            ``raw_path``, ``analysis_path``, ``tabular`` (optionally under a ``catalog:`` table). Defaults to
            ``$LAUE_LIVE_CATALOG_SETTINGS`` if set.
        env
            Environment to read (default ``os.environ``): ``LAUE_LIVE_TILED_URI``,
            ``LAUE_LIVE_TILED_API_KEY`` (or ``TILED_API_KEY``), ``LAUE_LIVE_TILED_API_KEY_FILE``,
            ``LAUE_LIVE_DATA_DIR``.

        Raises
        ------
        SettingsError
            On a malformed URI, a non-alphanumeric key, an unreadable key file or settings file.
        """
        env = os.environ if env is None else env
        file_data: dict[str, Any] = {}
        settings_file = settings_file or env.get(ENV_SETTINGS_FILE) or None
        if settings_file:
            file_data = _load_file(Path(settings_file).expanduser())

        def pick(arg, env_names, file_key):
            if arg is not None:
                return arg, "argument"
            for name in env_names:
                if env.get(name):
                    return env[name], f"environment {name}"
            if file_data.get(file_key) is not None:
                return file_data[file_key], f"settings file {settings_file}"
            return None, "default"

        uri_v, uri_origin = pick(uri, (ENV_URI,), "uri")
        if uri_v is not None:
            uri_v = _check_uri(str(uri_v), uri_origin)
        # Key: an explicit key beats a key file at the same level; levels as above.
        key = None
        for value, origin, is_file in (
            (api_key, "argument", False), (api_key_file, "argument api_key_file", True),
            (env.get(ENV_API_KEY), f"environment {ENV_API_KEY}", False),
            (env.get(ENV_TILED_API_KEY), f"environment {ENV_TILED_API_KEY}", False),
            (env.get(ENV_API_KEY_FILE), f"environment {ENV_API_KEY_FILE}", True),
            (file_data.get("api_key"), f"settings file {settings_file}", False),
            (file_data.get("api_key_file"), f"settings file {settings_file} api_key_file", True),
        ):
            if value:
                key = _read_key_file(value, origin) if is_file else _check_key(str(value), origin)
                break
        dd, _ = pick(data_dir, (ENV_DATA_DIR,), "data_dir")
        kwargs: dict[str, Any] = {"uri": uri_v, "api_key": key,
                                  "data_dir": Path(dd) if dd is not None else DEFAULT_DATA_DIR}
        for name in ("raw_path", "analysis_path", "tabular"):
            if file_data.get(name):
                kwargs[name] = str(file_data[name])
        return cls(**kwargs)

    def embedded_api_key(self) -> str:
        """Return the API key of the embedded server: this one, or the one kept in ``data_dir/api_key``.

        A new key is generated (with :mod:`secrets`) and stored with mode 0600 on first use, so
        that other ``laue-live`` processes on this machine can reach the same local server.
        """
        if self.api_key:
            return self.api_key
        path = self.data_dir / "api_key"
        if path.exists():
            return _read_key_file(path, "embedded server")
        prepare_data_dir(self.data_dir)
        key = generate_api_key()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        logger.info("generated an API key for the embedded Tiled server in %s", path)
        return key
