from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.accounting import CLOSED, CLOSING, FAILED, OPEN, OPENING, Portfolio
from messages import BUY_UPBIT, SELL_UPBIT, OrderEvent, OrderIntent, OrderLeg

T0 = datetime(2024, 1, 1, 3, 0, tzinfo=UTC).timestamp()  # 12:00 KST


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ev(pair: str, action: str, venue: str, side: str, qty: float, price: float, status: str = "filled",
       filled: float | None = None, avg: float | None = None, fee: float = 0.0, at: float = T0,
       leg: int | None = None) -> OrderEvent:
    filled = qty if filled is None and status == "filled" else (filled or 0.0)
    leg = (0 if venue == "upbit" else 1) if leg is None else leg
    return OrderEvent(ts_ns=int(at * 1e9), intent_id=f"{pair}-{action}", pair_id=pair, action=action,
                      client_order_id=f"{pair}-{action}-{leg}", venue=venue, symbol="BTC", side=side,
                      status=status, qty=qty, price=price, filled_qty=filled,
                      avg_price=price if avg is None and filled else (avg or 0.0), fee_krw=fee)


def opened(p: Portfolio, pair: str = "p1", qty: float = 0.01, at: float = T0) -> None:
    """A SELL_UPBIT open: sell on Upbit at 143.5M KRW, buy on Binance at 100,000 USDT."""
    p.apply(ev(pair, "open", "upbit", "sell", qty, 143_500_000, fee=717.5, at=at))
    p.apply(ev(pair, "open", "binance", "buy", qty, 100_000, fee=1_400.0, at=at))


def closed(p: Portfolio, pair: str = "p1", qty: float = 0.01, at: float = T0 + 60) -> None:
    """The BUY_UPBIT close: buy back on Upbit at 142.8M KRW, sell on Binance at 100,100 USDT."""
    p.apply(ev(pair, "close", "upbit", "buy", qty, 142_800_000, fee=714.0, at=at))
    p.apply(ev(pair, "close", "binance", "sell", qty, 100_100, fee=1_411.41, at=at))


def intent(pair: str = "p1", qty: float = 0.01, action: str = "open") -> OrderIntent:
    return OrderIntent(id=f"{pair}-{action}", pair_id=pair, action=action, symbol="BTC", direction=SELL_UPBIT,
                       legs=(OrderLeg(venue="upbit", side="sell", qty=qty, price=143_000_000,
                                      client_order_id=f"{pair}-{action}-0"),
                             OrderLeg(venue="binance", side="buy", qty=qty, price=100_100,
                                      client_order_id=f"{pair}-{action}-1")),
                       notional_krw=qty * 143_000_000, expires_ns=0)


def test_a_filled_open_is_an_open_pair_valued_at_its_upbit_open_price() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)

    opened(p)

    pair = p.pair("p1")
    assert pair.state == OPEN
    assert pair.direction == SELL_UPBIT
    assert (pair.qty, pair.upbit_qty, pair.binance_qty) == (0.01, -0.01, 0.01)
    assert pair.exposure_krw == pytest.approx(1_435_000)
    assert p.exposure_krw == pytest.approx(1_435_000)
    assert pair.entry_fx == 1400
    assert pair.entry_premium_pct == pytest.approx(2.5)  # 143.5M / (100,000 * 1400) - 1
    assert (p.trades_opened, p.trades_closed, p.open_pairs) == (1, 0, 1)


def test_a_round_trip_realizes_the_hand_computed_pnl() -> None:
    # KRW on Upbit: +1,435,000 - 1,428,000 = 7,000
    # USDT on Binance: -1,000 + 1,001 = +1 USDT at the close fx 1,410 = 1,410
    # fees: 717.5 + 1,400 + 714 + 1,411.41 = 4,242.91      -> 7,000 + 1,410 - 4,242.91 = 4,167.09
    clock = Clock()
    p = Portfolio(clock)
    p.mark_fx(1400)
    opened(p)
    p.mark_fx(1410)

    closed(p)

    pair = p.pair("p1")
    assert pair.state == CLOSED
    assert pair.realized_pnl_krw == pytest.approx(4_167.09)
    assert p.realized_pnl_krw == pytest.approx(4_167.09)
    assert p.daily_pnl_krw() == pytest.approx(4_167.09)
    assert p.exposure_krw == 0.0
    assert (p.trades_opened, p.trades_closed, p.open_pairs) == (1, 1, 0)
    assert p.pairs() == []


