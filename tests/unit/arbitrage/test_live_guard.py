"""D47 LiveSafetyGuard: the seed's eleven tests, its three scenarios, and the edges."""

from __future__ import annotations

import math

import pytest

from arbitrage.live_guard import (
    LiveGuardDecision,
    LiveSafetyGuard,
    LiveTradingConfig,
    normalize_symbol,
)


def live(**overrides: object) -> LiveSafetyGuard:
    """A guard that passes everything unless an override says otherwise."""
    values: dict[str, object] = {"enabled": True, "allowed_symbols": ("KRW-BTC",)}
    values.update(overrides)
    return LiveSafetyGuard(LiveTradingConfig(**values))  # type: ignore[arg-type]


def ok_order(guard: LiveSafetyGuard, **overrides: object) -> LiveGuardDecision:
    args: dict[str, object] = {"symbol": "KRW-BTC", "notional": 10.0, "balance": 100.0,
                               "daily_loss": 0.0}
    args.update(overrides)
    return guard.check_before_send_order(**args)  # type: ignore[arg-type]


# -- the seed's D47 table ------------------------------------------------------------

def test_guard_initialization() -> None:
    guard = LiveSafetyGuard(LiveTradingConfig())

    cfg = guard.config
    assert cfg.enabled is False
    assert cfg.dry_run_scale == 0.01
    assert cfg.allowed_symbols == ()
    assert cfg.min_account_balance == 50.0
    assert cfg.max_daily_loss == 20.0
    assert cfg.max_notional_per_trade == 50.0
    assert guard.get_summary()["total_checks"] == 0


def test_guard_enabled_false_blocks_order() -> None:
    guard = live(enabled=False)

    decision = ok_order(guard)

    assert decision.allowed is False
    assert decision.reason == "live_trading.enabled=False"
    assert decision.session_stop is False


def test_guard_enabled_true_allows_valid_order() -> None:
    decision = ok_order(live())

    assert decision.allowed is True
    assert decision.reason == ""
    assert decision.session_stop is False


def test_guard_blocks_disallowed_symbol() -> None:
    decision = ok_order(live(), symbol="KRW-ETH")

    assert decision.allowed is False
    assert "KRW-ETH" in decision.reason
    assert decision.check == "allowed_symbols"


def test_guard_blocks_insufficient_balance() -> None:
    decision = ok_order(live(), balance=49.99)

    assert decision.allowed is False
    assert decision.check == "min_account_balance"
    assert "49.99" in decision.reason


def test_guard_blocks_excessive_daily_loss() -> None:
    decision = ok_order(live(), daily_loss=-20.01)

    assert decision.allowed is False
    assert decision.session_stop is True
    assert decision.check == "max_daily_loss"


def test_guard_blocks_excessive_notional() -> None:
    decision = ok_order(live(), notional=100.0)

    assert decision.allowed is False
    assert decision.reason == "notional 100.0 exceeds max_notional_per_trade 50.0"
    assert decision.session_stop is False


def test_dry_run_scale_application() -> None:
    guard = live()

    assert guard.apply_dry_run_scale(1.0) == pytest.approx(0.01)


def test_dry_run_scale_full_scale() -> None:
    guard = live(dry_run_scale=1.0)

    assert guard.apply_dry_run_scale(0.37) == 0.37


def test_guard_summary() -> None:
    guard = live()
    ok_order(guard)
    ok_order(guard, notional=100.0)
    ok_order(guard, daily_loss=-25.0)

    summary = guard.get_summary()

    assert summary["total_checks"] == 3
    assert summary["allowed"] == 1
    assert summary["blocked"] == 2
    assert summary["session_stops"] == 1
    assert summary["blocked_by_check"] == {"max_notional_per_trade": 1, "max_daily_loss": 1}
    assert summary["config"]["allowed_symbols"] == ["KRW-BTC"]


def test_guard_multiple_conditions_failure() -> None:
    # Everything is wrong at once: the seed's order decides which reason wins.
    guard = live(allowed_symbols=("KRW-ETH",))

    decision = ok_order(guard, symbol="KRW-BTC", balance=1.0, daily_loss=-99.0, notional=999.0)

    assert decision.allowed is False
    assert decision.check == "allowed_symbols"
    assert decision.session_stop is False


# -- the seed's three scenarios ------------------------------------------------------

def test_scenario_1_default_config_blocks_because_not_enabled() -> None:
    guard = LiveSafetyGuard(LiveTradingConfig())

    decision = guard.check_before_send_order(symbol="KRW-BTC", notional=10.0, balance=100.0,
                                             daily_loss=0.0)

    assert (decision.allowed, decision.reason, decision.session_stop) == (
        False, "live_trading.enabled=False", False)


