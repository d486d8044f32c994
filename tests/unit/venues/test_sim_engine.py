"""The simulator's matching engine: fills against the book, fees, balances, resting orders."""

from __future__ import annotations

import itertools

import pytest

from arbitrage.venue_rules import BINANCE, BINANCE_TAKER_FEE, UPBIT, UPBIT_TAKER_FEE
from venues.sim.config import SimConfig
from venues.sim.core import SimCore
from venues.sim.engine import OrderRejected, SimOrder

_ids = itertools.count(1)


def _order(venue: str, coin: str, side: str, type_: str = "limit", **kw: object) -> SimOrder:
    market = f"KRW-{coin}" if venue == UPBIT else f"{coin}USDT"
    return SimOrder(venue=venue, order_id=str(next(_ids)), client_order_id=f"c{next(_ids)}", coin=coin,
                    market_id=market, side=side, type=type_, ts_ns=1, **kw)  # type: ignore[arg-type]


@pytest.fixture
def core() -> SimCore:
    return SimCore(SimConfig(seed=21))


def test_binance_market_buy_takes_the_asks_and_pays_the_fee_in_base(core: SimCore) -> None:
    engine, acct = core.engines[BINANCE], core.accounts[BINANCE]
    ask = core.books[BINANCE]["BTC"].best_ask()
    order = engine.submit(_order(BINANCE, "BTC", "buy", "market", tif="IOC", qty=0.001))
    assert order.status == "filled" and order.filled == pytest.approx(0.001)
    assert order.fills[0].price == ask[0]
    assert acct.free["BTC"] == pytest.approx(1.0 + 0.001 * (1 - BINANCE_TAKER_FEE))
    assert acct.free["USDT"] == pytest.approx(70_000 - order.cost)
    assert order.fee_asset == "BTC"


def test_taking_liquidity_shrinks_the_level_until_the_next_step(core: SimCore) -> None:
    book = core.books[BINANCE]["BTC"]
    price, size = book.best_ask()
    before = book.update_id
    core.engines[BINANCE].submit(_order(BINANCE, "BTC", "buy", "market", tif="IOC", qty=round(size / 2, 5)))
    assert book.asks[price] == pytest.approx(size - round(size / 2, 5))
    assert book.update_id == before + 1


def test_upbit_limit_buy_reserves_price_times_volume_plus_fee(core: SimCore) -> None:
    engine, acct = core.engines[UPBIT], core.accounts[UPBIT]
    bid = core.books[UPBIT]["BTC"].best_bid()[0]
    price = bid - 100_000
    order = engine.submit(_order(UPBIT, "BTC", "buy", qty=0.01, price=price))
    assert order.status == "new"
    assert acct.locked["KRW"] == pytest.approx(price * 0.01 * (1 + UPBIT_TAKER_FEE))
    engine.cancel(order)
    assert order.status == "canceled" and acct.locked["KRW"] == 0 and acct.free["KRW"] == pytest.approx(1e8)


def test_upbit_sell_receives_krw_minus_fee(core: SimCore) -> None:
    engine, acct = core.engines[UPBIT], core.accounts[UPBIT]
    order = engine.submit(_order(UPBIT, "ETH", "sell", "market", tif="IOC", qty=0.5))
    assert order.status == "filled"
    assert acct.free["KRW"] == pytest.approx(1e8 + order.cost * (1 - UPBIT_TAKER_FEE))
    assert acct.free["ETH"] == pytest.approx(19.5)


def test_upbit_market_buy_by_krw_amount_spends_it(core: SimCore) -> None:
    order = core.engines[UPBIT].submit(_order(UPBIT, "XRP", "buy", "market", tif="IOC", quote_qty=100_000.0))
    assert order.status == "filled"
    assert order.cost == pytest.approx(100_000, abs=2)


def test_insufficient_funds_are_rejected_and_recorded(core: SimCore) -> None:
    with pytest.raises(OrderRejected, match="insufficient_funds"):
        core.engines[BINANCE].submit(_order(BINANCE, "BTC", "sell", qty=5.0, price=70_000.0))
    assert core.records[-1].status == "rejected"
    assert core.accounts[BINANCE].locked.get("BTC", 0) == 0


def test_limit_order_fills_partially_against_shallow_depth_then_rests(core: SimCore) -> None:
    book = core.books[BINANCE]["ETH"]
    ask = book.best_ask()[0]
    qty = round(book.asks[ask] + 0.5, 4)
    order = core.engines[BINANCE].submit(_order(BINANCE, "ETH", "buy", qty=qty, price=ask))
    assert order.status == "partially_filled"
    assert 0 < order.filled < qty
    assert order.order_id in core.engines[BINANCE].open_orders


def test_ioc_remainder_expires_and_fok_fills_nothing(core: SimCore) -> None:
    book = core.books[BINANCE]["ETH"]
    ask = book.best_ask()[0]
    too_much = round(book.asks[ask] + 1.0, 4)
    ioc = core.engines[BINANCE].submit(_order(BINANCE, "ETH", "buy", tif="IOC", qty=too_much, price=ask))
    assert ioc.status == "expired" and ioc.filled > 0
    fok = core.engines[BINANCE].submit(_order(BINANCE, "ETH", "buy", tif="FOK", qty=too_much, price=ask))
    assert fok.status == "expired" and fok.filled == 0
    assert core.accounts[BINANCE].locked["USDT"] == 0


def test_resting_order_fills_at_its_price_when_the_market_crosses_it(core: SimCore) -> None:
    engine = core.engines[BINANCE]
    bid = core.books[BINANCE]["BTC"].best_bid()[0]
    order = engine.submit(_order(BINANCE, "BTC", "buy", qty=0.001, price=round(bid - 50, 2)))
    assert order.status == "new"
    core.model.nudge(usd={"BTC": bid - 500})
    core.refresh(trades=False)
    assert order.status == "filled"
    assert order.fills[-1].price == pytest.approx(bid - 50) and order.fills[-1].maker


def test_post_only_that_would_take_is_rejected(core: SimCore) -> None:
    ask = core.books[BINANCE]["BTC"].best_ask()[0]
    with pytest.raises(OrderRejected, match="would_take"):
        core.engines[BINANCE].submit(_order(BINANCE, "BTC", "buy", tif="POST_ONLY", qty=0.001, price=ask))


def test_records_keep_every_order_with_the_admin_fields(core: SimCore) -> None:
    core.engines[UPBIT].submit(_order(UPBIT, "BTC", "sell", "market", tif="IOC", qty=0.001))
    rec = core.order_records()[-1]
    assert {"venue", "client_order_id", "symbol", "side", "type", "price", "qty", "status", "filled",
            "ts_ns"} <= set(rec)
    assert rec["venue"] == UPBIT and rec["symbol"] == "KRW-BTC" and rec["status"] == "filled"
