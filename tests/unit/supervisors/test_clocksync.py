"""Clock offsets from ping/report exchanges and reading other hosts' stamps
on ours (supervisors.clocksync): pure, no sockets, no sleeps."""

from __future__ import annotations

from messages import BookTop, Opportunity
from supervisors.clocksync import ClockTable, OffsetEstimator, clock_fields, ntp_sample, shift

MS = 1_000_000


def exchange(offset_ns: int, out_ns: int, back_ns: int, hold_ns: int = 0, t0: int = 10**18) -> tuple[int, ...]:
    """t0..t3 of one ping/report exchange with a node whose clock is ``offset_ns`` ahead."""
    t1 = t0 + out_ns + offset_ns
    t2 = t1 + hold_ns
    t3 = t2 - offset_ns + back_ns
    return t0, t1, t2, t3


def test_symmetric_delays_give_the_exact_offset_and_round_trip() -> None:
    offset, rtt = ntp_sample(*exchange(1_000 * MS, 3 * MS, 3 * MS, hold_ns=40 * MS))

    assert offset == 1_000 * MS
    assert rtt == 6 * MS  # the node's hold time is not part of the link


def test_asymmetric_delays_are_off_by_at_most_half_the_round_trip() -> None:
    offset, rtt = ntp_sample(*exchange(-250 * MS, 1 * MS, 9 * MS))

    assert abs(offset - (-250 * MS)) <= rtt // 2


def test_the_estimate_is_the_offset_of_the_least_delayed_recent_sample() -> None:
    est = OffsetEstimator(window=4)
    est.add(*exchange(100 * MS, 30 * MS, 2 * MS))  # queued one way: 14 ms off
    est.add(*exchange(100 * MS, 1 * MS, 1 * MS))
    est.add(*exchange(100 * MS, 2 * MS, 20 * MS))

    assert est.offset_ns == 100 * MS
    assert est.error_ns == 1 * MS
    assert est.last_rtt_ns == 22 * MS


def test_an_impossible_exchange_is_ignored_and_a_reset_forgets() -> None:
    est = OffsetEstimator()
    t0, t1, t2, t3 = exchange(0, 1 * MS, 1 * MS)

    assert not est.add(t0, t1, t2 + 10 * MS, t3)  # a report sent before... its ping arrived back
    assert est.offset_ns is None
    assert est.add(t0, t1, t2, t3)
    est.reset()
    assert est.offset_ns is None and est.error_ns is None


def book(**kw: int) -> BookTop:
    return BookTop(venue="binance", symbol="BTC", bid=1.0, ask=2.0, bid_size=1.0, ask_size=1.0, **kw)


def test_sender_clock_fields_are_every_ns_stamp_but_the_exchanges() -> None:
    assert clock_fields(BookTop) == ("ts_ns", "recv_ts_ns")
    assert set(clock_fields(Opportunity)) >= {"ts_ns", "expires_ns", "origin_ts_ns"}


def test_a_shift_moves_the_senders_stamps_and_leaves_the_exchanges_and_unset_ones() -> None:
    b = book(ts_ns=5_000, exch_ts_ns=4_000, recv_ts_ns=4_500)
    unset = book(ts_ns=5_000, exch_ts_ns=0, recv_ts_ns=0)

    moved = shift(b, -1_000)
    assert (moved.ts_ns, moved.exch_ts_ns, moved.recv_ts_ns, moved.id) == (4_000, 4_000, 3_500, b.id)
    assert shift(unset, -1_000).recv_ts_ns == 0
    assert shift(b, 0) is b


def test_main_reads_a_node_ahead_by_a_second_on_its_own_clock() -> None:
    table = ClockTable("main", {"feed.binance": "tokyo"})
    table.update({"tokyo": 1_000 * MS})
    b = book(ts_ns=2_000 * MS, recv_ts_ns=2_000 * MS)

    assert table.correct(b, "feed.binance").recv_ts_ns == 1_000 * MS
    assert table.correct(b, "engine") is b  # same host: as is


def test_a_node_reads_another_node_relative_to_its_own_offset() -> None:
    table = ClockTable("seoul", {"feed.upbit": "seoul", "feed.binance": "tokyo"})
    table.update({"seoul": -200 * MS, "tokyo": 300 * MS})

    assert table.delta_ns("feed.binance") == -500 * MS
    assert table.delta_ns("engine") == -200 * MS  # main is 0
    assert not table.is_remote("feed.upbit")


def test_while_an_offset_is_unknown_the_message_is_left_as_it_came() -> None:
    table = ClockTable("main", {"feed.binance": "tokyo"})
    b = book(ts_ns=1, recv_ts_ns=1)

    assert table.correct(b, "feed.binance") is b