def test_a_live_close_makes_the_pair_closing_and_keeps_its_exposure() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    opened(p)

    p.apply(ev("p1", "close", "upbit", "buy", 0.01, 142_800_000, status="sent"))

    assert p.pair("p1").state == CLOSING
    assert p.pair("p1").in_flight == "close"
    assert p.exposure_krw == pytest.approx(1_435_000)


def test_both_open_legs_failing_is_a_failed_pair_with_nothing_counted() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)

    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_500_000, status="rejected"))
    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_000, status="failed"))

    assert p.pair("p1").state == FAILED
    assert (p.trades_opened, p.exposure_krw, p.pairs()) == (0, 0.0, [])


def test_one_leg_filled_and_the_other_failed_needs_an_unwind_of_the_filled_leg() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_500_000, fee=717.5))

    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_000, status="rejected"))

    (u,) = p.needs_unwind()
    assert (u.pair_id, u.venue, u.side, u.qty) == ("p1", "upbit", "buy", 0.01)
    assert not p.pair("p1").balanced
    assert p.exposure_krw == pytest.approx(1_435_000)


def test_an_unwind_that_flattens_the_pair_closes_it_and_books_the_loss() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_500_000, fee=717.5))
    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_000, status="rejected"))

    p.apply(ev("p1", "unwind", "upbit", "buy", 0.01, 143_600_000, fee=718.0, leg=0))

    # 1,435,000 - 1,436,000 - 717.5 - 718
    assert p.pair("p1").state == CLOSED
    assert p.realized_pnl_krw == pytest.approx(-2_435.5)
    assert p.needs_unwind() == []
    assert (p.trades_opened, p.trades_closed) == (1, 1)


def test_partial_fills_leave_a_hedged_pair_and_an_unwind_of_the_excess() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_500_000))
    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_000, status="partially_filled", filled=0.004))
    assert p.pair("p1").state == OPENING

    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_000, status="cancelled", filled=0.006,
               avg=100_000))

    pair = p.pair("p1")
    assert (pair.state, pair.qty) == (OPEN, 0.006)
    (u,) = p.needs_unwind()
    assert (u.venue, u.side, u.qty) == ("upbit", "buy", 0.004)


def test_an_imbalance_below_the_venue_minimum_is_dust_not_an_unwind() -> None:
    # 0.00002 BTC at 143.5M KRW = 2,870 KRW: under Upbit's 5,000 KRW minimum.
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_500_000))

    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_000, status="cancelled", filled=0.00998,
               avg=100_000))

    assert p.pair("p1").balanced
    assert p.needs_unwind() == []


def test_events_applied_twice_or_late_change_nothing() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    opened(p)
    before = p.snapshot()

    opened(p)  # duplicates
    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_500_000, status="sent"))  # a late, older state
    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_000, status="partially_filled", filled=0.005))

    assert p.snapshot() == before


def test_a_reserved_open_counts_as_committed_exposure_before_any_event() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)

    pair = p.reserve(intent(qty=0.01))

    assert pair.state == OPENING
    assert p.committed_exposure_krw() == pytest.approx(1_430_000)
    assert p.exposure_krw == 0.0


def test_releasing_a_refused_intent_frees_its_reservation() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    p.reserve(intent())

    p.release("p1-open")

    assert p.committed_exposure_krw() == 0.0
    assert p.pair("p1").state == FAILED


def test_a_reservation_nobody_answers_expires() -> None:
    clock = Clock()
    p = Portfolio(clock, fx_krw_per_usdt=1400, reservation_timeout_s=10)
    p.reserve(intent())

    clock.t += 10.5

    assert p.committed_exposure_krw() == 0.0
    assert p.pairs() == []


