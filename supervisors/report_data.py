"""What ``arbctl report`` plots, read from a run directory (never written).

Two sources, each the truth for its part:

- the ledger (``state/ledger.sqlite``), replayed through the accounting
  (``supervisors.trades.read_history``): pairs, realized PnL and exposure
  after every order event, orders per venue;
- the event log (``logs/events/longrun_events_*.jsonl``): the premium and
  its baseline per coin from the engine's ``premium`` samples
  (``report.premium_sample_s``), and the events a person wants to see next
  to them (halts, fail-closed, restarts, breakers, ...).

A line of the event log that is not a JSON object is skipped and counted; a
missing ledger or event log is an empty part, said on the page.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storage.ledger import OrderRow
from supervisors.runfiles import RunDir
from supervisors.trades import LedgerHistory, Point, Trade, read_history, select

# Events a person looks for next to the plots (the rest are only counted).
NOTABLE = frozenset({"halt", "arm", "fail_closed", "fail_closed_cleared", "restart", "recycle", "escalate",
                     "breaker", "naked_exposure", "cancel_all", "drift_alert", "rebalance", "session_stop"})
# A pair's legs fill one after the other, so every open is naked for a moment
# (and logged): only a naked leg that lasted this long is worth a line.
NAKED_WORTH_S = 1.0
SAMPLE = "premium"


def worth_listing(rec: dict[str, Any]) -> bool:
    kind = rec.get("event_type")
    if kind == "naked_exposure":
        age = _number(rec.get("age_s"))
        return age is not None and age >= NAKED_WORTH_S
    return kind in NOTABLE


GAP_FACTOR = 3.0  # samples further apart than this many usual intervals: the line breaks


@dataclass
class PremiumSeries:
    ts: list[float] = field(default_factory=list)
    premium_pct: list[float | None] = field(default_factory=list)  # None: a gap (no quotes)
    baseline_pct: list[float | None] = field(default_factory=list)

    def sort_and_mark_gaps(self) -> None:
        """In time order, with a ``None`` point wherever samples stopped for
        longer than ``GAP_FACTOR`` usual intervals (a silent feed, a daemon
        that was down): the plot breaks there instead of drawing a line."""
        order = sorted(range(len(self.ts)), key=self.ts.__getitem__)
        ts = [self.ts[i] for i in order]
        prem = [self.premium_pct[i] for i in order]
        base = [self.baseline_pct[i] for i in order]
        steps = sorted(b - a for a, b in zip(ts, ts[1:], strict=False))
        usual = steps[len(steps) // 2] if steps else 0.0
        self.ts, self.premium_pct, self.baseline_pct = ts[:1], prem[:1], base[:1]
        for i in range(1, len(ts)):
            if usual > 0 and ts[i] - ts[i - 1] > GAP_FACTOR * usual:
                self.ts.append((ts[i - 1] + ts[i]) / 2)
                self.premium_pct.append(None)
                self.baseline_pct.append(None)
            self.ts.append(ts[i])
            self.premium_pct.append(prem[i])
            self.baseline_pct.append(base[i])


@dataclass
class EventLogData:
    premium: dict[str, PremiumSeries] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    notable: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    skipped_lines: int = 0


@dataclass(frozen=True)
class ReportData:
    run_dir: Path
    since_ns: int
    now: float
    ledger_found: bool
    history: LedgerHistory
    trades: list[Trade]  # of the window
    points: list[Point]  # of the window; PnL counted from the window's start
    orders: list[OrderRow]  # created in the window
    events: EventLogData


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def read_event_log(events_dir: Path, since_ns: int) -> EventLogData:
    out = EventLogData()
    since = since_ns / 1e9
    for path in sorted(events_dir.glob("longrun_events_*.jsonl")) if events_dir.is_dir() else []:
        out.files += 1
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                try:
                    rec = json.loads(raw)
                except ValueError:
                    out.skipped_lines += 1
                    continue
                ts = _number(rec.get("ts")) if isinstance(rec, dict) else None
                kind = rec.get("event_type") if isinstance(rec, dict) else None
                if ts is None or not isinstance(kind, str):
                    out.skipped_lines += 1
                    continue
                if ts < since:
                    continue
                out.counts[kind] += 1
                if kind == SAMPLE:
                    _add_sample(out.premium, ts, rec)
                elif worth_listing(rec):
                    out.notable.append(rec)
    for series in out.premium.values():
        series.sort_and_mark_gaps()
    out.notable.sort(key=lambda r: r["ts"])
    return out


def _add_sample(into: dict[str, PremiumSeries], ts: float, rec: dict[str, Any]) -> None:
    prem, base = rec.get("premium_pct"), rec.get("baseline_pct")
    if not isinstance(prem, dict):
        return
    base = base if isinstance(base, dict) else {}
    for sym, v in prem.items():
        p = _number(v)
        if p is None:
            continue
        s = into.setdefault(str(sym), PremiumSeries())
        s.ts.append(ts)
        s.premium_pct.append(p)
        s.baseline_pct.append(_number(base.get(sym)))


def window_points(points: list[Point], since_ns: int) -> list[Point]:
    """The ledger's history from ``since`` on, PnL counted from there (a
    window starts at zero realized; exposure is what it was)."""
    since = since_ns / 1e9
    before = [p for p in points if p.ts < since]
    start = before[-1] if before else None
    base = start.realized_pnl_krw if start is not None else 0.0
    out = [Point(since, 0.0, start.exposure_krw)] if start is not None else []
    out += [Point(p.ts, p.realized_pnl_krw - base, p.exposure_krw) for p in points if p.ts >= since]
    return out


def collect(run_dir: Path, since_ns: int, now: float) -> ReportData:
    run = RunDir.at(run_dir)
    try:
        history = read_history(run.ledger_path)
        found = True
    except FileNotFoundError:
        history, found = LedgerHistory([], [], [], 0.0, 0.0), False
    return ReportData(
        run_dir=run.root, since_ns=since_ns, now=now, ledger_found=found, history=history,
        trades=select(history.trades, since_ns), points=window_points(history.points, since_ns),
        orders=[r for r in history.orders if r.created_ns >= since_ns],
        events=read_event_log(run.events_dir, since_ns))
