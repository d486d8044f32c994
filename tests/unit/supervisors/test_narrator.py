"""The narrator: order events, trading states and supervisor events in, the
lines a person reads out. Pure, with a fake clock."""

from __future__ import annotations

import logging
import re

import pytest

from arbitrage.accounting import Portfolio
from arbitrage.premium import premium_pct
from messages import SELL_UPBIT, OrderEvent, PositionState, TradingState
from supervisors.narrator import BAD, GOOD, WARN, Line, Narrator, status_line

FX = 1400.0
UP_OPEN, BN_OPEN = 97_300_000.0, 67_900.0  # upbit rich: sell there, buy on binance
UP_CLOSE, BN_CLOSE = 96_900_000.0, 67_950.0


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def ev(intent: str, leg: int, action: str, venue: str, side: str, status: str, qty: float = 0.001,
       price: float = 0.0, filled: float | None = None, avg: float | None = None, pair: str = "p1",
       symbol: str = "BTC", reason: str = "", ts: float = 1_800_000_000.0) -> OrderEvent:
    done = status in ("filled",)
    return OrderEvent(intent_id=intent, pair_id=pair, action=action, client_order_id=f"{intent}-{leg}",
                      venue=venue, symbol=symbol, side=side, status=status, qty=qty, price=price,
                      filled_qty=qty if filled is None and done else (filled or 0.0),
                      avg_price=price if avg is None and done else (avg or 0.0),
                      fee_krw=50.0 if done else 0.0, reason=reason, fx=FX, ts_ns=int(ts * 1e9))


def open_events(pair: str = "p1", intent: str = "i1", up_status: str = "filled", bn_status: str = "filled",
                reason: str = "") -> list[OrderEvent]:
    return [ev(intent, 0, "open", "upbit", "sell", "sent", price=UP_OPEN, pair=pair),
            ev(intent, 1, "open", "binance", "buy", "sent", price=BN_OPEN, pair=pair),
            ev(intent, 0, "open", "upbit", "sell", up_status, price=UP_OPEN, pair=pair, reason=reason),
            ev(intent, 1, "open", "binance", "buy", bn_status, price=BN_OPEN, pair=pair, reason=reason)]


def close_events(pair: str = "p1", intent: str = "i2", ts: float = 1_800_000_003.0) -> list[OrderEvent]:
    return [ev(intent, 0, "close", "upbit", "buy", "sent", price=UP_CLOSE, pair=pair, ts=ts),
            ev(intent, 1, "close", "binance", "sell", "sent", price=BN_CLOSE, pair=pair, ts=ts),
            ev(intent, 0, "close", "upbit", "buy", "filled", price=UP_CLOSE, pair=pair, ts=ts),
            ev(intent, 1, "close", "binance", "sell", "filled", price=BN_CLOSE, pair=pair, ts=ts)]


def feed(n: Narrator, events: list[OrderEvent]) -> list[Line]:
    out: list[Line] = []
    for e in events:
        out += n.order_event(e)
    return out


def state(st: str = "armed", fail_closed: bool = False, reasons: tuple[str, ...] = (), halt: str = "") -> TradingState:
    return TradingState(mode="paper", state=st, fail_closed=fail_closed, reasons=reasons, allowed=0, blocked=0,
                        daily_pnl=0.0, halt_reason=halt)


# -- pairs ---------------------------------------------------------------------------

def test_a_pair_whose_two_open_legs_filled_is_one_open_line_with_symbol_direction_qty_and_premium() -> None:
    lines = feed(Narrator(Clock()), open_events())

    assert len(lines) == 1
    line = lines[0]
    assert (line.tag, line.level, line.actor) == ("OPEN", logging.INFO, "executor")
    assert line.text.startswith("BTC  sell upbit / buy binance  0.001  premium ")
    assert f"premium {premium_pct(UP_OPEN, BN_OPEN, FX):+.2f}%" in line.text
    assert "upbit 97,300,000 KRW" in line.text and "binance 67,900 USDT" in line.text


def test_nothing_is_said_while_a_leg_is_still_in_flight() -> None:
    n = Narrator(Clock())

    assert feed(n, open_events()[:3]) == []


