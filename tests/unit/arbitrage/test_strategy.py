from __future__ import annotations

import itertools

import pytest

from arbitrage.accounting import CLOSING, Portfolio
from arbitrage.premium import FEES_PCT, PremiumConfig
from arbitrage.strategy import PairStrategy, Signal, StrategyConfig
from messages import (
    BUY_UPBIT,
    SELL_UPBIT,
    DirectionQuote,
    Opportunity,
    OrderEvent,
    OrderIntent,
    OrderLeg,
)

T0 = 1_700_000_000.0
BASELINE = 2.0
ENTRY, EXIT = 0.2, 0.05


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def market(clock: Clock, sell_premium: float = 2.1, buy_premium: float = 2.2, sell_qty: float = 0.0,
           buy_qty: float = 0.0, ttl_s: float = 1.0) -> Opportunity:
    """An opportunity with the given executable premiums (percent) in each direction."""
    sell = DirectionQuote(direction=SELL_UPBIT, premium_pct=sell_premium,
                          edge_pct=sell_premium - BASELINE - FEES_PCT, qty=sell_qty,
                          upbit_price=143_500_000, binance_price=100_000)
    buy = DirectionQuote(direction=BUY_UPBIT, premium_pct=buy_premium,
                         edge_pct=BASELINE - buy_premium - FEES_PCT, qty=buy_qty,
                         upbit_price=143_600_000, binance_price=99_990)
    now_ns = int(clock.t * 1e9)
    return Opportunity(ts_ns=now_ns, symbol="BTC", premium_pct=(sell_premium + buy_premium) / 2,
                       baseline_pct=BASELINE, fx=1400.0, sell_upbit=sell, buy_upbit=buy,
                       expires_ns=now_ns + int(ttl_s * 1e9))


def rich(clock: Clock, qty: float = 0.01) -> Opportunity:
    """Upbit 0.5 % over the baseline: edge 0.35 % after fees, past the 0.2 % entry."""
    return market(clock, sell_premium=2.5, buy_premium=2.6, sell_qty=qty)


def setup(**overrides: float) -> tuple[Clock, Portfolio, PairStrategy]:
    clock = Clock()
    portfolio = Portfolio(clock, fx_krw_per_usdt=1400)
    counter = itertools.count(1)
    cfg = StrategyConfig(premium=PremiumConfig(entry_threshold_pct=ENTRY, exit_threshold_pct=EXIT),
                         **{"cooldown_s": 10.0, "max_hold_s": 3600.0, "signal_timeout_s": 5.0,
                            **overrides})
    return clock, portfolio, PairStrategy(cfg, clock, portfolio, ids=lambda: str(next(counter)))


def fill(portfolio: Portfolio, sig: Signal, clock: Clock, status: str = "filled") -> None:
    """The executor's answer to ``sig``: both legs at the quote's prices."""
    if sig.direction == SELL_UPBIT:
        legs = (("upbit", "sell", 143_500_000), ("binance", "buy", 100_000))
    else:
        legs = (("upbit", "buy", 143_600_000), ("binance", "sell", 99_990))
    for i, (venue, side, price) in enumerate(legs):
        portfolio.apply(OrderEvent(
            ts_ns=int(clock.t * 1e9), intent_id=f"{sig.pair_id}-{sig.action}", pair_id=sig.pair_id,
            action=sig.action, client_order_id=f"{sig.pair_id}-{sig.action}-{i}", venue=venue,
            symbol="BTC", side=side, status=status, qty=sig.qty, price=price,
            filled_qty=sig.qty if status == "filled" else 0.0, avg_price=price))


def open_pair(clock: Clock, portfolio: Portfolio, strategy: PairStrategy) -> Signal:
    (sig,) = strategy.on_opportunity(rich(clock))
    fill(portfolio, sig, clock)
    return sig


def test_opens_a_sell_upbit_pair_when_the_edge_clears_the_entry_threshold() -> None:
    clock, _, strategy = setup()

    signals = strategy.on_opportunity(rich(clock, qty=0.03))

    (sig,) = signals
    assert (sig.action, sig.direction, sig.qty, sig.pair_id) == ("open", SELL_UPBIT, 0.03, "p1")
    assert sig.quote.direction == SELL_UPBIT


