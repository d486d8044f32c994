"""`arbctl trades`: the ledger's pairs for people (and as one JSON document).

The ledger is read, never written (``Ledger.reader``), so this works with or
without a daemon running. Pairs, their states and their PnL are not derived
here: the ledger's order events are replayed through
``arbitrage.accounting.Portfolio``, exactly as the position actor rebuilds
itself on start (its events, then its unresolved legs as in flight), so a
report can never disagree with what the daemon traded on. The replay also
gives the PnL and exposure history that ``arbctl report`` plots.

``--since`` keeps a pair when it opened or closed at or after that time, or
is not closed yet (it still holds or moves something).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from arbitrage.accounting import CLOSED, FAILED, OPEN, Pair, Portfolio
from storage.ledger import Ledger, OrderRow


class LedgerUnreadable(Exception):
    """The ledger file exists but is not one (one line, for the CLI)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Trade:
    """One pair as a person reads it: the accounting's view and its legs."""

    pair: Pair
    legs: tuple[OrderRow, ...]

    @property
    def traded_qty(self) -> float:
        """Coin bought and sold by the opening legs (the pair's size), whatever it holds now."""
        return max((r.filled_qty for r in self.legs if r.action == "open"), default=0.0)

    @property
    def filled_legs(self) -> int:
        return sum(1 for r in self.legs if r.filled_qty > 0)

    @property
    def note(self) -> str:
        """The one thing worth knowing that the columns do not say."""
        p = self.pair
        if any(r.action == "unwind" for r in self.legs):
            return "unwound"
        if p.state == FAILED:
            why = next((r.reason for r in self.legs if r.reason), "")
            return f"nothing filled{': ' + why[:60] if why else ''}"
        if p.in_flight:
            return f"{p.in_flight} in flight"
        if p.state == OPEN and not p.balanced:
            return "legs unequal (repair due)"
        return ""


@dataclass(frozen=True, slots=True)
class Point:
    """The portfolio after one ledger event."""

    ts: float  # seconds; never earlier than the point before
    realized_pnl_krw: float
    exposure_krw: float


@dataclass(frozen=True, slots=True)
class LedgerHistory:
    trades: list[Trade]  # by opening time
    points: list[Point]
    orders: list[OrderRow]
    realized_pnl_krw: float
    exposure_krw: float


def read_history(ledger_path: Path) -> LedgerHistory:
    """Replay the whole ledger (a pair's PnL needs all its events, whatever
    ``--since`` says). ``FileNotFoundError`` without a ledger file,
    ``LedgerUnreadable`` for one that is not a ledger."""
    try:
        led = Ledger.reader(ledger_path)
    except sqlite3.Error as e:
        raise LedgerUnreadable(f"cannot open the ledger {ledger_path}: {e}") from None
    try:
        try:
            events = list(led.events()) + led.pending_events()
            orders = led.orders()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):  # created, the executor has not written its schema yet
                events, orders = [], []
            else:
                raise LedgerUnreadable(f"cannot read the ledger {ledger_path}: {e}") from None
        except sqlite3.DatabaseError as e:
            raise LedgerUnreadable(f"{ledger_path} is not a readable ledger: {e}") from None
    finally:
        led.close()
    clock = {"t": 0.0}
    book = Portfolio(lambda: clock["t"])
    points: list[Point] = []
    for ev in events:
        clock["t"] = max(clock["t"], ev.ts_ns / 1e9)
        book.apply(ev)
        points.append(Point(clock["t"], book.realized_pnl_krw, book.exposure_krw))
    legs: dict[str, list[OrderRow]] = {}
    for r in orders:
        legs.setdefault(r.pair_id, []).append(r)
    pairs = book.snapshot()["pairs"]
    assert isinstance(pairs, dict)
    trades = sorted((Trade(pair=p, legs=tuple(legs.get(pid, ()))) for pid, p in pairs.items()),
                    key=lambda t: (t.pair.opened_at, t.pair.pair_id))
    return LedgerHistory(trades, points, orders, book.realized_pnl_krw, book.exposure_krw)


def select(trades: list[Trade], since_ns: int) -> list[Trade]:
    if since_ns <= 0:
        return list(trades)
    since = since_ns / 1e9
    return [t for t in trades
            if t.pair.opened_at >= since or (t.pair.closed_at is not None and t.pair.closed_at >= since)
            or t.pair.state not in (CLOSED, FAILED)]


def totals(trades: list[Trade], history: LedgerHistory) -> dict[str, Any]:
    by_state: dict[str, int] = {}
    for t in trades:
        by_state[t.pair.state] = by_state.get(t.pair.state, 0) + 1
    return {"pairs": len(trades), "by_state": dict(sorted(by_state.items())),
            "realized_pnl_krw": round(sum(t.pair.realized_pnl_krw or 0.0 for t in trades), 2),
            "exposure_krw": round(history.exposure_krw, 2)}


# -- JSON ---------------------------------------------------------------------------