def test_executor_events_replace_the_reservation_and_take_its_fx() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    p.reserve(intent(), fx=1390.0)

    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_000_000))
    p.apply(ev("p1", "open", "binance", "buy", 0.01, 100_100))

    pair = p.pair("p1")
    assert (pair.state, pair.in_flight, pair.entry_fx) == (OPEN, "", 1390.0)
    assert p.committed_exposure_krw() == pytest.approx(1_430_000)


def test_a_partly_filled_open_commits_the_whole_order() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)

    p.apply(ev("p1", "open", "upbit", "sell", 0.01, 143_500_000, status="partially_filled", filled=0.004))

    assert p.exposure_krw == pytest.approx(0.004 * 143_500_000)
    assert p.committed_exposure_krw() == pytest.approx(0.01 * 143_500_000)


def test_daily_pnl_follows_the_kst_calendar_day_of_the_closing_event() -> None:
    just_before_midnight_kst = datetime(2024, 1, 1, 14, 59, 59, tzinfo=UTC).timestamp()
    just_after_midnight_kst = datetime(2024, 1, 1, 15, 0, 1, tzinfo=UTC).timestamp()
    clock = Clock()
    p = Portfolio(clock, fx_krw_per_usdt=1400)
    opened(p, "p1")
    opened(p, "p2")

    closed(p, "p1", at=just_before_midnight_kst)
    closed(p, "p2", at=just_after_midnight_kst)

    assert p.daily_pnl_krw(at=just_before_midnight_kst) == pytest.approx(p.pair("p1").realized_pnl_krw)
    assert p.daily_pnl_krw(at=just_after_midnight_kst) == pytest.approx(p.pair("p2").realized_pnl_krw)
    clock.t = just_after_midnight_kst + 3600
    assert p.daily_pnl_krw() == pytest.approx(p.pair("p2").realized_pnl_krw)


def test_utc_days_are_one_setting_away() -> None:
    # 15:00:01 UTC is the next day in Seoul but the same day in UTC.
    morning = datetime(2024, 1, 1, 1, 0, tzinfo=UTC).timestamp()
    p = Portfolio(Clock(), fx_krw_per_usdt=1400, utc_offset_s=0)
    opened(p)

    closed(p, at=datetime(2024, 1, 1, 15, 0, 1, tzinfo=UTC).timestamp())

    assert p.daily_pnl_krw(at=morning) == pytest.approx(p.realized_pnl_krw)


def test_a_buy_upbit_open_is_recognized_from_its_legs() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)

    p.apply(ev("p9", "open", "binance", "sell", 0.01, 100_000))

    assert p.pair("p9").direction == BUY_UPBIT


# -- rebuild ------------------------------------------------------------------------------

_STATUSES = ("filled", "cancelled", "rejected", "failed", "partially_filled")


def _pair_stream(draw: st.DrawFn, pair: str) -> list[OrderEvent]:
    """One pair's events: an open (legs filled, partial, cancelled or failed), maybe a close."""
    t = T0 + draw(st.integers(0, 200_000))
    direction = draw(st.sampled_from((SELL_UPBIT, BUY_UPBIT)))
    up_open, bn_open = ("sell", "buy") if direction == SELL_UPBIT else ("buy", "sell")
    qty = draw(st.sampled_from((0.01, 0.02, 0.5)))
    stream: list[OrderEvent] = []

    def leg_events(action: str, venue: str, side: str, price: float, leg: int) -> str:
        nonlocal t
        status = draw(st.sampled_from(_STATUSES))
        frac = 1.0 if status == "filled" else draw(st.sampled_from((0.0, 0.3, 0.5)))
        if status == "partially_filled":
            stream.append(ev(pair, action, venue, side, qty, price, "sent", at=t, leg=leg))
        t += draw(st.integers(0, 50_000))
        stream.append(ev(pair, action, venue, side, qty, price, status, filled=qty * frac,
                         fee=round(qty * frac * 100, 2), at=t, leg=leg))
        return status

    opens = (leg_events("open", "upbit", up_open, 143_000_000.0, 0),
             leg_events("open", "binance", bn_open, 100_000.0, 1))
    if opens == ("filled", "filled") and draw(st.booleans()):  # only a hedged pair is closed
        leg_events("close", "upbit", bn_open, 142_500_000.0, 0)
        leg_events("close", "binance", up_open, 100_050.0, 1)
    return stream


