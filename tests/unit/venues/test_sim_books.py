"""Simulated books: on each venue's tick and lot grid, uncrossed, diffs that rebuild the book."""

from __future__ import annotations

import pytest

from arbitrage.venue_rules import BINANCE, BINANCE_FILTERS, UPBIT, is_upbit_price_on_tick
from venues.sim.books import Book
from venues.sim.config import SimConfig
from venues.sim.core import SimCore


def _on_grid(value: float, step: float) -> bool:
    units = value / step
    return abs(units - round(units)) < 1e-6


@pytest.fixture(scope="module")
def core() -> SimCore:
    core = SimCore(SimConfig(seed=11))
    for _ in range(300):
        core.step(0.1)
    return core


def test_upbit_books_are_on_tick_with_8_decimal_sizes(core: SimCore) -> None:
    for coin, book in core.books[UPBIT].items():
        assert len(book.bids) == len(book.asks) == 15
        for price, qty in list(book.bids.items()) + list(book.asks.items()):
            assert is_upbit_price_on_tick(price, coin), (coin, price)
            assert qty > 0 and round(qty, 8) == qty


def test_binance_books_are_on_tick_and_lot(core: SimCore) -> None:
    for coin, book in core.books[BINANCE].items():
        f = BINANCE_FILTERS[coin]
        assert len(book.bids) == len(book.asks) == 20
        for price, qty in list(book.bids.items()) + list(book.asks.items()):
            assert _on_grid(price, f.tick_size), (coin, price)
            assert qty >= f.min_qty and _on_grid(qty, f.step_size), (coin, qty)


def test_books_are_uncrossed_and_centred_on_the_model(core: SimCore) -> None:
    for venue, books in core.books.items():
        for coin, book in books.items():
            bid, ask = book.best_bid(), book.best_ask()
            assert bid is not None and ask is not None and bid[0] < ask[0]
            mid = core.model.upbit_mid(coin) if venue == UPBIT else core.model.binance_mid(coin)
            assert abs((bid[0] + ask[0]) / 2 - mid) / mid < 0.002


def test_usdt_book_uses_the_half_won_tick(core: SimCore) -> None:
    book = core.books[UPBIT]["USDT"]
    prices = sorted(book.asks)
    assert prices[1] - prices[0] == pytest.approx(0.5)


def test_upbit_book_premium_matches_the_model(core: SimCore) -> None:
    up = core.books[UPBIT]["BTC"]
    bn = core.books[BINANCE]["BTC"]
    fx = core.books[UPBIT]["USDT"]
    up_mid = (up.best_bid()[0] + up.best_ask()[0]) / 2
    bn_mid = (bn.best_bid()[0] + bn.best_ask()[0]) / 2
    fx_mid = (fx.best_bid()[0] + fx.best_ask()[0]) / 2
    premium = (up_mid / (bn_mid * fx_mid) - 1) * 100
    assert premium == pytest.approx(core.model.premium_pct("BTC"), abs=0.1)


def test_diffs_rebuild_the_book_from_a_snapshot() -> None:
    book = Book(BINANCE, "ETH", 20, seed=3, usd_per_unit=3500.0)
    book.register_pending("100ms")
    book.regenerate(3500.0, 3500.0, 0.1)
    book.pop_pending("100ms")
    snapshot_id = book.update_id
    bids, asks = dict(book.bids), dict(book.asks)
    mid, last_u = 3500.0, snapshot_id
    for i in range(200):
        mid *= 1.0002 if i % 3 else 0.9997
        book.regenerate(mid, mid, 0.1)
        if i % 7 == 0:
            ask = book.best_ask()
            book.take("asks", ask[0], ask[1] / 2)
        if i % 4 == 0:  # several updates per event
            event = book.pop_pending("100ms")
            if event is None:
                continue
            first, last, db, da = event
            assert first == last_u + 1  # contiguous
            last_u = last
            for side, changes in ((bids, db), (asks, da)):
                for p, q in changes.items():
                    if q == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
    event = book.pop_pending("100ms")
    if event is not None:
        first, last, db, da = event
        assert first == last_u + 1
        for side, changes in ((bids, db), (asks, da)):
            for p, q in changes.items():
                side.pop(p, None) if q == 0 else side.__setitem__(p, q)
    assert bids == book.bids and asks == book.asks


def test_same_seed_gives_the_same_books() -> None:
    a, b = SimCore(SimConfig(seed=2)), SimCore(SimConfig(seed=2))
    for _ in range(50):
        a.step(0.1)
        b.step(0.1)
    for venue in (UPBIT, BINANCE):
        for coin in a.books[venue]:
            assert a.books[venue][coin].bids == b.books[venue][coin].bids
            assert a.books[venue][coin].update_id == b.books[venue][coin].update_id
