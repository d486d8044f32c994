"""Per-venue circuit breakers: closed -> open -> half_open (one probe) -> closed / open again."""

from __future__ import annotations

import pytest

from arbitrage.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    TRIPPING_KINDS,
    BreakerConfig,
    CircuitBreakers,
    Transition,
)

UP, BN = "upbit", "binance"
BOTH = (UP, BN)


def make(**cfg: float) -> CircuitBreakers:
    return CircuitBreakers(BreakerConfig(**cfg), BOTH)


def refuse(b: CircuitBreakers, venue: str, now: float, kind: str = "funds",
           reason: str = "insufficient balance") -> Transition | None:
    return b.on_result(venue, False, kind, reason, now)


def accept(b: CircuitBreakers, venue: str, now: float) -> Transition | None:
    return b.on_result(venue, True, "", "", now)


def tripped(backoff_s: float = 1.0, backoff_max_s: float = 30.0, at: float = 100.0) -> CircuitBreakers:
    b = make(backoff_s=backoff_s, backoff_max_s=backoff_max_s)
    assert refuse(b, UP, at) is not None
    return b


# -- closed -> open ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(TRIPPING_KINDS))
def test_first_tripping_refusal_opens_the_breaker_by_default(kind: str) -> None:
    b = make(backoff_s=2.0)

    t = refuse(b, UP, 10.0, kind=kind, reason="nope")

    assert t == Transition(venue=UP, state=OPEN, reason=f"{kind}: nope", backoff_s=2.0, trips=1)
    assert b.state(UP, 10.0) == OPEN
    assert b.state(BN, 10.0) == CLOSED  # one venue's trouble is not the other's


@pytest.mark.parametrize("n", [2, 3, 5])
def test_trip_after_n_needs_n_consecutive_refusals(n: int) -> None:
    b = make(trip_after=n)

    early = [refuse(b, UP, float(i)) for i in range(n - 1)]
    states_before = b.state(UP, float(n))
    last = refuse(b, UP, float(n))

    assert early == [None] * (n - 1)
    assert states_before == CLOSED
    assert last is not None and last.state == OPEN and last.trips == 1
    assert b.state(UP, float(n)) == OPEN


def test_an_acceptance_resets_the_consecutive_count() -> None:
    b = make(trip_after=2)

    refuse(b, UP, 0.0)
    accept(b, UP, 1.0)
    after_reset = refuse(b, UP, 2.0)
    second = refuse(b, UP, 3.0)

    assert after_reset is None
    assert b.state(UP, 3.0) == OPEN
    assert second is not None and second.state == OPEN


@pytest.mark.parametrize("kind", ["duplicate", "budget"])
def test_non_tripping_kinds_never_trip(kind: str) -> None:
    b = make(trip_after=1)

    outcomes = [refuse(b, UP, float(i), kind=kind) for i in range(50)]

    assert kind not in TRIPPING_KINDS
    assert outcomes == [None] * 50
    assert b.state(UP, 50.0) == CLOSED
    assert b.admit_open(BOTH, 50.0) == (True, "", ())


def test_non_tripping_kinds_do_not_count_towards_trip_after() -> None:
    b = make(trip_after=2)

    refuse(b, UP, 0.0)
    refuse(b, UP, 1.0, kind="duplicate")
    refuse(b, UP, 2.0, kind="budget")

    assert b.state(UP, 2.0) == CLOSED
    assert refuse(b, UP, 3.0) is not None  # the second tripping one


def test_the_reason_is_kind_and_message_truncated_to_160_chars() -> None:
    b = make()

    t = refuse(b, UP, 0.0, kind="filter", reason="x" * 500)

    assert t is not None
    assert t.reason.startswith("filter: x")
    assert len(t.reason) == 160
    assert b.snapshot(0.0)[UP]["reason"] == t.reason


# -- open ---------------------------------------------------------------------------------------------

def test_open_breaker_refuses_opens_naming_the_venue_and_counts_them() -> None:
    b = tripped(backoff_s=5.0, at=100.0)

    results = [b.admit_open(BOTH, 100.0 + i) for i in range(3)]

    for allowed, reason, probes in results:
        assert allowed is False
        assert probes == ()
        assert UP in reason and "breaker open" in reason
        assert "insufficient balance" in reason
    assert "next probe in 5.0s" in results[0][1]
    assert "next probe in 3.0s" in results[2][1]
    assert b.snapshot(102.0)[UP]["refused_opens"] == 3
    assert b.snapshot(102.0)[BN]["refused_opens"] == 0


