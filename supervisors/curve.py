"""CURVE on every tcp socket (ZeroMQ's own ``zmq.auth``), and no clear text
beyond loopback.

A host's keys live in one directory (``bus.curve.keys_dir``)::

    <host>.key_secret       this host's key pair (``arbctl keys new <host>``)
    authorized/<peer>.key   the public key of every peer it accepts; the same
                            files say which key each peer's servers must show

Every process makes its ZeroMQ context with :func:`context_for`. Its sockets
apply CURVE themselves when they bind or connect a ``tcp://`` endpoint: a
bind is a CURVE server, whose process runs a ZAP handler (a
``ThreadAuthenticator``) that admits only the authorised keys and the host's
own and logs every refusal; a connect is a CURVE client that insists on the
public key of the host serving that endpoint. Without keys, a bind or connect
beyond loopback raises :class:`CurveError` - nothing in clear text leaves a
host, whatever a caller forgets.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
from zmq.auth.certs import load_certificate
from zmq.auth.thread import ThreadAuthenticator

from supervisors import logjson

if TYPE_CHECKING:
    from supervisors.config import ArbdConfig
    from supervisors.endpoints import Endpoints

log = logging.getLogger("arbd.curve")

MAIN = "main"  # the host that runs `arbd start`; nodes have names of their own
AUTHORIZED = "authorized"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A dead tcp peer (a cut link) is noticed by ZMTP heartbeats and reconnected,
# instead of leaving a half-open connection that swallows what is sent.
HEARTBEAT_IVL_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
RECONNECT_IVL_MAX_MS = 2000
REFUSAL_LOG_EVERY_S = 10.0


class CurveError(Exception):
    """A key or endpoint problem, worded as one line for the operator."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tcp_host(endpoint: str) -> str | None:
    """The host part of a ``tcp://HOST:PORT`` endpoint, else None."""
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint[len("tcp://"):]
    host, _, _port = rest.rpartition(":")
    return host or rest


# -- keys ------------------------------------------------------------------------

@dataclass(frozen=True)
class HostKeys:
    host: str
    public: bytes  # z85
    secret: bytes  # z85
    peers: dict[str, bytes] = field(default_factory=dict)  # peer name -> z85 public key

    def server_key(self, host: str) -> bytes:
        if host == self.host:
            return self.public
        key = self.peers.get(host)
        if key is None:
            raise CurveError(f"no public key for host {host!r}: put {host}.key in the "
                             f"{AUTHORIZED}/ folder of this host's bus.curve.keys_dir")
        return key

    def names_by_key(self) -> dict[bytes, str]:
        return {**{k: n for n, k in self.peers.items()}, self.public: self.host}


def load_keys(keys_dir: str, host: str) -> HostKeys:
    """This host's key pair and its authorised peers, or a one-line CurveError."""
    base = Path(keys_dir)
    if not base.is_dir():
        raise CurveError(f"bus.curve.keys_dir {keys_dir!r} is not a directory "
                         f"(make keys with: arbctl keys new {host} --dir {keys_dir})")
    secret_file = base / f"{host}.key_secret"
    try:
        public, secret = load_certificate(secret_file)
    except (OSError, ValueError):
        raise CurveError(f"no CURVE key pair for host {host!r} at {secret_file} "
                         f"(make one with: arbctl keys new {host} --dir {keys_dir})") from None
    if not secret:
        raise CurveError(f"{secret_file} holds no secret key")
    mode = secret_file.stat().st_mode & 0o077
    if mode:
        raise CurveError(f"{secret_file} is readable by others (mode {oct(secret_file.stat().st_mode & 0o777)}); "
                         f"chmod 600 it")
    peers: dict[str, bytes] = {}
    auth = base / AUTHORIZED
    if auth.is_dir():
        for f in sorted(auth.glob("*.key")):
            try:
                key, _ = load_certificate(f)
            except (OSError, ValueError) as e:
                raise CurveError(f"unreadable public key {f}: {e}") from None
            peers[f.name[: -len(".key")]] = key
    return HostKeys(host, public, secret, peers)