def test_a_closed_pair_says_its_exit_premium_and_the_pnl_the_position_books() -> None:
    n = Narrator(Clock())
    feed(n, open_events())

    lines = feed(n, close_events())

    book = Portfolio(Clock())
    for e in open_events() + close_events():
        pair = book.apply(e)
    assert len(lines) == 1 and lines[0].tag == "CLOSE"
    assert f"PnL {pair.realized_pnl_krw:+,.0f} KRW" in lines[0].text
    assert f"-> {premium_pct(UP_CLOSE, BN_CLOSE, FX):+.2f}%" in lines[0].text
    assert "held 3.0s" in lines[0].text
    assert lines[0].tone == (GOOD if pair.realized_pnl_krw >= 0 else BAD)


def test_a_losing_close_has_the_bad_tone() -> None:
    n = Narrator(Clock())
    feed(n, open_events())
    losing = [ev("i2", 0, "close", "upbit", "buy", "sent", price=UP_OPEN * 1.01),
              ev("i2", 1, "close", "binance", "sell", "sent", price=BN_OPEN * 0.99),
              ev("i2", 0, "close", "upbit", "buy", "filled", price=UP_OPEN * 1.01),
              ev("i2", 1, "close", "binance", "sell", "filled", price=BN_OPEN * 0.99)]

    line = feed(n, losing)[0]

    assert line.tag == "CLOSE" and line.tone == BAD and "PnL -" in line.text


def test_repeated_events_never_repeat_a_line() -> None:
    n = Narrator(Clock())
    events = open_events() + close_events()

    first = feed(n, events)
    again = feed(n, events)

    assert [ln.tag for ln in first] == ["OPEN", "CLOSE"]
    assert again == []


def test_legs_that_filled_unequally_are_a_warning_naming_what_each_venue_did() -> None:
    lines = feed(Narrator(Clock()), open_events(bn_status="rejected", reason="insufficient balance"))

    assert len(lines) == 1
    line = lines[0]
    assert line.tag == "OPEN" and line.level == logging.WARNING and line.tone == WARN
    assert "legs unequal" in line.text and "binance buy rejected (insufficient balance)" in line.text


def test_an_unwind_that_flattens_a_broken_pair_says_so_with_its_pnl() -> None:
    n = Narrator(Clock())
    feed(n, open_events(bn_status="rejected"))

    lines = feed(n, [ev("i3", 0, "unwind", "upbit", "buy", "sent", price=UP_OPEN),
                     ev("i3", 0, "unwind", "upbit", "buy", "filled", price=UP_OPEN)])

    assert len(lines) == 1 and lines[0].tag == "UNWIND"
    assert "flat again" in lines[0].text and "PnL " in lines[0].text


def test_an_open_refused_before_it_was_sent_is_not_news() -> None:
    refused = [ev("i1", 0, "open", "upbit", "sell", "refused", reason="budget"),
               ev("i1", 1, "open", "binance", "buy", "refused", reason="budget")]

    assert feed(Narrator(Clock()), refused) == []


def test_an_open_a_venue_rejected_is_a_warning() -> None:
    lines = feed(Narrator(Clock()), open_events(up_status="rejected", bn_status="cancelled", reason="min notional"))

    assert [(ln.tag, ln.level) for ln in lines] == [("NO FILL", logging.WARNING)]
    assert "upbit sell rejected (min notional)" in lines[0].text


def test_a_close_that_found_nothing_at_its_limit_leaves_the_pair_open_and_says_so() -> None:
    n = Narrator(Clock())
    feed(n, open_events())

    lines = feed(n, [ev("i2", 0, "close", "upbit", "buy", "sent", price=UP_CLOSE),
                     ev("i2", 1, "close", "binance", "sell", "sent", price=BN_CLOSE),
                     ev("i2", 0, "close", "upbit", "buy", "cancelled", reason="IOC: nothing at the limit"),
                     ev("i2", 1, "close", "binance", "sell", "cancelled", reason="IOC: nothing at the limit")])

    assert len(lines) == 1 and lines[0].tag == "CLOSE" and "stays open" in lines[0].text
    assert lines[0].level == logging.INFO


def test_a_pair_opened_before_this_start_closes_as_a_close() -> None:
    n = Narrator(Clock(), history=open_events())

    lines = feed(n, close_events())

    assert [ln.tag for ln in lines] == ["CLOSE"]