def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _leg_json(r: OrderRow) -> dict[str, Any]:
    return {"client_order_id": r.client_order_id, "intent_id": r.intent_id, "action": r.action,
            "venue": r.venue, "symbol": r.symbol, "side": r.side, "qty": r.qty, "price": r.price,
            "status": r.status, "filled_qty": r.filled_qty, "avg_price": r.avg_price,
            "fee_krw": r.fee_krw, "reason": r.reason, "created_at": iso(r.created_ns / 1e9),
            "updated_at": iso(r.updated_ns / 1e9)}


def trade_json(t: Trade, now: float) -> dict[str, Any]:
    p = t.pair
    end = p.closed_at if p.closed_at is not None else (None if p.state == FAILED else now)
    return {"pair_id": p.pair_id, "symbol": p.symbol, "direction": p.direction, "state": p.state,
            "opened_at": iso(p.opened_at), "closed_at": iso(p.closed_at),
            "held_s": round(end - p.opened_at, 3) if end is not None else None,
            "qty_traded": t.traded_qty, "qty_held": p.qty, "upbit_qty": p.upbit_qty,
            "binance_qty": p.binance_qty,
            "entry_premium_pct": round(p.entry_premium_pct, 4),
            "realized_pnl_krw": None if p.realized_pnl_krw is None else round(p.realized_pnl_krw, 2),
            "exposure_krw": round(p.exposure_krw, 2), "legs_filled": t.filled_legs, "note": t.note,
            "legs": [_leg_json(r) for r in t.legs]}


def document(history: LedgerHistory, since_ns: int, now: float) -> dict[str, Any]:
    chosen = select(history.trades, since_ns)
    return {"since": iso(since_ns / 1e9) if since_ns > 0 else None, "generated_at": iso(now),
            "totals": totals(chosen, history), "pairs": [trade_json(t, now) for t in chosen]}


# -- table ----------------------------------------------------------------------------

def _local(ts: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(ts).strftime(fmt)


def held(seconds: float) -> str:
    """``0.4s``, ``5:03`` (m:ss), ``2:05:03`` (h:mm:ss) or ``6d 00:31`` (d hh:mm)."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    s = int(seconds)
    d, rem = divmod(s, 86_400)
    h, rem = divmod(rem, 3600)
    if d:
        return f"{d}d {h:02d}:{rem // 60:02d}"
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


_COLUMNS = (("PAIR", "<16"), ("COIN", "<6"), ("DIRECTION", "<11"), ("STATE", "<8"), ("OPENED", "<20"),
            ("CLOSED", "<10"), ("HELD", ">8"), ("QTY", ">12"), ("LEGS", ">5"), ("FILLED", ">7"),
            ("PREMIUM", ">9"), ("PNL KRW", ">11"))


def render_table(history: LedgerHistory, since_ns: int, now: float, color: bool = False) -> str:
    from supervisors.status_table import Paint

    paint = Paint(color)
    chosen = select(history.trades, since_ns)
    head = "  ".join(f"{name:{fmt}}" for name, fmt in _COLUMNS) + "  NOTE"
    lines = [paint(head, "dim")]
    for t in chosen:
        p = t.pair
        closed = ""
        if p.closed_at is not None:
            same_day = _local(p.closed_at, "%Y-%m-%d") == _local(p.opened_at, "%Y-%m-%d")
            closed = _local(p.closed_at, "%H:%M:%S" if same_day else "%m-%d %H:%M")
        end = p.closed_at if p.closed_at is not None else (None if p.state == FAILED else now)
        pnl = "" if p.realized_pnl_krw is None else f"{p.realized_pnl_krw:+,.0f}"
        cells = (p.pair_id, p.symbol, p.direction or "-", p.state, _local(p.opened_at), closed or "-",
                 held(end - p.opened_at) if end is not None else "-", f"{t.traded_qty:.8g}", str(len(t.legs)),
                 f"{t.filled_legs}/{len(t.legs)}",
                 f"{p.entry_premium_pct:+.3f}%" if p.entry_premium_pct else "-", pnl or "-")
        row = "  ".join(f"{c:{fmt}}" for c, (_, fmt) in zip(cells, _COLUMNS, strict=True))
        if pnl:  # colour only the PnL cell: the widths above are of plain text
            width = int(_COLUMNS[-1][1][1:])
            row = row[:-width] + paint(f"{pnl:>{width}}", "green" if p.realized_pnl_krw >= 0 else "red")
        lines.append(row + (f"  {t.note}" if t.note else ""))
    tot = totals(chosen, history)
    states = ", ".join(f"{n} {s}" for s, n in tot["by_state"].items())
    window = f" since {_local(since_ns / 1e9)}" if since_ns > 0 else ""
    if not chosen:
        return f"no pairs{window} in the ledger"
    lines += ["", f"{tot['pairs']} pair(s){window} ({states})"
              f"   realized PnL {tot['realized_pnl_krw']:+,.0f} KRW"
              f"   exposure {tot['exposure_krw']:,.0f} KRW"]
    return "\n".join(lines)
