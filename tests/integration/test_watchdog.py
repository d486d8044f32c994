"""The stability watchdog under real faults: a paused venue stream, a stopped
feed process, a leaking actor, and the long-run snapshots.

The stale-feed tests share one ``live_trading`` daemon (enabled, armed, test
keys in the environment) so that every order is visible at the embedded
exchange's ``/_sim/orders``: "no order while fail-closed" is checked against
when the guard approved each order the exchange accepted (the ledger's
decision times), so an order decided before the closure and sent just after
it is told from one decided while closed. Watchdog timings are shortened
(fail-closed after 1.5 s, feed restart after 3 s, clear after 1 s fresh).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from storage.ledger import Ledger
from tests.support.daemon import pid_gone, wait_until
from tests.support.ledger_check import check_all, read_ledger, report
from tests.support.run_daemon import (
    FAST,
    LIVE_TRADING,
    PAPER,
    SimDaemon,
    SimRuns,
    config,
    sim_runs,
    with_keys,
)

FAIL_AFTER_S = FAST["watchdog"]["fail_closed_after_s"]
RESTART_AFTER_S = FAST["watchdog"]["restart_after_s"]
# Only for an order without a decision time, timed by the executor's ledger
# write: a decision made just before the closure may be written after it
# (guard -> executor -> ledger). A decision time needs no slack: the guard
# writes its closure event after it has closed, and approves nothing after.
IN_FLIGHT_S = 0.25
MAX_EXPOSURE_KRW = 500_000.0

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimDaemon]:
    with sim_runs(tmp_path_factory.mktemp("wd")) as runs:
        run = runs.make(config(LIVE_TRADING, {"position_adv": {"max_exposure_krw": MAX_EXPOSURE_KRW}}),
                        env=with_keys())
        run.arm_live()
        yield run


@pytest.fixture
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRuns]:
    with sim_runs(tmp_path_factory.mktemp("wd1")) as r:
        yield r


@dataclass
class Episode:
    """Status polled through one fail-closed episode."""

    start_ns: int
    samples: list[tuple[int, bool, list[str]]] = field(default_factory=list)

    def poll(self, run: SimDaemon) -> dict | None:
        asked = time.time_ns()  # what status says held at some moment after this
        st = run.safe_status()
        if st is not None:
            self.samples.append((asked, st["fail_closed"], list(st["fail_closed_reasons"])))
        return st

    def last_closed(self, after_ns: int) -> int:
        """The last moment status showed trading closed (an order accepted after
        it may follow the clear, which status shows one poll late)."""
        return max((t for t, closed, _ in self.samples if closed and t >= after_ns), default=after_ns)


def wait_trading(run: SimDaemon, timeout: float = 40.0) -> None:
    """Orders reach the exchange and nothing holds trading closed."""
    n = len(run.sim_orders())
    wait_until(lambda: len(run.sim_orders()) > n, timeout, "an order to reach the exchange", interval=0.2)
    wait_until(lambda: not run.status()["fail_closed"], 15, "trading to be open")


def watch_episode(run: SimDaemon, venue: str, start_ns: int, reason_re: str,
                  clear_after_ns: int | Callable[[], int | None], timeout: float = 30.0) -> tuple[Episode, int, int]:
    """Poll status until fail-closed is raised (a reason matching ``reason_re``)
    and cleared again (not before ``clear_after_ns``; a callable is asked at
    each poll and None means not yet). Returns the episode and the observed
    raise and clear times."""
    bound = clear_after_ns if callable(clear_after_ns) else lambda: clear_after_ns
    ep = Episode(start_ns)
    deadline = time.monotonic() + timeout
    raised = cleared = 0
    while not cleared:
        assert time.monotonic() < deadline, f"episode did not end: {ep.samples[-5:]}"
        ep.poll(run)
        s = ep.samples[-1] if ep.samples else None
        after = bound()
        if s and not raised and s[1] and any(re.search(reason_re, r) for r in s[2]):
            raised = s[0]
        elif s and raised and not s[1] and after is not None and s[0] >= after:
            cleared = s[0]
        time.sleep(0.03)
    return ep, raised, cleared


def orders_between(run: SimDaemon, start_ns: int, end_ns: int) -> list[dict]:
    """Orders the exchange accepted that the guard approved in [start, end), leg
    repairs left out: while fail-closed the behaviour is reducing, and an unwind
    that shrinks a broken hedge may pass (issue 12); every other order is an
    open that must not. An order is timed by its guard decision (the ledger's
    decision times), not by the executor's ledger write or the exchange's
    acceptance: under load a leg the guard approved before the closure can be
    written and reach the exchange well after it. Where the ledger has no
    decision time, the write times it, from IN_FLIGHT_S after ``start``; an
    order the ledger lacks, the exchange."""
    rows = {r["client_order_id"]: r for r in run.ledger_rows()}
    reader = Ledger.reader(run.run.ledger_path)
    try:
        decided = reader.decisions()
    finally:
        reader.close()
    assert decided or not rows, "the executor recorded no guard decision time"
    late = []
    for o in run.sim_orders():
        row = rows.get(o.get("client_order_id"))
        if row is not None and row["action"] == "unwind":
            continue
        if row is not None and row["intent_id"] in decided:
            at_ns, from_ns = decided[row["intent_id"]], start_ns
        else:
            at_ns = int(row["created_ns"]) if row is not None else int(o["ts_ns"])
            from_ns = start_ns + int(IN_FLIGHT_S * 1e9)
        if from_ns <= at_ns < end_ns:
            late.append(o)
    return late


def guard_raised_at(run: SimDaemon, key_prefix: str, after_s: float) -> float:
    evs = [e for e in run.events("fail_closed") if e["actor"] == "guard" and e["key"].startswith(key_prefix)
           and e["ts"] >= after_s]
    assert evs, f"no guard fail_closed event for {key_prefix} after {after_s}"
    return evs[0]["ts"]


def test_a_paused_venue_stream_fails_trading_closed_restarts_the_feed_and_clears_after_fresh_data(
        live: SimDaemon) -> None:
    live.arm_live()
    wait_trading(live)
    t0 = time.time_ns()
    # The pause lasts until the watchdog has restarted the feed (at
    # RESTART_AFTER_S of staleness), however late a loaded host makes that.
    resumed: list[int] = []
    looked = [0.0]

    def resume_after_the_restart() -> int | None:
        if not resumed and time.monotonic() - looked[0] >= 0.25:
            looked[0] = time.monotonic()
            if [r for r in live.log_events("feed.upbit", "restart") if r["ts"] >= t0 / 1e9]:
                live.clear_faults()
                resumed.append(time.time_ns())
        return resumed[0] if resumed else None

    live.fault("upbit", "pause", 60.0)
    try:
        ep, raised, cleared = watch_episode(live, "upbit", t0, r"stale feed upbit (BTC|ETH|XRP|USDT)\b",
                                             clear_after_ns=resume_after_the_restart)
    finally:
        live.clear_faults()

    assert (raised - t0) / 1e9 <= FAIL_AFTER_S + 1.0, f"fail-closed after {(raised - t0) / 1e9:.2f}s"
    guard_at = guard_raised_at(live, "stale.upbit", t0 / 1e9)
    late = orders_between(live, int(guard_at * 1e9), ep.last_closed(raised))
    assert not late, f"orders the guard approved while fail-closed: {late}"
    restarts = [r for r in live.log_events("feed.upbit") if r["ts"] >= t0 / 1e9 and r["event"] == "restart"]
    assert restarts, live.log_events("feed.upbit")
    asked = [e for e in live.events("restart") if e.get("target") == "feed.upbit" and e["ts"] >= t0 / 1e9]
    assert asked and asked[0]["actor"] == "watchdog"
    cleared_ev = [e for e in live.events("fail_closed_cleared") if e["key"] == "stale.upbit"
                  and e["ts"] >= resumed[0] / 1e9]
    assert cleared_ev, "the watchdog never cleared stale.upbit after the pause"
    wait_trading(live)


def test_a_stopped_feed_process_fails_trading_closed_is_restarted_and_trading_resumes(live: SimDaemon) -> None:
    live.arm_live()
    wait_trading(live)
    old = live.actor("feed.binance")["pid"]
    t0 = time.time_ns()

    os.kill(old, signal.SIGSTOP)
    try:
        # Either fails trading closed first: the watchdog (quotes stale) or the
        # supervisor (heartbeat lost: the actor is down). Both limits are 1.5 s here.
        ep, raised, cleared = watch_episode(live, "binance", t0,
                                             r"stale feed binance (BTC|ETH|XRP)\b|actor feed\.binance",
                                             clear_after_ns=t0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old, signal.SIGCONT)

    assert (raised - t0) / 1e9 <= FAIL_AFTER_S + 1.0, f"fail-closed after {(raised - t0) / 1e9:.2f}s"
    kills = [r for r in live.log_events("feed.binance", "kill") if r["pid"] == old]
    assert kills and "heartbeat timeout" in kills[0]["reason"], live.log_events("feed.binance")
    assert [r for r in live.log_events("feed.binance", "restart") if r["ts"] >= kills[0]["ts"]]
    new = live.actor("feed.binance")
    assert new["pid"] != old and new["state"] == "running" and pid_gone(old)
    guard_at = guard_raised_at(live, "", t0 / 1e9)
    late = orders_between(live, int(guard_at * 1e9), ep.last_closed(raised))
    assert not late, f"orders the guard approved while fail-closed: {late}"
    assert [e for e in live.events("fail_closed_cleared") if e["key"] == "stale.binance" and e["ts"] >= t0 / 1e9]
    wait_trading(live)
    live.quiesce()
    problems = check_all(live.sim_orders(), read_ledger(live.ledger()), MAX_EXPOSURE_KRW)
    assert not problems, report(problems)


def test_a_leaking_actor_is_recycled_before_its_rss_limit_while_trading_is_fail_closed(
        live: SimDaemon, runs: SimRuns) -> None:
    base = live.actor("engine")["rss_mb"]  # an engine that does not leak
    limit = round(base + 60.0)
    # 12 MB/s: the 60 MB headroom lasts 5 s, and the recycle's margin (the last
    # ~10 % of the limit) over a second of a loaded host's reaction (30 MB/s,
    # half a second, was once overshot).
    run = runs.make(config(PAPER, {"testing": {"leak_mb_per_s": {"engine": 12}},
                                   "watchdog": {"rss_limit_mb": limit, "min_recycle_interval_s": 1.0}}),
                    wait_running=False)
    seen: dict[int, float] = {}  # engine pid -> the highest RSS status reported for it
    reasons: set[str] = set()

    def probe() -> bool:
        st = run.safe_status()
        if st is None:
            return False
        e = next(a for a in st["actors"] if a["name"] == "engine")
        if e["pid"] and e["rss_mb"] is not None:
            seen[e["pid"]] = max(seen.get(e["pid"], 0.0), e["rss_mb"])
        if st["fail_closed"]:
            reasons.update(r for r in st["fail_closed_reasons"] if "recycling engine" in r)
        # Twice: the engine that replaced a recycled one leaks too, and is recycled in time as well.
        return len(seen) >= 3 and e["state"] == "running"

    wait_until(probe, 60, "the leaking engine to be recycled twice", interval=0.03)

    assert max(seen.values()) < limit, f"RSS seen {seen} MB, limit {limit} MB"
    recycles = run.events("recycle")
    assert len(recycles) >= 2 and all(r["target"] == "engine" and r["actor"] == "watchdog" for r in recycles)
    assert all(r["rss_mb"] < limit for r in recycles), recycles
    log = run.log_events("engine")
    pids = [r["pid"] for r in log if r["event"] == "start"]
    assert len(set(pids)) >= 3
    for pid in pids[:2]:
        assert [r for r in log if r["event"] == "recycle" and r["pid"] == pid], log
        assert [r for r in log if r["event"] == "exit" and r["pid"] == pid and r["reason"] == "recycle"], log
    assert len([r for r in log if r["event"] == "restart" and r["reason"] == "recycle requested"]) >= 2
    # Trading was fail-closed while the engine recycled, and opened again after.
    assert reasons, "status never showed a recycle fail-closed reason"
    assert [e for e in run.events("fail_closed") if e["actor"] == "guard" and e["key"] == "recycle.engine"]
    assert [e for e in run.events("fail_closed_cleared") if e["key"] == "recycle.engine"]


def test_longrun_writes_stability_snapshots_and_the_seed_grep_finds_trades(runs: SimRuns) -> None:
    run = runs.make(config(PAPER), args=("--longrun", "1m", "--set", "longrun.interval_loops=8"))
    stability = run.run.root / "logs" / "stability"

    wait_until(lambda: list(stability.glob("*.json")), 20, "a stability snapshot", interval=0.2)
    run.wait_events("trade", 2, timeout=60)
    pattern = str(run.run.root / "logs" / "events" / "longrun_events_*.jsonl")
    grep = subprocess.run(f"grep '\"event_type\":\"trade\"' {pattern}", shell=True, capture_output=True,
                          text=True, timeout=10)
    snaps = sorted(stability.glob("*.json"))
    snap = json.loads(snaps[-1].read_text())
    run.stop()

    assert grep.returncode == 0 and glob.glob(pattern), grep.stderr
    lines = [json.loads(line) for line in grep.stdout.splitlines()]
    assert len(lines) >= 2 and all(t["event_type"] == "trade" and t["client_order_id"] for t in lines)
    assert {a["name"] for a in snap["actors"]} >= {"engine", "executor", "feed.upbit", "feed.binance"}
    assert snap["ws_freshness_seconds"]