def test_open_breaker_does_not_block_opens_on_the_other_venue_alone() -> None:
    b = tripped()

    assert b.admit_open((BN,), 100.0) == (True, "", ())
    assert b.admit_open((UP,), 100.0)[0] is False


def test_late_acceptance_while_open_does_not_close() -> None:
    b = tripped(backoff_s=5.0, at=100.0)

    t = accept(b, UP, 101.0)  # an order sent before the trip, answered late

    assert t is None
    assert b.state(UP, 101.0) == OPEN
    assert b.admit_open((UP,), 101.0)[0] is False
    # ... and the backoff still runs from the trip: half open at 105 as planned.
    assert b.state(UP, 104.999) == OPEN
    assert b.state(UP, 105.0) == HALF_OPEN


def test_late_refusal_while_open_changes_nothing() -> None:
    b = tripped(backoff_s=5.0, at=100.0)

    t = refuse(b, UP, 102.0)

    assert t is None
    assert b.state(UP, 104.9) == OPEN
    assert b.state(UP, 105.0) == HALF_OPEN  # retry time not pushed back
    assert b.snapshot(102.0)[UP]["trips"] == 1


# -- half open: one probe ---------------------------------------------------------------------------

def test_half_open_after_backoff_admits_exactly_one_probe() -> None:
    b = tripped(backoff_s=2.0, at=100.0)

    before = b.admit_open(BOTH, 101.9)
    state = b.state(UP, 102.0)
    first = b.admit_open(BOTH, 102.0)
    second = b.admit_open(BOTH, 102.5)
    third = b.admit_open((UP,), 200.0)

    assert before[0] is False
    assert state == HALF_OPEN
    assert first == (True, "", (UP,))
    assert second[0] is False and "probe in flight" in second[1] and UP in second[1]
    assert third[0] is False and "probe in flight" in third[1]
    assert b.state(UP, 102.5) == HALF_OPEN


def test_accepted_probe_closes_the_breaker() -> None:
    b = tripped(backoff_s=2.0, at=100.0)
    b.admit_open((UP,), 102.0)

    t = accept(b, UP, 102.1)

    assert t == Transition(venue=UP, state=CLOSED, reason="venue accepts orders again", backoff_s=0.0,
                           trips=1)
    assert b.state(UP, 102.1) == CLOSED
    assert b.admit_open(BOTH, 102.1) == (True, "", ())
    assert b.admit_open(BOTH, 102.1) == (True, "", ())  # no probe reservation any more
    snap = b.snapshot(102.1)[UP]
    assert snap["state"] == CLOSED and snap["reason"] == "" and snap["retry_in_s"] == 0.0


def test_after_closing_the_next_trip_starts_at_the_base_backoff_again() -> None:
    b = tripped(backoff_s=2.0, at=100.0)
    b.admit_open((UP,), 102.0)
    refuse(b, UP, 102.1)  # backoff now 4
    b.admit_open((UP,), 106.1)
    accept(b, UP, 106.2)

    t = refuse(b, UP, 200.0)

    assert t is not None and t.backoff_s == 2.0 and t.trips == 2


def test_refused_probe_reopens_with_doubled_backoff() -> None:
    b = tripped(backoff_s=2.0, at=100.0)
    assert b.admit_open((UP,), 102.0)[2] == (UP,)

    t = refuse(b, UP, 102.5, kind="server", reason="HTTP 503")

    assert t is not None
    assert t.state == OPEN and t.backoff_s == 4.0 and t.reason == "server: HTTP 503"
    assert t.trips == 1  # a failed probe is not a new trip
    assert b.state(UP, 106.4) == OPEN
    assert b.state(UP, 106.5) == HALF_OPEN
    assert b.admit_open((UP,), 106.5) == (True, "", (UP,))


def test_probe_backoff_doubles_up_to_the_cap() -> None:
    b = tripped(backoff_s=1.0, backoff_max_s=5.0, at=0.0)
    now, seen = 0.0, []

    for _ in range(6):
        now += 1000.0  # well past any backoff
        assert b.admit_open((UP,), now)[0] is True
        t = refuse(b, UP, now)
        assert t is not None
        seen.append(t.backoff_s)
        assert b.snapshot(now)[UP]["retry_in_s"] == t.backoff_s

    assert seen == [2.0, 4.0, 5.0, 5.0, 5.0, 5.0]


