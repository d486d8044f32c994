"""RiskGuard: state, expiry and mode checks, then the LiveSafetyGuard in live_trading."""

from __future__ import annotations

import pytest

from arbitrage.live_guard import LiveTradingConfig
from arbitrage.risk_guard import RiskGuard
from arbitrage.trading_state import TradingStateMachine
from messages import GuardDecision, OrderIntent, OrderLeg

NOW_NS = 1_700_000_000_000_000_000
FX = 1400.0  # KRW per USDT


class FakeClock:
    def __init__(self, t_ns: int = NOW_NS) -> None:
        self.t_ns = t_ns

    def __call__(self) -> int:
        return self.t_ns


def intent(qty: float = 0.0004, symbol: str = "BTC", expires_ns: int = NOW_NS + 1_000_000_000,
           upbit_price: float = 140_000_000.0, binance_price: float = 100_000.0) -> OrderIntent:
    """Buy on Upbit, sell on Binance; 0.0004 BTC ~ 56,000 KRW ~ 40 USDT."""
    return OrderIntent(
        pair_id="p1", action="open", symbol=symbol, direction="buy_upbit",
        legs=(OrderLeg(venue="upbit", side="buy", qty=qty, price=upbit_price, client_order_id="u1"),
              OrderLeg(venue="binance", side="sell", qty=qty, price=binance_price,
                       client_order_id="b1")),
        notional_krw=qty * upbit_price, expires_ns=expires_ns)


def armed_state(mode: str) -> TradingStateMachine:
    sm = TradingStateMachine()
    ok, _ = sm.arm(mode, live_enabled=True, confirm="live_trading")
    assert ok
    return sm


def guard(mode: str = "paper", state: TradingStateMachine | None = None,
          clock: FakeClock | None = None, **live: object) -> RiskGuard:
    values: dict[str, object] = {"enabled": True, "allowed_symbols": ("BTC",),
                                 "dry_run_scale": 0.5}
    values.update(live)
    return RiskGuard(mode, LiveTradingConfig(**values),  # type: ignore[arg-type]
                     state if state is not None else armed_state(mode), clock or FakeClock())


def decide(g: RiskGuard, it: OrderIntent | None = None, balance_usdt: float = 100.0,
           daily_pnl_usdt: float = 0.0, fx: float = FX) -> GuardDecision:
    return g.decide(it or intent(), balance_usdt=balance_usdt, daily_pnl_usdt=daily_pnl_usdt,
                    fx=fx)


# -- trading state ---------------------------------------------------------------------------

def test_a_disarmed_guard_refuses_and_says_disarmed() -> None:
    d = decide(guard(state=TradingStateMachine()))

    assert (d.allowed, d.reason) == (False, "disarmed")


def test_a_halted_guard_refuses_with_the_halt_reason() -> None:
    sm = armed_state("paper")
    sm.halt("operator")

    d = decide(guard(state=sm))

    assert (d.allowed, d.reason) == (False, "halted: operator")


def test_a_fail_closed_condition_refuses_with_its_reason() -> None:
    sm = armed_state("paper")
    sm.raise_fail_closed("stale.upbit", "stale feed upbit BTC")

    d = decide(guard(state=sm))

    assert (d.allowed, d.reason) == (False, "fail_closed: stale feed upbit BTC")


def test_the_state_is_read_at_each_decision_not_at_construction() -> None:
    sm = armed_state("paper")
    g = guard(state=sm)
    sm.raise_fail_closed("k", "late")

    assert decide(g).allowed is False


# -- expiry ---------------------------------------------------------------------------------------

def test_an_expired_intent_is_refused() -> None:
    d = decide(guard(), intent(expires_ns=NOW_NS - 2_500_000))

    assert d.allowed is False
    assert d.reason.startswith("expired: ")
    assert "2.5 ms" in d.reason


def test_an_intent_expiring_exactly_now_is_still_allowed() -> None:
    assert decide(guard(), intent(expires_ns=NOW_NS)).allowed is True


def test_expiry_follows_the_injected_clock() -> None:
    clock = FakeClock()
    g = guard(clock=clock)
    it = intent(expires_ns=NOW_NS + 10)
    clock.t_ns += 11

    assert decide(g, it).allowed is False


def test_the_decision_is_stamped_by_the_injected_clock() -> None:
    assert decide(guard()).ts_ns == NOW_NS


# -- modes ----------------------------------------------------------------------------------------

