"""AdvancedPositionManager (D14), the seed's T1 expectations and the edges:
sizes by risk mode, regime detection, slippage decay, dynamic exposure."""

from __future__ import annotations

import math

import pytest

from arbitrage.position_adv import AdvancedPositionManager, MarketRegime

PRICE = 50_000_000.0


def manager(**kw: object) -> AdvancedPositionManager:
    return AdvancedPositionManager(base_position_size_krw=100_000.0, max_exposure_krw=500_000.0,
                                   **kw)  # type: ignore[arg-type]


def trend(m: AdvancedPositionManager, n: int = 31, step: float = 50_000.0) -> None:
    for i in range(n):
        m.update_market_data(price=PRICE + i * step, bid_ask_spread_pct=0.05)


def chop(m: AdvancedPositionManager, n: int = 31, step: float = 50_000.0) -> None:
    for i in range(n):
        m.update_market_data(price=PRICE + (step if i % 2 else 0.0), bid_ask_spread_pct=0.05)


# -- T1: sizes by risk mode ----------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "size"), [("normal", 80_000.0), ("cautious", 48_000.0),
                                            ("extreme", 24_000.0)])
def test_position_size_follows_the_risk_mode(mode: str, size: float) -> None:
    # No price history yet: RANGING (x0.8).
    assert manager().get_dynamic_position_size(0.3, mode) == pytest.approx(size)


def test_seed_example_runs_and_returns_krw() -> None:
    m = AdvancedPositionManager(base_position_size_krw=100000.0, max_exposure_krw=500000.0)
    m.update_market_data(price=50000000.0, bid_ask_spread_pct=0.05)

    size = m.get_dynamic_position_size(volatility_estimate=0.3, risk_mode="normal")
    limit = m.get_adjusted_exposure_limit(current_exposure_krw=200000.0,
                                          exposure_increase_rate=0.05)
    m.record_trade(trade_size_krw=100000.0)

    assert size == pytest.approx(80_000.0)
    assert limit == pytest.approx(450_000.0)


def test_unknown_risk_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="risk_mode"):
        manager().get_dynamic_position_size(0.3, "panic")


def test_without_a_risk_mode_volatility_picks_it() -> None:
    m = manager()

    calm = m.get_dynamic_position_size(0.1)
    wild = manager().get_dynamic_position_size(0.9)

    assert calm == pytest.approx(80_000.0)
    assert wild == pytest.approx(24_000.0)


# -- T1: regime detection ----------------------------------------------------------------------------

def test_a_steady_climb_is_a_trending_regime_sized_up() -> None:
    m = manager()
    trend(m)

    assert m.regime is MarketRegime.TRENDING
    assert m.get_metrics()["trend_regime"] == 1.0
    assert m.get_dynamic_position_size(0.3, "normal") == pytest.approx(120_000.0)


def test_back_and_forth_prices_are_a_ranging_regime_sized_down() -> None:
    m = manager()
    chop(m)

    assert m.regime is MarketRegime.RANGING
    assert m.get_metrics()["trend_regime"] == 0.0
    assert m.get_dynamic_position_size(0.3, "normal") == pytest.approx(80_000.0)


def test_a_falling_market_is_trending_too() -> None:
    m = manager()
    trend(m, step=-50_000.0)

    assert m.regime is MarketRegime.TRENDING


def test_the_regime_needs_enough_prices_before_it_changes() -> None:
    m = manager(min_regime_samples=10)
    trend(m, n=9)

    assert m.regime is MarketRegime.RANGING


def test_a_trend_that_turns_to_chop_returns_to_ranging() -> None:
    m = manager()
    trend(m)
    chop(m)

    assert m.regime is MarketRegime.RANGING


def test_the_regime_holds_in_the_hysteresis_band() -> None:
    m = manager(regime_window=10, min_regime_samples=11, trend_enter_er=0.6, trend_exit_er=0.4)
    trend(m, n=11)
    # Over the last ten steps: nine up by 50k, one down by 150k -> 300k net / 600k path.
    m.update_market_data(price=PRICE + 10 * 50_000.0 - 150_000.0, bid_ask_spread_pct=0.05)

    assert m.efficiency_ratio == pytest.approx(0.5)
    assert m.regime is MarketRegime.TRENDING


