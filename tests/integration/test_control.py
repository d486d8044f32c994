"""The control channel under abuse: whatever arrives on the control socket,
the daemon answers with an error reply and keeps running."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import zmq

from messages import Command, Heartbeat, Reply, decode, encode
from messages.codec import MAX_FRAME_BYTES
from tests.support.daemon import ACTORS, DaemonRun


@pytest.fixture(scope="module")
def shared(daemon_module) -> DaemonRun:
    return daemon_module()


@pytest.fixture
def raw(shared: DaemonRun) -> Iterator[zmq.Socket]:
    """A raw DEALER on the daemon's control endpoint, as any local client could open."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(shared.endpoints().control)
    try:
        yield s
    finally:
        s.close(linger=0)


def _reply(s: zmq.Socket, timeout_s: float = 5.0) -> Reply:
    assert s.poll(int(timeout_s * 1000)), "no reply from the daemon"
    frames = s.recv_multipart()
    assert len(frames) == 1
    msg = decode(frames[0]).msg
    assert type(msg) is Reply
    return msg


def _assert_unaffected(shared: DaemonRun) -> None:
    st = shared.status()
    assert st["pid"] == shared.pid
    assert {a["name"]: a["state"] for a in st["actors"]} == dict.fromkeys(ACTORS, "running")


@pytest.mark.parametrize("junk", [b"", b"\x00", b"hello daemon", b"\xc1\xc1\xc1", b"\x96\x01\xa3cmd",
                                  b"\xdd\xff\xff\xff\xff", bytes(range(256))],
                         ids=["empty", "nul", "text", "reserved-msgpack", "truncated-envelope",
                              "huge-array-header", "all-bytes"])
def test_garbage_bytes_get_an_error_reply(shared: DaemonRun, raw: zmq.Socket, junk: bytes) -> None:
    raw.send(junk)

    reply = _reply(raw)

    assert reply.ok is False and reply.error_code == "bad_request"
    _assert_unaffected(shared)


def test_random_frames_all_get_error_replies(shared: DaemonRun, raw: zmq.Socket) -> None:
    rng = random.Random(20240601)
    frames = [rng.randbytes(rng.randint(1, 300)) for _ in range(200)]

    for f in frames:
        raw.send(f)
    replies = [_reply(raw) for _ in frames]

    assert all(not r.ok and r.error_code == "bad_request" for r in replies)
    _assert_unaffected(shared)


def test_multi_frame_junk_gets_one_error_reply(shared: DaemonRun, raw: zmq.Socket) -> None:
    valid = encode(Command(command="status"), "test", 0, 0)
    raw.send_multipart([b"junk", valid, b"\xff" * 10])

    reply = _reply(raw)

    assert reply.ok is False and reply.error_code == "bad_request"
    assert not raw.poll(200), "one request must get exactly one reply"
    _assert_unaffected(shared)


def test_an_oversized_frame_gets_an_error_reply(shared: DaemonRun, raw: zmq.Socket) -> None:
    raw.send(b"\x00" * (MAX_FRAME_BYTES + 1))

    reply = _reply(raw)

    assert reply.ok is False and reply.error_code == "bad_request"
    _assert_unaffected(shared)


def test_a_message_that_is_not_a_command_gets_an_error_reply(shared: DaemonRun, raw: zmq.Socket) -> None:
    hb = Heartbeat(actor="engine", incarnation=1, pid=1, loop_latency_ms=0.0, rss_mb=0.0,
                   msgs_in=0, msgs_out=0, gaps=0, decode_errors=0)
    raw.send(encode(hb, "intruder", 0, 0))

    reply = _reply(raw)

    assert reply.ok is False and reply.error_code == "bad_request"
    before = shared.actors()["engine"]
    assert before["state"] == "running" and before["pid"] != 1
    _assert_unaffected(shared)


def test_an_unknown_command_gets_an_error_reply_naming_the_known_ones(shared: DaemonRun,
                                                                      raw: zmq.Socket) -> None:
    req = Command(command="self_destruct", args={"now": True})
    raw.send(encode(req, "test", 0, 0))

    reply = _reply(raw)

    assert reply.ok is False and reply.error_code == "unknown_command"
    assert reply.request_id == req.id
    assert "status" in reply.error_reason
    _assert_unaffected(shared)


@pytest.mark.parametrize("args,code", [({}, "bad_args"), ({"actor": 7}, "bad_args"),
                                       ({"actor": "nobody"}, "bad_actor")])
def test_a_restart_with_bad_arguments_gets_an_error_reply(shared: DaemonRun, raw: zmq.Socket,
                                                          args: dict, code: str) -> None:
    pids = {n: a["pid"] for n, a in shared.actors().items()}
    req = Command(command="restart", args=args)
    raw.send(encode(req, "test", 0, 0))

    reply = _reply(raw)

    assert reply.ok is False and reply.error_code == code and reply.request_id == req.id
    assert {n: a["pid"] for n, a in shared.actors().items()} == pids
    _assert_unaffected(shared)


def test_a_command_forwarded_to_an_actor_that_refuses_it_gets_its_error(shared: DaemonRun,
                                                                       raw: zmq.Socket) -> None:
    req = Command(command="arm", args={"confirm": ""})  # the test guard has no arm command
    raw.send(encode(req, "test", 0, 0))

    reply = _reply(raw, timeout_s=8)

    assert reply.ok is False and reply.request_id == req.id and reply.error_code == "unknown_command"
    _assert_unaffected(shared)


def test_many_clients_at_once_each_get_their_own_answer(shared: DaemonRun) -> None:
    ctx = zmq.Context.instance()
    socks = []
    try:
        reqs = []
        for i in range(20):
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(shared.endpoints().control)
            socks.append(s)
            req = Command(command="ping") if i % 2 else Command(command="nope")
            s.send(encode(req, "test", 0, 0))
            reqs.append(req)

        replies = [_reply(s) for s in socks]

        for req, rep in zip(reqs, replies, strict=True):
            assert rep.request_id == req.id
            assert rep.ok is (req.command == "ping")
            if rep.ok:
                assert rep.result == {"pong": True, "pid": shared.pid}
    finally:
        for s in socks:
            s.close(linger=0)