def test_scenario_2_all_conditions_met_allows_and_scales_one_btc_to_a_hundredth() -> None:
    guard = live()

    decision = guard.check_before_send_order(symbol="KRW-BTC", notional=10.0, balance=100.0,
                                             daily_loss=0.0)

    assert decision.allowed is True
    assert guard.apply_dry_run_scale(1.0) == pytest.approx(0.01)


def test_scenario_3_daily_loss_past_limit_blocks_and_stops_the_session() -> None:
    guard = live()

    decision = guard.check_before_send_order(symbol="KRW-BTC", notional=10.0, balance=100.0,
                                             daily_loss=-25.0)

    assert decision.allowed is False
    assert decision.session_stop is True
    assert decision.reason == "daily loss -25.0 exceeds max -20.0"


# -- order of checks ----------------------------------------------------------------------

def test_balance_check_runs_before_daily_loss_check() -> None:
    decision = ok_order(live(), balance=10.0, daily_loss=-25.0)

    assert decision.check == "min_account_balance"
    assert decision.session_stop is False


def test_daily_loss_check_runs_before_notional_check() -> None:
    decision = ok_order(live(), daily_loss=-25.0, notional=500.0)

    assert decision.check == "max_daily_loss"


def test_disabled_guard_wins_over_every_other_failure() -> None:
    decision = ok_order(live(enabled=False, allowed_symbols=()), daily_loss=-99.0)

    assert decision.reason == "live_trading.enabled=False"
    assert decision.session_stop is False


# -- boundaries -----------------------------------------------------------------------------

def test_daily_loss_exactly_at_limit_is_allowed() -> None:
    assert ok_order(live(), daily_loss=-20.0).allowed is True


def test_balance_exactly_at_minimum_is_allowed() -> None:
    assert ok_order(live(), balance=50.0).allowed is True


def test_notional_exactly_at_maximum_is_allowed() -> None:
    assert ok_order(live(), notional=50.0).allowed is True


def test_daily_profit_never_trips_the_loss_limit() -> None:
    assert ok_order(live(), daily_loss=500.0).allowed is True


def test_empty_whitelist_blocks_every_symbol() -> None:
    decision = ok_order(live(allowed_symbols=()))

    assert decision.check == "allowed_symbols"
    assert "empty" in decision.reason


@pytest.mark.parametrize("field", ["balance", "daily_loss", "notional"])
def test_non_finite_inputs_block_instead_of_passing(field: str) -> None:
    decision = ok_order(live(), **{field: math.nan})

    assert decision.allowed is False
    assert decision.check == "invalid_input"
    assert decision.session_stop is False


def test_zero_notional_is_blocked_as_invalid() -> None:
    assert ok_order(live(), notional=0.0).check == "invalid_input"


# -- symbols ---------------------------------------------------------------------------------

@pytest.mark.parametrize("written", ["KRW-BTC", "BTC/KRW", "BTC", "btc", "BTC/USDT:USDT",
                                     "BTCUSDT", "BTC-KRW", " krw-btc "])
def test_every_way_of_writing_a_market_names_the_same_coin(written: str) -> None:
    assert normalize_symbol(written) == "BTC"


@pytest.mark.parametrize("whitelisted", ["KRW-BTC", "BTC/KRW", "BTC"])
def test_whitelist_entry_in_any_notation_admits_the_plain_coin(whitelisted: str) -> None:
    guard = live(allowed_symbols=(whitelisted,))

    assert ok_order(guard, symbol="BTC").allowed is True


def test_whitelist_given_as_a_list_is_stored_as_a_tuple() -> None:
    cfg = LiveTradingConfig(allowed_symbols=["BTC", "ETH"])  # type: ignore[arg-type]

    assert cfg.allowed_symbols == ("BTC", "ETH")


# -- config validation -----------------------------------------------------------------------

@pytest.mark.parametrize("key", ["min_account_balance", "max_daily_loss",
                                 "max_notional_per_trade"])
def test_negative_limit_is_rejected_naming_its_key(key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} "):
        LiveTradingConfig(**{key: -1.0})  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [0.0, -0.5, 1.01, math.nan])
def test_dry_run_scale_outside_zero_to_one_is_rejected(scale: float) -> None:
    with pytest.raises(ValueError, match="^dry_run_scale "):
        LiveTradingConfig(dry_run_scale=scale)


def test_config_is_frozen() -> None:
    cfg = LiveTradingConfig()

    with pytest.raises(AttributeError):
        cfg.enabled = True  # type: ignore[misc]