@st.composite
def histories(draw: st.DrawFn) -> list[OrderEvent]:
    """Interleaved event streams of a few pairs, each stream in its own order."""
    streams = [_pair_stream(draw, f"p{k}") for k in range(draw(st.integers(1, 4)))]
    merged = []
    while streams:
        i = draw(st.integers(0, len(streams) - 1))
        merged.append(streams[i].pop(0))
        if not streams[i]:
            streams.pop(i)
    return merged


@settings(max_examples=150, deadline=None)
@given(histories())
def test_rebuild_from_the_event_history_equals_incremental_application(events: list[OrderEvent]) -> None:
    live = Portfolio(Clock(), fx_krw_per_usdt=1400)
    for e in events:
        live.apply(e)

    restarted = Portfolio(Clock(), fx_krw_per_usdt=1400)
    restarted.rebuild(events)
    live.rebuild(events)  # rebuilding over existing state forgets it first

    assert restarted.snapshot() == live.snapshot()
    snap = live.snapshot()
    assert sum(snap["daily_pnl_krw"].values()) == pytest.approx(snap["realized_pnl_krw"])
    holding = [pr for pr in snap["pairs"].values() if pr.state not in (CLOSED, FAILED)
               and (pr.upbit_qty or pr.binance_qty)]
    assert live.trades_opened == live.trades_closed + len(holding)
    assert live.exposure_krw >= 0.0


def test_rebuild_after_a_round_trip_reproduces_pnl_and_counts() -> None:
    events: list[OrderEvent] = []
    recorder = Portfolio(Clock(), fx_krw_per_usdt=1400)
    recorder.apply = lambda e, _a=recorder.apply: events.append(e) or _a(e)  # type: ignore[method-assign]
    opened(recorder, "p1")
    closed(recorder, "p1")
    opened(recorder, "p2")

    restarted = Portfolio(Clock(), fx_krw_per_usdt=1400)
    restarted.rebuild(events)

    assert restarted.snapshot() == recorder.snapshot()
    assert (restarted.trades_opened, restarted.trades_closed, restarted.open_pairs) == (2, 1, 1)


def test_repeated_events_after_a_close_leave_the_totals_bit_identical() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    opened(p)
    closed(p)
    before = (p.realized_pnl_krw, p.daily_pnl_krw())

    closed(p)
    opened(p)

    assert (p.realized_pnl_krw, p.daily_pnl_krw()) == before


def test_resync_takes_the_ledgers_word_for_fills_it_never_heard_and_keeps_reservations() -> None:
    clock = Clock()
    p = Portfolio(clock, fx_krw_per_usdt=1400)
    sent = [ev("p1", "open", "upbit", "sell", 0.01, 143_500_000, status="sent"),
            ev("p1", "open", "binance", "buy", 0.01, 100_000, status="sent")]
    for e in sent:
        p.apply(e)
    p.reserve(intent("p2"))  # on its way through guard and executor, not in the ledger yet
    committed_before = p.committed_exposure_krw()
    # The executor committed both fills and was killed before it sent them.
    ledger = [*sent, ev("p1", "open", "upbit", "sell", 0.01, 143_500_000),
              ev("p1", "open", "binance", "buy", 0.01, 100_000)]

    p.resync(ledger)

    assert p.pair("p1").state == OPEN and p.exposure_krw == pytest.approx(0.01 * 143_500_000)
    assert p.pair("p2") is not None and p.pair("p2").in_flight == "open"
    assert p.committed_exposure_krw() == pytest.approx(committed_before)


def test_resync_drops_a_reservation_the_ledger_already_has() -> None:
    p = Portfolio(Clock(), fx_krw_per_usdt=1400)
    p.reserve(intent("p1"))

    p.resync([ev("p1", "open", "upbit", "sell", 0.01, 143_500_000, status="sent"),
              ev("p1", "open", "binance", "buy", 0.01, 100_000, status="sent")])

    assert p.committed_exposure_krw() == pytest.approx(0.01 * 143_500_000, rel=0.01)
    assert p.pair("p1").orders == 2
