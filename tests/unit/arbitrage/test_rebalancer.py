"""RiskModeRebalancer (D14): risk modes, exposure drift, triggers, intensity."""

from __future__ import annotations

import math
from typing import Any

import pytest

from arbitrage.rebalancer import RebalanceDecision, RebalancerConfig, RiskMode, RiskModeRebalancer


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def make(clock: FakeClock | None = None, **cfg: Any) -> RiskModeRebalancer:
    return RiskModeRebalancer(RebalancerConfig(**cfg), clock or FakeClock())


# -- risk mode ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("volatility", "mode", "level"), [
    (0.0, "normal", 0), (0.3, "normal", 0), (0.4, "cautious", 1), (0.69, "cautious", 1),
    (0.7, "extreme", 2), (1.0, "extreme", 2)])
def test_volatility_sets_the_risk_mode(volatility: float, mode: str, level: int) -> None:
    r = make()

    r.update(0.0, volatility)

    assert r.risk_mode == mode
    assert r.get_metrics()["risk_mode_current"] == level


def test_stepping_down_needs_the_hysteresis_margin() -> None:
    r = make()
    r.update(0.0, 0.45)

    r.update(0.0, 0.37)
    held = r.risk_mode
    r.update(0.0, 0.34)

    assert held == RiskMode.CAUTIOUS
    assert r.risk_mode == RiskMode.NORMAL


def test_extreme_can_drop_straight_to_normal() -> None:
    r = make()
    r.update(0.0, 0.9)

    r.update(0.0, 0.1)

    assert r.risk_mode == RiskMode.NORMAL


def test_non_finite_volatility_keeps_the_current_mode() -> None:
    r = make()
    r.update(0.0, 0.8)

    r.update(0.0, math.nan)

    assert r.risk_mode == RiskMode.EXTREME


# -- risk-mode trigger ------------------------------------------------------------------------------

def test_escalating_the_risk_mode_triggers_a_rebalance() -> None:
    r = make()
    r.update(100_000.0, 0.1)

    d = r.update(100_000.0, 0.5)

    assert d is not None
    assert d.reason == "risk mode normal -> cautious"
    assert d.risk_mode == "cautious"


def test_stepping_down_does_not_trigger_a_rebalance() -> None:
    clock = FakeClock()
    r = make(clock)
    r.update(0.0, 0.9)
    clock.advance(1000)

    assert r.update(0.0, 0.1) is None


def test_no_risk_mode_trigger_when_the_seed_switch_is_off() -> None:
    r = make(risk_mode_rebalance_trigger=False)

    assert r.update(0.0, 0.9) is None
    assert r.risk_mode == RiskMode.EXTREME


def test_an_escalation_within_the_interval_waits_and_then_fires() -> None:
    clock = FakeClock()
    r = make(clock, min_interval_s=60.0)
    first = r.update(0.0, 0.5)
    clock.advance(10)
    early = r.update(0.0, 0.9)
    clock.advance(60)

    later = r.update(0.0, 0.9)

    assert first is not None and early is None
    assert later is not None
    assert later.reason == "risk mode cautious -> extreme"


# -- exposure drift ------------------------------------------------------------------------------------

def test_exposure_growth_is_measured_against_the_exposure_scale() -> None:
    clock = FakeClock()
    r = make(clock, exposure_scale_krw=500_000.0)
    r.update(100_000.0, 0.1)
    clock.advance(30)

    r.update(125_000.0, 0.1)

    assert r.exposure_drift_rate == pytest.approx(0.05)
    assert r.get_metrics()["exposure_drift_rate"] == pytest.approx(0.05)


def test_exposure_drift_past_the_threshold_triggers_a_rebalance() -> None:
    clock = FakeClock()
    r = make(clock)
    r.update(100_000.0, 0.1)
    clock.advance(30)

    d = r.update(200_000.0, 0.1)

    assert d is not None
    assert d.reason == "exposure drift 0.200 > 0.1"


def test_exposure_drift_fires_once_per_crossing() -> None:
    clock = FakeClock()
    r = make(clock, min_interval_s=0.0)
    r.update(0.0, 0.1)
    clock.advance(1)
    r.update(100_000.0, 0.1)
    clock.advance(1)

    assert r.update(110_000.0, 0.1) is None


