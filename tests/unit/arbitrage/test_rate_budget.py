"""Per-venue REST budgets: token buckets under the published limits, orders first."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.rate_budget import (
    BINANCE,
    COSTS,
    ORDER,
    POLL,
    UPBIT,
    BudgetConfig,
    VenueBudget,
)

VENUES = (UPBIT, BINANCE)
EPS = 1e-6


def budget(venue: str, now: float = 0.0, **cfg: float) -> VenueBudget:
    return VenueBudget(venue, BudgetConfig(**cfg), now=now)


def cost(venue: str, what: str) -> dict[str, float]:
    return VenueBudget.cost_of(venue, what)


def kind_of(what: str) -> str:
    return ORDER if what == "order" else POLL


def level(b: VenueBudget, name: str, now: float) -> float:
    return b.buckets[name].level(now)


def window_max(events: Sequence[tuple[float, float]], w: float) -> float:
    """The largest total of ``events`` (time, amount) in any closed window [t, t + w]."""
    best, total, win = 0.0, 0.0, deque()  # type: ignore[var-annotated]
    for t, amount in sorted(events, reverse=True):  # windows that start at each event
        win.append((t, amount))
        total += amount
        while win[0][0] > t + w:
            total -= win.popleft()[1]
        best = max(best, total)
    return best


def test_window_max_helper_counts_a_sliding_window() -> None:
    ev = [(0.0, 1.0), (0.5, 1.0), (1.0, 1.0), (1.6, 1.0), (5.0, 3.0)]
    assert window_max(ev, 1.0) == 3.0  # 0, 0.5, 1.0 (closed window)
    assert window_max(ev, 0.4) == 3.0  # the single 3 at t=5
    assert window_max(ev, 10.0) == 7.0
    assert window_max([], 1.0) == 0.0


# -- the bucket sizes ---------------------------------------------------------------------------

@pytest.mark.parametrize("venue", VENUES)
def test_every_bucket_stays_under_its_published_limit_less_margin(venue: str) -> None:
    cfg = BudgetConfig()
    b = VenueBudget(venue, cfg)

    assert set(b.buckets) == set(cfg.limits(venue))
    for name, (limit, window) in cfg.limits(venue).items():
        bk = b.buckets[name]
        assert bk.capacity + bk.rate * window == pytest.approx(b.max_in_window(name), rel=1e-12)
        assert b.max_in_window(name) <= limit * (1 - cfg.margin) * (1 + 1e-12)
        assert bk.capacity >= 1.0 and bk.rate > 0
        # the burst is about burst_share of the allowance (floored)
        assert bk.capacity == math.floor(limit * (1 - cfg.margin) * cfg.burst_share)
        assert bk.tokens == bk.capacity  # starts full


def test_published_figures() -> None:
    cfg = BudgetConfig()
    assert cfg.limits(UPBIT) == {"order": (8.0, 1.0), "exchange": (30.0, 1.0)}
    assert cfg.limits(BINANCE) == {"weight": (6000.0, 60.0), "orders_10s": (100.0, 10.0),
                                   "orders_1d": (200_000.0, 86_400.0)}


def test_binance_order_counts_on_all_three_buckets_and_polls_on_weight_only() -> None:
    assert cost(BINANCE, "order") == {"weight": 1.0, "orders_10s": 1.0, "orders_1d": 1.0}
    for what in ("lookup", "balance", "open_orders", "markets", "cancel", "listen_key"):
        assert set(cost(BINANCE, what)) == {"weight"}
    assert cost(UPBIT, "order") == {"order": 1.0}
    assert cost(UPBIT, "markets") == {}


def test_cost_of_returns_a_copy() -> None:
    c = cost(BINANCE, "order")
    c["weight"] = 1e9
    assert COSTS[BINANCE]["order"]["weight"] == 1.0


@settings(max_examples=150, deadline=None)
@given(margin=st.floats(0.0, 0.99), burst=st.floats(0.01, 0.99),
       limits=st.tuples(*[st.floats(1.0, 1e6)] * 5))
def test_c_plus_rw_never_exceeds_the_allowance_for_any_valid_config(margin: float, burst: float,
                                                                    limits: tuple[float, ...]) -> None:
    names = ("upbit_order_per_s", "upbit_exchange_per_s", "binance_weight_per_min",
             "binance_orders_per_10s", "binance_orders_per_day")
    kw = dict(zip(names, limits, strict=True))
    if min(limits) * (1 - margin) < 1.0:
        with pytest.raises(ValueError, match="no whole request"):
            BudgetConfig(margin=margin, burst_share=burst, **kw)
        return
    cfg = BudgetConfig(margin=margin, burst_share=burst, **kw)
    for venue in VENUES:
        b = VenueBudget(venue, cfg)
        for name, (limit, _) in cfg.limits(venue).items():
            allowance = limit * (1 - margin)
            assert b.max_in_window(name) <= allowance * (1 + 1e-9)


def test_an_allowance_below_one_request_is_refused_by_the_config() -> None:
    # a bucket holds at least one token, so such a limit could not be kept
    with pytest.raises(ValueError, match="no whole request"):
        BudgetConfig(upbit_order_per_s=1.0, margin=0.1)


# -- never over the limit in any sliding window ---------------------------------------------------

def run_stream(b: VenueBudget, arrivals: Sequence[tuple[float, str]]) -> list[tuple[float, dict[str, float]]]:
    """Try each (time, call) greedily once; what was let through."""
    sent = []
    for t, what in arrivals:
        c = cost(b.venue, what)
        if b.try_acquire(kind_of(what), c, t):
            sent.append((t, c))
    return sent


def assert_within_limits(b: VenueBudget, sent: Sequence[tuple[float, Mapping[str, float]]]) -> None:
    for name, (limit, window) in b.limits.items():
        events = [(t, c[name]) for t, c in sent if name in c]
        most = window_max(events, window)
        assert most <= limit, (name, most, limit)
        assert most <= limit * (1 - b.cfg.margin) + EPS, (name, most)


@pytest.mark.parametrize(("venue", "what", "step", "duration"), [
    (UPBIT, "order", 0.001, 3.5), (UPBIT, "lookup", 0.001, 3.5),
    (BINANCE, "order", 0.005, 35.0), (BINANCE, "balance", 0.01, 130.0)])
def test_a_flood_never_exceeds_the_published_limits(venue: str, what: str, step: float,
                                                    duration: float) -> None:
    b = budget(venue)
    c = cost(venue, what)
    floor = {n: b.buckets[n].capacity * (b.cfg.poll_reserve if kind_of(what) == POLL else 0.0) for n in c}
    burst_room = min(math.floor((b.buckets[n].capacity - floor[n]) / a) for n, a in c.items())
    n = int(duration / step)
    arrivals = [(0.0, what)] * (3 * burst_room) + [(i * step, what) for i in range(1, n)]

    sent = run_stream(b, arrivals)

    assert_within_limits(b, sent)
    # ... and the flood does get the budget: the whole burst at once, then the refill rate.
    assert sum(1 for t, _ in sent if t == 0.0) == burst_room
    slowest = min(b.buckets[name].rate / a for name, a in c.items())
    assert len(sent) >= burst_room + slowest * duration * 0.9


def test_a_flood_against_the_daily_order_count() -> None:
    b = budget(BINANCE, binance_orders_per_day=100.0, binance_orders_per_10s=1000.0)
    arrivals = [(i * 60.0, "order") for i in range(3 * 24 * 60)]  # one a minute for three days

    sent = run_stream(b, arrivals)

    assert_within_limits(b, sent)
    # it keeps trading at the daily rate: 45 at once, then 45 a day
    assert 170 <= len(sent) <= 45 + 45 * 3


WHATS = {venue: sorted(COSTS[venue]) for venue in VENUES}


@st.composite
def arrival_streams(draw: st.DrawFn) -> tuple[str, list[tuple[float, str]]]:
    """Segments of evenly spaced calls (a flood, a trickle, a pause), each of one kind or mixed."""
    venue = draw(st.sampled_from(VENUES))
    # spacings that keep a flood going for a whole window of each bucket, plus anything
    floods = [0.0, 0.005, 0.02] if venue == UPBIT else [0.2, 0.5, 600.0]
    spacing = st.one_of(st.sampled_from(floods), st.sampled_from([0.001, 0.1, 2.0, 60.0, 3600.0]),
                        st.floats(0.0, 5_000.0))
    count = st.one_of(st.sampled_from([200, 150]), st.integers(1, 200))
    segments = draw(st.lists(st.tuples(count, spacing,
                                       st.sampled_from([*WHATS[venue], "mixed"])),
                             min_size=1, max_size=5))
    t, out = 0.0, []
    for count, gap, what in segments:
        for _ in range(count):
            out.append((t, draw(st.sampled_from(WHATS[venue])) if what == "mixed" else what))
            t += gap
        t += draw(st.floats(0.0, 100.0))
    return venue, out


# Small limits so a few hundred arrivals reach every bucket, the daily one included.
SMALL = {"upbit_order_per_s": 8.0, "upbit_exchange_per_s": 12.0, "binance_weight_per_min": 400.0,
         "binance_orders_per_10s": 12.0, "binance_orders_per_day": 40.0}


@settings(max_examples=60, deadline=None)
@given(stream=arrival_streams(), margin=st.sampled_from([0.0, 0.1, 0.3]),
       burst=st.sampled_from([0.1, 0.5, 0.9]), reserve=st.sampled_from([0.0, 0.5, 0.9]))
def test_greedy_acquisition_never_exceeds_any_sliding_window(stream: tuple[str, list[tuple[float, str]]],
                                                             margin: float, burst: float,
                                                             reserve: float) -> None:
    venue, arrivals = stream
    b = budget(venue, margin=margin, burst_share=burst, poll_reserve=reserve, **SMALL)

    sent = run_stream(b, arrivals)

    assert_within_limits(b, sent)


# -- orders first -------------------------------------------------------------------------------

def test_binance_poll_refused_below_the_reserve_while_an_order_passes() -> None:
    b = budget(BINANCE)  # weight: capacity 2700, polls keep 1350 back
    bal = cost(BINANCE, "balance")  # weight 20
    passed = 0
    while b.try_acquire(POLL, bal, 0.0):
        passed += 1

    left = level(b, "weight", 0.0)
    assert left - 20 < 2700 * 0.5 <= left
    assert passed == math.floor((2700 - 1350) / 20)
    assert b.refusals[POLL] == 1
    assert b.try_acquire(ORDER, cost(BINANCE, "order"), 0.0) is True
    assert b.refusals[ORDER] == 0
    assert b.try_acquire(POLL, bal, 0.0) is False
    assert b.refusals[POLL] == 2


def test_upbit_orders_and_polls_are_separate_groups() -> None:
    b = budget(UPBIT)
    polls = 0
    while b.try_acquire(POLL, cost(UPBIT, "lookup"), 0.0):
        polls += 1
    orders = 0
    while b.try_acquire(ORDER, cost(UPBIT, "order"), 0.0):
        orders += 1

    ex_cap, ord_cap = b.buckets["exchange"].capacity, b.buckets["order"].capacity
    assert polls == ex_cap - math.ceil(ex_cap * 0.5)  # stops above half the bucket
    assert orders == ord_cap  # the order group is untouched by polls


def test_an_order_may_drain_the_bucket_a_poll_may_not() -> None:
    b = budget(UPBIT)
    ex = {"exchange": 1.0}
    while b.try_acquire(POLL, ex, 0.0):
        pass
    extra = 0
    while b.try_acquire(ORDER, ex, 0.0):
        extra += 1

    assert extra > 0
    assert level(b, "exchange", 0.0) == pytest.approx(0.0, abs=1e-9)


def test_with_no_reserve_polls_may_drain_the_bucket() -> None:
    b = budget(UPBIT, poll_reserve=0.0)
    n = 0
    while b.try_acquire(POLL, cost(UPBIT, "balance"), 0.0):
        n += 1
    assert n == b.buckets["exchange"].capacity


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        budget(UPBIT).try_acquire("urgent", cost(UPBIT, "order"), 0.0)


# -- all or nothing ---------------------------------------------------------------------------------

def test_acquisition_is_all_or_nothing_across_buckets() -> None:
    b = budget(BINANCE)
    order = cost(BINANCE, "order")
    cap10 = b.buckets["orders_10s"].capacity
    for _ in range(int(cap10)):
        assert b.try_acquire(ORDER, order, 0.0)
    weight, day = level(b, "weight", 0.0), level(b, "orders_1d", 0.0)

    refused = b.try_acquire(ORDER, order, 0.0)

    assert refused is False
    assert level(b, "weight", 0.0) == weight  # nothing taken from the buckets that had room
    assert level(b, "orders_1d", 0.0) == day
    assert level(b, "orders_10s", 0.0) == pytest.approx(0.0)


def test_refund_gives_back_up_to_capacity() -> None:
    b = budget(UPBIT)
    c = cost(UPBIT, "order")
    b.try_acquire(ORDER, c, 0.0)
    b.try_acquire(ORDER, c, 0.0)
    cap = b.buckets["order"].capacity

    b.refund(c, 0.0)
    assert level(b, "order", 0.0) == cap - 1
    b.refund(c, 0.0)
    b.refund(c, 0.0)
    assert level(b, "order", 0.0) == cap


# -- the venues' headers -----------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["X-MBX-USED-WEIGHT-1M", "x-mbx-used-weight-1m", "X-Mbx-Used-Weight-1m"])
def test_binance_used_weight_lowers_the_weight_bucket(key: str) -> None:
    b = budget(BINANCE)

    b.on_headers({key: "5000"}, 0.0)

    assert level(b, "weight", 0.0) == pytest.approx(6000 * 0.9 - 5000)
    assert level(b, "orders_10s", 0.0) == b.buckets["orders_10s"].capacity


@pytest.mark.parametrize(("key", "name", "limit"), [
    ("X-MBX-ORDER-COUNT-10S", "orders_10s", 100.0), ("x-mbx-order-count-1d", "orders_1d", 200_000.0)])
def test_binance_order_counts_lower_their_buckets(key: str, name: str, limit: float) -> None:
    b = budget(BINANCE)
    used = limit * 0.9 - 7

    b.on_headers({key: str(int(used))}, 0.0)

    assert level(b, name, 0.0) == pytest.approx(7.0)
    assert level(b, "weight", 0.0) == b.buckets["weight"].capacity


def test_binance_headers_never_raise_a_bucket() -> None:
    b = budget(BINANCE)
    for _ in range(30):
        b.try_acquire(ORDER, cost(BINANCE, "order"), 0.0)
    before = {n: level(b, n, 0.0) for n in b.buckets}

    b.on_headers({"X-MBX-USED-WEIGHT-1M": "0", "X-MBX-ORDER-COUNT-10S": "0", "X-MBX-ORDER-COUNT-1D": "0"},
                 0.0)

    assert {n: level(b, n, 0.0) for n in b.buckets} == before


def test_binance_over_limit_header_empties_the_bucket_for_a_while() -> None:
    b = budget(BINANCE)

    b.on_headers({"X-MBX-ORDER-COUNT-10S": "150"}, 0.0)

    assert level(b, "orders_10s", 0.0) < 0
    assert level(b, "orders_10s", 0.0) >= -b.buckets["orders_10s"].capacity
    assert b.try_acquire(ORDER, cost(BINANCE, "order"), 0.0) is False
    w = b.wait_s(ORDER, cost(BINANCE, "order"), 0.0)
    assert 0 < w < math.inf
    assert b.try_acquire(ORDER, cost(BINANCE, "order"), w + 1e-6) is True


@pytest.mark.parametrize("garbage", ["", "abc", "12a", "1,000", "None"])
def test_binance_garbage_header_values_are_ignored(garbage: str) -> None:
    b = budget(BINANCE)

    b.on_headers({"X-MBX-USED-WEIGHT-1M": garbage, "X-MBX-ORDER-COUNT-10S": garbage}, 0.0)

    assert {n: level(b, n, 0.0) for n in b.buckets} == {n: bk.capacity for n, bk in b.buckets.items()}


@pytest.mark.parametrize("garbage", ["inf", "1e400"])
def test_binance_non_finite_header_values_are_ignored(garbage: str) -> None:
    b = budget(BINANCE)

    b.on_headers({"X-MBX-USED-WEIGHT-1M": garbage}, 0.0)

    assert level(b, "weight", 0.0) == b.buckets["weight"].capacity


@pytest.mark.parametrize("key", ["Remaining-Req", "remaining-req", "REMAINING-REQ"])
def test_upbit_remaining_req_lowers_the_order_group(key: str) -> None:
    b = budget(UPBIT)

    b.on_headers({key: "group=order; min=1800; sec=2"}, 0.0)

    assert level(b, "order", 0.0) <= 2.0
    assert level(b, "order", 0.0) == pytest.approx(2 * 0.9)
    assert level(b, "exchange", 0.0) == b.buckets["exchange"].capacity


def test_upbit_remaining_req_default_group_lowers_the_exchange_bucket() -> None:
    b = budget(UPBIT)

    b.on_headers({"Remaining-Req": "group=default; min=899; sec=0"}, 0.0)

    assert level(b, "exchange", 0.0) == 0.0
    assert b.try_acquire(POLL, cost(UPBIT, "balance"), 0.0) is False
    assert b.try_acquire(ORDER, cost(UPBIT, "order"), 0.0) is True


def test_upbit_remaining_req_never_raises() -> None:
    b = budget(UPBIT)
    b.try_acquire(ORDER, cost(UPBIT, "order"), 0.0)
    before = level(b, "order", 0.0)

    b.on_headers({"Remaining-Req": "group=order; min=1800; sec=8"}, 0.0)

    assert level(b, "order", 0.0) == before


@pytest.mark.parametrize("value", ["group=market; min=600; sec=0", "group=order; min=1800; sec=abc",
                                   "nonsense", "", "group=order;sec=", "sec=0"])
def test_upbit_other_groups_and_garbage_are_ignored(value: str) -> None:
    b = budget(UPBIT)

    b.on_headers({"Remaining-Req": value}, 0.0)

    assert {n: level(b, n, 0.0) for n in b.buckets} == {n: bk.capacity for n, bk in b.buckets.items()}


def test_headers_of_the_other_venue_or_none_change_nothing() -> None:
    up, bn = budget(UPBIT), budget(BINANCE)

    up.on_headers({"X-MBX-USED-WEIGHT-1M": "6000"}, 0.0)
    bn.on_headers({"Remaining-Req": "group=order; min=0; sec=0"}, 0.0)
    bn.on_headers({}, 0.0)

    for b in (up, bn):
        assert {n: level(b, n, 0.0) for n in b.buckets} == {n: bk.capacity for n, bk in b.buckets.items()}


# -- 429 / 418 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("venue", VENUES)
def test_rate_limited_blocks_everything_until_retry_after(venue: str) -> None:
    b = budget(venue)

    b.on_rate_limited(5.0, 10.0)

    for t in (10.0, 12.0, 14.999):
        assert b.try_acquire(ORDER, cost(venue, "order"), t) is False
        assert b.try_acquire(POLL, cost(venue, "lookup"), t) is False
        assert b.fractions(t) == {n: 0.0 for n in b.buckets}
        assert b.wait_s(ORDER, cost(venue, "order"), t) >= 15.0 - t - 1e-9
    assert b.try_acquire(ORDER, cost(venue, "order"), 15.0) is True
    assert all(f > 0 for f in b.fractions(15.0).values())


@pytest.mark.parametrize("retry_after", [None, 0.0, -3.0])
def test_rate_limited_without_a_usable_retry_after_blocks_for_the_default(retry_after: float | None) -> None:
    b = budget(UPBIT, blocked_default_s=2.5)

    b.on_rate_limited(retry_after, 100.0)

    assert b.try_acquire(ORDER, cost(UPBIT, "order"), 102.49) is False
    assert b.fractions(102.49) == {"order": 0.0, "exchange": 0.0}
    assert b.try_acquire(ORDER, cost(UPBIT, "order"), 102.5) is True


def test_a_shorter_second_block_does_not_shorten_the_first() -> None:
    b = budget(BINANCE)

    b.on_rate_limited(60.0, 0.0)
    b.on_rate_limited(1.0, 1.0)

    assert b.try_acquire(ORDER, cost(BINANCE, "order"), 30.0) is False
    assert b.try_acquire(ORDER, cost(BINANCE, "order"), 60.0) is True


def test_rate_limited_empties_the_buckets() -> None:
    b = budget(UPBIT)

    b.on_rate_limited(0.1, 0.0)

    # at the end of the block the buckets have only refilled 0.1 s worth
    assert level(b, "order", 0.1) == pytest.approx(0.1 * b.buckets["order"].rate)


# -- wait_s and fractions -------------------------------------------------------------------------

def test_wait_s_is_zero_when_the_cost_fits_now() -> None:
    b = budget(BINANCE)
    assert b.wait_s(ORDER, cost(BINANCE, "order"), 0.0) == 0.0
    assert b.wait_s(POLL, cost(BINANCE, "open_orders"), 0.0) == 0.0


def test_wait_s_is_inf_for_a_cost_that_can_never_fit() -> None:
    b = budget(BINANCE)
    cap = b.buckets["weight"].capacity

    assert b.wait_s(ORDER, {"weight": cap + 1}, 0.0) == math.inf
    assert b.wait_s(ORDER, {"weight": cap}, 0.0) == 0.0
    assert b.wait_s(POLL, {"weight": cap * 0.5 + 1}, 0.0) == math.inf  # above the reserve, never
    small = budget(BINANCE, binance_weight_per_min=100.0)  # capacity 45, reserve 22.5
    assert small.wait_s(POLL, cost(BINANCE, "open_orders"), 0.0) == math.inf
    assert small.try_acquire(POLL, cost(BINANCE, "open_orders"), 1e6) is False


def test_wait_s_predicts_when_try_acquire_passes() -> None:
    b = budget(UPBIT)
    c = cost(UPBIT, "order")
    while b.try_acquire(ORDER, c, 0.0):
        pass

    w = b.wait_s(ORDER, c, 0.0)

    assert w == pytest.approx(1.0 / b.buckets["order"].rate)
    assert b.try_acquire(ORDER, c, w * 0.99) is False
    assert b.try_acquire(ORDER, c, w + 1e-9) is True


@settings(max_examples=120, deadline=None)
@given(venue=st.sampled_from(VENUES), taken=st.lists(st.tuples(st.floats(0.0, 2.0),
                                                              st.integers(0, 100)), max_size=30),
       what=st.sampled_from(sorted(set(COSTS[UPBIT]) & set(COSTS[BINANCE]))))
def test_wait_s_agrees_with_try_acquire(venue: str, taken: list[tuple[float, int]], what: str) -> None:
    b = budget(venue, **SMALL)
    t = 0.0
    for dt, idx in taken:  # an arbitrary history
        t += dt
        w = WHATS[venue][idx % len(WHATS[venue])]
        b.try_acquire(kind_of(w), cost(venue, w), t)
    c, kind = cost(venue, what), kind_of(what)

    wait = b.wait_s(kind, c, t)

    if wait == 0.0:
        assert b.try_acquire(kind, c, t) is True
    elif math.isfinite(wait):
        probe = VenueBudget(venue, b.cfg)  # same state, so the real budget is not consumed
        probe.buckets = {n: type(bk)(bk.capacity, bk.rate, bk.tokens, bk.at) for n, bk in b.buckets.items()}
        assert probe.try_acquire(kind, c, t) is False
        assert b.try_acquire(kind, c, t + wait + 1e-6) is True
    else:
        assert b.try_acquire(kind, c, t + 1e9) is False


@settings(max_examples=120, deadline=None)
@given(venue=st.sampled_from(VENUES), taken=st.lists(st.tuples(st.floats(0.0, 2.0),
                                                              st.integers(0, 100)), max_size=30),
       later=st.floats(0.0, 3.0), what=st.sampled_from(sorted(set(COSTS[UPBIT]) & set(COSTS[BINANCE]))))
def test_peek_wait_s_equals_wait_s_and_changes_nothing(venue: str, taken: list[tuple[float, int]],
                                                      later: float, what: str) -> None:
    b = budget(venue, **SMALL)
    t = 0.0
    for dt, idx in taken:
        t += dt
        w = WHATS[venue][idx % len(WHATS[venue])]
        b.try_acquire(kind_of(w), cost(venue, w), t)
    c, kind = cost(venue, what), kind_of(what)
    before = {n: (bk.tokens, bk.at) for n, bk in b.buckets.items()}

    peeked = b.peek_wait_s(kind, c, t + later)

    assert {n: (bk.tokens, bk.at) for n, bk in b.buckets.items()} == before
    assert peeked == pytest.approx(b.wait_s(kind, c, t + later))


def test_fractions_report_the_share_left() -> None:
    b = budget(UPBIT)
    assert b.fractions(0.0) == {"order": 1.0, "exchange": 1.0}

    b.try_acquire(ORDER, cost(UPBIT, "order"), 0.0)

    cap = b.buckets["order"].capacity
    assert b.fractions(0.0)["order"] == pytest.approx((cap - 1) / cap)
    assert b.fractions(100.0) == {"order": 1.0, "exchange": 1.0}


def test_fractions_never_negative() -> None:
    b = budget(BINANCE)
    b.on_headers({"X-MBX-USED-WEIGHT-1M": "99999"}, 0.0)
    assert b.fractions(0.0)["weight"] == 0.0


# -- config --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"margin": 1.0}, "margin"), ({"margin": -0.1}, "margin"),
    ({"burst_share": 0.0}, "burst_share"), ({"burst_share": 1.0}, "burst_share"),
    ({"poll_reserve": 1.0}, "poll_reserve"), ({"poll_reserve": -0.01}, "poll_reserve"),
    ({"blocked_default_s": 0.0}, "blocked_default_s"),
    ({"upbit_order_per_s": 0.0}, "upbit_order_per_s"),
    ({"upbit_exchange_per_s": -1.0}, "upbit_exchange_per_s"),
    ({"binance_weight_per_min": 0.0}, "binance_weight_per_min"),
    ({"binance_orders_per_10s": -5.0}, "binance_orders_per_10s"),
    ({"binance_orders_per_day": 0.0}, "binance_orders_per_day"),
    ({"upbit_order_per_s": math.nan}, "upbit_order_per_s"),
])
def test_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BudgetConfig(**kwargs)


def test_config_reports_every_problem() -> None:
    with pytest.raises(ValueError) as e:
        BudgetConfig(margin=2.0, poll_reserve=2.0, binance_weight_per_min=0.0)
    text = str(e.value)
    assert "margin" in text and "poll_reserve" in text and "binance_weight_per_min" in text


def test_config_edges_accepted() -> None:
    BudgetConfig(margin=0.0, poll_reserve=0.0)


def test_unknown_venue() -> None:
    with pytest.raises(ValueError, match="unknown venue"):
        BudgetConfig().limits("kraken")
    with pytest.raises(ValueError, match="unknown venue"):
        VenueBudget("kraken")
