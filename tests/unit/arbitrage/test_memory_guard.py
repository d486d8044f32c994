from arbitrage.memory_guard import MemoryGuard


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_steady_memory_is_left_alone() -> None:
    c = Clock()
    g = MemoryGuard(rss_limit_mb=500, drift_threshold=0.2, window=10, min_interval_s=60, now=c)
    for _ in range(50):
        c.t += 1
        assert g.observe("engine", 11, 100.0) is None


def test_rss_near_the_limit_is_recycled_before_it_passes() -> None:
    c = Clock()
    g = MemoryGuard(rss_limit_mb=500, drift_threshold=5.0, window=10, min_interval_s=60, now=c)
    decision = None
    rss = 100.0
    while decision is None and rss < 500:
        c.t += 1
        rss += 20
        decision = g.observe("engine", 11, rss)
    assert decision is not None and rss < 500
    assert "near limit" in decision.reason


def test_sustained_drift_past_the_threshold_recycles() -> None:
    c = Clock()
    g = MemoryGuard(rss_limit_mb=10_000, drift_threshold=0.2, window=10, min_interval_s=60, now=c)
    out = [g.observe("engine", 11, 100.0 + 10 * i) for i in range(10)]
    assert out[-1] is not None and "drift" in out[-1].reason
    assert all(d is None for d in out[:-1])


def test_a_process_is_asked_to_recycle_once() -> None:
    c = Clock()
    g = MemoryGuard(rss_limit_mb=100, drift_threshold=1.0, window=10, min_interval_s=60, now=c)
    assert g.observe("engine", 11, 95) is not None
    c.t += 1
    assert g.observe("engine", 11, 96) is None


def test_the_limit_is_enforced_on_a_successor_even_within_the_drift_rate_limit() -> None:
    c = Clock()
    g = MemoryGuard(rss_limit_mb=100, drift_threshold=1.0, window=10, min_interval_s=60, now=c)
    assert g.observe("engine", 11, 95) is not None
    c.t += 10
    assert g.drift_rate("engine") == 0.0
    assert g.observe("engine", 12, 95) is not None  # a new pid near the limit: recycle again


def test_drift_recycles_are_rate_limited() -> None:
    c = Clock()
    g = MemoryGuard(rss_limit_mb=10_000, drift_threshold=0.2, window=10, min_interval_s=60, now=c)
    assert [g.observe("engine", 11, 100.0 + 10 * i) for i in range(10)][-1] is not None
    c.t += 5
    out = [g.observe("engine", 12, 100.0 + 10 * i) for i in range(10)]
    assert all(d is None for d in out)  # drift again within the minute: wait
    c.t += 60
    assert g.observe("engine", 12, 300.0) is not None
