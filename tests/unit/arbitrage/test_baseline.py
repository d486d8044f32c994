from __future__ import annotations

import math

import pytest

from arbitrage.baseline import BaselineConfig, PremiumBaseline


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def baseline(clock: Clock, **overrides: float) -> PremiumBaseline:
    cfg = {"time_constant_s": 100.0, "warmup_samples": 3, "warmup_s": 2.0, "max_step_pct": 10.0,
           **overrides}
    return PremiumBaseline(BaselineConfig(**cfg), now=clock)


def feed(b: PremiumBaseline, clock: Clock, values: list[float], every_s: float = 1.0,
         symbol: str = "BTC") -> float | None:
    out = None
    for v in values:
        out = b.update(symbol, v)
        clock.t += every_s
    return out


def test_no_baseline_until_enough_samples_even_after_the_warmup_time() -> None:
    clock = Clock()
    b = baseline(clock, warmup_samples=5, warmup_s=0.0)

    feed(b, clock, [2.0] * 4, every_s=10.0)

    assert b.value("BTC") is None
    assert not b.is_warm("BTC")


def test_no_baseline_until_the_warmup_time_even_with_enough_samples() -> None:
    clock = Clock()
    b = baseline(clock, warmup_samples=3, warmup_s=60.0)

    feed(b, clock, [2.0] * 10, every_s=1.0)  # samples at t+0..t+9

    assert b.value("BTC") is None


def test_the_baseline_is_offered_once_warm() -> None:
    clock = Clock()
    b = baseline(clock)

    out = feed(b, clock, [2.0, 2.0, 2.0], every_s=1.0)  # third sample at t+2 = warmup_s

    assert out == pytest.approx(2.0)
    assert b.value("BTC") == pytest.approx(2.0)


def test_warmup_averages_the_samples_so_the_first_one_does_not_dominate() -> None:
    clock = Clock()
    b = baseline(clock, warmup_samples=10, warmup_s=0.0)

    feed(b, clock, [5.0, 1.0, 3.0, 3.0], every_s=0.1)

    assert b.estimate("BTC") == pytest.approx(3.0)  # the plain mean
    assert b.value("BTC") is None


def test_once_warm_a_sample_one_time_constant_later_closes_63_percent_of_the_gap() -> None:
    clock = Clock()
    b = baseline(clock)
    feed(b, clock, [2.0, 2.0, 2.0], every_s=1.0)
    clock.t += 99.0  # 100 s after the last sample

    out = b.update("BTC", 3.0)

    assert out == pytest.approx(2.0 + (1.0 - math.exp(-1.0)))


def test_a_jump_moves_the_baseline_by_at_most_the_step_limit() -> None:
    clock = Clock()
    b = baseline(clock, max_step_pct=0.02)
    feed(b, clock, [2.0, 2.0, 2.0], every_s=1.0)
    clock.t += 10_000.0  # a long gap would otherwise let one sample take over

    out = b.update("BTC", 12.0)

    assert out == pytest.approx(2.02)


def test_a_sample_at_the_same_instant_does_not_move_a_warm_baseline() -> None:
    clock = Clock()
    b = baseline(clock)
    feed(b, clock, [2.0, 2.0, 2.0], every_s=1.0)
    clock.t -= 1.0  # same instant as the last sample

    assert b.update("BTC", 9.0) == pytest.approx(2.0)


def test_non_finite_samples_are_ignored() -> None:
    clock = Clock()
    b = baseline(clock)
    feed(b, clock, [2.0, 2.0, 2.0], every_s=1.0)

    assert b.update("BTC", math.nan) == pytest.approx(2.0)
    assert b.samples("BTC") == 3


def test_symbols_warm_up_independently() -> None:
    clock = Clock()
    b = baseline(clock)

    feed(b, clock, [2.0, 2.0, 2.0], symbol="BTC")
    b.update("ETH", 1.0)

    assert b.is_warm("BTC")
    assert not b.is_warm("ETH")


def test_reset_starts_the_warmup_over() -> None:
    clock = Clock()
    b = baseline(clock)
    feed(b, clock, [2.0, 2.0, 2.0])

    b.reset("BTC")

    assert b.value("BTC") is None
    assert b.estimate("BTC") is None


def test_config_rejects_a_non_positive_time_constant() -> None:
    with pytest.raises(ValueError, match="time_constant_s"):
        BaselineConfig(time_constant_s=0)
