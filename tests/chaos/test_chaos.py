"""Chaos: a live_trading daemon against the embedded exchange, under fire.

The daemon trades for real against the simulator (``live_trading``, enabled
and armed, the simulator's test keys exported as an operator would), with a
volatile premium so that orders flow the whole time. A seeded random
schedule (``schedule.py``) meanwhile ``kill -9``-s every role (the executor
while orders are at the venue), ``SIGSTOP``-s feeds, drops the exchange's
WebSocket connections and makes its REST API answer 5xx and 429. At the end,
against the exchange's own record of every order and the ledger:

- no client order id reached the exchange twice;
- every order the exchange saw is in the ledger with the same terms and
  fill, and every ledger order is where its status says;
- no order was accepted while arbd was fail-closed or halted (tolerance for
  in-flight sends documented in ``tests/support/chaos_invariants.py``);
- exposure never exceeded ``max_exposure_krw``;
- every killed actor ran again, or the daemon escalated cleanly (exit 2, an
  ``escalate`` line);
- no process outlived the daemon.

The CI test runs a ~50 s schedule; ``make chaos`` runs the long ones
(``-m chaos_long``). Seeds: ``ARBD_CHAOS_SEED`` (default fixed, printed).
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import replace

import pytest

from messages import OrderEvent
from storage.ledger import Ledger, OrderRow
from tests.chaos.analysis import analyse
from tests.chaos.runner import ChaosRun
from tests.chaos.schedule import FEEDS, ROLES, VENUES, Fault, make_schedule, restart_budget_ok
from tests.support import chaos_invariants as inv
from tests.support.daemon import wait_until

SHORT_SECONDS = 51.0
SHORT_GAP_S = 3.0
LONG_SECONDS = float(os.environ.get("ARBD_CHAOS_LONG_SECONDS", "480"))


def _seed(default: int) -> int:
    return int(os.environ.get("ARBD_CHAOS_SEED", default))


def _run_and_check(seed: int, seconds: float, gap_s: float, *, expect_escalation: bool = False) -> None:
    schedule = make_schedule(seed, seconds, gap_s=gap_s)
    print(f"\nchaos seed {seed}: {len(schedule)} faults over {seconds:g}s")
    with ChaosRun(seed, schedule) as run:
        result = run.execute()
    a = analyse(result, expect_escalation=expect_escalation)
    print("\n".join(a.lines))
    assert a.orders >= 10, f"too few orders reached the exchange ({a.orders}) for chaos to mean anything"
    assert not a.problems, f"seed {seed}: {len(a.problems)} invariant violations:\n" + "\n".join(a.problems[:40])


# -- the schedule itself (pure, fast) ----------------------------------------------------


def test_a_schedule_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    assert make_schedule(7, 60) == make_schedule(7, 60)
    assert make_schedule(7, 60) != make_schedule(8, 60)


def test_the_short_schedule_covers_every_role_feed_and_venue_fault() -> None:
    s = make_schedule(_seed(1), SHORT_SECONDS, gap_s=SHORT_GAP_S)
    kinds = {(f.kind, f.target) for f in s}

    assert {r for k, r in kinds if k in ("kill", "kill_midsend")} == set(ROLES)
    assert ("kill_midsend", "executor") in kinds
    assert {t for k, t in kinds if k == "sigstop"} == set(FEEDS)
    for kind in ("ws_drop", "http_5xx", "http_429"):
        assert {t for k, t in kinds if k == kind} == set(VENUES)
    assert max(f.at_s for f in s) < SHORT_SECONDS


@pytest.mark.parametrize("seed", range(20))
def test_no_schedule_restarts_an_actor_more_often_than_the_budget(seed: int) -> None:
    assert restart_budget_ok(make_schedule(seed, 600, gap_s=2.5))


def test_a_schedule_too_short_for_its_coverage_is_refused() -> None:
    with pytest.raises(ValueError, match="coverage"):
        make_schedule(1, 10)


# -- the invariant checks catch what they should (pure, fast) -------------------------------


def _row(cid: str, status: str = "filled", filled: float = 1.0, created_ns: int = 10, intent_id: str = "i") -> OrderRow:
    return OrderRow(client_order_id=cid, intent_id=intent_id, pair_id="p", action="open", venue="upbit",
                    symbol="BTC", side="buy", qty=1.0, price=100.0, status=status, filled_qty=filled,
                    avg_price=100.0, fee_krw=0.0, venue_order_id="", reason="", created_ns=created_ns,
                    updated_ns=created_ns)


def _sim(cid: str, status: str = "filled", filled: float = 1.0, ts_ns: int = 20) -> dict:
    return {"venue": "upbit", "client_order_id": cid, "coin": "BTC", "side": "buy", "qty": 1.0,
            "price": 100.0, "status": status, "filled": filled, "ts_ns": ts_ns}


def test_the_checks_pass_a_consistent_record() -> None:
    sims, rows = [_sim("a"), _sim("b", "expired", 0.0)], [_row("a"), _row("b", "cancelled", 0.0), _row("c", "failed", 0)]

    assert inv.duplicate_client_ids(sims) == []
    assert inv.ledger_vs_exchange(sims, rows) == []


def test_the_checks_catch_a_duplicate_a_missing_row_a_phantom_and_a_wrong_fill() -> None:
    sims = [_sim("a"), _sim("a"), _sim("x"), _sim("b", filled=0.5)]
    rows = [_row("a"), _row("b"), _row("ghost"), _row("lost", "failed")]

    problems = inv.ledger_vs_exchange(sims, rows) + inv.duplicate_client_ids(sims)

    text = "\n".join(problems)
    assert "a reached the exchange 2 times" in text
    assert "x (upbit buy BTC) is not in the ledger" in text
    assert "ghost: ledger says filled but the exchange never saw it" in text
    assert "b: ledger filled 1.0 but the exchange filled 0.5" in text


def test_an_order_accepted_and_failed_in_the_ledger_is_caught() -> None:
    assert "ledger says failed" in "\n".join(inv.ledger_vs_exchange([_sim("a")], [_row("a", "failed", 0.0)]))


def test_an_order_written_inside_a_closed_window_is_caught_but_one_in_flight_is_not() -> None:
    w = [inv.Window(1_000, 2_000, "fail-closed: stale")]
    in_flight = (_sim("f", ts_ns=1_500), _row("f", created_ns=1_005))
    decided_closed = (_sim("c", ts_ns=1_600), _row("c", created_ns=1_500))

    problems = inv.orders_in_closed_windows([in_flight[0], decided_closed[0]], [in_flight[1], decided_closed[1]], w,
                                            tolerance_ns=100, accept_slack_ns=10_000)

    assert len(problems) == 1 and problems[0].startswith("c ")


def test_an_order_is_held_against_a_window_by_its_decision_where_the_ledger_knows_it() -> None:
    """A decision made while open whose ledger write a stalled executor made
    late is in flight; one decided inside the window is caught, however early
    it was written (which cannot happen, but the decision is what counts)."""
    w = [inv.Window(1_000, 2_000, "fail-closed: stale")]
    stalled = (_sim("s", ts_ns=1_900), _row("s", created_ns=1_800, intent_id="i-s"))
    decided_closed = (_sim("d", ts_ns=1_600), _row("d", created_ns=1_010, intent_id="i-d"))
    unknown = (_sim("u", ts_ns=1_700), _row("u", created_ns=1_500, intent_id="i-u"))  # an older ledger's row

    problems = inv.orders_in_closed_windows([stalled[0], decided_closed[0], unknown[0]],
                                            [stalled[1], decided_closed[1], unknown[1]], w, tolerance_ns=100,
                                            accept_slack_ns=10_000, decided={"i-s": 990, "i-d": 1_300})

    assert [x.split()[0] for x in problems] == ["d", "u"], problems
    assert " decided " in problems[0]
    assert "written to the ledger" in problems[1]


def test_windows_follow_the_guards_state_stream() -> None:
    S = type("S", (), {})

    def st(ts: int, state: str, fc: bool) -> object:
        s = S()
        s.ts_ns, s.state, s.fail_closed, s.reasons = ts, state, fc, ("x",) if fc else ()
        return s

    w = inv.windows_from_states([st(1, "disarmed", True), st(5, "armed", False), st(9, "armed", True),
                                 st(12, "armed", False), st(20, "halted", False)], end_ns=30)

    assert [(x.start_ns, x.end_ns) for x in w] == [(1, 5), (9, 12), (20, 30)]


def test_status_windows_hold_only_what_status_certainly_said() -> None:
    """From the first closed reply's arrival to the last closed one's ask: a
    slow reply does not stretch a window back over orders sent before it."""
    from tests.chaos.runner import Sample

    def sm(ask: int, answered: int, closed: bool) -> Sample:
        return Sample(ask, "armed", closed, ("x",) if closed else (), {}, 0.0, 0, 0, {}, answered_ns=answered)

    w = inv.windows_from_samples([sm(0, 1, False), sm(10, 40, True), sm(50, 52, True), sm(60, 61, False),
                                  sm(70, 71, True), sm(80, 81, False), sm(90, 95, True)], end_ns=100)

    assert [(x.start_ns, x.end_ns) for x in w] == [(40, 50), (71, 71), (95, 100)]


def test_the_event_log_gives_halt_and_fail_closed_windows() -> None:
    events = [{"ts": 1.0, "event_type": "arm"}, {"ts": 2.0, "event_type": "fail_closed", "key": "stale.upbit"},
              {"ts": 3.0, "event_type": "halt"}, {"ts": 4.0, "event_type": "fail_closed_cleared", "key": "stale.upbit"},
              {"ts": 5.0, "event_type": "arm"}, {"ts": 6.0, "event_type": "halt"}]

    w = inv.windows_from_events(events, end_ns=9_000_000_000)

    assert sorted((x.start_ns // 10**9, x.end_ns // 10**9) for x in w) == [(2, 4), (3, 5), (6, 9)]


def test_exposure_replay_flags_a_breach() -> None:
    ev = OrderEvent(intent_id="i", pair_id="p", action="open", client_order_id="u", venue="upbit", symbol="BTC",
                    side="buy", status="filled", qty=0.01, price=100_000_000.0, filled_qty=0.01,
                    avg_price=100_000_000.0, ts_ns=1)

    peak, problems = inv.exposure_over_time([ev], max_exposure_krw=500_000)

    assert peak == pytest.approx(1_000_000) and problems


# -- the real thing ------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_live_trading_survives_the_short_chaos_schedule_with_every_invariant_intact() -> None:
    _run_and_check(_seed(1), SHORT_SECONDS, SHORT_GAP_S)


# -- warm restart: kill -> trading again ------------------------------------------------

WARM_ROLES = ("engine", "position", "feed.upbit", "feed.binance", "executor")
TRADING_AGAIN_P95_S = 3.0
ORDER_RATE_SHARE = 0.5  # orders/s while a role is killed every 3 s, as a share of undisturbed trading
WARM_KILLS_PER_ROLE = 3
WARM_GAP_S = 3.0
UNDISTURBED_S = 10.0
TAIL_S = 5.0
# Trade densely enough that "the next order" measures recovery, not the market:
# with the shipped thresholds the undisturbed wait for the next order had a p95
# of ~2.7 s (a kill landing in a quiet stretch "took" that long). A low entry
# and exit threshold and a 1 s cool-down keep an order due about every 0.3 s,
# within Upbit's order budget (three coins, ~3 orders/s there). A pair is
# held at most 1.5 s: with every coin in a pair at the instant of a kill, the
# next order is a close, and a 3 s hold once made a position kill "take" 3.7 s.
WARM_OVERRIDES = {"strategy": {"cooldown_s": 1, "max_hold_s": 1.5},
                  "engine": {"entry_threshold_pct": 0.02, "exit_threshold_pct": 0.02}}
# The yardstick itself: with orders this sparse a kill could not be told from a quiet market.
UNDISTURBED_NEXT_ORDER_P95_S = 2.5


def warm_restart_schedule() -> list[Fault]:
    """Round-robin kill -9 of each role (3 each, the executor twice) every 3 s:
    each role is killed every 15 s, within the restart intensity (5 in 30 s)."""
    order = [r for _ in range(WARM_KILLS_PER_ROLE) for r in WARM_ROLES][:-1]
    return [Fault(round(1.0 + i * WARM_GAP_S, 2), "kill", role) for i, role in enumerate(order)]


def test_the_warm_restart_schedule_kills_each_role_within_the_restart_budget() -> None:
    s = warm_restart_schedule()
    assert {f.target for f in s} == set(WARM_ROLES)
    assert all(sum(f.target == r for f in s) == WARM_KILLS_PER_ROLE for r in WARM_ROLES[:-1])
    assert restart_budget_ok(s) and s[-1].at_s < 50


@pytest.mark.timeout(240)
def test_a_killed_role_trades_again_within_seconds_and_never_on_a_cold_or_stale_state() -> None:
    """kill -9 of engine, position and each feed during live_trading: the next
    order the exchange accepts (decided after the kill) comes within 3 s, p95
    over the kills of that role; no order is decided on a cold or unchecked
    engine baseline or on stale quotes in between, and every other chaos
    invariant holds. Reports kill -> heartbeating and kill -> trading again
    per role, and the order rate under chaos as a share of undisturbed trading."""
    schedule = warm_restart_schedule()
    with ChaosRun(_seed(5), schedule, undisturbed_s=UNDISTURBED_S, tail_s=TAIL_S, overrides=WARM_OVERRIDES) as run:
        result = run.execute()
    a = analyse(result)
    print("\n".join(a.lines))
    slow = []
    for role in WARM_ROLES:
        p95 = inv.percentiles(a.per_role.get(role, {}).get("trading", []), (95,)).get("p95", float("inf"))
        if p95 > TRADING_AGAIN_P95_S:
            slow.append(f"{role}: kill -> trading again p95 {p95:.2f}s > {TRADING_AGAIN_P95_S:g}s")
    assert not a.problems, "\n".join(a.problems[:40])
    floor = a.stats.get("undisturbed_next_order_s", {})
    assert floor.get("p95", 0.0) <= UNDISTURBED_NEXT_ORDER_P95_S, \
        f"undisturbed trading waits p95 {floor.get('p95')}s for its next order: too sparse to measure recovery"
    assert not slow, "\n".join(slow)
    assert a.rate_share is not None and a.rate_share >= ORDER_RATE_SHARE, \
        f"orders/s during chaos {a.rate_share:.0%} of an undisturbed run (target >= {ORDER_RATE_SHARE:.0%})"


@pytest.mark.chaos_long
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("seed", [_seed(11), _seed(11) + 1])
def test_live_trading_survives_a_long_chaos_schedule(seed: int) -> None:
    _run_and_check(seed, LONG_SECONDS, 2.5)


@pytest.mark.chaos_long
@pytest.mark.timeout(600)
def test_killing_the_executor_past_its_restart_intensity_escalates_cleanly() -> None:
    """Six kills of the executor within the 30 s period (intensity 5): the
    daemon halts (persisted), cancels, exits 2 with an ``escalate`` line, and
    nothing reaches the exchange after the halt."""
    schedule = [Fault(0.0, "kill_midsend", "executor")] + [Fault(0.1 * i, "kill", "executor") for i in range(1, 6)]
    with ChaosRun(99, schedule) as run:
        result = run.execute()
        a = analyse(result, expect_escalation=True)
        print("\n".join(a.lines))
        assert result.escalated and result.exit_code == 2
        halted = [s for s in result.states if s.state == "halted"]
        assert halted or any(s.trading_state == "halted" for s in result.samples)
        assert not a.problems, "\n".join(a.problems[:40])

        # The next start: still halted (the halt is persisted), the legs the dead
        # executor left unresolved are reconciled, and nothing is sent.
        d = run.run
        d.start(timeout=60, max_runtime_s=120)
        st = d.status()
        assert st["trading_state"] == "halted" and "escalation" in st["halt_reason"], st
        wait_until(lambda: d.status()["orders"]["open"] == 0, 30, "the restarted executor to reconcile")
        sim = json.loads(d.run.sim_file.read_text())
        with urllib.request.urlopen(sim["admin"] + "/_sim/orders", timeout=5) as resp:
            assert json.load(resp) == [], "an order reached the exchange while halted"
        assert d.stop() == 0
    ledger = Ledger(result.ledger_path, readonly=True)
    try:
        assert not ledger.unresolved(), [r.client_order_id for r in ledger.unresolved()]
    finally:
        ledger.close()


def test_fault_descriptions_name_kind_target_and_length() -> None:
    f = replace(Fault(1.0, "http_5xx", "upbit"), duration_s=2.0, status=503)
    assert "http_5xx" in f.describe() and "upbit 503" in f.describe() and "2.0s" in f.describe()
