"""CURVE keys and sockets (supervisors.curve): keys on disk, the loopback rule,
and real handshakes on loopback - an authorised key gets through, an unknown
key or a wrong server key does not, and a refusal is logged."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from supervisors.curve import (
    CurveError,
    HostKeys,
    SecureContext,
    context_for,
    is_loopback,
    load_keys,
    new_keys,
    tcp_host,
)


def keys_for(base: Path, host: str, *peers: str) -> HostKeys:
    """``host``'s key dir under ``base`` with ``peers`` authorised (their keys made if missing)."""
    d = base / host
    if not (d / f"{host}.key_secret").exists():
        new_keys(str(d), host)
    (d / "authorized").mkdir(exist_ok=True)
    for p in peers:
        pd = base / p
        if not (pd / f"{p}.key").exists():
            new_keys(str(pd), p)
        (d / "authorized" / f"{p}.key").write_bytes((pd / f"{p}.key").read_bytes())
    return load_keys(str(d), host)


@pytest.fixture
def contexts() -> Iterator[list[SecureContext]]:
    made: list[SecureContext] = []
    yield made
    for c in made:
        c.destroy(linger=0)


def test_new_keys_are_private_files_and_never_overwritten(tmp_path: Path) -> None:
    pub, sec, public = new_keys(str(tmp_path / "k"), "seoul")

    assert (pub.stat().st_mode & 0o777, sec.stat().st_mode & 0o777) == (0o600, 0o600)
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o700
    assert len(public) == 40 and public in pub.read_text() and "secret-key" in sec.read_text()
    with pytest.raises(CurveError, match="exists"):
        new_keys(str(tmp_path / "k"), "seoul")
    with pytest.raises(CurveError, match="host name"):
        new_keys(str(tmp_path / "k"), "../evil")


def test_load_keys_says_what_is_missing_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(CurveError, match="is not a directory"):
        load_keys(str(tmp_path / "nowhere"), "main")
    new_keys(str(tmp_path), "seoul")
    with pytest.raises(CurveError, match="no CURVE key pair for host 'main'.*arbctl keys new main"):
        load_keys(str(tmp_path), "main")


def test_a_secret_key_others_can_read_is_refused(tmp_path: Path) -> None:
    _, sec, _ = new_keys(str(tmp_path), "main")
    os.chmod(sec, 0o644)

    with pytest.raises(CurveError, match="chmod 600"):
        load_keys(str(tmp_path), "main")


def test_authorised_peers_are_read_by_name(tmp_path: Path) -> None:
    keys = keys_for(tmp_path, "main", "seoul", "tokyo")

    assert sorted(keys.peers) == ["seoul", "tokyo"]
    assert keys.server_key("main") == keys.public
    with pytest.raises(CurveError, match="no public key for host 'osaka'"):
        keys.server_key("osaka")


def test_loopback_and_tcp_hosts() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.3.2.1") and is_loopback("localhost")
    assert is_loopback("[::1]")
    assert not is_loopback("198.18.0.1") and not is_loopback("0.0.0.0") and not is_loopback("example.com")
    assert tcp_host("tcp://198.18.0.2:7800") == "198.18.0.2"
    assert tcp_host("ipc:///tmp/x") is None


def test_without_keys_tcp_beyond_loopback_is_refused_before_any_traffic(contexts: list[SecureContext]) -> None:
    ctx = context_for(None)
    contexts.append(ctx)
    s = ctx.socket(zmq.PUB)
    s.setsockopt(zmq.LINGER, 0)

    with pytest.raises(CurveError, match="needs CURVE"):
        s.bind("tcp://198.18.0.1:7000")
    with pytest.raises(CurveError, match="needs CURVE"):
        s.connect("tcp://0.0.0.0:7000")
    s.bind("tcp://127.0.0.1:0")  # loopback stays allowed in clear text
    s.close(linger=0)


def _server(ctx: SecureContext) -> tuple[zmq.Socket, str]:
    srv = ctx.socket(zmq.ROUTER)
    srv.setsockopt(zmq.LINGER, 0)
    srv.bind("tcp://127.0.0.1:0")
    return srv, srv.getsockopt_string(zmq.LAST_ENDPOINT)


def _echo_once(srv: zmq.Socket, client: zmq.Socket, wait_ms: int) -> bool:
    try:  # a DEALER whose handshake was refused has no peer: a blocking send would wait forever
        client.send(b"ping", zmq.NOBLOCK)
    except zmq.Again:
        return False
    if not srv.poll(wait_ms):
        return False
    ident, body = srv.recv_multipart()
    srv.send_multipart([ident, body])
    return client.poll(wait_ms) > 0


def test_an_authorised_key_gets_through_and_an_unknown_one_is_refused_and_logged(
        tmp_path: Path, contexts: list[SecureContext], caplog: pytest.LogCaptureFixture) -> None:
    main_keys = keys_for(tmp_path, "main", "seoul")
    seoul_keys = keys_for(tmp_path, "seoul", "main")
    new_keys(str(tmp_path / "rogue"), "tokyo")  # a key of its own making: main does not know it
    own = load_keys(str(tmp_path / "rogue"), "tokyo")
    rogue = HostKeys("tokyo", own.public, own.secret, {"main": main_keys.public})
    server_ctx = context_for(main_keys)
    ok_ctx = context_for(seoul_keys, lambda ep: "main")
    rogue_ctx = context_for(rogue, lambda ep: "main")
    contexts += [server_ctx, ok_ctx, rogue_ctx]
    srv, ep = _server(server_ctx)
    good = ok_ctx.socket(zmq.DEALER)
    bad = rogue_ctx.socket(zmq.DEALER)
    for s in (good, bad):
        s.setsockopt(zmq.LINGER, 0)

    def refusals() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "not authorised" in r.getMessage()]

    with caplog.at_level(logging.WARNING, logger="arbd.curve"):
        good.connect(ep)
        bad.connect(ep)
        assert _echo_once(srv, good, 5000)
        deadline = time.monotonic() + 5.0  # the ZAP thread logs it when the handshake comes
        while not refusals() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _echo_once(srv, bad, 300)

    assert refusals() and refusals()[0].fields["peer"] == "127.0.0.1"  # type: ignore[attr-defined]
    assert refusals()[0].fields["client_key"] == rogue.public.decode()  # type: ignore[attr-defined]
    for s in (srv, good, bad):
        s.close(linger=0)


def test_a_client_expecting_another_server_key_gets_nothing(tmp_path: Path, contexts: list[SecureContext]) -> None:
    main_keys = keys_for(tmp_path, "main", "seoul")
    seoul_keys = keys_for(tmp_path, "seoul", "main")
    impostor = HostKeys("seoul", seoul_keys.public, seoul_keys.secret, {"main": zmq.curve_keypair()[0]})
    server_ctx, client_ctx = context_for(main_keys), context_for(impostor, lambda ep: "main")
    contexts += [server_ctx, client_ctx]
    srv, ep = _server(server_ctx)
    client = client_ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(ep)

    assert not _echo_once(srv, client, 500)
    srv.close(linger=0)
    client.close(linger=0)
