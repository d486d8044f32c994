"""Turn a :class:`ChaosResult` into invariant problems and a printed report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.ledger import Ledger
from tests.chaos.runner import MAX_EXPOSURE_KRW, ChaosResult, FaultRecord, Sample
from tests.support import chaos_invariants as inv

# See chaos_invariants' docstring: an order written to the ledger within this
# long after a closed window opened was decided while open (one bus hop).
IN_FLIGHT_TOLERANCE_S = 0.25
# Status windows start when the *status view* sees a dead actor; the guard
# learns it from the supervisor's report, published on every child state change.
STATUS_TOLERANCE_S = 0.35
ACCEPT_SLACK_S = 1.0
STALE_AFTER_S = 3.0  # watchdog.fail_closed_after_s (shipped default)
FRESH_BELOW_S = 1.0
RECOVERY_LIMIT_S = 20.0
ESCALATION_EXIT = 2
TRADE_PATH = ("feed.upbit", "feed.binance", "engine", "position", "guard", "executor", "watchdog")


@dataclass
class Analysis:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    kill_recovery_s: list[float] = field(default_factory=list)
    fail_closed_s: list[float] = field(default_factory=list)
    stale_to_fresh_s: list[float] = field(default_factory=list)
    quote_gap_s: list[float] = field(default_factory=list)
    orders: int = 0
    peak_exposure_krw: float = 0.0
    stats: dict[str, Any] = field(default_factory=dict)


def _after(samples: list[Sample], t_ns: int) -> list[Sample]:
    return [s for s in samples if s.t_ns >= t_ns]


def kill_time_ns(rec: FaultRecord, restart_log: list[dict[str, Any]]) -> int:
    """When the process died: our SIGKILL, or for a SIGSTOP the supervisor's
    own kill on the missed heartbeats (its restart-log line)."""
    if rec.fault.kind != "sigstop":
        return rec.start_ns
    for x in restart_log:
        if x["event"] == "kill" and x["actor"] == rec.fault.target and x["pid"] == rec.pid:
            return int(x["ts"] * 1e9)
    return rec.start_ns


def kill_recovery(rec: FaultRecord, samples: list[Sample], killed_ns: int) -> float | None:
    """Kill -> the actor runs (heartbeats) again under a new pid, from status."""
    target = rec.fault.target
    for s in _after(samples, killed_ns):
        pid, state = s.actors.get(target, (None, ""))
        if state == "running" and pid not in (None, rec.pid):
            # The first sample that sees it running is at most one poll after
            # its first heartbeat; the heartbeat's age says how long exactly.
            first_hb = s.t_ns - int(s.hb_age.get(target, 0.0) * 1e9)
            return max(0, first_hb - killed_ns) / 1e9
    return None


def fail_closed_reaction(rec: FaultRecord, states: list[Any], trade_path: tuple[str, ...],
                         killed_ns: int) -> float | None:
    """Kill of a trade-path actor -> the guard's first state that is fail-closed
    for it (None when the guard itself was killed or never said so)."""
    target = rec.fault.target
    if target not in trade_path or target == "guard":
        return None
    if not any(killed_ns - 1_000_000_000 <= st.ts_ns <= killed_ns for st in states):
        return None  # the guard itself was down (or restarting) when this actor died
    for st in states:
        if st.ts_ns >= killed_ns and st.fail_closed and any(target in r for r in st.reasons):
            return (st.ts_ns - killed_ns) / 1e9
    return None


def stale_to_fresh(venue: str, rec: FaultRecord, samples: list[Sample]) -> float | None:
    """First status sample with a quote of ``venue`` older than the fail-closed
    age -> first later sample with all of its quotes fresh again."""
    stale_at = None
    for s in _after(samples, rec.start_ns):
        age = s.feed_age.get(venue)
        if age is None:
            continue
        if stale_at is None:
            if age > STALE_AFTER_S:
                stale_at = s.t_ns
            elif s.t_ns - rec.start_ns > (rec.fault.duration_s + 10) * 1e9:
                return None
        elif age < FRESH_BELOW_S:
            return (s.t_ns - stale_at) / 1e9
    return None


def quote_gap(venue: str, rec: FaultRecord, books: dict[str, list[int]], horizon_s: float = 30.0) -> float | None:
    """The longest silence of ``venue``'s quotes on the bus from the fault on."""
    ts = [t for t in books.get(venue, []) if rec.start_ns <= t <= rec.start_ns + horizon_s * 1e9]
    if not ts:
        return None
    gaps = [ts[0] - rec.start_ns] + [b - a for a, b in zip(ts, ts[1:], strict=False)]
    return max(gaps) / 1e9


def _venue_of(rec: FaultRecord) -> str | None:
    f = rec.fault
    if f.kind == "ws_drop":
        return f.target
    if f.target.startswith("feed."):
        return f.target.split(".", 1)[1]
    return None


