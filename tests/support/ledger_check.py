"""Invariants between the order ledger and the exchange, shared by the
trading-core, watchdog and soak tests.

Each check takes plain data - the embedded exchange's ``GET /_sim/orders``
records and the ledger's rows and events (``storage.ledger``) - and returns a
list of problems, one line each, naming the order concerned (empty: holds).

The policy, decided here and used by every test:

- Every order the exchange saw has a ledger row with the same venue, coin,
  side, quantity and price: the executor writes the row *before* it sends.
- Every ledger row reached the exchange, except one whose final status says
  it never did: ``failed`` (refused before processing, or looked up by client
  id after an unclear send or a restart: the venue has no such order),
  ``rejected`` (refused by the venue, or by the client library before it was
  sent) or ``refused`` (the mode never sends). Such a row the exchange *did*
  accept is a lost order and a problem.
- At the end (after a halt and a wait), no row is unresolved: not
  ``pending``/``sent`` (written, outcome never learnt), not ``open`` or
  ``partially_filled`` (the executor sends IOC orders, which never rest), and
  not ``unknown``: the executor looks unknown rows up again every few seconds,
  so against a healthy exchange one left means an outcome it could not learn.
  Callers that check a run still in progress pass ``allow_unresolved``.
- For an order at the exchange, the ledger's status agrees (accepted vs
  rejected) and its filled quantity equals the exchange's.
- No client order id reaches the exchange twice (across both venues).
- Replaying the ledger's event history through ``arbitrage.accounting.Portfolio``,
  exposure never exceeds ``position_adv.max_exposure_krw`` after any event.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from arbitrage.accounting import Portfolio
from messages import OrderEvent
from storage.ledger import UNRESOLVED, Ledger, OrderRow

# Sim order statuses of an order the exchange accepted ("rejected" is the other one).
SIM_ACCEPTED = frozenset({"new", "partially_filled", "filled", "canceled", "expired"})
# Ledger statuses that say the venue has (had) the order, and those that say it never did.
LEDGER_AT_VENUE = frozenset({"open", "partially_filled", "filled", "cancelled"})
LEDGER_NEVER_REACHED = frozenset({"failed", "rejected", "refused"})
EXPOSURE_SLACK_KRW = 1.0  # float noise only


@dataclass(frozen=True, slots=True)
class LedgerData:
    rows: list[OrderRow]
    events: list[OrderEvent]


def read_ledger(ledger: Ledger) -> LedgerData:
    try:
        return LedgerData(ledger.orders(), list(ledger.events()))
    finally:
        ledger.close()


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def duplicate_client_ids(sim_orders: Iterable[dict[str, Any]]) -> list[str]:
    counts = Counter(o.get("client_order_id") or "" for o in sim_orders)
    out = [f"client order id {cid} reached the exchange {n} times" for cid, n in sorted(counts.items())
           if cid and n > 1]
    if counts.get(""):
        out.append(f"{counts['']} order(s) reached the exchange without a client order id")
    return out


def exchange_orders_in_ledger(sim_orders: Sequence[dict[str, Any]], rows: Sequence[OrderRow]) -> list[str]:
    """Every order the exchange saw is in the ledger, with the same terms,
    a status that agrees and the same fill."""
    by_cid = {r.client_order_id: r for r in rows}
    problems = []
    for o in sim_orders:
        cid = o.get("client_order_id") or ""
        row = by_cid.get(cid)
        what = f"{o['venue']} {o['side']} {o['qty']} {o['coin']} @ {o['price']}"
        if row is None:
            problems.append(f"exchange order {cid or '(no client id)'} ({what}, {o['status']}) is not in the ledger")
            continue
        if not (row.venue == o["venue"] and row.symbol == o["coin"] and row.side == o["side"]
                and _close(row.qty, float(o["qty"])) and _close(row.price, float(o["price"] or 0.0))):
            problems.append(f"{cid}: the ledger has {row.venue} {row.side} {row.qty} {row.symbol} @ {row.price}, "
                            f"the exchange {what}")
        accepted = o["status"] in SIM_ACCEPTED
        if accepted and row.status in LEDGER_NEVER_REACHED:
            problems.append(f"{cid}: the ledger says {row.status} ({row.reason[:80]}) but the exchange "
                            f"accepted it ({o['status']}, filled {o['filled']})")
        elif accepted and row.status in LEDGER_AT_VENUE and not _close(row.filled_qty, float(o["filled"])):
            problems.append(f"{cid}: the ledger says filled {row.filled_qty}, the exchange {o['filled']}")
        elif not accepted and row.status in LEDGER_AT_VENUE:
            problems.append(f"{cid}: the ledger says {row.status} but the exchange {o['status']} it")
    return problems


def ledger_orders_at_exchange(sim_orders: Sequence[dict[str, Any]], rows: Sequence[OrderRow], *,
                              allow_unresolved: bool = False) -> list[str]:
    """Every ledger row reached the exchange unless it is resolved as never
    having reached it; nothing is left unresolved (unless allowed)."""
    seen = {o.get("client_order_id") for o in sim_orders}
    problems = []
    for row in rows:
        there = row.client_order_id in seen
        if row.status in UNRESOLVED:
            if not allow_unresolved:
                problems.append(f"{row.client_order_id}: still {row.status} in the ledger "
                                f"({'at' if there else 'not at'} the exchange)")
        elif not there and row.status not in LEDGER_NEVER_REACHED:
            problems.append(f"{row.client_order_id}: the ledger says {row.status} but the exchange never saw it")
    return problems


def exposure_history(events: Iterable[OrderEvent], max_exposure_krw: float) -> tuple[float, list[str]]:
    """Replay the event history; the peak exposure and a problem for every
    event after which exposure exceeds the limit."""
    clock = {"t": 0.0}
    p = Portfolio(lambda: clock["t"])
    peak = 0.0
    problems = []
    for ev in events:
        clock["t"] = ev.ts_ns / 1e9
        p.apply(ev)
        x = p.exposure_krw
        peak = max(peak, x)
        if x > max_exposure_krw + EXPOSURE_SLACK_KRW:
            problems.append(f"exposure {x:,.0f} KRW > max {max_exposure_krw:,.0f} after {ev.client_order_id} "
                            f"{ev.status}")
    return peak, problems


def replayed_pnl(events: Iterable[OrderEvent]) -> Portfolio:
    """The ledger's events replayed through the accounting (realized PnL, trades)."""
    clock = {"t": 0.0}
    p = Portfolio(lambda: clock["t"])
    for ev in events:
        clock["t"] = ev.ts_ns / 1e9
        p.apply(ev)
    return p


def check_all(sim_orders: Sequence[dict[str, Any]], data: LedgerData, max_exposure_krw: float, *,
              allow_unresolved: bool = False) -> list[str]:
    """Every invariant of the module docstring at once."""
    return [*duplicate_client_ids(sim_orders),
            *exchange_orders_in_ledger(sim_orders, data.rows),
            *ledger_orders_at_exchange(sim_orders, data.rows, allow_unresolved=allow_unresolved),
            *exposure_history(data.events, max_exposure_krw)[1]]


def report(problems: Sequence[str], limit: int = 20) -> str:
    head = "\n".join(problems[:limit])
    more = f"\n... and {len(problems) - limit} more" if len(problems) > limit else ""
    return f"{len(problems)} problem(s):\n{head}{more}"


__all__ = ["LedgerData", "check_all", "duplicate_client_ids", "exchange_orders_in_ledger", "exposure_history",
           "ledger_orders_at_exchange", "read_ledger", "replayed_pnl", "report"]
