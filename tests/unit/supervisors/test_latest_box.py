"""LatestBox: the conflating mailbox books are delivered through."""

from __future__ import annotations

import threading

from actors.base import Inbound, LatestBox
from messages import BookTop


def _inb(symbol: str, bid: float) -> Inbound:
    return Inbound(BookTop(venue="upbit", symbol=symbol, bid=bid, ask=bid + 1, bid_size=1.0, ask_size=1.0),
                   "feed.upbit", "bus")


def test_it_keeps_the_latest_per_topic_in_arrival_order_and_counts_the_rest() -> None:
    box = LatestBox()
    assert box.put(b"book.upbit.BTC", _inb("BTC", 1.0)) is True  # empty before: tell the actor
    assert box.put(b"book.upbit.ETH", _inb("ETH", 2.0)) is False
    assert box.put(b"book.upbit.BTC", _inb("BTC", 3.0)) is False
    got = [(i.msg.symbol, i.msg.bid) for i in box.take()]
    assert got == [("ETH", 2.0), ("BTC", 3.0)]
    assert box.replaced == 1
    assert box.take() == []
    assert box.put(b"book.upbit.BTC", _inb("BTC", 4.0)) is True


def test_no_wake_up_is_lost_between_a_producer_and_a_consumer_thread() -> None:
    """Every put that finds the box empty tells the consumer; the consumer
    always ends up seeing the last value of every topic."""
    box = LatestBox()
    wakeups = threading.Semaphore(0)
    seen: dict[str, float] = {}
    done = threading.Event()
    n = 20_000

    def consumer() -> None:
        while not (done.is_set() and not box._items):  # noqa: SLF001 - a test may look inside
            if wakeups.acquire(timeout=0.01):
                for i in box.take():
                    seen[i.msg.symbol] = i.msg.bid

    t = threading.Thread(target=consumer)
    t.start()
    for k in range(n):
        sym = ("BTC", "ETH", "XRP")[k % 3]
        if box.put(f"book.upbit.{sym}".encode(), _inb(sym, float(k))):
            wakeups.release()
    done.set()
    t.join(10)
    assert not t.is_alive()
    last = {("BTC", "ETH", "XRP")[k % 3]: float(k) for k in range(n)}
    assert seen == last
