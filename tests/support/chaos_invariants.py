"""Invariants of a chaos run, as pure functions over what was recorded.

Every check returns a list of problems (empty = holds), each one line that
names the order, window or actor concerned, so a failing test says what went
wrong. Inputs are plain data: the exchange's ``/_sim/orders`` records, the
ledger's rows and events (``storage.ledger``), closed windows as
``(start_ns, end_ns, why)``, and status samples.

Tolerance for in-flight sends (documented, used by ``orders_in_closed_windows``):
an order is timed by when the guard approved it (``Ledger.decisions``), or,
where that is not known, by when the executor wrote it to its ledger - the
moment before it sends. A decision the guard made while
open may still be sent after a window opened: the executor cross-checks the
state it last received, one bus hop later, and a loaded host can delay the
executor's write by more than any fixed allowance (a CI failure). So it is
the decision that is held against the window, with ``tolerance_ns`` for the
hop by which a closure reached the guard (a watchdog's or the supervisor's
report). The exchange may accept such an order later (REST latency, a 429
pause and resend of the *same* client order id), so acceptance time alone is
not held against it; but an order decided inside a closed window beyond the
tolerance is a violation, and so is one accepted more than
``accept_slack_ns`` after its ledger write while the window is closed and
the write was itself inside the window. Repairs (``unwind``) are not held
against a window: the guard's reducing behaviour lets an unwind that shrinks
exposure through while halted or fail-closed (the guard's own unit tests
check that it shrinks).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from arbitrage.accounting import Portfolio
from messages import OrderEvent
from storage.ledger import OrderRow

# The exchange accepted (or at least saw) an order with these sim statuses.
SIM_ACCEPTED = ("new", "partially_filled", "filled", "canceled", "expired")
# Ledger statuses that claim the venue has the order.
LEDGER_AT_VENUE = ("open", "filled", "partially_filled", "cancelled")
# Ledger statuses for an order the venue never accepted.
LEDGER_NOT_AT_VENUE = ("failed", "rejected", "refused")
LEDGER_UNRESOLVED = ("pending", "sent", "unknown")


@dataclass(frozen=True, slots=True)
class Window:
    start_ns: int
    end_ns: int
    why: str

    def contains(self, t_ns: int, tolerance_ns: int = 0) -> bool:
        return self.start_ns + tolerance_ns <= t_ns <= self.end_ns


def duplicate_client_ids(sim_orders: Iterable[dict[str, Any]]) -> list[str]:
    counts = Counter(o.get("client_order_id") for o in sim_orders if o.get("client_order_id"))
    return [f"client order id {cid} reached the exchange {n} times" for cid, n in sorted(counts.items()) if n > 1]


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def ledger_vs_exchange(sim_orders: Sequence[dict[str, Any]], rows: Sequence[OrderRow], *,
                       ledger_cutoff_ns: int | None = None, allow_unresolved: bool = False) -> list[str]:
    """Every order the exchange saw is in the ledger with the same terms, and
    every ledger order is where its status says: at the venue (with the same
    fill) or not. ``ledger_cutoff_ns`` skips ledger rows written after the
    exchange's records were fetched (when the daemon ended on its own);
    ``allow_unresolved`` accepts rows a dead executor left for the next start
    to reconcile (an escalation on the executor)."""
    problems: list[str] = []
    by_cid = {r.client_order_id: r for r in rows}
    sim_by_cid: dict[str, dict[str, Any]] = {}
    for o in sim_orders:
        cid = o.get("client_order_id") or ""
        sim_by_cid.setdefault(cid, o)
        row = by_cid.get(cid)
        if row is None:
            problems.append(f"exchange order {cid or '(no client id)'} ({o['venue']} {o['side']} {o['coin']}) "
                            "is not in the ledger")
            continue
        terms = (row.venue == o["venue"], row.symbol == o["coin"], row.side == o["side"],
                 _close(row.qty, float(o["qty"])), _close(row.price, float(o["price"] or 0.0)))
        if not all(terms):
            problems.append(f"{cid}: ledger terms {row.venue} {row.side} {row.qty} {row.symbol} @ {row.price} "
                            f"differ from the exchange's {o['venue']} {o['side']} {o['qty']} {o['coin']} @ {o['price']}")
        accepted = o["status"] in SIM_ACCEPTED
        if accepted and row.status in LEDGER_NOT_AT_VENUE:
            problems.append(f"{cid}: ledger says {row.status} ({row.reason[:80]}) but the exchange "
                            f"accepted it ({o['status']}, filled {o['filled']})")
        if accepted and row.status in LEDGER_AT_VENUE and not _close(row.filled_qty, float(o["filled"])):
            problems.append(f"{cid}: ledger filled {row.filled_qty} but the exchange filled {o['filled']}")
        if not accepted and row.status in LEDGER_AT_VENUE:
            problems.append(f"{cid}: ledger says {row.status} but the exchange {o['status']} it")
    for row in rows:
        if ledger_cutoff_ns is not None and row.created_ns > ledger_cutoff_ns:
            continue
        if row.status in LEDGER_UNRESOLVED and not allow_unresolved:
            problems.append(f"{row.client_order_id}: still {row.status} in the ledger at the end "
                            f"({'at' if row.client_order_id in sim_by_cid else 'not at'} the exchange)")
        elif row.status in LEDGER_AT_VENUE and row.client_order_id not in sim_by_cid:
            problems.append(f"{row.client_order_id}: ledger says {row.status} but the exchange never saw it")
    return problems


def windows_from_states(states: Sequence[Any], end_ns: int) -> list[Window]:
    """Closed windows from the guard's TradingState stream (``ts_ns``,
    ``state``, ``fail_closed``, ``reasons``): closed unless armed and not
    fail-closed."""
    out: list[Window] = []
    open_at: tuple[int, str] | None = None
    for s in sorted(states, key=lambda x: x.ts_ns):
        closed = s.state != "armed" or s.fail_closed
        if closed and open_at is None:
            why = s.state if s.state != "armed" else "fail-closed: " + "; ".join(s.reasons)
            open_at = (s.ts_ns, why)
        elif not closed and open_at is not None:
            out.append(Window(open_at[0], s.ts_ns, f"guard: {open_at[1]}"))
            open_at = None
    if open_at is not None:
        out.append(Window(open_at[0], end_ns, f"guard: {open_at[1]}"))
    return out


def windows_from_samples(samples: Sequence[Any], end_ns: int) -> list[Window]:
    """Closed windows as ``status`` reported them. Polled, so a window is what
    is known: from the first sample that says closed to the last one that
    still does (trading may have reopened anywhere before the next sample).
    A reply is built somewhere between its ask and its arrival, so a window
    starts at the first closed reply's arrival (``answered_ns`` when the
    sample has it) and ends at the last closed one's ask: only what status
    certainly said, however slowly it answered under load."""
    out: list[Window] = []
    run: tuple[int, int, str] | None = None  # (first closed, last closed, why)
    for s in samples:
        closed = s.trading_state != "armed" or s.fail_closed
        if closed:
            why = s.trading_state if s.trading_state != "armed" else "; ".join(s.reasons)
            start = max(s.t_ns, s.answered_ns)  # answered_ns 0: not known, the ask stands
            run = (start, s.t_ns, why) if run is None else (run[0], s.t_ns, run[2])
        elif run is not None:
            out.append(Window(run[0], max(run[0], run[1]), f"status: {run[2]}"))
            run = None
    if run is not None:
        out.append(Window(run[0], max(run[0], run[1], end_ns), f"status: {run[2]}"))
    return out


def windows_from_events(events: Sequence[dict[str, Any]], end_ns: int) -> list[Window]:
    """Closed windows from the event log: a ``halt`` until the next ``arm``,
    a ``fail_closed`` until the ``fail_closed_cleared`` of the same key."""
    out: list[Window] = []
    halted_at: int | None = None
    raised: dict[str, int] = {}
    for e in sorted(events, key=lambda x: x.get("ts", 0.0)):
        t = int(float(e.get("ts", 0.0)) * 1e9)
        kind = e.get("event_type")
        if kind == "halt" and halted_at is None:
            halted_at = t
        elif kind == "arm" and halted_at is not None:
            out.append(Window(halted_at, t, "event log: halt"))
            halted_at = None
        elif kind == "fail_closed" and e.get("key"):
            raised.setdefault(str(e["key"]), t)
        elif kind == "fail_closed_cleared" and str(e.get("key")) in raised:
            out.append(Window(raised.pop(str(e["key"])), t, f"event log: fail_closed {e['key']}"))
    if halted_at is not None:
        out.append(Window(halted_at, end_ns, "event log: halt"))
    out += [Window(t, end_ns, f"event log: fail_closed {k}") for k, t in raised.items()]
    return out


def guard_gaps(guard_kills_ns: Sequence[int], states: Sequence[Any], end_ns: int) -> list[Window]:
    """While the guard is dead nothing can be decided: from each guard kill to
    the first TradingState its replacement publishes."""
    stamps = sorted(s.ts_ns for s in states)
    out = []
    for k in guard_kills_ns:
        nxt = next((t for t in stamps if t > k), end_ns)
        out.append(Window(k, nxt, "guard dead"))
    return out


def decided_at(row: OrderRow, decided: Mapping[str, int]) -> int:
    """When the guard approved the order's intent (``Ledger.decisions``), else
    when the executor wrote it (a ledger from before decision times): the write
    can lag the decision by however long a loaded host stalls the executor."""
    return decided.get(row.intent_id, row.created_ns)


def orders_in_closed_windows(sim_orders: Sequence[dict[str, Any]], rows: Sequence[OrderRow],
                             windows: Sequence[Window], *, tolerance_ns: int,
                             accept_slack_ns: int, decided: Mapping[str, int] | None = None) -> list[str]:
    """No order accepted by the exchange while arbd was fail-closed or halted
    (see the module docstring for the in-flight tolerance). ``decided``: the
    guard's approval time per intent id (``Ledger.decisions``)."""
    by_cid = {r.client_order_id: r for r in rows}
    decided = decided or {}
    problems = []
    for o in sim_orders:
        if o["status"] not in SIM_ACCEPTED:
            continue
        cid = o.get("client_order_id") or ""
        acc = int(o["ts_ns"])
        row = by_cid.get(cid)
        if row is not None and row.action == "unwind":
            continue  # the reducing behaviour: a repair that shrinks exposure may go while closed
        written = row.created_ns if row is not None else acc
        when = decided_at(row, decided) if row is not None else acc
        what = "decided" if row is not None and row.intent_id in decided else "written to the ledger"
        for w in windows:
            if not w.contains(acc, tolerance_ns):
                continue
            if w.contains(when, tolerance_ns):
                problems.append(f"{cid} ({o['venue']} {o['side']} {o['coin']}) {what} "
                                f"{(when - w.start_ns) / 1e6:.0f} ms and accepted "
                                f"{(acc - w.start_ns) / 1e6:.0f} ms into a closed window ({w.why[:100]})")
            elif written > w.start_ns and acc - written > accept_slack_ns:
                problems.append(f"{cid}: written {(written - w.start_ns) / 1e6:.0f} ms into a closed window, "
                                f"accepted {(acc - written) / 1e6:.0f} ms later ({w.why[:100]})")
            break
    return problems


