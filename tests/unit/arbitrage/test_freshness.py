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


def test_fresh_quotes_produce_no_action() -> None:
    c = Clock()
    m = monitor(c)
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
    acts = m.evaluate()
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