def test_opens_a_buy_upbit_pair_when_upbit_is_cheap() -> None:
    clock, _, strategy = setup()
    # 1.5 % against a 2.0 % baseline: 0.5 - 0.15 = 0.35 % edge for buying on Upbit.
    cheap = market(clock, sell_premium=1.4, buy_premium=1.5, buy_qty=0.02)

    (sig,) = strategy.on_opportunity(cheap)

    assert (sig.action, sig.direction, sig.qty) == ("open", BUY_UPBIT, 0.02)


def test_no_open_when_the_edge_is_under_the_entry_threshold() -> None:
    clock, _, strategy = setup()
    # 2.3 % premium: 0.3 % over the baseline is only 0.15 % after fees.
    assert strategy.on_opportunity(market(clock, sell_premium=2.3, buy_premium=2.4, sell_qty=0.01)) == []


def test_no_open_when_the_books_hold_nothing_tradable() -> None:
    clock, _, strategy = setup()
    assert strategy.on_opportunity(rich(clock, qty=0.0)) == []


def test_an_expired_opportunity_is_ignored() -> None:
    clock, _, strategy = setup()
    opp = rich(clock)
    clock.t += 1.5

    assert strategy.on_opportunity(opp) == []


def test_no_second_pair_past_the_per_symbol_limit() -> None:
    clock, portfolio, strategy = setup(max_open_pairs_per_symbol=1)
    open_pair(clock, portfolio, strategy)
    clock.t += 60

    assert strategy.on_opportunity(rich(clock)) == []


def test_an_open_signal_not_yet_acted_on_counts_toward_the_limit() -> None:
    clock, _, strategy = setup(max_open_pairs_per_symbol=1, cooldown_s=0.0)
    strategy.on_opportunity(rich(clock))
    clock.t += 1

    assert strategy.on_opportunity(rich(clock)) == []


def test_the_cooldown_spaces_opens_of_one_symbol() -> None:
    clock, portfolio, strategy = setup(max_open_pairs_per_symbol=3, cooldown_s=10.0)
    open_pair(clock, portfolio, strategy)

    clock.t += 9
    assert strategy.on_opportunity(rich(clock)) == []
    clock.t += 1
    assert [s.action for s in strategy.on_opportunity(rich(clock))] == ["open"]


def test_closes_when_the_premium_reverts_inside_the_exit_threshold() -> None:
    clock, portfolio, strategy = setup()
    opened = open_pair(clock, portfolio, strategy)
    clock.t += 60
    # The close trades BUY_UPBIT: its premium 2.04 % is within 0.05 % of the 2.0 % baseline.
    reverted = market(clock, sell_premium=1.95, buy_premium=2.04)

    (sig,) = strategy.on_opportunity(reverted)

    assert (sig.action, sig.pair_id, sig.direction, sig.qty) == ("close", opened.pair_id, BUY_UPBIT, 0.01)
    assert sig.quote is reverted.buy_upbit


def test_keeps_the_pair_while_the_premium_is_still_away_from_the_baseline() -> None:
    clock, portfolio, strategy = setup()
    open_pair(clock, portfolio, strategy)
    clock.t += 60

    assert strategy.on_opportunity(market(clock, sell_premium=2.1, buy_premium=2.2)) == []


def test_a_buy_upbit_pair_closes_when_the_premium_climbs_back() -> None:
    clock, portfolio, strategy = setup()
    (sig,) = strategy.on_opportunity(market(clock, sell_premium=1.4, buy_premium=1.5, buy_qty=0.02))
    fill(portfolio, sig, clock)
    clock.t += 60

    (close,) = strategy.on_opportunity(market(clock, sell_premium=1.96, buy_premium=2.05))

    assert (close.action, close.direction, close.qty) == ("close", SELL_UPBIT, 0.02)


def test_closes_when_the_time_limit_passes_even_without_reversion() -> None:
    clock, portfolio, strategy = setup(max_hold_s=3600.0)
    open_pair(clock, portfolio, strategy)
    clock.t += 3600

    (sig,) = strategy.on_opportunity(market(clock, sell_premium=2.3, buy_premium=2.4))

    assert sig.action == "close"
    assert "held 3600s" in sig.reason


def test_never_two_actions_in_flight_for_one_pair() -> None:
    clock, portfolio, strategy = setup()
    open_pair(clock, portfolio, strategy)
    clock.t += 60
    (first,) = strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0))

    clock.t += 0.1
    again = strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0))

    assert first.action == "close"
    assert again == []


def test_a_pair_with_live_close_orders_gets_no_new_signal_even_after_the_signal_timeout() -> None:
    clock, portfolio, strategy = setup(signal_timeout_s=5.0)
    open_pair(clock, portfolio, strategy)
    clock.t += 60
    (sig,) = strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0))
    fill(portfolio, sig, clock, status="sent")
    assert portfolio.pair(sig.pair_id).state == CLOSING

    clock.t += 30

    assert strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0)) == []


