import pytest

from arbitrage.freshness import FreshnessMonitor


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def monitor(clock: Clock) -> FreshnessMonitor:
    return FreshnessMonitor({"upbit": ("BTC", "USDT"), "binance": ("BTC",)}, fail_closed_after_s=3.0,
                            restart_after_s=6.0, clear_after_s=2.0, now=clock)


def feed_all(m: FreshnessMonitor) -> None:
    for v, s in (("upbit", "BTC"), ("upbit", "USDT"), ("binance", "BTC")):
        m.on_quote(v, s)


def test_fresh_quotes_produce_no_action_after_the_announcement_at_start() -> None:
    c = Clock()
    m = monitor(c)
    feed_all(m)
    assert sorted((a.kind, a.venue) for a in m.evaluate()) == [("fresh_at_start", "binance"),
                                                              ("fresh_at_start", "upbit")]
    for _ in range(10):
        c.t += 1
        feed_all(m)
        assert m.evaluate() == []


def test_a_stale_symbol_fails_closed_once_naming_venue_and_symbol() -> None:
    c = Clock()
    m = monitor(c)
    feed_all(m)
    c.t += 3.5
    m.on_quote("upbit", "BTC")
    m.on_quote("binance", "BTC")
    acts = [a for a in m.evaluate() if a.kind != "fresh_at_start"]
    assert [a.kind for a in acts] == ["fail_closed"]
    assert "upbit USDT" in acts[0].reason
    c.t += 0.5
    assert all(a.kind != "fail_closed" for a in m.evaluate())


def test_a_feed_that_stays_stale_is_restarted_then_restarted_again() -> None:
    c = Clock()
    m = monitor(c)
    feed_all(m)
    kinds = []
    for _ in range(60):
        c.t += 0.25
        m.on_quote("binance", "BTC")
        kinds += [a.kind for a in m.evaluate() if a.venue == "upbit"]
    assert kinds.count("fail_closed") == 1
    assert kinds.count("restart_feed") == 2  # at ~6 s and ~12 s of staleness
    assert kinds.index("fail_closed") < kinds.index("restart_feed")


def test_clearing_waits_for_the_hysteresis_period() -> None:
    c = Clock()
    m = monitor(c)
    c.t += 4
    assert {a.kind for a in m.evaluate()} == {"fail_closed"}
    feed_all(m)
    c.t += 1
    feed_all(m)
    assert m.evaluate() == []
    c.t += 1.0
    feed_all(m)
    assert m.evaluate() == []  # fresh for 1 s of the 2 s required
    c.t += 1.0
    feed_all(m)
    assert {a.kind for a in m.evaluate()} == {"clear"}


def test_a_feed_that_never_delivered_counts_as_stale_from_start_up() -> None:
    c = Clock()
    m = monitor(c)
    c.t += 3.1
    assert {a.venue for a in m.evaluate()} == {"upbit", "binance"}


# -- fast clearing, flapping ------------------------------------------------------------


def fast_monitor(clock: Clock) -> FreshnessMonitor:
    return FreshnessMonitor({"upbit": ("BTC", "USDT"), "binance": ("BTC",)}, fail_closed_after_s=3.0,
                            restart_after_s=6.0, clear_after_s=0.3, now=clock, clear_after_samples=2,
                            flap_window_s=30.0, clear_max_s=10.0)


def run_feed(m: FreshnessMonitor, c: Clock, seconds: float, upbit_on: bool, step: float = 0.05) -> list[str]:
    """Quotes every ``step`` s (upbit only while ``upbit_on``), evaluating on every step."""
    kinds = []
    for _ in range(round(seconds / step)):
        c.t += step
        m.on_quote("binance", "BTC")
        if upbit_on:
            m.on_quote("upbit", "BTC")
            m.on_quote("upbit", "USDT")
        kinds += [a.kind for a in m.evaluate() if a.venue == "upbit" and a.kind != "fresh_at_start"]
    return kinds


def test_a_venue_that_failed_once_clears_a_few_hundred_ms_after_its_quotes_return() -> None:
    c = Clock()
    m = fast_monitor(c)
    run_feed(m, c, 1.0, True)
    assert run_feed(m, c, 3.5, False) == ["fail_closed"]
    back = c.t
    kinds = []
    while "clear" not in kinds and c.t - back < 5:
        kinds += run_feed(m, c, 0.05, True)
    assert kinds == ["clear"]
    assert 0.3 <= c.t - back <= 0.45


def test_clearing_needs_new_quotes_of_every_book_not_just_time() -> None:
    c = Clock()
    m = fast_monitor(c)
    run_feed(m, c, 1.0, True)
    run_feed(m, c, 3.5, False)
    m.on_quote("upbit", "BTC")
    m.on_quote("upbit", "USDT")  # one quote each, then silence again (but not yet stale)
    kinds = run_feed(m, c, 1.0, False)
    assert "clear" not in kinds


def test_a_flapping_feed_does_not_clear_and_trip_on_every_flap() -> None:
    c = Clock()
    m = fast_monitor(c)
    run_feed(m, c, 1.0, True)
    kinds: list[str] = []
    for _ in range(12):  # 12 flaps in ~54 s: 3.5 s silent (trips), 1 s of quotes
        kinds += run_feed(m, c, 3.5, False)
        kinds += run_feed(m, c, 1.0, True)
    trips, clears = kinds.count("fail_closed"), kinds.count("clear")
    assert clears <= 3 < 12, kinds  # the hysteresis doubles per trip: 0.3, 0.6 (then > the 1 s on-time)
    assert trips == clears + 1 or trips == clears  # still failed at the end, or just cleared
    assert m.venues["upbit"].failed
    assert m.hysteresis_s("upbit") > 1.0


def test_the_short_hysteresis_comes_back_after_a_quiet_window() -> None:
    c = Clock()
    m = fast_monitor(c)
    run_feed(m, c, 1.0, True)
    for _ in range(3):
        run_feed(m, c, 3.5, False)
        run_feed(m, c, 3.0, True)
    assert m.hysteresis_s("upbit") == pytest.approx(1.2)
    run_feed(m, c, 31.0, True)  # quiet for a whole flap window
    assert m.hysteresis_s("upbit") == pytest.approx(0.3)


def test_a_new_monitor_announces_each_venue_once_when_all_its_quotes_were_seen() -> None:
    c = Clock()
    m = fast_monitor(c)
    m.on_quote("upbit", "BTC")
    assert [a.venue for a in m.evaluate()] == []  # upbit USDT not seen yet, binance BTC neither
    m.on_quote("upbit", "USDT")
    assert [(a.kind, a.venue) for a in m.evaluate()] == [("fresh_at_start", "upbit")]
    m.on_quote("binance", "BTC")
    assert [(a.kind, a.venue) for a in m.evaluate()] == [("fresh_at_start", "binance")]
    feed_all(m)
    assert m.evaluate() == []
