"""LongRunTester (D14): events, drift rates, latency degradation, snapshots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from arbitrage.longrun import LongRunTester

ROOT = Path(__file__).resolve().parents[3]
HOUR = 3600.0


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def make_tester(clock: FakeClock | None = None, **kw: Any) -> LongRunTester:
    c = clock or FakeClock()
    return LongRunTester(now=c, wall=lambda: 1_700_000_000.0, **kw)


def feed(t: LongRunTester, key: str, values: list[float], clock: FakeClock | None = None,
         dt: float = 1.0) -> None:
    for v in values:
        t.update_drift_metrics({key: v})
        if clock is not None:
            clock.advance(dt)


# -- the seed's T2 snippet, literally ----------------------------------------------------------

T2 = '''
from arbitrage.longrun import LongRunTester
tester = LongRunTester()
for i in range(100):
    metrics = {'rss_mb': 100 + i * 2}  # 메모리 증가
    tester.update_drift_metrics(metrics)
print(f'Memory drift: {tester.get_drift_rate("memory"):.2f}')
'''


def test_seed_t2_snippet_runs_unmodified_and_prints_a_positive_drift() -> None:
    out = subprocess.run([sys.executable, "-c", T2], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()

    assert out.startswith("Memory drift: ")
    assert float(out.split(": ")[1]) > 0.1


def test_seed_t2_snippet_in_process() -> None:
    t = LongRunTester()
    [t.update_drift_metrics({"rss_mb": 100 + i * 2}) for i in range(100)]

    assert t.get_drift_rate("memory") > 0.1


# -- drift rate ------------------------------------------------------------------------------------

def test_flat_memory_has_zero_drift() -> None:
    t = make_tester()
    feed(t, "rss_mb", [200.0] * 50)

    assert t.get_drift_rate("memory") == 0.0


def test_ten_percent_growth_across_the_window_reads_as_about_point_one() -> None:
    t = make_tester(window=100)
    feed(t, "rss_mb", [100.0 + 10.0 * i / 99 for i in range(100)])

    assert t.get_drift_rate("memory") == pytest.approx(10.0 / 105.0, rel=1e-6)


def test_shrinking_memory_has_negative_drift() -> None:
    t = make_tester()
    feed(t, "rss_mb", [300.0 - i for i in range(50)])

    assert t.get_drift_rate("memory") < 0.0


def test_drift_rate_is_clamped_to_one() -> None:
    t = make_tester()
    feed(t, "rss_mb", [10.0 * (i + 1) for i in range(50)])

    assert t.get_drift_rate("memory") == 1.0


def test_drift_is_zero_until_enough_samples() -> None:
    t = make_tester()
    feed(t, "rss_mb", [100.0, 200.0, 300.0])

    assert t.get_drift_rate("memory") == 0.0


def test_only_the_recent_window_counts() -> None:
    t = make_tester(window=20)
    feed(t, "rss_mb", [100.0 + i for i in range(100)] + [500.0] * 20)

    assert t.get_drift_rate("memory") == 0.0


def test_ws_lag_in_seconds_and_milliseconds_land_in_one_series() -> None:
    t = make_tester()
    feed(t, "ws_lag_ms", [50.0] * 10)
    feed(t, "ws_lag_s", [0.05] * 10)

    assert t.get_drift_rate("ws_lag") == 0.0
    assert t.snapshot()["drift"]["ws_lag"]["last"] == pytest.approx(50.0)


def test_state_age_answers_to_the_seeds_redis_name() -> None:
    t = make_tester()
    feed(t, "state_age_s", [1.0 + i for i in range(20)])

    assert t.get_drift_rate("redis_age") == t.get_drift_rate("state_age") > 0.0
    assert t.get_metrics()["redis_age_drift_rate"] == t.get_drift_rate("state_age")


def test_unknown_keys_and_non_numbers_are_ignored() -> None:
    t = make_tester()
    t.update_drift_metrics({"cpu": 99.0, "rss_mb": float("nan")})
    t.update_drift_metrics({"rss_mb": "lots"})  # type: ignore[dict-item]

    assert t.snapshot()["drift"]["memory"]["samples"] == 0


def test_an_unknown_drift_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown drift kind"):
        make_tester().get_drift_rate("cpu")


def test_stride_averages_inputs_into_one_sample() -> None:
    t = make_tester(stride=4)
    feed(t, "rss_mb", [100.0, 102.0, 104.0, 106.0, 108.0])

    snap = t.snapshot()["drift"]["memory"]
    assert snap["samples"] == 1
    assert snap["last"] == 108.0


def test_drift_per_hour_uses_the_clock() -> None:
    clock = FakeClock()
    t = make_tester(clock)
    # 100 MB growing 1 MB a minute for an hour: 60 MB/h over a mean of ~130 MB.
    feed(t, "rss_mb", [100.0 + i for i in range(61)], clock, dt=60.0)

    assert t.get_drift_rate_per_hour("memory") == pytest.approx(60.0 / 130.0, rel=1e-6)


def test_drift_per_hour_is_zero_when_no_time_passed() -> None:
    t = make_tester()
    feed(t, "rss_mb", [100.0 + i for i in range(20)])

    assert t.get_drift_rate_per_hour("memory") == 0.0


# -- latency degradation -------------------------------------------------------------------------

def degrading(clock: FakeClock, **kw: Any) -> LongRunTester:
    """A tester with a 10 ms baseline learnt from 10 samples."""
    t = make_tester(clock, latency_baseline_samples=10, latency_recent_samples=5, **kw)
    feed(t, "loop_latency_ms", [10.0] * 10, clock)
    return t


def test_latency_is_not_degraded_while_learning_the_baseline() -> None:
    clock = FakeClock()
    t = make_tester(clock, latency_baseline_samples=10, latency_sustain_s=0.0)
    feed(t, "loop_latency_ms", [100.0] * 9, clock)

    assert t.check_latency_degradation() is False


def test_sustained_degradation_is_reported_after_the_seeds_two_hours() -> None:
    clock = FakeClock()
    t = degrading(clock)
    feed(t, "loop_latency_ms", [30.0] * 5, clock)

    clock.advance(2 * HOUR - 10)
    early = t.check_latency_degradation()
    clock.advance(10)

    assert early is False
    assert t.check_latency_degradation() is True


def test_one_spike_is_not_degradation() -> None:
    clock = FakeClock()
    t = degrading(clock, latency_sustain_s=0.0)
    feed(t, "loop_latency_ms", [10.0, 10.0, 500.0, 10.0, 10.0], clock)

    assert t.check_latency_degradation() is False


def test_recovery_ends_the_degradation() -> None:
    clock = FakeClock()
    t = degrading(clock, latency_sustain_s=60.0)
    feed(t, "loop_latency_ms", [30.0] * 5, clock)
    feed(t, "loop_latency_ms", [10.0] * 5, clock)
    clock.advance(HOUR)

    assert t.check_latency_degradation() is False


def test_latency_hovering_at_the_threshold_keeps_counting() -> None:
    clock = FakeClock()
    t = degrading(clock, latency_sustain_s=100.0)
    # Above 15 ms starts it; 14 ms is below the threshold but not halfway back (12.5 ms).
    feed(t, "loop_latency_ms", [16.0, 14.0] * 60, clock)

    assert t.check_latency_degradation() is True


def test_a_slow_creep_is_caught_because_the_baseline_stays_put() -> None:
    clock = FakeClock()
    t = degrading(clock, latency_sustain_s=HOUR)
    # 10 ms -> 40 ms over eight hours, one sample a minute.
    feed(t, "loop_latency_ms", [10.0 + 30.0 * i / 480 for i in range(480)], clock, dt=60.0)

    assert t.check_latency_degradation() is True
    assert t.latency_baseline_ms == 10.0


def test_a_tiny_absolute_rise_is_not_degradation() -> None:
    clock = FakeClock()
    t = make_tester(clock, latency_baseline_samples=10, latency_recent_samples=5,
               latency_sustain_s=0.0)
    feed(t, "loop_latency_ms", [0.1] * 10, clock)
    feed(t, "loop_latency_ms", [0.4] * 5, clock)

    assert t.check_latency_degradation() is False


def test_reset_learns_a_new_baseline() -> None:
    clock = FakeClock()
    t = degrading(clock, latency_sustain_s=0.0)
    feed(t, "loop_latency_ms", [30.0] * 5, clock)

    t.reset_latency_baseline()
    feed(t, "loop_latency_ms", [30.0] * 15, clock)

    assert t.check_latency_degradation() is False
    assert t.latency_baseline_ms == 30.0


# -- events ----------------------------------------------------------------------------------------

def test_record_event_returns_a_flat_jsonl_ready_record() -> None:
    t = make_tester()

    rec = t.record_event("trade", {"symbol": "BTC/KRW", "side": "buy", "quantity": 0.1,
                                   "price": 50000000.0})

    assert rec == {"ts": 1_700_000_000.0, "event_type": "trade", "symbol": "BTC/KRW",
                   "side": "buy", "quantity": 0.1, "price": 50000000.0}


def test_record_event_hands_the_record_to_the_sink() -> None:
    seen: list[dict[str, Any]] = []
    t = make_tester(event_sink=seen.append)

    rec = t.record_event("risk_block", {"reason": "x"})

    assert seen == [rec]


def test_events_are_counted_per_type_and_in_total() -> None:
    t = make_tester()
    for kind in ("trade", "trade", "fail_closed"):
        t.record_event(kind, {})

    assert t.live_event_count == 3
    assert dict(t.event_counts) == {"trade": 2, "fail_closed": 1}
    assert t.get_metrics()["failclosed_events"] == 1.0


def test_event_data_may_not_overwrite_the_type() -> None:
    with pytest.raises(ValueError, match="event_type"):
        make_tester().record_event("trade", {"event_type": "other"})


# -- loops and snapshots -------------------------------------------------------------------------

def test_a_snapshot_is_due_every_interval_loops() -> None:
    t = make_tester(interval_loops=3)

    due = [t.tick_loop() for _ in range(7)]

    assert due == [False, False, True, False, False, True, False]


def test_a_disabled_tester_never_asks_for_a_snapshot_but_still_tracks_drift() -> None:
    t = make_tester(enabled=False, interval_loops=1)
    feed(t, "rss_mb", [100.0 + 5 * i for i in range(20)])

    assert t.tick_loop() is False
    assert t.get_drift_rate("memory") > 0.0


def test_snapshot_reports_uptime_drift_and_events_and_feeds_the_sink() -> None:
    clock = FakeClock()
    seen: list[dict[str, Any]] = []
    t = make_tester(clock, snapshot_sink=seen.append)
    t.record_event("trade", {})
    feed(t, "rss_mb", [100.0] * 10, clock)

    snap = t.snapshot()

    assert seen == [snap]
    assert snap["uptime_s"] == 10.0
    assert snap["event_counts"] == {"trade": 1}
    assert snap["drift"]["memory"]["samples"] == 10
    assert set(snap["drift"]) == {"memory", "ws_lag", "state_age", "loop_latency"}


def test_metrics_carry_the_seed_names() -> None:
    names = set(make_tester().get_metrics())

    assert {"live_event_count", "failclosed_events", "memory_drift_rate",
            "redis_age_drift_rate"} <= names


@pytest.mark.parametrize("kw", [{"interval_loops": 0}, {"window": 1}, {"stride": 0},
                                {"latency_factor": 1.0}])
def test_invalid_settings_are_rejected(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_tester(**kw)