def test_a_signal_nobody_acted_on_stops_blocking_after_the_timeout() -> None:
    clock, portfolio, strategy = setup(signal_timeout_s=5.0)
    open_pair(clock, portfolio, strategy)
    clock.t += 60
    strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0))

    clock.t += 5

    assert [s.action for s in strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0))] \
        == ["close"]


def test_a_dropped_signal_frees_the_pair_at_once() -> None:
    clock, portfolio, strategy = setup()
    open_pair(clock, portfolio, strategy)
    clock.t += 60
    (sig,) = strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0))

    strategy.on_signal_dropped(sig.pair_id)

    assert len(strategy.on_opportunity(market(clock, sell_premium=1.95, buy_premium=2.0))) == 1


def test_the_planner_reserving_an_intent_takes_over_from_the_pending_signal() -> None:
    clock, portfolio, strategy = setup(signal_timeout_s=5.0)
    (sig,) = strategy.on_opportunity(rich(clock))
    portfolio.reserve(OrderIntent(
        id="i1", pair_id=sig.pair_id, action="open", symbol="BTC", direction=SELL_UPBIT, notional_krw=0,
        expires_ns=0, legs=(OrderLeg(venue="upbit", side="sell", qty=0.01, price=143_500_000,
                                     client_order_id="i1-0"),)))

    strategy.on_opportunity(rich(clock))

    assert strategy.pending() == {}


def one_legged(strategy: PairStrategy, portfolio: Portfolio, clock: Clock) -> None:
    (sig,) = strategy.on_opportunity(rich(clock))
    portfolio.apply(OrderEvent(ts_ns=int(T0 * 1e9), intent_id="i", pair_id=sig.pair_id, action="open",
                               client_order_id="i-0", venue="upbit", symbol="BTC", side="sell",
                               status="filled", qty=0.01, price=143_500_000, filled_qty=0.01,
                               avg_price=143_500_000))
    portfolio.apply(OrderEvent(ts_ns=int(T0 * 1e9), intent_id="i", pair_id=sig.pair_id, action="open",
                               client_order_id="i-1", venue="binance", symbol="BTC", side="buy",
                               status="rejected", qty=0.01, price=100_000))
    clock.t += 1


def test_a_one_legged_pair_is_completed_first_while_the_edge_still_holds() -> None:
    clock, portfolio, strategy = setup(max_open_pairs_per_symbol=3, cooldown_s=0.0)
    one_legged(strategy, portfolio, clock)

    signals = strategy.on_opportunity(rich(clock))

    assert [(s.action, s.venue, s.side, s.qty) for s in signals] == [("unwind", "binance", "buy", 0.01)]
    assert "complete the missing leg on binance" in signals[0].reason


def test_a_one_legged_pair_is_unwound_while_trading_is_reducing() -> None:
    clock, portfolio, strategy = setup(max_open_pairs_per_symbol=3, cooldown_s=0.0)
    strategy.repair_context = lambda: (False, frozenset())
    one_legged(strategy, portfolio, clock)

    signals = strategy.on_opportunity(rich(clock))

    assert [(s.action, s.venue, s.side, s.qty) for s in signals] == [("unwind", "upbit", "buy", 0.01)]


def test_a_refused_completion_is_followed_by_an_unwind() -> None:
    clock, portfolio, strategy = setup(max_open_pairs_per_symbol=3, cooldown_s=0.0)
    one_legged(strategy, portfolio, clock)
    (first,) = strategy.on_opportunity(rich(clock))
    strategy.on_repair_failed(first.pair_id, "binance")
    strategy.on_signal_dropped(first.pair_id)

    (second,) = strategy.on_opportunity(rich(clock))

    assert (second.venue, second.side) == ("upbit", "buy")


def test_config_rejects_a_zero_pair_limit() -> None:
    with pytest.raises(ValueError, match="max_open_pairs_per_symbol"):
        StrategyConfig(max_open_pairs_per_symbol=0)


