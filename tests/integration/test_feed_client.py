"""FeedClient against the embedded exchange (in-process SimThread on
ephemeral 127.0.0.1 ports): books for every coin and the FX book, and
survival of each injected fault with the right counters. Every wait polls
with a deadline; fixtures always stop the sim and every client."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import venues
from messages.market import BookTop
from venues.binance import BinanceAdapter
from venues.feed_client import FeedClient, FeedStats
from venues.sim.config import SimConfig
from venues.sim.testing import admin, sim_thread
from venues.upbit import UpbitAdapter

COINS = ("BTC", "ETH", "XRP")
EXPECTED = {"upbit": {"BTC", "ETH", "XRP", "USDT"}, "binance": {"BTC", "ETH", "XRP"}}

pytestmark = pytest.mark.timeout(60)


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def post_fault(sim: dict[str, Any], **body: Any) -> dict[str, Any]:
    status, reply = admin(sim, "POST", "/_sim/fault", body)
    assert status == 200, reply
    return reply


def clear_faults(sim: dict[str, Any]) -> None:
    assert admin(sim, "DELETE", "/_sim/fault")[1]["ok"]


class Books:
    """Collects BookTops from the feed thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latest: dict[tuple[str, str], BookTop] = {}
        self.count = 0

    def __call__(self, top: BookTop) -> None:
        with self.lock:
            self.latest[(top.venue, top.symbol)] = top
            self.count += 1

    def symbols(self, venue: str) -> set[str]:
        with self.lock:
            return {s for v, s in self.latest if v == venue}


@pytest.fixture
def sim() -> Iterator[dict[str, Any]]:
    thread = sim_thread(SimConfig(seed=1))
    urls = thread.start()
    try:
        yield urls
    finally:
        thread.stop()


@pytest.fixture
def feeds() -> Iterator[Callable[..., tuple[FeedClient, Books]]]:
    started: list[FeedClient] = []

    def start(urls: dict[str, Any], venue: str, **kw: Any) -> tuple[FeedClient, Books]:
        books = Books()
        adapter = UpbitAdapter(COINS) if venue == "upbit" else BinanceAdapter(COINS)
        kw.setdefault("stale_after_s", 2.0)
        kw.setdefault("ping_interval_s", 5.0)
        kw.setdefault("backoff_initial_s", 0.05)
        kw.setdefault("backoff_max_s", 0.4)
        kw.setdefault("rng", random.Random(7))
        client = FeedClient(adapter, urls[venue]["ws"], COINS, books, **kw)
        started.append(client)
        client.run_in_thread()
        return client, books

    yield start
    for client in started:
        assert client.stop(timeout=5.0), "feed thread did not stop"


def tops_after(client: FeedClient, n: int) -> Callable[[], bool]:
    return lambda: client.snapshot().tops >= n


@pytest.mark.parametrize("venue", ["upbit", "binance"])
def test_feed_delivers_books_for_every_coin(sim, feeds, venue):
    client, books = feeds(sim, venue)
    wait_until(lambda: books.symbols(venue) == EXPECTED[venue], what=f"{venue} books")
    s = client.snapshot()
    assert s.connected and s.connects == 1 and s.reconnects == 0
    assert s.bad_frames == {} and s.tops >= len(EXPECTED[venue]) and s.frames >= s.tops
    assert s.last_top_ns > 0
    for (v, _sym), top in books.latest.items():
        assert v == venue and 0 < top.bid < top.ask and top.bids[0] == (top.bid, top.bid_size)
        assert len(top.bids) == (15 if venue == "upbit" else 20)
        assert abs(time.time_ns() - top.recv_ts_ns) < 10e9


def test_upbit_fx_book_is_usdt_in_krw(sim, feeds):
    _, books = feeds(sim, "upbit")
    wait_until(lambda: "USDT" in books.symbols("upbit"), what="KRW-USDT")
    fx = books.latest[("upbit", "USDT")]
    assert 1000 < fx.mid < 2000  # the sim's USDT/KRW is ~1400
    assert fx.exch_ts_ns > 0


@pytest.mark.parametrize("venue", ["upbit", "binance"])
def test_a_paused_feed_is_detected_as_stale_and_reconnected(sim, feeds, venue):
    client, _ = feeds(sim, venue, stale_after_s=0.5)
    wait_until(tops_after(client, 5), what="first books")
    # Until the client has seen it: a loaded host may run its stale timer late.
    post_fault(sim, venue=venue, kind="pause", seconds=30)
    wait_until(lambda: client.snapshot().stale_disconnects >= 1, what="stale detection")
    clear_faults(sim)
    before = client.snapshot().tops
    wait_until(lambda: client.snapshot().tops > before + 3 and client.snapshot().connected,
               what="books after the pause")
    s = client.snapshot()
    assert s.reconnects >= 1 and s.connects >= 2
    assert s.bad_frames == {}
    assert "no book" in s.last_error


@pytest.mark.parametrize("venue", ["upbit", "binance"])
def test_a_dropped_connection_is_reconnected(sim, feeds, venue):
    client, _ = feeds(sim, venue)
    wait_until(tops_after(client, 5), what="first books")
    assert post_fault(sim, venue=venue, kind="drop", seconds=0)["dropped"] == 1
    wait_until(lambda: client.snapshot().connects >= 2, what="reconnect")
    before = client.snapshot().tops
    wait_until(tops_after(client, before + 3), what="books after the drop")
    s = client.snapshot()
    assert s.reconnects == 1 and s.stale_disconnects == 0 and s.bad_frames == {}


