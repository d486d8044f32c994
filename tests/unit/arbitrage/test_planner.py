from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.accounting import OPENING, Portfolio
from arbitrage.planner import IntentPlanner, PlannerConfig, client_order_id, sizer_from_manager
from arbitrage.position_adv import AdvancedPositionManager
from arbitrage.strategy import Signal
from messages import BUY_UPBIT, SELL_UPBIT, DirectionQuote, Opportunity, OrderEvent, OrderIntent

T0 = 1_700_000_000.0
BINANCE_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def opportunity(clock: Clock, qty: float = 0.03) -> Opportunity:
    """Upbit bid 143.5M / ask 143.6M KRW, Binance bid 99,990 / ask 100,000 USDT, fx 1400."""
    now_ns = int(clock.t * 1e9)
    return Opportunity(
        id="opp1", ts_ns=now_ns, symbol="BTC", premium_pct=2.5, baseline_pct=2.0, fx=1400.0,
        sell_upbit=DirectionQuote(direction=SELL_UPBIT, premium_pct=2.5, edge_pct=0.35, qty=qty,
                                  upbit_price=143_500_000, binance_price=100_000),
        buy_upbit=DirectionQuote(direction=BUY_UPBIT, premium_pct=2.58, edge_pct=-0.73, qty=0.0,
                                 upbit_price=143_600_000, binance_price=99_990),
        expires_ns=now_ns + 1_000_000_000, origin_ts_ns=now_ns - 3_000_000)


def open_signal(clock: Clock, pair_id: str = "p1", qty: float = 0.03) -> Signal:
    opp = opportunity(clock, qty)
    return Signal(action="open", pair_id=pair_id, symbol="BTC", direction=SELL_UPBIT, qty=qty,
                  opportunity=opp, quote=opp.sell_upbit, reason="test")


def setup(size_krw: float = 1_000_000.0, max_exposure_krw: float = 10_000_000.0,
          multiplier: float | None = None) -> tuple[Clock, Portfolio, IntentPlanner]:
    clock = Clock()
    portfolio = Portfolio(clock, fx_krw_per_usdt=1400)
    counter = itertools.count(1)
    planner = IntentPlanner(
        PlannerConfig(max_exposure_krw=max_exposure_krw, slippage_pct=0.05, unwind_slippage_pct=0.3,
                      intent_ttl_s=2.0),
        portfolio, lambda symbol: size_krw, clock,
        multiplier=(lambda: multiplier) if multiplier is not None else None,
        ids=lambda: f"i{next(counter)}")
    return clock, portfolio, planner


def fill(portfolio: Portfolio, intent: OrderIntent, clock: Clock, fraction: float = 1.0,
         status: str = "filled") -> None:
    for leg in intent.legs:
        portfolio.apply(OrderEvent(
            ts_ns=int(clock.t * 1e9), intent_id=intent.id, pair_id=intent.pair_id, action=intent.action,
            client_order_id=leg.client_order_id, venue=leg.venue, symbol=intent.symbol, side=leg.side,
            status=status, qty=leg.qty, price=leg.price, filled_qty=leg.qty * fraction,
            avg_price=leg.price))


def held(portfolio: Portfolio, pair_id: str = "p0", qty: float = 0.01) -> None:
    """An open SELL_UPBIT pair filled at 143.5M KRW / 100,000 USDT: worth qty * 143.5M KRW."""
    for i, (venue, side, price) in enumerate((("upbit", "sell", 143_500_000), ("binance", "buy", 100_000))):
        portfolio.apply(OrderEvent(ts_ns=int(T0 * 1e9), intent_id=f"{pair_id}-open", pair_id=pair_id,
                                   action="open", client_order_id=f"{pair_id}-open-{i}", venue=venue,
                                   symbol="BTC", side=side, status="filled", qty=qty, price=price,
                                   filled_qty=qty, avg_price=price))