def analyse(r: ChaosResult, *, max_exposure_krw: float = MAX_EXPOSURE_KRW,
            expect_escalation: bool = False) -> Analysis:
    a = Analysis()
    p = a.problems
    assert r.ledger_path is not None
    ledger = Ledger(r.ledger_path, readonly=True)
    try:
        rows = ledger.orders()
        events = list(ledger.events())
    finally:
        ledger.close()
    a.orders = len(r.sim_orders)

    # 1. no client order id twice; exchange <-> ledger
    p += inv.duplicate_client_ids(r.sim_orders)
    cutoff = r.sim_orders_at_ns if r.exit_code == ESCALATION_EXIT else None
    executor_gone = any(x["event"] == "escalate" and x["actor"] == "executor" for x in r.restart_log)
    p += inv.ledger_vs_exchange(r.sim_orders, rows, ledger_cutoff_ns=cutoff, allow_unresolved=executor_gone)

    # 2. nothing accepted while fail-closed or halted (beyond the in-flight tolerance)
    guard_kills = [x.start_ns for x in r.records if x.fault.target == "guard" and x.pid]
    guard_windows = (inv.windows_from_states(r.states, r.end_ns) + inv.guard_gaps(guard_kills, r.states, r.end_ns)
                     + inv.windows_from_events(getattr(r, "events", []), r.end_ns))
    status_windows = inv.windows_from_samples(r.samples, r.end_ns)
    p += inv.orders_in_closed_windows(r.sim_orders, rows, guard_windows,
                                      tolerance_ns=int(IN_FLIGHT_TOLERANCE_S * 1e9),
                                      accept_slack_ns=int(ACCEPT_SLACK_S * 1e9))
    p += inv.orders_in_closed_windows(r.sim_orders, rows, status_windows,
                                      tolerance_ns=int(STATUS_TOLERANCE_S * 1e9),
                                      accept_slack_ns=int(ACCEPT_SLACK_S * 1e9))

    # 3. exposure never above the limit (ledger replay and every status sample)
    a.peak_exposure_krw, exp_problems = inv.exposure_over_time(events, max_exposure_krw)
    p += exp_problems[:10]
    p += inv.status_exposure(r.samples, max_exposure_krw)[:10]

    # 4. recovered every time, or escalated cleanly
    if r.escalated or expect_escalation:
        if r.exit_code != ESCALATION_EXIT:
            p.append(f"escalated but the daemon exited with {r.exit_code}, not {ESCALATION_EXIT}")
        if not any(x["event"] == "escalate" for x in r.restart_log):
            p.append("no 'escalate' line in the restart log")
    else:
        if r.exit_code != 0:
            p.append(f"the daemon exited with {r.exit_code} after an orderly stop")
        p += r.settle_notes
    for rec in r.records:
        if rec.note.startswith("could not apply"):
            p.append(f"{rec.fault.describe()}: {rec.note}")
        killed = rec.fault.kind in ("kill", "kill_midsend") or "killed by the supervisor" in rec.note
        if killed and rec.pid and not rec.note.startswith("could not apply"):
            killed_ns = kill_time_ns(rec, r.restart_log)
            t = kill_recovery(rec, r.samples, killed_ns)
            if t is None or t > RECOVERY_LIMIT_S:
                if not r.escalated:
                    p.append(f"{rec.fault.describe()}: {rec.fault.target} did not run again within "
                             f"{RECOVERY_LIMIT_S:g}s")
            else:
                a.kill_recovery_s.append(t)
            fc = fail_closed_reaction(rec, sorted(r.states, key=lambda x: x.ts_ns), TRADE_PATH, killed_ns)
            guard_killed_next = any(x.fault.target == "guard" and 0 <= x.start_ns - killed_ns <= 1_000_000_000
                                    for x in r.records)
            if fc is not None and not guard_killed_next:
                a.fail_closed_s.append(fc)
        venue = _venue_of(rec)
        if venue is not None:
            t = stale_to_fresh(venue, rec, r.samples)
            if t is not None:
                a.stale_to_fresh_s.append(t)
            g = quote_gap(venue, rec, r.books)
            if g is not None:
                a.quote_gap_s.append(g)

    # 5. no orphan
    if r.leaked:
        p.append(f"processes outlived the daemon: {r.leaked}")

    kr = inv.percentiles(a.kill_recovery_s)
    fc = inv.percentiles(a.fail_closed_s)
    sf = inv.percentiles(a.stale_to_fresh_s)
    qg = inv.percentiles(a.quote_gap_s)
    a.stats = {"kill_to_running_s": kr, "kill_to_fail_closed_s": fc, "stale_to_fresh_s": sf, "quote_gap_s": qg,
               "orders": a.orders, "ledger_rows": len(rows), "peak_exposure_krw": round(a.peak_exposure_krw),
               "guard_windows": len(guard_windows), "status_windows": len(status_windows),
               "exit_code": r.exit_code, "escalated": r.escalated, "status_failures": r.status_failures}
    a.lines = [
        f"chaos seed {r.seed}: {len(r.records)} faults, {a.orders} orders at the exchange, "
        f"{len(rows)} in the ledger, peak exposure {a.peak_exposure_krw:,.0f} KRW, exit {r.exit_code}",
        "kill -> replacement heartbeating: " + _fmt(kr),
        "kill -> guard fail-closed:        " + _fmt(fc),
        "stale -> fresh quotes again:      " + _fmt(sf),
        "longest quote gap per feed fault: " + _fmt(qg),
        f"closed windows: {len(guard_windows)} (guard), {len(status_windows)} (status)",
    ]
    return a


def _fmt(p: dict[str, float]) -> str:
    if not p.get("n"):
        return "n=0"
    return (f"n={int(p['n'])} p50 {p['p50']:.3f}s p90 {p['p90']:.3f}s p99 {p['p99']:.3f}s "
            f"max {p['max']:.3f}s")