def new_keys(keys_dir: str, name: str) -> tuple[Path, Path, str]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600, never over an
    existing file) in the format ``zmq.auth.load_certificate`` reads."""
    if not NAME_RE.match(name):
        raise CurveError(f"key name {name!r}: use letters, digits, '.', '_' or '-' (a host name)")
    base = Path(keys_dir)
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    public, secret = zmq.curve_keypair()
    pub_file, sec_file = base / f"{name}.key", base / f"{name}.key_secret"
    for f in (pub_file, sec_file):
        if f.exists():
            raise CurveError(f"{f} exists; not overwriting a key")
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    _write_private(sec_file, f"#   ZeroMQ CURVE **Secret** Certificate for {name} (arbctl keys new, {stamp})\n"
                             f"#   Keep it on this host only.\n\nmetadata\ncurve\n"
                             f"    public-key = \"{public.decode()}\"\n    secret-key = \"{secret.decode()}\"\n")
    _write_private(pub_file, f"#   ZeroMQ CURVE Public Certificate for {name} (arbctl keys new, {stamp})\n"
                             f"#   Copy it to authorized/ on every host that talks to {name}.\n\n"
                             f"metadata\ncurve\n    public-key = \"{public.decode()}\"\n")
    return pub_file, sec_file, public.decode()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


# -- sockets -----------------------------------------------------------------------

class SecureSocket(zmq.Socket):
    """A socket that secures itself on a tcp bind or connect (see module docs)."""

    def bind(self, addr: str) -> Any:
        self._secure(addr, server=True)
        return super().bind(addr)

    def connect(self, addr: str) -> Any:
        self._secure(addr, server=False)
        return super().connect(addr)

    def _secure(self, addr: str, server: bool) -> None:
        host = tcp_host(addr)
        if host is None:
            return
        ctx: SecureContext = self.context  # type: ignore[assignment]
        self.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        keys = ctx.keys
        if keys is None:
            if not is_loopback(host):
                raise CurveError(f"{addr}: tcp beyond loopback needs CURVE (bus.curve.enabled: true "
                                 f"with keys); refusing clear text")
            return
        self.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
        self.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
        if server:
            ctx.start_auth()
            self.setsockopt(zmq.CURVE_SERVER, 1)
        else:
            self.setsockopt(zmq.CURVE_SERVERKEY, keys.server_key(ctx.server_of(addr)))


class SecureContext(zmq.Context):
    """A context whose sockets are :class:`SecureSocket` (see module docs)."""

    _socket_class = SecureSocket
    keys: HostKeys | None = None
    server_of: Callable[[str], str] = staticmethod(lambda addr: MAIN)  # type: ignore[assignment]
    _auth: ThreadAuthenticator | None = None
    _auth_lock: threading.Lock | None = None

    def start_auth(self) -> None:
        """The ZAP handler of this process: once, on the first CURVE bind."""
        assert self._auth_lock is not None
        with self._auth_lock:
            if self._auth is not None or self.keys is None:
                return
            auth = _LoggingAuthenticator(self)
            auth.start()
            auth.configure_curve_callback("*", _AllowedKeys(self.keys, auth))
            self._auth = auth

    def stop_auth(self) -> None:
        if self._auth_lock is None:
            return
        with self._auth_lock:
            auth, self._auth = self._auth, None
        if auth is not None:
            with contextlib.suppress(zmq.ZMQError):
                auth.stop()

    def destroy(self, linger: int | None = None) -> None:
        self.stop_auth()
        super().destroy(linger)

    def term(self) -> None:
        self.stop_auth()
        super().term()


def context_for(keys: HostKeys | None, server_of: Callable[[str], str] | None = None) -> SecureContext:
    """The context for this process: CURVE with ``keys``, else loopback-only tcp.
    ``server_of(endpoint)`` names the host that binds a tcp endpoint."""
    ctx = SecureContext()
    ctx.keys = keys
    ctx._auth_lock = threading.Lock()
    if server_of is not None:
        ctx.server_of = server_of
    return ctx


def context_from_config(cfg: ArbdConfig, endpoints: Endpoints | None = None) -> SecureContext:
    """This process's context under ``cfg`` (its host is ``cluster.host``)."""
    curve = cfg.bus.curve
    keys = load_keys(curve.keys_dir, cfg.cluster.host) if curve.enabled else None
    return context_for(keys, endpoints.server_of if endpoints is not None else None)


class _LoggingAuthenticator(ThreadAuthenticator):
    """ThreadAuthenticator that remembers the address of the peer being
    checked, so a refusal can say who was refused."""

    peer: str = ""

    async def handle_zap_message(self, msg: list[bytes]) -> None:
        self.peer = msg[3].decode(errors="replace") if len(msg) > 3 else "?"
        await super().handle_zap_message(msg)

    def stop(self) -> None:
        # ThreadAuthenticator.stop joins its thread without a limit; a process
        # that is shutting down must not hang on it (the thread is a daemon).
        if self.pipe:
            with contextlib.suppress(zmq.ZMQError):
                self.pipe.send(b"TERMINATE", zmq.NOBLOCK)
            if self.thread is not None:
                self.thread.join(2.0)
            self.thread = None  # type: ignore[assignment]
            self.pipe.close(linger=0)
            self.pipe = None  # type: ignore[assignment]
        if self.zap_socket:
            self.zap_socket.close(linger=0)
        self.zap_socket = None  # type: ignore[assignment]


class _AllowedKeys:
    """The CURVE credentials check: the authorised keys and the host's own."""

    def __init__(self, keys: HostKeys, auth: _LoggingAuthenticator) -> None:
        self.known = keys.names_by_key()
        self.auth = auth
        self.refused = 0
        self._logged: dict[tuple[str, bytes], float] = {}

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.known:
            return True
        self.refused += 1
        peer = self.auth.peer
        now = time.monotonic()
        if now - self._logged.get((peer, key), -1e18) >= REFUSAL_LOG_EVERY_S:
            self._logged[(peer, key)] = now
            logjson.log(log, logging.WARNING, f"refused a CURVE peer from {peer}: its key is not authorised",
                        peer=peer, client_key=key.decode(errors="replace"), refused_total=self.refused)
        return False


# -- handshake failures ---------------------------------------------------------------

HANDSHAKE_FAILURES = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                      | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_FAILURE_WHY = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "protocol error (a peer without CURVE, or holding a wrong server key)",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "key not authorised",
}


class HandshakeWatch:
    """Logs every failed handshake on one server socket (a peer speaking
    clear text to a CURVE server never reaches the ZAP handler). Read
    :attr:`socket` when the poller says so; owned by the server's thread."""

    def __init__(self, sock: zmq.Socket, what: str) -> None:
        self.socket = sock.get_monitor_socket(HANDSHAKE_FAILURES)
        self.what = what
        self.failures = 0
        self._logged = -1e18

    def read(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        for _ in range(100):
            try:
                ev = recv_monitor_message(self.socket, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.failures += 1
            now = time.monotonic()
            if now - self._logged >= 1.0:
                self._logged = now
                why = _FAILURE_WHY.get(ev.get("event", 0), "handshake failed")
                logjson.log(log, logging.WARNING, f"refused a peer on the {self.what}: {why}",
                            endpoint=bytes(ev.get("endpoint", b"")).decode(errors="replace"),
                            failures=self.failures)

    def close(self) -> None:
        self.socket.close(linger=0)
