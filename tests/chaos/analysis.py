"""Turn a :class:`ChaosResult` into invariant problems and a printed report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from storage.ledger import Ledger
from tests.chaos.runner import MAX_EXPOSURE_KRW, ChaosResult, FaultRecord, Sample
from tests.support import chaos_invariants as inv

# See chaos_invariants' docstring: an order decided within this long after a
# closed window opened was decided before the closure reached the guard (one bus hop).
IN_FLIGHT_TOLERANCE_S = 0.25
# Status windows start when the *status view* sees a dead actor; the guard
# learns it from the supervisor's report, published on every child state change.
STATUS_TOLERANCE_S = 0.35
ACCEPT_SLACK_S = 1.0
STALE_AFTER_S = 3.0  # watchdog.fail_closed_after_s (shipped default)
FRESH_BELOW_S = 1.0
RECOVERY_LIMIT_S = 20.0
# Orders a strategy decides on a fresh opportunity (repairs - unwind, complete -
# are priced off the last one on purpose and may go while quotes are stale).
DECIDED_ON_QUOTES = ("open", "close")
MAX_QUOTE_AGE_S = 2.0  # engine.max_quote_age_s (shipped default)
BUS_BOOK_SLACK_S = 0.5  # the bus carries a thinned copy of the books (ten a second)
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
    # role -> {"running": [s], "trading": [s]}: kill -> replacement heartbeating,
    # kill -> next order the exchange accepted that was decided after the kill
    per_role: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    rate_share: float | None = None  # orders/s during the schedule / undisturbed


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


def trading_again(killed_ns: int, accepted: list[tuple[int, str]], created: dict[str, int]) -> float | None:
    """Kill -> the first order the exchange accepted that was decided (written to
    the ledger) after the kill: what "recovered" means to a trader."""
    for ts, cid in accepted:
        if ts > killed_ns and created.get(cid, 0) > killed_ns:
            return (ts - killed_ns) / 1e9
    return None


def order_rate_share(r: ChaosResult, accepted: list[tuple[int, str]]) -> tuple[float, float, float] | None:
    """(undisturbed orders/s, orders/s during the schedule, their ratio), or None without a yardstick."""
    a, b = r.undisturbed_ns
    if not a or b <= a or not r.records:
        return None
    c0 = r.schedule_start_ns
    c1 = max(rec.end_ns or rec.start_ns for rec in r.records) + 3_000_000_000
    c1 = min(c1, r.halted_at_ns or c1)
    base = sum(1 for t, _ in accepted if a <= t < b) / ((b - a) / 1e9)
    chaos = sum(1 for t, _ in accepted if c0 <= t < c1) / ((c1 - c0) / 1e9)
    return base, chaos, (chaos / base if base else 0.0)


def undisturbed_wait(r: ChaosResult, accepted: list[tuple[int, str]]) -> dict[str, float]:
    """From an instant of undisturbed trading (every 0.1 s) to the next accepted
    order: the floor under "kill -> trading again" (orders come in bursts)."""
    import bisect

    a, b = r.undisturbed_ns
    ts = [t for t, _ in accepted]
    waits = []
    for t in range(a, b - 3_000_000_000, 100_000_000) if a else ():
        i = bisect.bisect_right(ts, t)
        if i < len(ts):
            waits.append((ts[i] - t) / 1e9)
    return inv.percentiles(waits, (50, 95))


def cold_engine_orders(r: ChaosResult, rows: list[Any], kills: list[int], decided: dict[str, int]) -> list[str]:
    """An order decided on quotes after the engine was killed, for a symbol the
    new engine had not yet published an opportunity for (so: priced off a cold
    or unchecked baseline, or off nothing). The engine only publishes with a
    trusted baseline (tests/unit/arbitrage/test_baseline_restore.py)."""
    out = []
    tol = int(IN_FLIGHT_TOLERANCE_S * 1e9)
    for i, k in enumerate(sorted(kills)):
        nxt = sorted(kills)[i + 1] if i + 1 < len(kills) else r.end_ns
        for row in rows:
            at = inv.decided_at(row, decided)
            if row.action not in DECIDED_ON_QUOTES or not k + tol < at < nxt:
                continue
            first = min((t for (_, sym), t in r.first_opp.items() if sym == row.symbol and t > k), default=None)
            if first is None or at < first - 50_000_000:
                out.append(f"{row.client_order_id} ({row.action} {row.symbol}) decided "
                           f"{(at - k) / 1e9:.2f}s after an engine kill, before the new engine's "
                           "first opportunity for it (cold or unchecked baseline)")
    return out


def stale_quote_orders(r: ChaosResult, rows: list[Any], decided: dict[str, int]) -> list[str]:
    """An order decided on quotes while its venue's quotes were older than the
    engine's limit (seen on the bus, which carries a thinned copy)."""
    import bisect

    out = []
    limit = int((MAX_QUOTE_AGE_S + BUS_BOOK_SLACK_S) * 1e9)
    books = {v: sorted(ts) for v, ts in r.books.items()}
    start = r.schedule_start_ns or 0
    for row in rows:
        ts = books.get(row.venue)
        at = inv.decided_at(row, decided)
        if row.action not in DECIDED_ON_QUOTES or not ts or at < start:
            continue
        i = bisect.bisect_right(ts, at)
        if i == 0 or at - ts[i - 1] > limit:
            age = (at - ts[i - 1]) / 1e9 if i else float("inf")
            out.append(f"{row.client_order_id} ({row.action} {row.venue} {row.symbol}) decided on quotes "
                       f"{age:.2f}s old")
    return out


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
        decided = ledger.decisions()
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
                                      accept_slack_ns=int(ACCEPT_SLACK_S * 1e9), decided=decided)
    p += inv.orders_in_closed_windows(r.sim_orders, rows, status_windows,
                                      tolerance_ns=int(STATUS_TOLERANCE_S * 1e9),
                                      accept_slack_ns=int(ACCEPT_SLACK_S * 1e9), decided=decided)

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

    # 5. kill -> trading again, per role; nothing decided on a cold engine or stale quotes
    created = {row.client_order_id: row.created_ns for row in rows}
    accepted = sorted((int(o["ts_ns"]), o["client_order_id"]) for o in r.sim_orders)
    for rec in r.records:
        killed = rec.fault.kind in ("kill", "kill_midsend") or "killed by the supervisor" in rec.note
        if not killed or not rec.pid or rec.note.startswith("could not apply"):
            continue
        killed_ns = kill_time_ns(rec, r.restart_log)
        role = a.per_role.setdefault(rec.fault.target, {"running": [], "trading": []})
        t = kill_recovery(rec, r.samples, killed_ns)
        if t is not None:
            role["running"].append(t)
        t = trading_again(killed_ns, accepted, created)
        role["trading"].append(t if t is not None else float("inf"))
    engine_kills = [kill_time_ns(x, r.restart_log) for x in r.records
                    if x.fault.target == "engine" and x.pid and x.fault.kind in ("kill", "sigstop")
                    and not x.note.startswith("could not apply")
                    and (x.fault.kind == "kill" or "killed by the supervisor" in x.note)]
    p += cold_engine_orders(r, rows, engine_kills, decided)[:10]
    p += stale_quote_orders(r, rows, decided)[:10]
    share = order_rate_share(r, accepted)
    if share is not None:
        a.rate_share = share[2]

    # 6. no orphan
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
    a.stats["per_role"] = {}
    for name in sorted(a.per_role):
        d = a.per_role[name]
        run_p, trade_p = inv.percentiles(d["running"], (50, 95)), inv.percentiles(d["trading"], (50, 95))
        a.stats["per_role"][name] = {"kill_to_running_s": run_p, "kill_to_trading_s": trade_p}
        a.lines.append(f"  {name:<13} kill -> heartbeating {_p5095(run_p)}   kill -> trading again "
                       f"{_p5095(trade_p)}")
    floor = undisturbed_wait(r, accepted)
    if floor.get("n"):
        a.stats["undisturbed_next_order_s"] = floor
        a.lines.append(f"  (undisturbed: any instant -> next accepted order {_p5095(floor)})")
    if share is not None:
        a.stats["orders_per_s"] = {"undisturbed": round(share[0], 3), "chaos": round(share[1], 3),
                                   "share": round(share[2], 3)}
        a.lines.append(f"orders/s: undisturbed {share[0]:.2f}, during chaos {share[1]:.2f} "
                       f"({100 * share[2]:.0f} % of undisturbed)")
    return a


def _p5095(p: dict[str, float]) -> str:
    if not p.get("n"):
        return "n=0"
    return f"n={int(p['n'])} p50 {p['p50']:.2f}s p95 {p['p95']:.2f}s"


def _fmt(p: dict[str, float]) -> str:
    if not p.get("n"):
        return "n=0"
    return (f"n={int(p['n'])} p50 {p['p50']:.3f}s p90 {p['p90']:.3f}s p99 {p['p99']:.3f}s "
            f"max {p['max']:.3f}s")