def test_an_open_has_two_legs_of_one_quantity_sized_in_krw_at_slipped_tick_rounded_limits() -> None:
    # Upbit sell: 143.5M * (1 - 0.0005) = 143,428,250 -> down to the 1,000 KRW tick: 143,428,000.
    # Binance buy: 100,000 * 1.0005 = 100,050.00 (on its 0.01 tick).
    # 1,000,000 KRW / 143,428,000 = 0.0069721... -> 0.00697 BTC (Binance lot 0.00001).
    clock, _, planner = setup(size_krw=1_000_000)

    intent, reason = planner.plan_one(open_signal(clock))

    assert reason == ""
    up, bn = intent.legs
    assert (up.venue, up.side, up.qty, up.price) == ("upbit", "sell", 0.00697, 143_428_000)
    assert (bn.venue, bn.side, bn.qty, bn.price) == ("binance", "buy", 0.00697, 100_050.0)
    assert intent.notional_krw == pytest.approx(0.00697 * 143_428_000)
    assert (intent.action, intent.direction, intent.pair_id) == ("open", SELL_UPBIT, "p1")


def test_a_buy_upbit_open_buys_on_upbit_and_sells_on_binance() -> None:
    clock, _, planner = setup()
    opp = opportunity(clock)
    sig = Signal(action="open", pair_id="p1", symbol="BTC", direction=BUY_UPBIT, qty=0.01, opportunity=opp,
                 quote=opp.buy_upbit, reason="test")

    intent, _ = planner.plan_one(sig)

    up, bn = intent.legs
    # 143.6M * 1.0005 = 143,671,800 -> up to 143,672,000; 99,990 * 0.9995 = 99,940.005 -> down to 99,940.00
    assert (up.side, up.price, bn.side, bn.price) == ("buy", 143_672_000, "sell", 99_940.0)


def test_the_quantity_is_capped_by_what_the_quote_holds() -> None:
    clock, _, planner = setup(size_krw=100_000_000)

    intent, _ = planner.plan_one(open_signal(clock, qty=0.012))

    assert intent.legs[0].qty == 0.012


def test_the_rebalancer_multiplier_scales_the_size() -> None:
    clock, _, planner = setup(size_krw=1_000_000, multiplier=0.5)

    intent, _ = planner.plan_one(open_signal(clock))

    assert intent.legs[0].qty == 0.00348  # 500,000 / 143,428,000 = 0.003486 -> 0.00348


def test_the_remaining_room_under_the_exposure_cap_limits_the_size() -> None:
    # An open pair worth 1,435,000 KRW under a 2,000,000 cap leaves 565,000 KRW:
    # 565,000 / 143,428,000 = 0.0039392 -> 0.00393 BTC.
    clock, portfolio, planner = setup(size_krw=1_000_000, max_exposure_krw=2_000_000)
    held(portfolio, qty=0.01)
    assert portfolio.exposure_krw == pytest.approx(1_435_000)

    intent, _ = planner.plan_one(open_signal(clock, "p1"))

    assert intent.legs[0].qty == 0.00393
    assert portfolio.committed_exposure_krw() <= 2_000_000


def test_in_flight_opens_count_against_the_cap_before_any_fill() -> None:
    # 1,500,000 cap, 1,000,000 size: 999,693 KRW, then the 500,307 left -> 0.00348 BTC, then nothing.
    clock, portfolio, planner = setup(size_krw=1_000_000, max_exposure_krw=1_500_000)

    a, _ = planner.plan_one(open_signal(clock, "pa"))
    b, _ = planner.plan_one(open_signal(clock, "pb"))
    c, reason = planner.plan_one(open_signal(clock, "pc"))

    assert (a.legs[0].qty, b.legs[0].qty, c) == (0.00697, 0.00348, None)
    assert "below the venue minimums" in reason
    assert portfolio.committed_exposure_krw() <= 1_500_000
    assert portfolio.pair("pa").state == OPENING


