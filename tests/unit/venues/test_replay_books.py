"""The replay exchange's books: the tape's levels, less the backtest's own takes
(while the price stays, for a while) and less the recorded takers ahead at the
touch (until the next recorded book); fills through the real matching engine."""

from __future__ import annotations

import json

import pytest

from arbitrage.venue_rules import BINANCE_TAKER_FEE, UPBIT, UPBIT_TAKER_FEE
from venues.sim.engine import Account, SimOrder, VenueEngine
from venues.sim.replay_books import NOWHERE, ReplayBook, Route, parse_book, parse_trade, route_of
from venues.sim.tape import Tape


class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000_000

    def __call__(self) -> int:
        return self.ns


def upbit_book(asks: list[tuple[float, float]], bids: list[tuple[float, float]]) -> bytes:
    units = [{"ask_price": a[0], "bid_price": b[0], "ask_size": a[1], "bid_size": b[1]}
             for a, b in zip(asks, bids, strict=True)]
    return json.dumps({"type": "orderbook", "code": "KRW-BTC", "timestamp": 1, "orderbook_units": units,
                       "stream_type": "REALTIME"}).encode()


def binance_depth(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> bytes:
    return json.dumps({"stream": "btcusdt@depth20@100ms",
                       "data": {"lastUpdateId": 7, "bids": bids, "asks": asks}}).encode()


@pytest.mark.parametrize(("venue", "stream", "route"), [
    ("upbit", "orderbook:KRW-BTC", Route("book", "BTC")),
    ("upbit", "orderbook:KRW-USDT", Route("book", "USDT")),
    ("upbit", "trade:KRW-XRP", Route("trade", "XRP")),
    ("upbit", "ticker:KRW-BTC", NOWHERE),
    ("upbit", "other", NOWHERE),
    ("binance", "btcusdt@depth20@100ms", Route("book", "BTC")),
    ("binance", "ethusdt@depth5", Route("book", "ETH")),
    ("binance", "btcusdt@depth@100ms", NOWHERE),  # diff depth is not a whole book
    ("binance", "xrpusdt@trade", Route("trade", "XRP")),
    ("binance", "other", NOWHERE),
])
def test_streams_route_to_a_coins_book_or_trades_or_nowhere(venue: str, stream: str, route: Route) -> None:
    assert route_of(venue, stream) == route


def test_recorded_frames_parse_into_levels_and_trades() -> None:
    assert parse_book("upbit", upbit_book([(101.0, 2.0)], [(100.0, 3.0)])) == ([(100.0, 3.0)], [(101.0, 2.0)])
    assert parse_book("binance", binance_depth([["1.5", "2"]], [["1.6", "3"]])) == ([(1.5, 2.0)], [(1.6, 3.0)])
    assert parse_book("upbit", b"not json") is None
    upbit_buy = json.dumps({"type": "trade", "trade_price": 101.0, "trade_volume": 0.5, "ask_bid": "BID"}).encode()
    binance_sell = json.dumps({"stream": "btcusdt@trade", "data": {"p": "1.5", "q": "2", "m": True}}).encode()
    assert parse_trade("upbit", upbit_buy) == ("asks", 101.0, 0.5)
    assert parse_trade("binance", binance_sell) == ("bids", 1.5, 2.0)


def book(clock: Clock, decay_s: float = 5.0) -> ReplayBook:
    return ReplayBook(UPBIT, "BTC", 15, 1, 68_000.0, clock, decay_s)


def engine(b: ReplayBook) -> VenueEngine:
    acct = Account({"KRW": 1e9, "BTC": 10.0})
    return VenueEngine(UPBIT, "KRW", UPBIT_TAKER_FEE, {"BTC": b}, acct, Tape(), lambda o: None)


def ioc_buy(qty: float, limit: float, n: int = 1) -> SimOrder:
    return SimOrder(venue=UPBIT, order_id=str(n), client_order_id=f"c{n}", coin="BTC", market_id="KRW-BTC",
                    side="buy", type="limit", tif="IOC", price=limit, qty=qty)


def test_a_recorded_book_replaces_the_levels() -> None:
    b = book(Clock())
    b.load([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)])
    b.load([(100.0, 5.0)], [(102.0, 1.0), (103.0, 4.0)])
    assert b.top_bids() == [(100.0, 5.0)]
    assert b.top_asks() == [(102.0, 1.0), (103.0, 4.0)]
    assert b.mid == 101.0


def test_a_taker_fills_against_the_recorded_levels_with_the_venues_fee() -> None:
    b = book(Clock())
    b.load([(100.0, 1.0)], [(101.0, 0.4), (102.0, 1.0)])
    order = engine(b).submit(ioc_buy(1.0, 101.5))
    assert order.filled == pytest.approx(0.4)  # only the 101 level is within the limit
    assert order.cost == pytest.approx(40.4)
    assert order.fee == pytest.approx(40.4 * UPBIT_TAKER_FEE)
    assert order.status == "expired"  # IOC: the rest is not left resting


def test_what_the_backtest_took_stays_gone_from_later_recorded_books() -> None:
    clock = Clock()
    b = book(clock)
    b.load([(100.0, 1.0)], [(101.0, 0.4), (102.0, 1.0)])
    engine(b).submit(ioc_buy(0.3, 101.0))
    clock.ns += 100_000_000
    b.load([(100.0, 1.0)], [(101.0, 0.4), (102.0, 1.0)])  # the tape could not know of our fill
    assert b.top_asks() == [(101.0, pytest.approx(0.1)), (102.0, 1.0)]
    second = engine(b).submit(ioc_buy(0.3, 101.0, n=2))
    assert second.filled == pytest.approx(0.1)


def test_own_impact_ends_when_the_price_leaves_the_book_or_after_the_decay() -> None:
    clock = Clock()
    b = book(clock, decay_s=5.0)
    b.load([(100.0, 1.0)], [(101.0, 0.4)])
    engine(b).submit(ioc_buy(0.4, 101.0))
    b.load([(100.0, 1.0)], [(101.0, 0.4)])
    assert b.top_asks() == []  # all of it was ours
    b.load([(100.0, 1.0)], [(102.0, 1.0)])  # the price moved away: forgotten
    b.load([(100.0, 1.0)], [(101.0, 0.4)])
    assert b.top_asks() == [(101.0, 0.4)]
    engine(b).submit(ioc_buy(0.4, 101.0, n=2))
    clock.ns += 6_000_000_000  # past the decay: others have refilled the level
    b.load([(100.0, 1.0)], [(101.0, 0.4)])
    assert b.top_asks() == [(101.0, 0.4)]


def test_recorded_takers_ahead_at_the_touch_take_first_until_the_next_book() -> None:
    b = book(Clock())
    b.load([(100.0, 1.0)], [(101.0, 0.5), (102.0, 1.0)])
    b.take_public("asks", 101.0, 0.3)  # a recorded buyer hit the ask after the book was recorded
    order = engine(b).submit(ioc_buy(0.5, 101.0))
    assert order.filled == pytest.approx(0.2)
    b.load([(100.0, 1.0)], [(101.0, 0.9)])  # the next recorded book already shows what happened
    assert b.top_asks() == [(101.0, pytest.approx(0.9 - 0.2))]  # less our own 0.2


def test_a_public_trade_at_a_price_not_in_the_book_changes_nothing() -> None:
    b = book(Clock())
    b.load([(100.0, 1.0)], [(101.0, 0.5)])
    b.take_public("asks", 105.0, 3.0)
    assert b.top_asks() == [(101.0, 0.5)]
    assert BINANCE_TAKER_FEE > 0