def test_paper_allows_at_full_scale_without_the_live_guard() -> None:
    g = guard("paper", enabled=False)

    d = decide(g, balance_usdt=0.0, daily_pnl_usdt=-1e9)

    assert (d.allowed, d.reason, d.scale) == (True, "ok", 1.0)
    assert g.get_summary()["live_guard"]["total_checks"] == 0


def test_live_readonly_refuses_every_intent() -> None:
    d = decide(guard("live_readonly"))

    assert (d.allowed, d.reason) == (False, "live_readonly: orders disabled")


def test_live_trading_allows_a_valid_intent_with_the_dry_run_scale() -> None:
    d = decide(guard("live_trading"))

    assert d.allowed is True
    assert d.scale == 0.5
    assert d.session_stop is False


def test_live_trading_with_enabled_false_refuses_with_the_seed_reason() -> None:
    sm = TradingStateMachine()
    sm.arm("paper", live_enabled=False, confirm="")  # armed, as if by the operator
    g = RiskGuard("live_trading", LiveTradingConfig(), sm, FakeClock())

    d = decide(g)

    assert (d.allowed, d.reason) == (False, "live_trading.enabled=False")


def test_live_trading_converts_the_notional_to_usdt_with_fx() -> None:
    # 0.0004 BTC x 140,000,000 KRW = 56,000 KRW = 40 USDT at 1400 but 56 USDT at 1000.
    g = guard("live_trading")

    at_1400 = decide(g, fx=1400.0)
    at_1000 = decide(g, fx=1000.0)

    assert at_1400.allowed is True
    assert at_1000.reason == "notional 56.0 exceeds max_notional_per_trade 50.0"


def test_live_trading_refuses_a_symbol_outside_the_whitelist() -> None:
    d = decide(guard("live_trading"), intent(symbol="ETH"))

    assert d.allowed is False
    assert "ETH" in d.reason


def test_daily_loss_past_the_limit_refuses_and_asks_for_session_stop() -> None:
    d = decide(guard("live_trading"), daily_pnl_usdt=-25.0)

    assert d.allowed is False
    assert d.session_stop is True
    assert d.reason == "daily loss -25.0 exceeds max -20.0"


@pytest.mark.parametrize("fx", [0.0, -1.0, float("nan")])
def test_live_trading_refuses_without_a_usable_fx_rate(fx: float) -> None:
    d = decide(guard("live_trading"), fx=fx)

    assert d.allowed is False
    assert d.reason.startswith("invalid_input: fx")


# -- venue minimums after the dry-run scale ----------------------------------------------------

def test_seed_default_scale_makes_a_forty_usdt_order_too_small_for_binance() -> None:
    # 1 % of 0.0004 BTC is 0.000004 BTC: below Binance's 0.00001 lot.
    d = decide(guard("live_trading", dry_run_scale=0.01))

    assert d.allowed is False
    assert d.reason.startswith("venue_minimum: ")


def test_scaled_binance_leg_below_min_notional_is_refused() -> None:
    # 10 % of 0.0004 BTC = 0.00004 BTC x 100,000 USDT = 4 USDT < 5 USDT.
    d = decide(guard("live_trading", dry_run_scale=0.1))

    assert d.allowed is False
    assert "min notional" in d.reason


def test_scaled_upbit_leg_below_five_thousand_krw_is_refused() -> None:
    # A cheap Upbit price: 0.00004 BTC x 100,000,000 KRW = 4,000 KRW < 5,000 KRW.
    it = intent(upbit_price=100_000_000.0, binance_price=200_000.0)

    d = decide(guard("live_trading", dry_run_scale=0.1), it)

    assert d.allowed is False
    assert "KRW < min order" in d.reason


def test_a_coin_without_venue_rules_is_refused_in_live_trading() -> None:
    d = decide(guard("live_trading", allowed_symbols=("DOGE",)), intent(symbol="DOGE"))

    assert d.allowed is False
    assert "no venue rules for DOGE" in d.reason


# -- accounting ------------------------------------------------------------------------------------

def test_summary_counts_allowed_and_blocked_by_reason() -> None:
    g = guard("live_trading")
    decide(g)
    decide(g, daily_pnl_usdt=-25.0)
    decide(g, intent(expires_ns=1))
    decide(g, intent(expires_ns=1))

    s = g.get_summary()

    assert (s["decisions"], s["allowed"], s["blocked"], s["session_stops"]) == (4, 1, 3, 1)
    assert s["blocked_by_reason"] == {"live_guard.max_daily_loss": 1, "expired": 2}