def test_a_full_cap_drops_the_open_with_a_reason() -> None:
    clock, portfolio, planner = setup(size_krw=1_000_000, max_exposure_krw=1_435_000)
    held(portfolio, qty=0.01)

    intent, reason = planner.plan_one(open_signal(clock, "p1"))

    assert intent is None

    assert reason.startswith("exposure cap reached")


def test_a_size_below_the_venue_minimums_is_dropped() -> None:
    clock, _, planner = setup(size_krw=6_000)  # 6,000 KRW is 0.00004 BTC: 4 USDT on Binance

    intent, reason = planner.plan_one(open_signal(clock))

    assert intent is None
    assert "below the venue minimums" in reason


def test_the_intent_carries_expiry_origin_and_opportunity_id() -> None:
    clock, _, planner = setup()
    sig = open_signal(clock)

    intent, _ = planner.plan_one(sig)

    assert intent.expires_ns == sig.opportunity.expires_ns  # sooner than now + 2 s
    assert intent.origin_ts_ns == sig.opportunity.origin_ts_ns
    assert intent.opportunity_id == "opp1"
    assert intent.ts_ns == int(T0 * 1e9)


def test_client_order_ids_derive_from_the_intent_id_and_leg() -> None:
    clock, _, planner = setup()

    intent, _ = planner.plan_one(open_signal(clock))

    assert intent.id == "i1"
    assert [leg.client_order_id for leg in intent.legs] == ["i1-0", "i1-1"]


def test_client_order_ids_stay_valid_and_unique_for_awkward_intent_ids() -> None:
    ids = ["a" * 40, "with space", "ünïcode", "a" * 40 + "b", "ok.id:1/x_y-z"]

    cids = [client_order_id(i, leg) for i in ids for leg in (0, 1)]

    assert all(BINANCE_CLIENT_ID.match(c) for c in cids)
    assert len(set(cids)) == len(cids)
    assert client_order_id("a" * 40, 1) == client_order_id("a" * 40, 1)
    assert client_order_id("ok.id:1/x_y-z", 0) == "ok.id:1/x_y-z-0"


def test_a_close_trades_the_pairs_quantity_at_the_close_quote_and_ignores_the_cap() -> None:
    clock, portfolio, planner = setup(size_krw=1_000_000, max_exposure_krw=1_000_000)
    opened, _ = planner.plan_one(open_signal(clock))
    fill(portfolio, opened, clock)
    opp = opportunity(clock)
    sig = Signal(action="close", pair_id="p1", symbol="BTC", direction=BUY_UPBIT, qty=0.00697,
                 opportunity=opp, quote=opp.buy_upbit, reason="reverted")

    intent, reason = planner.plan_one(sig)

    assert reason == ""
    up, bn = intent.legs
    assert (up.side, up.qty, up.price) == ("buy", 0.00697, 143_672_000)
    assert (bn.side, bn.qty, bn.price) == ("sell", 0.00697, 99_940.0)
    assert intent.action == "close"


def test_a_close_of_a_pair_that_is_not_open_is_dropped() -> None:
    clock, _, planner = setup()
    opp = opportunity(clock)
    sig = Signal(action="close", pair_id="nope", symbol="BTC", direction=BUY_UPBIT, qty=0.01,
                 opportunity=opp, quote=opp.buy_upbit, reason="reverted")

    assert planner.plan_one(sig) == (None, "pair nope is not open")