def exposure_over_time(events: Iterable[OrderEvent], max_exposure_krw: float,
                       slack_krw: float = 1.0) -> tuple[float, list[str]]:
    """Replay the ledger's event history through the accounting: the highest
    exposure reached after any event, and a problem for each time it exceeds
    the limit."""
    clock = {"t": 0.0}
    p = Portfolio(lambda: clock["t"])
    peak = 0.0
    problems = []
    for ev in events:
        clock["t"] = ev.ts_ns / 1e9
        p.apply(ev)
        x = p.exposure_krw
        if x > peak:
            peak = x
        if x > max_exposure_krw + slack_krw:
            problems.append(f"exposure {x:,.0f} KRW > {max_exposure_krw:,.0f} after {ev.client_order_id} "
                            f"{ev.status}")
    return peak, problems


def status_exposure(samples: Sequence[Any], max_exposure_krw: float, slack_krw: float = 1.0) -> list[str]:
    return [f"status reported exposure {s.exposure_krw:,.0f} KRW > {max_exposure_krw:,.0f}"
            for s in samples if s.exposure_krw > max_exposure_krw + slack_krw]


def percentiles(values: Sequence[float], qs: Sequence[int] = (50, 90, 99)) -> dict[str, float]:
    """Nearest-rank percentiles plus max and count."""
    v = sorted(values)
    out: dict[str, float] = {"n": float(len(v))}
    if not v:
        return out
    for q in qs:
        k = max(0, min(len(v) - 1, math.ceil(q / 100 * len(v)) - 1))
        out[f"p{q}"] = v[k]
    out["max"] = v[-1]
    return out