def test_handshakes_refused_during_a_drop_are_retried_with_backoff(sim, feeds):
    client, _ = feeds(sim, "binance")
    wait_until(tops_after(client, 5), what="first books")
    post_fault(sim, venue="binance", kind="drop", seconds=30)  # until a handshake was refused
    wait_until(lambda: client.snapshot().reconnects >= 2, what="refused handshakes")
    assert "503" in client.snapshot().last_error
    clear_faults(sim)
    before = client.snapshot().tops
    wait_until(tops_after(client, before + 3), what="books after the drop ended")
    s = client.snapshot()
    assert s.connected and s.connects == 2  # only one handshake succeeded after the drop


@pytest.mark.parametrize("venue", ["upbit", "binance"])
def test_malformed_frames_are_counted_and_the_feed_keeps_running(sim, feeds, venue):
    client, _ = feeds(sim, venue, stale_after_s=5.0)
    wait_until(tops_after(client, 5), what="first books")
    post_fault(sim, venue=venue, kind="malformed", seconds=0.8)
    wait_until(lambda: client.snapshot().bad_total >= 5, what="bad frames")
    before = client.snapshot()
    wait_until(tops_after(client, before.tops + 5), timeout=10.0, what="books after the garbage")
    s = client.snapshot()
    assert s.reconnects == 0 and s.connects == 1 and s.connected
    assert set(s.bad_frames) <= set(venues.BAD_FRAME_REASONS) - {venues.PARSER_ERROR}
    assert venues.NOT_JSON in s.bad_frames
    assert s.frames == s.tops + s.ignored + s.bad_total


def test_an_on_top_that_raises_is_counted_not_fatal(sim):
    def explode(_top: BookTop) -> None:
        raise RuntimeError("consumer bug")

    client = FeedClient(BinanceAdapter(COINS), sim["binance"]["ws"], COINS, explode, stale_after_s=2.0)
    client.run_in_thread()
    try:
        wait_until(lambda: client.snapshot().callback_errors >= 5, what="callback errors")
        assert client.snapshot().connected
    finally:
        assert client.stop()


def test_stop_from_another_thread_ends_the_loop_promptly(sim):
    client = FeedClient(UpbitAdapter(COINS), sim["upbit"]["ws"], COINS, lambda _t: None)
    thread = client.run_in_thread()
    wait_until(lambda: client.snapshot().tops > 0, what="books")
    t0 = time.monotonic()
    stopper = threading.Thread(target=client.stop)
    stopper.start()
    stopper.join(5)
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - t0 < 3.0
    assert not client.snapshot().connected


def test_thread_hooks_run_on_the_feed_thread_before_the_first_book_and_at_its_end(sim):
    seen: list[tuple[str, int]] = []
    ready = threading.Event()

    def on_top(_top: BookTop) -> None:
        assert seen and seen[0][0] == "start"  # set up before any book
        ready.set()

    client = FeedClient(UpbitAdapter(COINS), sim["upbit"]["ws"], COINS, on_top)
    thread = client.run_in_thread(on_thread_start=lambda: seen.append(("start", threading.get_ident())),
                                  on_thread_exit=lambda: seen.append(("exit", threading.get_ident())))
    assert ready.wait(10)
    assert client.stop()
    assert seen == [("start", thread.ident), ("exit", thread.ident)]
    assert client.snapshot().callback_errors == 0


def test_stop_while_nothing_listens_does_not_wait_for_backoff():
    client = FeedClient(UpbitAdapter(COINS), "ws://127.0.0.1:9/websocket/v1", COINS, lambda _t: None,
                        backoff_initial_s=30.0, backoff_max_s=30.0)
    client.run_in_thread()
    wait_until(lambda: client.snapshot().last_error != "", what="a failed connect")
    t0 = time.monotonic()
    assert client.stop(timeout=5.0)
    assert time.monotonic() - t0 < 2.0
    assert client.snapshot().connects == 0


# -- backoff (no sockets) -------------------------------------------------------------------

def _client(**kw: Any) -> FeedClient:
    return FeedClient(BinanceAdapter(COINS), "ws://127.0.0.1:1/ws", COINS, lambda _t: None, **kw)


def test_backoff_doubles_with_jitter_up_to_the_cap():
    c = _client(backoff_initial_s=0.5, backoff_max_s=4.0, rng=random.Random(1))
    delays = [c._next_delay() for _ in range(7)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    for d, base in zip(delays, bases, strict=True):
        assert base / 2 <= d <= base
    assert len(set(delays)) == len(delays)  # jittered


def test_a_delivered_book_resets_the_backoff():
    c = _client(backoff_initial_s=0.5, backoff_max_s=30.0, rng=random.Random(2))
    for _ in range(5):
        c._next_delay()
    frame = json.dumps({"stream": "btcusdt@depth5", "data": {
        "lastUpdateId": 1, "bids": [["1.0", "1.0"]], "asks": [["2.0", "1.0"]]}})
    c._on_frame(frame)
    assert c._next_delay() <= 0.5


def test_frames_are_classified_into_the_snapshot_counters():
    c = _client()
    c._on_frame('{"result":null,"id":1}')
    c._on_frame(b"garbage")
    c._on_frame(json.dumps({"stream": "btcusdt@depth5", "data": {
        "lastUpdateId": 1, "bids": [["1.0", "1.0"]], "asks": [["2.0", "1.0"]]}}))
    s: FeedStats = c.snapshot()
    assert (s.frames, s.tops, s.ignored, dict(s.bad_frames)) == (3, 1, 1, {venues.NOT_JSON: 1})
    with pytest.raises(TypeError):
        s.bad_frames["x"] = 1  # type: ignore[index]


def test_a_bad_url_is_refused_at_construction():
    with pytest.raises(ValueError):
        FeedClient(UpbitAdapter(COINS), "http://not-a-ws-url", COINS, lambda _t: None)
