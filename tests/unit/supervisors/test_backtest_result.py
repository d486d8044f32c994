"""A backtest's numbers come from its ledger: trades, PnL and fees as the
position's accounting books them, the drawdown of cumulative realized PnL."""

from __future__ import annotations

from pathlib import Path

import pytest

from messages import OrderEvent, OrderIntent
from storage.ledger import Ledger
from supervisors.backtest_result import ledger_result

T0 = 1_800_000_000_000_000_000
FX = 1400.0


def trade(led: Ledger, pair: str, action: str, up_side: str, up_px: float, bn_px: float, at: int,
          qty: float = 0.01) -> None:
    i = OrderIntent(pair_id=pair, action=action, symbol="BTC", direction="sell_upbit", legs=(),
                    notional_krw=qty * up_px, expires_ns=0)
    bn_side = "buy" if up_side == "sell" else "sell"
    legs = [(f"{pair}-{action}-u", "upbit", up_side, qty, up_px), (f"{pair}-{action}-b", "binance", bn_side, qty, bn_px)]
    led.record_intent(i, 1.0, legs)
    for cid, venue, side, q, px in legs:
        led.apply(OrderEvent(ts_ns=at, intent_id=i.id, pair_id=pair, action=action, client_order_id=cid,
                             venue=venue, symbol="BTC", side=side, status="filled", qty=q, price=px,
                             filled_qty=q, avg_price=px, fee_krw=10.0, fx=FX))


def test_trades_pnl_fees_and_drawdown_come_from_the_ledger(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "ledger.sqlite")
    # p1: +7,000 KRW on Upbit, +0.01 USDT (14 KRW) on Binance, 40 KRW of fees -> +6,974
    trade(led, "p1", "open", "sell", 143_500_000, 100_000, T0)
    trade(led, "p1", "close", "buy", 142_800_000, 100_001, T0 + 10**9)
    # p2: -7,000 KRW on Upbit, +0 on Binance, 40 of fees -> -7,040: a fall of 7,040 from the high
    trade(led, "p2", "open", "sell", 142_800_000, 100_000, T0 + 2 * 10**9)
    trade(led, "p2", "close", "buy", 143_500_000, 100_000, T0 + 3 * 10**9)
    trade(led, "p3", "open", "sell", 143_500_000, 100_000, T0 + 4 * 10**9)
    led.close()

    r = ledger_result(tmp_path / "ledger.sqlite")

    assert (r["trades_opened"], r["trades_closed"], r["open_pairs"]) == (3, 2, 1)
    assert r["pnl_krw"] == pytest.approx(6_974 - 7_040)
    assert r["fees_krw"] == pytest.approx(10 * 10)
    assert r["max_drawdown_krw"] == pytest.approx(7_040)
    assert (r["orders"], r["fills"]) == (10, 10)
    assert r["fill_log"][0] == [T0, 0, "open", "binance", "BTC", "buy", 0.01, 100_000.0, 10.0]
    assert {row[1] for row in r["fill_log"]} == {0, 1, 2}  # pairs numbered by first appearance


def test_a_run_that_never_opened_a_ledger_traded_nothing(tmp_path: Path) -> None:
    r = ledger_result(tmp_path / "none.sqlite")
    assert (r["trades_opened"], r["pnl_krw"], r["orders"], r["max_drawdown_krw"]) == (0, 0.0, 0, 0.0)
