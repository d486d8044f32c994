"""Restart policy: OTP intensity within a sliding period, exponential backoff with a cap."""

from __future__ import annotations

import pytest

from supervisors.policy import Backoff, RestartIntensity


def test_restarts_up_to_the_intensity_within_the_period_are_allowed() -> None:
    i = RestartIntensity(max_restarts=3, period_s=10.0)

    assert [i.record(t) for t in (0.0, 1.0, 2.0)] == [False, False, False]
    assert i.recent == 3


def test_one_restart_more_than_the_intensity_within_the_period_escalates() -> None:
    i = RestartIntensity(max_restarts=3, period_s=10.0)
    for t in (0.0, 1.0, 2.0):
        i.record(t)

    assert i.record(9.9) is True


def test_the_otp_default_allows_one_restart_in_five_seconds_but_not_two() -> None:
    i = RestartIntensity(max_restarts=1, period_s=5.0)

    assert i.record(100.0) is False
    assert i.record(104.0) is True


def test_restarts_older_than_the_period_no_longer_count() -> None:
    i = RestartIntensity(max_restarts=2, period_s=5.0)
    i.record(0.0)
    i.record(1.0)

    assert i.record(6.5) is False  # 0.0 and 1.0 have left the window
    assert i.recent == 1


def test_the_window_slides_rather_than_resetting() -> None:
    i = RestartIntensity(max_restarts=2, period_s=5.0)
    i.record(0.0)
    i.record(4.0)

    assert i.record(5.5) is False  # 0.0 left; 4.0 and 5.5 remain
    assert i.record(6.0) is True  # 4.0, 5.5, 6.0 within 5 s


def test_a_restart_exactly_one_period_old_still_counts() -> None:
    i = RestartIntensity(max_restarts=1, period_s=5.0)
    i.record(0.0)

    assert i.record(5.0) is True


def test_a_steady_rate_below_the_sustained_limit_never_escalates() -> None:
    i = RestartIntensity(max_restarts=5, period_s=30.0)

    assert not any(i.record(t * 6.5) for t in range(200))


def test_backoff_starts_at_its_initial_delay_and_doubles() -> None:
    b = Backoff(initial_s=0.05, max_s=10.0, stable_after_s=30.0)

    delays = [b.next_delay(ran_for_s=0.1) for _ in range(5)]

    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8])


def test_backoff_is_capped() -> None:
    b = Backoff(initial_s=1.0, max_s=5.0, stable_after_s=30.0)

    delays = [b.next_delay(ran_for_s=0.0) for _ in range(6)]

    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_backoff_resets_after_a_stable_run() -> None:
    b = Backoff(initial_s=0.1, max_s=5.0, stable_after_s=10.0)
    for _ in range(4):
        b.next_delay(ran_for_s=1.0)

    assert b.next_delay(ran_for_s=10.0) == pytest.approx(0.1)
    assert b.next_delay(ran_for_s=0.5) == pytest.approx(0.2)


def test_a_run_just_short_of_stable_keeps_the_backoff_growing() -> None:
    b = Backoff(initial_s=0.1, max_s=5.0, stable_after_s=10.0)
    b.next_delay(ran_for_s=1.0)

    assert b.next_delay(ran_for_s=9.99) == pytest.approx(0.2)


def test_backoff_never_overflows_after_very_many_failures() -> None:
    b = Backoff(initial_s=0.05, max_s=5.0)

    delays = [b.next_delay(ran_for_s=0.0) for _ in range(5000)]

    assert max(delays) == 5.0 and delays[-1] == 5.0
