"""Publisher and ThreadPublisher: the stream gets every message, the bus a thinned copy."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
import zmq

from messages import BookTop, decode
from supervisors.publisher import Publisher, ThreadPublisher


def _book(symbol: str) -> BookTop:
    return BookTop(venue="upbit", symbol=symbol, bid=1.0, ask=2.0, bid_size=1.0, ask_size=1.0)


def _join(pub: Publisher, *subs: zmq.Socket, tick: Callable[[], None] = lambda: None) -> None:
    """A PUB drops what it sends before a subscription reaches it: probe until
    every subscriber has had a probe, then drop the probes."""
    while not all(s.poll(20) for s in subs):
        pub.publish(_book("PROBE"))
        tick()
    while any(s.poll(50) for s in subs):
        for s in subs:
            while s.poll(0):
                s.recv_multipart()


@pytest.fixture()
def bus() -> tuple[zmq.Context, zmq.Socket, str]:
    ctx = zmq.Context()
    ep = f"inproc://pub-test-{uuid.uuid4().hex}"
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.subscribe(b"")
    sub.bind(ep)
    yield ctx, sub, ep
    sub.close(linger=0)
    ctx.term()


def test_it_numbers_each_topic_on_its_own_and_counts_what_it_sent(bus) -> None:
    ctx, sub, ep = bus
    pub = ThreadPublisher(ctx, ep, 1000, "feed.upbit", 7)
    try:
        _join(pub, sub)
        for sym in ("BTC", "ETH", "BTC"):
            pub.publish(_book(sym))
        got = []
        for _ in range(3):
            assert sub.poll(2000)
            topic, frame = sub.recv_multipart()
            env = decode(frame)
            got.append((topic, env.sender, env.incarnation, env.seq, env.msg.symbol))
    finally:
        pub.close()
    assert got == [(b"book.upbit.BTC", "feed.upbit", 7, 1, "BTC"),
                   (b"book.upbit.ETH", "feed.upbit", 7, 1, "ETH"),
                   (b"book.upbit.BTC", "feed.upbit", 7, 2, "BTC")]
    assert pub.sent >= 3


def test_only_the_thread_that_made_it_may_publish_and_a_closed_one_sends_nothing(bus) -> None:
    ctx, sub, ep = bus
    pub = ThreadPublisher(ctx, ep, 1000, "feed.upbit", 1)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            pub.publish(_book("BTC"))
        except RuntimeError as e:
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1 and "thread that made it" in str(errors[0])
    pub.close()
    pub.close()  # twice is fine
    pub.publish(_book("BTC"))
    assert pub.sent == 0


def _drain(sock: zmq.Socket, want: int) -> list[tuple[bytes, int, str]]:
    out = []
    while len(out) < want and sock.poll(2000):
        topic, frame = sock.recv_multipart()
        env = decode(frame)
        out.append((topic, env.seq, env.msg.symbol))
    assert not sock.poll(50), "more frames than expected"
    return out


def test_the_stream_gets_every_book_and_the_bus_one_per_interval_numbered_without_holes(bus) -> None:
    ctx, bus_sub, ep = bus
    stream_ep = f"inproc://stream-test-{uuid.uuid4().hex}"
    now = [100.0]
    bus_pub = ctx.socket(zmq.PUB)
    bus_pub.connect(ep)
    stream_pub = ctx.socket(zmq.PUB)
    stream_pub.bind(stream_ep)
    stream_sub = ctx.socket(zmq.SUB)
    stream_sub.subscribe(b"")
    stream_sub.connect(stream_ep)
    pub = Publisher(bus_pub, stream_pub, "feed.upbit", 3, stream_prefixes=("book.",),
                    bus_every={"book.": 0.1}, clock=lambda: now[0])
    try:
        def past_the_interval() -> None:  # so that every probe reaches the bus too
            now[0] += 1.0

        _join(pub, bus_sub, stream_sub, tick=past_the_interval)
        sent0 = pub.sent
        for dt, sym in ((0.0, "BTC"), (0.03, "BTC"), (0.0, "ETH"), (0.05, "BTC"), (0.05, "BTC"), (0.02, "ETH")):
            now[0] += dt
            pub.publish(_book(sym))
        # t = 0 BTC, 0.03 BTC, 0.03 ETH, 0.08 BTC, 0.13 BTC (0.13 s after the last bus copy), 0.15 ETH
        assert _drain(stream_sub, 6) == [(b"book.upbit.BTC", 1, "BTC"), (b"book.upbit.BTC", 2, "BTC"),
                                         (b"book.upbit.ETH", 1, "ETH"), (b"book.upbit.BTC", 3, "BTC"),
                                         (b"book.upbit.BTC", 4, "BTC"), (b"book.upbit.ETH", 2, "ETH")]
        assert _drain(bus_sub, 4) == [(b"book.upbit.BTC", 1, "BTC"), (b"book.upbit.ETH", 1, "ETH"),
                                      (b"book.upbit.BTC", 2, "BTC"), (b"book.upbit.ETH", 2, "ETH")]
        assert pub.sent - sent0 == 10 and pub.thinned >= 2
    finally:
        pub.close()
        stream_sub.close(linger=0)


def test_topics_without_an_interval_go_to_the_bus_every_time_and_not_to_the_stream(bus) -> None:
    ctx, bus_sub, ep = bus
    bus_pub = ctx.socket(zmq.PUB)
    bus_pub.connect(ep)
    pub = Publisher(bus_pub, None, "engine", 1, stream_prefixes=("opp.",), bus_every={"opp.": 10.0})
    try:
        _join(pub, bus_sub)
        for sym in ("BTC", "BTC", "BTC"):
            pub.publish(_book(sym))
        assert [seq for _, seq, _ in _drain(bus_sub, 3)] == [1, 2, 3]
    finally:
        pub.close()