@pytest.mark.parametrize(("venue", "side", "price"), [
    ("upbit", "buy", 144_031_000),  # the ask 143.6M * 1.003 = 144,030,800 -> up
    ("upbit", "sell", 143_069_000),  # the bid 143.5M * 0.997 = 143,069,500 -> down
    ("binance", "buy", 100_300.0),  # the ask 100,000 * 1.003
    ("binance", "sell", 99_690.03),  # the bid 99,990 * 0.997 = 99,690.03
])
def test_an_unwind_is_one_leg_priced_against_the_side_of_the_book_it_takes(venue: str, side: str,
                                                                              price: float) -> None:
    clock, _, planner = setup()
    sig = Signal(action="unwind", pair_id="p1", symbol="BTC", direction=SELL_UPBIT, qty=0.01,
                 opportunity=opportunity(clock), quote=None, reason="one leg", venue=venue, side=side)

    intent, _ = planner.plan_one(sig)

    (leg,) = intent.legs
    assert (leg.venue, leg.side, leg.qty, leg.price) == (venue, side, 0.01, price)
    assert intent.action == "unwind"


def test_the_advanced_position_manager_sizes_opens() -> None:
    # base 1,000,000 x risk (normal 1.0, cautious 0.6) x regime (RANGING 0.8 until it has seen a trend)
    manager = AdvancedPositionManager(base_position_size_krw=1_000_000, max_exposure_krw=5_000_000)
    mode = "normal"
    size = sizer_from_manager(manager, volatility=lambda symbol: 0.1, risk_mode=lambda: mode)
    clock, _, planner = setup()
    planner.size_krw = size

    assert size("BTC") == pytest.approx(800_000)
    mode = "cautious"
    assert size("BTC") == pytest.approx(480_000)
    intent, _ = planner.plan_one(open_signal(clock))
    assert intent.legs[0].qty == 0.00334  # 480,000 / 143,428,000 = 0.0033466


def test_a_lowered_exposure_limit_lowers_the_cap_but_never_raises_it() -> None:
    clock, portfolio, planner = setup(size_krw=1_000_000, max_exposure_krw=600_000)
    planner.exposure_limit_krw = lambda: 300_000.0
    low, _ = planner.plan_one(open_signal(clock, "p1"))
    planner.exposure_limit_krw = lambda: 10_000_000.0

    high, _ = planner.plan_one(open_signal(clock, "p2"))

    assert low.notional_krw <= 300_000
    assert low.notional_krw + high.notional_krw <= 600_000


# -- the cap under any sequence of opens and fills ----------------------------------------------

steps = st.lists(st.tuples(st.sampled_from(("open", "fill", "partial", "cancel", "close")),
                           st.floats(10_000, 3_000_000), st.sampled_from((0.001, 0.01, 0.05, 1.0))),
                 min_size=1, max_size=30)


@settings(max_examples=150, deadline=None)
@given(steps, st.floats(500_000, 5_000_000))
def test_exposure_never_exceeds_the_cap_counting_in_flight_opens(plan: list, cap: float) -> None:
    clock, portfolio, planner = setup(max_exposure_krw=cap)
    sizes = iter([s for _, s, _ in plan])
    planner.size_krw = lambda symbol: next(sizes, 100_000.0)
    waiting: list[OrderIntent] = []
    n = 0
    for action, _, qty in plan:
        clock.t += 0.01
        if action == "open":
            n += 1
            intent, _ = planner.plan_one(open_signal(clock, f"p{n}", qty=qty))
            if intent is not None:
                waiting.append(intent)
        elif action == "close":
            for pair in portfolio.pairs():
                if pair.state == "open" and pair.balanced:
                    opp = opportunity(clock)
                    sig = Signal(action="close", pair_id=pair.pair_id, symbol="BTC", direction=BUY_UPBIT,
                                 qty=pair.qty, opportunity=opp, quote=opp.buy_upbit, reason="t")
                    intent, _ = planner.plan_one(sig)
                    if intent is not None:
                        waiting.append(intent)
                    break
        elif waiting:
            intent = waiting.pop(0)
            frac, status = {"fill": (1.0, "filled"), "partial": (0.5, "cancelled"),
                            "cancel": (0.0, "cancelled")}[action]
            fill(portfolio, intent, clock, frac, status)
        assert portfolio.committed_exposure_krw() <= cap * (1 + 1e-12)
        assert portfolio.exposure_krw <= cap * (1 + 1e-12)
