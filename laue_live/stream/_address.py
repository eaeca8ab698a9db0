"""0MQ addresses and CURVE key settings: loopback by default, strings only, secrets never logged."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from laue_live._errors import SettingsError

__all__ = [
    "LOOPBACK",
    "normalize_address",
    "bind_socket",
    "bound_address",
    "CurveServer",
    "CurveClient",
    "curve_server_from_env",
    "curve_client_from_env",
]

logger = logging.getLogger(__name__)

#: Default host of every socket laue-live binds.
LOOPBACK = "127.0.0.1"
_ALL_INTERFACES = {"*", "0.0.0.0", "::", "[::]"}


def normalize_address(address: str, *, bind: bool) -> str:
    """Turn ``"host:port"`` (or a full 0MQ endpoint) into a 0MQ endpoint string.

    Parameters
    ----------
    address
        ``"127.0.0.1:5577"``, ``"tcp://127.0.0.1:5577"``, ``"ipc:///tmp/sock"``. Port ``0`` (or
        ``*``) asks the operating system for a free port; it is only allowed when binding.
    bind
        Whether the socket binds (server) or connects (client).

    Raises
    ------
    SettingsError
        For a bare integer (bluesky turns ``5567`` into ``0.0.0.0:5567``, i.e. every interface), a
        missing host or port, or an unknown transport.
    """
    if isinstance(address, bool | int):
        raise SettingsError(
            f"0MQ address {address!r}: give 'host:port' as a string (e.g. '127.0.0.1:{address}'); "
            "a bare port number would bind every network interface"
        )
    if not isinstance(address, str) or not address.strip():
        raise SettingsError(f"0MQ address must be a non-empty 'host:port' string, not {address!r}")
    text = address.strip()
    proto, sep, rest = text.partition("://")
    if not sep:
        proto, rest = "tcp", text
    if proto in ("ipc", "inproc"):
        return f"{proto}://{rest}"
    if proto != "tcp":
        raise SettingsError(f"0MQ address {address!r}: unsupported transport {proto!r} (tcp, ipc, inproc)")
    host, colon, port = rest.rpartition(":")
    if not colon or not host:
        # "5579" lacks its host, "localhost" its port: suggest the part that is missing
        example = f"{LOOPBACK}:{rest}" if rest.isdigit() else f"{rest or LOOPBACK}:PORT"
        what = "host" if rest.isdigit() else "port"
        raise SettingsError(f"0MQ address {address!r} lacks a {what}: write 'host:port', e.g. '{example}'")
    if port in ("0", "*"):
        if not bind:
            raise SettingsError(f"0MQ address {address!r}: a client must connect to a real port, not {port}")
        port = "*"
    else:
        try:
            number = int(port)
        except ValueError:
            raise SettingsError(f"0MQ address {address!r}: port {port!r} is not a number") from None
        if not 0 < number < 65536:
            raise SettingsError(f"0MQ address {address!r}: port {number} out of range")
    if bind and host in _ALL_INTERFACES:
        logger.warning("binding %s: this listens on EVERY network interface, not only loopback", address)
    return f"tcp://{host}:{port}"


def bind_socket(socket, address: str) -> str:
    """Bind ``socket`` to ``address`` (``"host:port"``); return the ``host:port`` it listens on.

    Raises
    ------
    SettingsError
        The address is malformed, already in use (another ``laue-live serve`` or proxy?) or not
        an address of this machine.
    """
    endpoint = normalize_address(address, bind=True)
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EADDRINUSE:
            raise SettingsError(f"cannot listen on {address}: the port is already in use (another laue-live "
                                "serve or proxy?); stop that process or choose another port") from None
        raise SettingsError(f"cannot listen on {address}: {exc.strerror}") from None
    return bound_address(socket)


def bound_address(socket) -> str:
    """Return the ``host:port`` (or ``ipc://...``) a bound socket listens on, port 0 resolved."""
    endpoint = socket.getsockopt(zmq.LAST_ENDPOINT).decode()
    return endpoint.removeprefix("tcp://")


@dataclass(frozen=True)
class CurveServer:
    """CURVE settings of a socket that binds (publisher, proxy).

    Parameters
    ----------
    secret_file
        The server's secret certificate (``name.key_secret`` from :func:`zmq.auth.create_certificates`).
    client_keys_dir
        Folder of the public certificates (``*.key``) of the clients that may connect. ``None``: any
        client that knows the server's public key may connect (traffic is still encrypted).
    """

    secret_file: Path
    client_keys_dir: Path | None = None

    def __repr__(self) -> str:  # paths only: key material never reaches a log
        return f"CurveServer(secret_file={str(self.secret_file)!r}, client_keys_dir={self.client_keys_dir!r})"


@dataclass(frozen=True)
class CurveClient:
    """CURVE settings of a socket that connects (subscriber, dispatcher).

    Parameters
    ----------
    secret_file
        The client's secret certificate (``name.key_secret``).
    server_public_file
        The server's public certificate (``name.key``).
    """

    secret_file: Path
    server_public_file: Path


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read CURVE certificate {path}: {exc}") from None
    if secret and secret_key is None:
        raise SettingsError(f"CURVE certificate {path} holds no secret key (use the .key_secret file)")
    return public, secret_key


def apply_curve_server(socket, curve: CurveServer | None, *, auth=None, domain: str = "*"):
    """Make ``socket`` a CURVE server.

    Parameters
    ----------
    socket
        The 0MQ socket (before ``bind``).
    curve
        Keys, or ``None`` for no CURVE.
    auth
        An authenticator already running on the socket's context (a context has at most one).
    domain
        ZAP domain of this socket, so that one authenticator can hold several allow-lists.

    Returns
    -------
    The authenticator (started here if ``auth`` was ``None`` and one is needed), to stop later.
    """
    if curve is None:
        return auth
    public, secret = _load(Path(curve.secret_file), secret=True)
    if curve.client_keys_dir is not None:
        # Without a ZAP handler libzmq accepts any client that completes the handshake; the
        # authenticator restricts clients to the listed public keys.
        if auth is None:
            auth = ThreadAuthenticator(socket.context)
            auth.start()
        auth.configure_curve(domain=domain, location=str(curve.client_keys_dir))
        if domain != "*":
            socket.zap_domain = domain.encode()
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.setsockopt(zmq.CURVE_SERVER, 1)
    return auth


def apply_curve_client(socket, curve: CurveClient | None) -> None:
    """Make ``socket`` a CURVE client of the server whose public key is in ``curve``."""
    if curve is None:
        return
    public, secret = _load(Path(curve.secret_file), secret=True)
    server_public, _ = _load(Path(curve.server_public_file), secret=False)
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_serverkey = server_public


def curve_server_from_env(prefix: str = "LAUE_LIVE_CURVE") -> CurveServer | None:
    """CURVE server settings from ``{prefix}_SERVER_SECRET`` and ``{prefix}_CLIENT_KEYS`` (optional)."""
    secret = os.environ.get(f"{prefix}_SERVER_SECRET")
    if not secret:
        return None
    keys = os.environ.get(f"{prefix}_CLIENT_KEYS")
    return CurveServer(Path(secret), Path(keys) if keys else None)


def curve_client_from_env(prefix: str = "LAUE_LIVE_CURVE") -> CurveClient | None:
    """CURVE client settings from ``{prefix}_CLIENT_SECRET`` and ``{prefix}_SERVER_PUBLIC``."""
    secret = os.environ.get(f"{prefix}_CLIENT_SECRET")
    server = os.environ.get(f"{prefix}_SERVER_PUBLIC")
    if not secret and not server:
        return None
    if not (secret and server):
        raise SettingsError(f"set both {prefix}_CLIENT_SECRET and {prefix}_SERVER_PUBLIC, or neither")
    return CurveClient(Path(secret), Path(server))
