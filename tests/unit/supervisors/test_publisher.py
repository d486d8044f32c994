"""ThreadPublisher: a producer thread's own PUB socket to the bus."""

from __future__ import annotations

import threading
import uuid

import pytest
import zmq

from messages import BookTop, decode
from supervisors.publisher import ThreadPublisher


def _book(symbol: str) -> BookTop:
    return BookTop(venue="upbit", symbol=symbol, bid=1.0, ask=2.0, bid_size=1.0, ask_size=1.0)


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
        # A PUB drops what it sends before the subscription reaches it: probe until it has.
        while not sub.poll(20):
            pub.publish(_book("PROBE"))
        while sub.poll(50):
            sub.recv_multipart()
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
