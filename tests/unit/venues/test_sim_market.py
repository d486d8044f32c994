"""The simulator's market model: deterministic per seed, sane premium statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from venues.sim.config import SimConfig, SimConfigError
from venues.sim.market import RANGING, TRENDING, MarketModel


def _path(seed: int, steps: int = 600, dt: float = 0.1) -> list[tuple[float, ...]]:
    model = MarketModel(SimConfig(seed=seed))
    out = []
    for _ in range(steps):
        model.step(dt)
        out.append((model.premium, model.fx, *model.usd.values(), *model.coin_term.values()))
    return out


def test_same_seed_gives_the_same_path() -> None:
    assert _path(7) == _path(7)


def test_different_seeds_give_different_paths() -> None:
    assert _path(7) != _path(8)


def test_prices_start_near_the_configured_levels() -> None:
    model = MarketModel(SimConfig())
    assert model.binance_mid("BTC") == pytest.approx(68_000)
    assert model.upbit_mid("USDT") == pytest.approx(1_400)
    assert model.upbit_mid("BTC") == pytest.approx(68_000 * 1_400 * 1.02)


def _premium_series(seed: int, minutes: float, dt: float = 0.1) -> np.ndarray:
    model = MarketModel(SimConfig(seed=seed))
    series = []
    for _ in range(int(minutes * 60 / dt)):
        model.step(dt)
        series.append(model.premium_pct("BTC"))
    return np.array(series)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_premium_mean_reverts_around_two_percent(seed: int) -> None:
    series = _premium_series(seed, minutes=10)
    assert 1.0 < series.mean() < 3.0
    assert 0.2 < series.std() < 1.0
    assert series.min() > -1.0 and series.max() < 5.0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_premium_leaves_a_moving_baseline_by_half_a_percent_several_times_a_minute(seed: int) -> None:
    dt, minutes = 0.1, 5
    series = _premium_series(seed, minutes=minutes, dt=dt)
    alpha = 1 - math.exp(-dt / 60.0)  # EMA baseline, 60 s time constant
    baseline, outside, excursions = series[0], False, 0
    for p in series:
        baseline += alpha * (p - baseline)
        if abs(p - baseline) > 0.5 and not outside:
            excursions, outside = excursions + 1, True
        elif abs(p - baseline) < 0.3:
            outside = False
    assert excursions / minutes >= 3


def test_regimes_switch_and_jumps_happen() -> None:
    model = MarketModel(SimConfig(seed=5))
    seen = set()
    for _ in range(20_000):
        model.step(0.1)
        seen.add(model.regime)
    assert seen == {RANGING, TRENDING}
    assert model.jumps > 10


def test_fx_stays_near_its_level() -> None:
    model = MarketModel(SimConfig(seed=3))
    fx = []
    for _ in range(6000):
        model.step(0.1)
        fx.append(model.fx)
    assert min(fx) > 1390 and max(fx) < 1410


def test_nudge_moves_the_state_without_drawing() -> None:
    a, b = MarketModel(SimConfig(seed=4)), MarketModel(SimConfig(seed=4))
    a.nudge(premium_pct=5.0)
    assert a.premium_pct("ETH") == 5.0
    a.step(0.1)
    b.step(0.1)
    assert a.usd == b.usd  # same random numbers consumed


def test_config_rejects_unknown_symbols_and_keys() -> None:
    with pytest.raises(SimConfigError, match="DOGE"):
        SimConfig(symbols=("DOGE",))
    with pytest.raises(SimConfigError, match="did you mean 'update_hz'"):
        SimConfig.from_mapping({"update_hzz": 3})
    assert SimConfig.from_mapping({"symbols": ["BTC"], "seed": 9}).symbols == ("BTC",)