def test_bad_prices_are_ignored() -> None:
    m = manager()
    for i in range(31):
        m.update_market_data(price=PRICE + i * 50_000.0, bid_ask_spread_pct=0.05)
        for bad in (0.0, -1.0, math.nan, math.inf):
            m.update_market_data(price=bad, bid_ask_spread_pct=0.05)

    assert m.efficiency_ratio == pytest.approx(1.0)
    assert m.regime is MarketRegime.TRENDING


# -- T1: slippage decay ---------------------------------------------------------------------------------

def test_slippage_within_the_threshold_costs_nothing() -> None:
    m = manager()
    m.record_trade(100_000.0, slippage_cost_pct=0.2)

    assert m.get_dynamic_position_size(0.3, "normal") == pytest.approx(80_000.0)


def test_slippage_twice_the_threshold_halves_the_size() -> None:
    m = manager()
    m.record_trade(100_000.0, slippage_cost_pct=0.4)

    assert m.slippage_decay() == pytest.approx(0.5)
    assert m.get_dynamic_position_size(0.3, "normal") == pytest.approx(40_000.0)


def test_slippage_decay_has_a_floor() -> None:
    m = manager(min_slippage_decay=0.2)
    m.record_trade(100_000.0, slippage_cost_pct=50.0)

    assert m.slippage_decay() == 0.2


def test_slippage_is_smoothed_across_trades() -> None:
    m = manager(slippage_alpha=0.5)
    m.record_trade(100_000.0, slippage_cost_pct=0.6)
    m.record_trade(100_000.0, slippage_cost_pct=0.2)

    assert m.slippage_cost_pct == pytest.approx(0.4)


def test_without_a_measured_cost_half_the_spread_stands_in() -> None:
    m = manager()
    m.update_market_data(price=PRICE, bid_ask_spread_pct=1.0)

    m.record_trade(100_000.0)

    assert m.slippage_cost_pct == pytest.approx(0.5)
    assert m.get_metrics()["trades_recorded"] == 1.0


# -- T1: dynamic exposure -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("rate", "limit"), [(0.0, 500_000.0), (0.05, 450_000.0),
                                             (0.2, 300_000.0), (0.9, 250_000.0),
                                             (-0.5, 500_000.0)])
def test_exposure_limit_shrinks_while_exposure_grows_fast(rate: float, limit: float) -> None:
    assert manager().get_adjusted_exposure_limit(200_000.0, rate) == pytest.approx(limit)


def test_the_exposure_rate_is_reported_clamped() -> None:
    m = manager()
    m.get_adjusted_exposure_limit(200_000.0, 3.0)

    assert m.get_metrics()["exposure_drift_rate"] == 1.0


def test_size_is_capped_by_max_exposure() -> None:
    m = AdvancedPositionManager(base_position_size_krw=500_000.0, max_exposure_krw=500_000.0)
    trend(m)

    assert m.get_dynamic_position_size(0.3, "normal") == 500_000.0


def test_size_is_capped_by_the_callers_headroom() -> None:
    assert manager().get_dynamic_position_size(0.3, "normal", 30_000.0) == 30_000.0


def test_no_headroom_means_size_zero() -> None:
    assert manager().get_dynamic_position_size(0.3, "normal", -10_000.0) == 0.0


# -- volatility -----------------------------------------------------------------------------------------------

def test_the_first_volatility_sets_the_ema() -> None:
    m = manager()
    m.get_dynamic_position_size(0.3, "normal")

    assert m.get_metrics()["volatility_smoothed"] == pytest.approx(0.3)


def test_volatility_is_smoothed_and_clamped_to_one() -> None:
    m = manager(volatility_alpha=0.5)
    m.get_dynamic_position_size(0.2, "normal")

    m.get_dynamic_position_size(5.0, "normal")

    assert m.volatility_smoothed == pytest.approx(0.6)


# -- config ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["base_position_size_krw", "max_exposure_krw",
                                 "slippage_cost_threshold_pct"])
def test_non_positive_settings_are_rejected_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key} "):
        AdvancedPositionManager(**{key: 0.0})  # type: ignore[arg-type]


def test_seed_defaults() -> None:
    m = AdvancedPositionManager()

    assert (m.base_position_size_krw, m.max_exposure_krw, m.slippage_cost_threshold_pct) == (
        100_000.0, 500_000.0, 0.2)
