"""A small run directory built by hand, for the report tests: a ledger written
through ``storage.ledger.Ledger`` (as the executor writes it) and an event log,
with timestamps fixed so every figure is known in advance.

Pairs (``T`` is :data:`T0`, seconds):

- ``p1`` BTC sell_upbit, opened at T, closed at T+60: sold 0.001 on Upbit at
  100,000,000 and bought it back at 99,000,000 KRW; bought and sold 0.001 on
  Binance at 70,000 USDT (fx 1,400). No fees: PnL exactly +1,000 KRW.
- ``p2`` ETH buy_upbit, opened at T+120 and still open: 0.02 bought on Upbit
  at 5,000,000 KRW and sold on Binance: exposure 100,000 KRW.
- ``p3`` XRP, both legs rejected at T+180 ("insufficient funds"): failed.
- ``p4`` BTC, legs recorded (pending) and never answered: in flight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from messages import OrderEvent, OrderIntent
from storage.ledger import Ledger
from supervisors.runfiles import RunDir

T0 = 1_796_000_000.0
P1_PNL_KRW = 1_000.0
P2_EXPOSURE_KRW = 100_000.0


def _ns(t: float) -> int:
    return int(t * 1e9)


def _intent(pair_id: str, action: str, symbol: str, direction: str) -> OrderIntent:
    return OrderIntent(pair_id=pair_id, action=action, symbol=symbol, direction=direction, legs=(),
                       notional_krw=100_000.0, expires_ns=0)


def _legs(led: Ledger, i: OrderIntent, legs: list[tuple[str, str, str, float, float]]) -> None:
    assert led.record_intent(i, 1.0, legs)


def _fill(led: Ledger, i: OrderIntent, cid: str, venue: str, side: str, qty: float, price: float,
          t: float, *, fx: float = 0.0, status: str = "filled", reason: str = "") -> None:
    filled = qty if status == "filled" else 0.0
    led.apply(OrderEvent(ts_ns=_ns(t), intent_id=i.id, pair_id=i.pair_id, action=i.action, client_order_id=cid,
                         venue=venue, symbol=i.symbol, side=side, status=status, qty=qty, price=price,
                         filled_qty=filled, avg_price=price if filled else 0.0, reason=reason, fx=fx))


def write_ledger(path: Path) -> None:
    led = Ledger(path)
    try:
        o1 = _intent("p1", "open", "BTC", "sell_upbit")
        _legs(led, o1, [("p1-o-u", "upbit", "sell", 0.001, 1e8), ("p1-o-b", "binance", "buy", 0.001, 70_000.0)])
        _fill(led, o1, "p1-o-u", "upbit", "sell", 0.001, 1e8, T0, fx=1400.0)
        _fill(led, o1, "p1-o-b", "binance", "buy", 0.001, 70_000.0, T0 + 0.2, fx=1400.0)
        c1 = _intent("p1", "close", "BTC", "buy_upbit")
        _legs(led, c1, [("p1-c-u", "upbit", "buy", 0.001, 0.99e8), ("p1-c-b", "binance", "sell", 0.001, 70_000.0)])
        _fill(led, c1, "p1-c-u", "upbit", "buy", 0.001, 0.99e8, T0 + 60, fx=1400.0)
        _fill(led, c1, "p1-c-b", "binance", "sell", 0.001, 70_000.0, T0 + 60.2, fx=1400.0)

        o2 = _intent("p2", "open", "ETH", "buy_upbit")
        _legs(led, o2, [("p2-o-u", "upbit", "buy", 0.02, 5e6), ("p2-o-b", "binance", "sell", 0.02, 3_600.0)])
        _fill(led, o2, "p2-o-u", "upbit", "buy", 0.02, 5e6, T0 + 120, fx=1400.0)
        _fill(led, o2, "p2-o-b", "binance", "sell", 0.02, 3_600.0, T0 + 120.2, fx=1400.0)

        o3 = _intent("p3", "open", "XRP", "sell_upbit")
        _legs(led, o3, [("p3-o-u", "upbit", "sell", 100.0, 860.0), ("p3-o-b", "binance", "buy", 100.0, 0.6)])
        _fill(led, o3, "p3-o-u", "upbit", "sell", 100.0, 860.0, T0 + 180, status="rejected",
              reason="insufficient funds")
        _fill(led, o3, "p3-o-b", "binance", "buy", 100.0, 0.6, T0 + 180.1, status="rejected",
              reason="insufficient funds")

        o4 = _intent("p4", "open", "BTC", "sell_upbit")
        _legs(led, o4, [("p4-o-u", "upbit", "sell", 0.001, 1e8), ("p4-o-b", "binance", "buy", 0.001, 70_000.0)])
    finally:
        led.close()


def event_lines() -> list[str]:
    """Premium samples every 10 s from T-30 to T+200 (baseline warming until T),
    a halt at T+100, a brief and a lasting naked leg, and two bad lines."""
    recs: list[dict[str, Any]] = []
    for k in range(24):
        t = T0 - 30 + 10 * k
        warm = t >= T0
        recs.append({"ts": t, "event_type": "premium", "actor": "engine",
                     "premium_pct": {"BTC": 2.0 + 0.01 * k, "ETH": 1.5},
                     "baseline_pct": {"BTC": 2.0 if warm else None, "ETH": 1.6 if warm else None}, "fx": 1400.0})
    recs += [
        {"ts": T0 + 100, "event_type": "halt", "actor": "guard", "reason": "operator test", "by": "operator"},
        {"ts": T0 + 120.1, "event_type": "naked_exposure", "actor": "position", "symbol": "ETH",
         "naked_qty": 0.02, "naked_krw": 100000.0, "age_s": 0.0},
        {"ts": T0 + 150, "event_type": "naked_exposure", "actor": "position", "symbol": "BTC",
         "naked_qty": 0.001, "naked_krw": 98000.0, "age_s": 3.5},
        {"ts": T0 + 60.2, "event_type": "trade_closed", "actor": "position", "pair_id": "p1",
         "realized_pnl_krw": 1000.0},
    ]
    lines = [json.dumps(r) for r in sorted(recs, key=lambda r: r["ts"])]
    return [*lines[:5], "{not json", *lines[5:], "[1, 2]"]


def make_run(root: Path, *, ledger: bool = True, events: bool = True) -> RunDir:
    run = RunDir.at(root / "run")
    run.create()
    if ledger:
        write_ledger(run.ledger_path)
    if events:
        (run.events_dir / "longrun_events_20261130.jsonl").write_text("\n".join(event_lines()) + "\n")
    return run