# -- trading state -----------------------------------------------------------------------

def test_the_start_up_churn_of_fail_closed_reasons_is_told_once_it_settles() -> None:
    clock = Clock()
    n = Narrator(clock, settle_s=0.5)
    for reasons in (("actor engine starting",), ("actor engine starting", "actor executor starting"),
                    ("actor executor starting",)):
        n.trading_state(state(fail_closed=True, reasons=reasons))
        clock.t += 0.05
        assert n.poll() == []
    n.trading_state(state())

    clock.t += 0.4
    assert n.poll() == []
    clock.t += 0.2
    lines = n.poll()

    assert [(ln.tag, ln.text) for ln in lines] == [("ARMED", "paper: orders may flow")]
    assert n.poll() == []


def test_a_halt_names_its_reason_and_arming_again_is_told() -> None:
    clock = Clock()
    n = Narrator(clock, settle_s=0.5)
    n.trading_state(state())
    clock.t += 1
    n.poll()

    n.trading_state(state("halted", halt="session_stop: daily loss 21 USDT >= 20"))
    clock.t += 1
    halted = n.poll()
    n.trading_state(state())
    clock.t += 1
    armed = n.poll()

    assert [(ln.tag, ln.level, ln.tone) for ln in halted] == [("HALTED", logging.WARNING, BAD)]
    assert "session_stop: daily loss 21 USDT >= 20" in halted[0].text
    assert [ln.tag for ln in armed] == ["ARMED"]


def test_fail_closed_is_told_with_its_reasons_and_its_end_too() -> None:
    clock = Clock()
    n = Narrator(clock, settle_s=0.5)
    n.trading_state(state())
    clock.t += 1
    n.poll()

    n.trading_state(state(fail_closed=True, reasons=("stale quote upbit BTC (3.2s)",)))
    clock.t += 1
    closed = n.poll()
    n.trading_state(state())
    clock.t += 1
    resumed = n.poll()

    assert [(ln.tag, ln.text) for ln in closed] == [("FAIL-CLOSED", "stale quote upbit BTC (3.2s)")]
    assert [(ln.tag, ln.text) for ln in resumed] == [("RESUMED", "fail-closed cleared: orders may flow")]


# -- supervision and status --------------------------------------------------------------

def test_a_restart_says_which_actor_why_which_restart_and_when() -> None:
    lines = Narrator.supervisor_event("restart", {"actor": "engine", "event": "restart",
                                                  "reason": "unexpected exit", "restarts": 2, "backoff_s": 0.1})

    assert [(ln.tag, ln.level, ln.text) for ln in lines] == [
        ("RESTART", logging.WARNING, "engine (unexpected exit): restart #2 in 0.1s")]


def test_an_escalation_is_an_error() -> None:
    lines = Narrator.supervisor_event("escalate", {"actor": "engine", "event": "escalate",
                                                   "reason": "engine exceeded restart intensity (5 in 30s)"})

    assert lines[0].tag == "ESCALATE" and lines[0].level == logging.ERROR and "arbd exits" in lines[0].text


def test_the_status_line_has_premium_per_coin_trades_pnl_exposure_and_state() -> None:
    pos = PositionState(exposure_krw=239_282.4, open_pairs=3, trades_opened=11, trades_closed=8,
                        realized_pnl_krw=975.2, daily_pnl_krw=975.2)

    line = status_line({"XRP": 2.1, "BTC": 2.014}, pos, state(fail_closed=True, reasons=("x",)))

    assert line.tag == "STATUS" and line.tone == WARN
    assert line.text == ("BTC +2.01%  XRP +2.10% | trades 11 opened, 8 closed, 3 open | "
                         "PnL +975 KRW | exposure 239,282 KRW | armed FAIL-CLOSED")


@pytest.mark.parametrize("pos,ts", [(None, None)])
def test_the_status_line_before_anything_is_known_says_so(pos: PositionState | None, ts: TradingState | None) -> None:
    line = status_line({}, pos, ts)

    assert re.fullmatch(r"no premium yet \| trades - \| PnL - \| exposure - \| trading \?", line.text)


def test_direction_names_are_for_people() -> None:
    lines = feed(Narrator(Clock()), open_events())

    assert SELL_UPBIT not in lines[0].text