def test_a_guard_error_refuses_instead_of_raising() -> None:
    good = intent()
    bad = OrderIntent(pair_id="p", action="open", symbol="BTC", direction="x",
                      legs=("not a leg",),  # type: ignore[arg-type]
                      notional_krw=good.notional_krw, expires_ns=0)

    d = decide(guard("live_trading"), bad)

    assert d.allowed is False
    assert d.reason.startswith("internal_error: AttributeError")
    assert d.scale == 0.0


def test_a_refused_decision_carries_the_intent_and_zero_scale() -> None:
    it = intent(expires_ns=1)

    d = decide(guard(), it)

    assert d.intent is it
    assert d.scale == 0.0


def test_an_unknown_mode_is_a_construction_error() -> None:
    with pytest.raises(ValueError, match="mode"):
        RiskGuard("yolo", LiveTradingConfig(), TradingStateMachine(), FakeClock())


# -- reducing: repairs pass while halted or fail-closed -------------------------------------

def unwind(venue: str = "upbit", side: str = "sell", qty: float = 0.0004) -> OrderIntent:
    price = 140_000_000.0 if venue == "upbit" else 100_000.0
    return OrderIntent(pair_id="p1", action="unwind", symbol="BTC", direction="buy_upbit",
                       legs=(OrderLeg(venue=venue, side=side, qty=qty, price=price, client_order_id="w1"),),
                       notional_krw=qty * 140_000_000.0, expires_ns=NOW_NS + 1_000_000_000)


def reducing_guard(holdings: tuple[float, float] | None, halt: bool = True,
                   mode: str = "live_trading") -> RiskGuard:
    sm = armed_state(mode)
    if halt:
        sm.halt("operator")
    else:
        sm.raise_fail_closed("feed.binance", "stale")
    g = guard(mode, state=sm)
    g.holdings = lambda symbol: holdings
    return g


def test_a_halted_guard_lets_an_unwind_that_shrinks_a_naked_leg_pass_as_reducing() -> None:
    d = decide(reducing_guard((0.0004, 0.0)), unwind("upbit", "sell"))
    assert d.allowed and d.reduce_only and d.reason.startswith("reducing")
    assert d.scale == 1.0  # the naked quantity, never shrunk again by dry_run_scale


def test_a_fail_closed_guard_lets_the_same_unwind_pass() -> None:
    d = decide(reducing_guard((0.0004, 0.0), halt=False), unwind("upbit", "sell"))
    assert d.allowed and d.reduce_only


def test_a_reducing_guard_refuses_an_open_and_a_close() -> None:
    g = reducing_guard((0.0004, 0.0))
    assert not decide(g).allowed
    close = OrderIntent(pair_id="p1", action="close", symbol="BTC", direction="sell_upbit",
                        legs=intent().legs, notional_krw=1.0, expires_ns=NOW_NS + 1_000_000_000)
    assert not decide(g, close).allowed


def test_a_reducing_guard_refuses_an_unwind_that_would_grow_or_flip_a_holding() -> None:
    g = reducing_guard((0.0004, 0.0))
    assert not decide(g, unwind("upbit", "buy")).allowed  # grows the long
    assert not decide(g, unwind("upbit", "sell", qty=0.001)).allowed  # flips it short
    d = decide(g, unwind("binance", "sell"))  # a completion opens on the other venue
    assert not d.allowed and "would not shrink" in d.reason


def test_a_reducing_guard_refuses_when_holdings_are_unknown() -> None:
    d = decide(reducing_guard(None), unwind())
    assert not d.allowed and "holdings unknown" in d.reason


def test_a_disarmed_guard_refuses_even_a_reducing_unwind() -> None:
    g = guard("live_trading", state=TradingStateMachine())
    g.holdings = lambda symbol: (0.0004, 0.0)
    assert not decide(g, unwind()).allowed


def test_an_open_on_a_venue_with_an_open_breaker_is_refused_but_an_unwind_is_not() -> None:
    g = guard("live_trading")
    g.breakers = lambda: {"binance": "funds: insufficient balance"}
    d = decide(g)
    assert not d.allowed and d.reason.startswith("breaker: binance")
    assert decide(g, unwind("upbit", "sell")).allowed


def test_closes_and_unwinds_are_not_scaled_by_dry_run_scale() -> None:
    g = guard("live_trading", dry_run_scale=0.5)
    assert decide(g).scale == 0.5
    assert decide(g, unwind("upbit", "sell")).scale == 1.0