def test_a_premium_spike_and_its_reversion_make_one_profitable_round_trip() -> None:
    """Books -> baseline -> premium -> strategy -> planner -> (fills at the limits) -> portfolio."""
    from arbitrage.baseline import BaselineConfig, PremiumBaseline
    from arbitrage.planner import IntentPlanner, PlannerConfig
    from arbitrage.premium import PremiumCalculator, mid_premium_pct
    from arbitrage.venue_rules import BINANCE_TAKER_FEE, UPBIT_TAKER_FEE
    from messages import BookTop

    clock, portfolio, strategy = setup()
    baseline = PremiumBaseline(BaselineConfig(time_constant_s=3600, warmup_samples=3, warmup_s=0,
                                              max_step_pct=0.02), clock)
    calc = PremiumCalculator(PremiumConfig(entry_threshold_pct=ENTRY, exit_threshold_pct=EXIT), clock)
    planner = IntentPlanner(PlannerConfig(max_exposure_krw=5_000_000, slippage_pct=0.05), portfolio,
                            lambda symbol: 1_000_000.0, clock)

    def top(venue: str, symbol: str, bid: float, ask: float) -> BookTop:
        return BookTop(venue=venue, symbol=symbol, bid=bid, ask=ask, bid_size=1.0, ask_size=1.0,
                       recv_ts_ns=int(clock.t * 1e9))

    def tick(upbit_bid: float) -> list[OrderIntent]:
        clock.t += 1
        up = top("upbit", "BTC", upbit_bid, upbit_bid + 100_000)
        bn, fx = top("binance", "BTC", 99_990, 100_000), top("upbit", "USDT", 1399.5, 1400.5)
        base = baseline.update("BTC", mid_premium_pct(up, bn, fx))
        opp, _ = calc.evaluate(up, bn, fx, base)
        if opp is None:
            return []
        intents = planner.plan(strategy.on_opportunity(opp))
        for intent in intents:  # the venues fill every leg at its limit, taker fees charged
            for leg in intent.legs:
                fee = leg.qty * leg.price * (UPBIT_TAKER_FEE if leg.venue == "upbit" else BINANCE_TAKER_FEE * 1400)
                portfolio.apply(OrderEvent(
                    ts_ns=int(clock.t * 1e9), intent_id=intent.id, pair_id=intent.pair_id,
                    action=intent.action, client_order_id=leg.client_order_id, venue=leg.venue,
                    symbol="BTC", side=leg.side, status="filled", qty=leg.qty, price=leg.price,
                    filled_qty=leg.qty, avg_price=leg.price, fee_krw=fee))
        return intents

    assert [tick(142_800_000) for _ in range(3)] == [[], [], []]  # warm-up at a ~2.04 % premium
    (opened,) = tick(143_700_000)  # 2.64 %: ~0.6 % over the baseline
    assert tick(143_700_000) == []  # the pair is open; one pair per symbol
    (closed,) = tick(142_800_000)  # BUY_UPBIT premium 2.08 %: back within 0.05 % of the baseline

    # qty 1,000,000 / 143,628,000 -> 0.00696; open 143,628,000 KRW / 100,050 USDT,
    # close 142,972,000 KRW / 99,940 USDT. KRW +4,565.76, USDT -0.7656 * 1400 = -1,071.84,
    # fees 499.83 + 974.89 + 497.54 + 973.82 = 2,946.07  ->  547.85 KRW.
    assert (opened.action, opened.direction, closed.action) == ("open", SELL_UPBIT, "close")
    assert opened.legs[0].qty == closed.legs[0].qty == 0.00696
    assert portfolio.realized_pnl_krw == pytest.approx(547.85, abs=0.01)
    assert (portfolio.trades_opened, portfolio.trades_closed, portfolio.exposure_krw) == (1, 1, 0.0)


def test_a_refused_close_is_retried_after_the_backoff_not_on_the_next_quote() -> None:
    clock, portfolio, strategy = setup(refusal_backoff_s=0.5)
    pair = open_pair(clock, portfolio, strategy)
    clock.t += 1.0
    (close,) = strategy.on_opportunity(market(clock, sell_premium=2.0, buy_premium=2.0))
    assert close.action == "close"

    strategy.on_refused(pair.pair_id)  # e.g. our own rate budget: nothing left

    clock.t += 0.4
    assert strategy.on_opportunity(market(clock, sell_premium=2.0, buy_premium=2.0)) == []
    clock.t += 0.2
    (again,) = strategy.on_opportunity(market(clock, sell_premium=2.0, buy_premium=2.0))
    assert again.action == "close" and again.pair_id == pair.pair_id


def test_config_rejects_a_negative_refusal_backoff() -> None:
    with pytest.raises(ValueError, match="refusal_backoff_s"):
        StrategyConfig(refusal_backoff_s=-1)
