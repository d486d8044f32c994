"""Naked-leg repair: unwind the excess where it is held, or complete the missing leg."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.leg_repair import (
    COMPLETE,
    UNWIND,
    Naked,
    choose_repair,
    complete_cost_krw,
    exit_price,
    unwind_cost_krw,
)
from arbitrage.venue_rules import BINANCE, UPBIT
from messages import BUY_UPBIT, SELL_UPBIT, DirectionQuote, Opportunity

UP_BID, UP_ASK = 143_500_000.0, 143_600_000.0
BN_BID, BN_ASK = 99_990.0, 100_000.0
FX = 1400.0
NONE: frozenset[str] = frozenset()


def opportunity(sell_edge: float = 0.35, buy_edge: float = -0.73) -> Opportunity:
    """Upbit bid 143.5M / ask 143.6M KRW, Binance bid 99,990 / ask 100,000 USDT, fx 1400."""
    return Opportunity(
        symbol="BTC", premium_pct=2.5, baseline_pct=2.0, fx=FX,
        sell_upbit=DirectionQuote(direction=SELL_UPBIT, premium_pct=2.5, edge_pct=sell_edge, qty=0.03,
                                  upbit_price=UP_BID, binance_price=BN_ASK),
        buy_upbit=DirectionQuote(direction=BUY_UPBIT, premium_pct=2.58, edge_pct=buy_edge, qty=0.03,
                                 upbit_price=UP_ASK, binance_price=BN_BID),
        expires_ns=0)


def naked_long_binance(qty: float = 0.01, entry: float = BN_ASK) -> Naked:
    """SELL_UPBIT pair: the Binance buy filled, the Upbit sell did not."""
    return Naked(pair_id="p1", symbol="BTC", direction=SELL_UPBIT, held_venue=BINANCE, side="sell",
                 qty=qty, entry_price=entry)


def naked_long_upbit(qty: float = 0.01, entry: float = UP_ASK) -> Naked:
    """BUY_UPBIT pair: the Upbit buy filled, the Binance sell did not."""
    return Naked(pair_id="p2", symbol="BTC", direction=BUY_UPBIT, held_venue=UPBIT, side="sell",
                 qty=qty, entry_price=entry)


def naked_short_binance(qty: float = 0.01, entry: float = BN_BID) -> Naked:
    """BUY_UPBIT pair: the Binance sell filled, the Upbit buy did not."""
    return Naked(pair_id="p3", symbol="BTC", direction=BUY_UPBIT, held_venue=BINANCE, side="buy",
                 qty=qty, entry_price=entry)


def naked_short_upbit(qty: float = 0.01, entry: float = UP_BID) -> Naked:
    """SELL_UPBIT pair: the Upbit sell filled, the Binance buy did not."""
    return Naked(pair_id="p4", symbol="BTC", direction=SELL_UPBIT, held_venue=UPBIT, side="buy",
                 qty=qty, entry_price=entry)


# -- prices and costs ---------------------------------------------------------------------------

@pytest.mark.parametrize(("venue", "side", "price"), [
    (UPBIT, "sell", UP_BID), (UPBIT, "buy", UP_ASK), (BINANCE, "sell", BN_BID), (BINANCE, "buy", BN_ASK)])
def test_exit_price_is_the_touch_a_taker_meets(venue: str, side: str, price: float) -> None:
    assert exit_price(opportunity(), venue, side) == price


def test_unwind_cost_of_a_binance_long_in_krw() -> None:
    # sold back at 99,990 after buying at 100,000: 10 USDT + 0.1 % of 99,990 = 109.99 USDT a coin.
    cost = unwind_cost_krw(naked_long_binance(qty=0.01), opportunity())

    assert cost == pytest.approx(0.01 * 109.99 * FX)


def test_unwind_cost_of_an_upbit_long_in_krw() -> None:
    # sold back at 143.5M after buying at 143.6M: 100,000 + 0.05 % of 143.5M = 171,750 KRW a coin.
    cost = unwind_cost_krw(naked_long_upbit(qty=0.02), opportunity())

    assert cost == pytest.approx(0.02 * 171_750.0)


def test_unwind_cost_of_a_binance_short() -> None:
    # bought back at 100,000 after selling at 99,990: 10 + 100 USDT a coin.
    cost = unwind_cost_krw(naked_short_binance(qty=0.5), opportunity())

    assert cost == pytest.approx(0.5 * 110.0 * FX)


def test_unwind_cost_of_an_upbit_short() -> None:
    # bought back at 143.6M after selling at 143.5M: 100,000 + 71,800 KRW a coin.
    cost = unwind_cost_krw(naked_short_upbit(qty=0.01), opportunity())

    assert cost == pytest.approx(0.01 * 171_800.0)


def test_a_favourable_move_lowers_the_unwind_cost() -> None:
    # bought at 99,000, now sold at 99,990: a gain of 990 less the 99.99 fee.
    cost = unwind_cost_krw(naked_long_binance(qty=1.0, entry=99_000.0), opportunity())

    assert cost == pytest.approx((99.99 - 990.0) * FX)
    assert cost < 0


def test_unknown_entry_price_costs_only_the_fee() -> None:
    cost = unwind_cost_krw(naked_long_upbit(qty=1.0, entry=0.0), opportunity())

    assert cost == pytest.approx(UP_BID * 0.0005)


@pytest.mark.parametrize(("naked", "edge", "upbit_px"), [
    (naked_long_binance(), 0.35, UP_BID), (naked_short_upbit(), 0.35, UP_BID),
    (naked_long_upbit(), -0.73, UP_ASK), (naked_short_binance(), -0.73, UP_ASK)])
def test_complete_cost_is_minus_the_direction_edge(naked: Naked, edge: float, upbit_px: float) -> None:
    cost = complete_cost_krw(naked, opportunity(sell_edge=0.35, buy_edge=-0.73))

    assert cost == pytest.approx(-edge / 100.0 * naked.qty * upbit_px)


# -- choose_repair --------------------------------------------------------------------------------

def test_completes_when_the_edge_makes_it_cheaper() -> None:
    n, opp = naked_long_binance(), opportunity(sell_edge=0.35)

    r = choose_repair(n, opp, active=True, breaker_open=NONE)

    assert r is not None
    assert (r.how, r.venue, r.side, r.qty) == (COMPLETE, UPBIT, "sell", n.qty)
    assert r.cost_krw == pytest.approx(complete_cost_krw(n, opp))
    assert r.other_cost_krw == pytest.approx(unwind_cost_krw(n, opp))
    assert r.cost_krw < r.other_cost_krw
    assert UPBIT in r.reason


def test_unwinds_when_completing_costs_more() -> None:
    n, opp = naked_long_upbit(), opportunity(buy_edge=-0.73)

    r = choose_repair(n, opp, active=True, breaker_open=NONE)

    assert r is not None
    assert (r.how, r.venue, r.side, r.qty) == (UNWIND, UPBIT, "sell", n.qty)
    assert r.cost_krw == pytest.approx(unwind_cost_krw(n, opp))
    assert r.other_cost_krw == pytest.approx(complete_cost_krw(n, opp))
    assert r.cost_krw <= r.other_cost_krw


def tie_edge(n: Naked) -> float:
    """An edge at which completing ``n`` costs exactly (bit for bit) what unwinding it does."""
    u = unwind_cost_krw(n, opportunity())
    edge = -u / (n.qty * UP_BID) * 100.0
    for _ in range(64):
        c = complete_cost_krw(n, opportunity(sell_edge=edge))
        if c == u:
            return edge
        edge = math.nextafter(edge, math.inf if c > u else -math.inf)
    raise AssertionError("no exact tie found")


def test_equal_costs_unwind() -> None:
    n = naked_long_binance(qty=1.0)
    opp = opportunity(sell_edge=tie_edge(n))
    assert complete_cost_krw(n, opp) == unwind_cost_krw(n, opp)

    r = choose_repair(n, opp, active=True, breaker_open=NONE)

    assert r is not None and r.how == UNWIND
    # one step more edge and completing wins
    nudged = opportunity(sell_edge=math.nextafter(tie_edge(n), math.inf) + 1e-9)
    r2 = choose_repair(n, nudged, active=True, breaker_open=NONE)
    assert r2 is not None and r2.how == COMPLETE


@pytest.mark.parametrize("naked", [naked_long_binance(), naked_long_upbit(), naked_short_binance(),
                                   naked_short_upbit()])
def test_unwind_trades_the_excess_side_on_the_holding_venue(naked: Naked) -> None:
    opp = opportunity(sell_edge=-5.0, buy_edge=-5.0)  # completing is expensive both ways

    r = choose_repair(naked, opp, active=True, breaker_open=NONE)

    assert r is not None
    assert (r.how, r.venue, r.side, r.qty) == (UNWIND, naked.held_venue, naked.side, naked.qty)


@pytest.mark.parametrize("naked", [naked_long_binance(), naked_long_upbit(), naked_short_binance(),
                                   naked_short_upbit()])
def test_completion_trades_the_same_side_on_the_missing_venue(naked: Naked) -> None:
    opp = opportunity(sell_edge=5.0, buy_edge=5.0)

    r = choose_repair(naked, opp, active=True, breaker_open=NONE)

    missing = BINANCE if naked.held_venue == UPBIT else UPBIT
    assert r is not None
    assert (r.how, r.venue, r.side, r.qty) == (COMPLETE, missing, naked.side, naked.qty)


def test_never_completes_while_trading_is_not_active() -> None:
    n, opp = naked_long_binance(), opportunity(sell_edge=5.0)

    r = choose_repair(n, opp, active=False, breaker_open=NONE)

    assert r is not None
    assert (r.how, r.venue) == (UNWIND, BINANCE)
    assert r.other_cost_krw is None
    assert "reducing" in r.reason


def test_never_completes_on_a_venue_whose_breaker_is_open() -> None:
    n, opp = naked_long_binance(), opportunity(sell_edge=5.0)

    r = choose_repair(n, opp, active=True, breaker_open=frozenset({UPBIT}))

    assert r is not None
    assert (r.how, r.venue) == (UNWIND, BINANCE)
    assert r.other_cost_krw is None
    assert f"{UPBIT}'s breaker is open" in r.reason


def test_never_completes_after_a_completion_was_refused() -> None:
    n, opp = naked_long_upbit(), opportunity(buy_edge=5.0)

    r = choose_repair(n, opp, active=True, breaker_open=NONE, completion_refused=True)

    assert r is not None
    assert (r.how, r.venue) == (UNWIND, UPBIT)
    assert r.other_cost_krw is None
    assert "refused" in r.reason


def test_holding_venue_breaker_open_prefers_completion_even_when_dearer() -> None:
    n, opp = naked_long_binance(), opportunity(sell_edge=-5.0)
    assert complete_cost_krw(n, opp) > unwind_cost_krw(n, opp)

    r = choose_repair(n, opp, active=True, breaker_open=frozenset({BINANCE}))

    assert r is not None
    assert (r.how, r.venue, r.side) == (COMPLETE, UPBIT, "sell")
    assert r.cost_krw == pytest.approx(complete_cost_krw(n, opp))
    assert BINANCE in r.reason


@pytest.mark.parametrize(("active", "opened", "refused"), [
    (True, frozenset({UPBIT, BINANCE}), False), (False, frozenset({BINANCE}), False),
    (True, frozenset({BINANCE}), True)])
def test_unwinds_on_an_open_breaker_when_it_is_the_only_way_out(active: bool, opened: frozenset[str],
                                                                refused: bool) -> None:
    n, opp = naked_long_binance(), opportunity(sell_edge=5.0)

    r = choose_repair(n, opp, active=active, breaker_open=opened, completion_refused=refused)

    assert r is not None
    assert (r.how, r.venue, r.side, r.qty) == (UNWIND, BINANCE, "sell", n.qty)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["long_binance", "long_upbit", "short_binance", "short_upbit"]),
       qty=st.floats(1e-4, 10.0), entry_shift=st.floats(-0.05, 0.05),
       sell_edge=st.floats(-5.0, 5.0), buy_edge=st.floats(-5.0, 5.0), active=st.booleans(),
       opened=st.sets(st.sampled_from([UPBIT, BINANCE])), refused=st.booleans())
def test_repair_rules_hold_for_any_state(kind: str, qty: float, entry_shift: float, sell_edge: float,
                                         buy_edge: float, active: bool, opened: set[str],
                                         refused: bool) -> None:
    make = {"long_binance": naked_long_binance, "long_upbit": naked_long_upbit,
            "short_binance": naked_short_binance, "short_upbit": naked_short_upbit}[kind]
    base = make()
    n = make(qty=qty, entry=base.entry_price * (1 + entry_shift))
    opp = opportunity(sell_edge=sell_edge, buy_edge=buy_edge)
    missing = BINANCE if n.held_venue == UPBIT else UPBIT
    breaker_open = frozenset(opened)

    r = choose_repair(n, opp, active=active, breaker_open=breaker_open, completion_refused=refused)

    assert r is not None
    assert r.side == n.side and r.qty == n.qty
    completion_allowed = active and missing not in breaker_open and not refused
    if not completion_allowed:
        assert (r.how, r.venue) == (UNWIND, n.held_venue)
        assert r.other_cost_krw is None
    if r.how == COMPLETE:
        assert completion_allowed and r.venue == missing
    else:
        assert r.venue == n.held_venue
    if completion_allowed and n.held_venue not in breaker_open:
        u, c = unwind_cost_krw(n, opp), complete_cost_krw(n, opp)
        assert r.how == (COMPLETE if c < u else UNWIND)
        assert r.cost_krw == pytest.approx(min(u, c))