def test_exposure_drift_re_arms_after_falling_below_the_threshold() -> None:
    clock = FakeClock()
    r = make(clock, min_interval_s=0.0, drift_window_s=100.0)
    r.update(0.0, 0.1)
    clock.advance(1)
    r.update(100_000.0, 0.1)
    clock.advance(200)
    r.update(100_000.0, 0.1)  # the window has moved on: no growth
    clock.advance(1)

    assert r.update(200_000.0, 0.1) is not None


def test_growth_older_than_the_window_is_not_drift() -> None:
    clock = FakeClock()
    r = make(clock, drift_window_s=600.0)
    r.update(0.0, 0.1)
    clock.advance(700)
    r.update(200_000.0, 0.1)
    clock.advance(700)

    r.update(200_000.0, 0.1)

    assert r.exposure_drift_rate == 0.0


def test_falling_exposure_gives_a_negative_drift_rate_clamped_to_minus_one() -> None:
    clock = FakeClock()
    r = make(clock, exposure_scale_krw=100_000.0)
    r.update(300_000.0, 0.1)
    clock.advance(1)

    r.update(0.0, 0.1)

    assert r.exposure_drift_rate == -1.0


# -- requests and rebalance() --------------------------------------------------------------------------

def test_a_request_is_answered_at_the_next_update() -> None:
    r = make()
    r.request("loop latency degradation")

    d = r.update(100_000.0, 0.1)

    assert d is not None
    assert d.reason == "requested: loop latency degradation"


def test_requests_are_not_throttled() -> None:
    clock = FakeClock()
    r = make(clock, min_interval_s=600.0)
    r.update(0.0, 0.9)
    r.request("latency")

    assert r.update(0.0, 0.9) is not None


def test_a_request_is_answered_once() -> None:
    r = make()
    r.request("latency")
    r.update(0.0, 0.1)

    assert r.update(0.0, 0.1) is None


def test_seed_rebalance_call_decides_at_once() -> None:
    r = make()
    r.update(200_000.0, 0.8)

    d = r.rebalance()

    assert isinstance(d, RebalanceDecision)
    assert d.risk_mode == "extreme"
    assert d.exposure_krw == 200_000.0


# -- intensity -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("volatility", "intensity", "reduce"), [
    (0.1, 0.25, 0.125), (0.5, 0.5, 0.25), (0.9, 1.0, 0.5)])
def test_intensity_grows_with_the_risk_mode(volatility: float, intensity: float,
                                            reduce: float) -> None:
    r = make()
    r.update(400_000.0, volatility)

    d = r.rebalance("test")

    assert d is not None
    assert (d.intensity, d.reduce_fraction) == (intensity, reduce)
    assert d.target_exposure_krw == pytest.approx(400_000.0 * (1 - reduce))
    assert d.size_multiplier == pytest.approx(1 - reduce)


def test_rebalances_are_counted() -> None:
    r = make()
    r.rebalance()
    r.rebalance()

    assert r.get_metrics()["rebalance_count"] == 2.0


# -- disabled and config ------------------------------------------------------------------------------------

def test_a_disabled_rebalancer_tracks_but_never_decides() -> None:
    r = make(enabled=False)
    r.request("latency")

    assert r.update(0.0, 0.9) is None
    assert r.rebalance() is None
    assert r.risk_mode == RiskMode.EXTREME


def test_seed_defaults() -> None:
    cfg = RebalancerConfig()

    assert (cfg.enabled, cfg.risk_mode_rebalance_trigger, cfg.exposure_drift_threshold) == (
        True, True, 0.1)


@pytest.mark.parametrize(("key", "value"), [
    ("exposure_drift_threshold", 0.0), ("cautious_volatility", 0.8),
    ("intensity_extreme", 1.5), ("max_reduce_fraction", -0.1), ("drift_window_s", math.inf)])
def test_invalid_config_is_rejected_naming_its_key(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        RebalancerConfig(**{key: value})  # type: ignore[arg-type]