def test_non_tripping_refusal_of_a_probe_releases_it_for_another() -> None:
    b = tripped(backoff_s=1.0, at=0.0)
    assert b.admit_open((UP,), 1.0)[2] == (UP,)

    t = refuse(b, UP, 1.1, kind="budget", reason="no rate budget")
    again = b.admit_open((UP,), 1.2)

    assert t is None
    assert again == (True, "", (UP,))
    assert b.admit_open((UP,), 1.3)[0] is False  # still only one at a time


def test_probe_reservation_is_all_or_nothing_across_venues() -> None:
    b = make(backoff_s=1.0)
    refuse(b, UP, 0.0)
    refuse(b, BN, 0.5)  # binance half-opens at 1.5, upbit at 1.0

    refused = b.admit_open(BOTH, 1.2)
    ok = b.admit_open(BOTH, 1.5)

    assert refused[0] is False and BN in refused[1] and UP not in refused[1]
    assert b.snapshot(1.2)[UP]["refused_opens"] == 0
    assert ok == (True, "", BOTH)  # upbit's probe was not taken by the refused open
    assert b.admit_open((UP,), 1.6)[0] is False
    assert b.admit_open((BN,), 1.6)[0] is False


def test_half_open_probe_mixed_with_a_closed_venue() -> None:
    b = tripped(backoff_s=1.0, at=0.0)

    assert b.admit_open((BN, UP), 1.0) == (True, "", (UP,))


# -- snapshot -------------------------------------------------------------------------------------

def test_snapshot_fields() -> None:
    b = make(backoff_s=3.0)
    fresh = b.snapshot(0.0)
    refuse(b, BN, 10.0, kind="rate_limit", reason="-1015 too many orders")
    b.admit_open((BN,), 11.0)
    b.admit_open((BN,), 11.5)

    snap = b.snapshot(11.5)

    assert fresh == {v: {"state": CLOSED, "reason": "", "retry_in_s": 0.0, "trips": 0, "refused_opens": 0}
                     for v in BOTH}
    assert set(snap) == set(BOTH)
    assert snap[BN] == {"state": OPEN, "reason": "rate_limit: -1015 too many orders", "retry_in_s": 1.5,
                        "trips": 1, "refused_opens": 2}
    assert snap[UP]["state"] == CLOSED
    assert b.snapshot(13.0)[BN]["state"] == HALF_OPEN
    assert b.snapshot(20.0)[BN]["retry_in_s"] == 0.0


def test_snapshot_retry_in_is_rounded_to_milliseconds() -> None:
    b = make(backoff_s=1.0)
    refuse(b, UP, 0.0)

    assert b.snapshot(0.12345)[UP]["retry_in_s"] == round(1.0 - 0.12345, 3)


# -- config ---------------------------------------------------------------------------------------------

def test_config_defaults_are_valid() -> None:
    cfg = BreakerConfig()
    assert (cfg.trip_after, cfg.backoff_s, cfg.backoff_max_s, cfg.slow_after_s) == (1, 1.0, 30.0, 0.5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"trip_after": 0}, "trip_after must be >= 1"),
    ({"trip_after": -3}, "trip_after must be >= 1"),
    ({"backoff_s": 0.0}, "backoff_s must be > 0"),
    ({"backoff_s": -1.0}, "backoff_s must be > 0"),
    ({"backoff_s": 10.0, "backoff_max_s": 5.0}, "backoff_max_s must be >= backoff_s"),
    ({"slow_after_s": 0.0}, "slow_after_s must be > 0"),
])
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerConfig(**kwargs)


def test_config_reports_every_problem_at_once() -> None:
    with pytest.raises(ValueError) as e:
        BreakerConfig(trip_after=0, backoff_s=5.0, backoff_max_s=1.0)

    assert "trip_after" in str(e.value) and "backoff_max_s" in str(e.value)


def test_config_allows_equal_backoff_and_cap() -> None:
    b = make(backoff_s=4.0, backoff_max_s=4.0)
    refuse(b, UP, 0.0)
    b.admit_open((UP,), 4.0)

    t = refuse(b, UP, 4.0)

    assert t is not None and t.backoff_s == 4.0
