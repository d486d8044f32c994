"""`arbctl report`: one self-contained HTML page about a run, for people.

Four plots (plotly; its JavaScript bundle is embedded once, so the page
works offline and fetches nothing): the premium and its baseline per coin
(with the entry premium of every pair opened), realized PnL over time,
exposure over time, and orders per venue; then the pairs and the events
worth knowing about. What each plot is made of: ``supervisors.report_data``.

``write_report`` is the one entry point, for ``arbctl report`` and for any
other command that leaves a run directory behind (a backtest).
"""

from __future__ import annotations

import html
import os
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisors.report_data import ReportData, collect
from supervisors.trades import LedgerUnreadable, Trade, totals

MAX_POINTS = 4000  # per trace: enough for the eye, small enough for the page
MAX_ROWS = 500  # pairs and events listed (the newest)
PLOTS = ("premium", "pnl", "exposure", "orders")  # the plot divs' ids, in page order


class ReportError(Exception):
    """Why no report was written, in one line."""


def write_report(run_dir: Path, out: Path, since_ns: int = 0) -> None:
    """Write the report of ``run_dir`` (events from ``since_ns`` on) to ``out``.

    Reads the run directory only. The page is written whole or not at all
    (temp file, then rename). ``ReportError`` says why there is none."""
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise ReportError(f"no run directory at {run_dir}")
    if not out.parent.is_dir():
        raise ReportError(f"cannot write {out}: no directory {out.parent}")
    try:
        data = collect(run_dir, since_ns, time.time())
    except LedgerUnreadable as e:
        raise ReportError(str(e)) from None
    except OSError as e:
        raise ReportError(f"cannot read {e.filename or run_dir}: {e.strerror or e}") from None
    if not data.ledger_found and not data.events.files:
        raise ReportError(f"nothing to report in {run_dir}: no ledger and no event log")
    page = render(data)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"cannot write {out}: {e.strerror or e}") from None


# -- plots ----------------------------------------------------------------------------

def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts)  # naive local time: the axis reads as the trades table does


def thin(xs: Sequence[float], ys: Sequence[Any], limit: int = MAX_POINTS) -> tuple[list[float], list[Any]]:
    """At most ~``limit`` points: per bucket the first, lowest and highest,
    so peaks (of exposure, of the premium) survive the thinning, and the
    first ``None`` of every gap, so the line still breaks there."""
    n = len(xs)
    if n <= limit:
        return list(xs), list(ys)
    size = -(-n * 3 // limit)
    keep: set[int] = {n - 1}
    keep.update(i for i in range(n) if ys[i] is None and (i == 0 or ys[i - 1] is not None))
    for start in range(0, n, size):
        keep.add(start)
        idx = [i for i in range(start, min(start + size, n)) if ys[i] is not None]
        if idx:
            keep.update((min(idx, key=ys.__getitem__), max(idx, key=ys.__getitem__)))
    order = sorted(keep)
    return [xs[i] for i in order], [ys[i] for i in order]


def _figure(title: str, ytitle: str, empty: str | None) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(title=title, height=360, margin={"l": 70, "r": 30, "t": 50, "b": 40},
                      template="plotly_white", hovermode="x unified",
                      legend={"orientation": "h", "y": -0.15})
    fig.update_yaxes(title_text=ytitle)
    fig.update_xaxes(type="date")
    if empty:
        fig.add_annotation(text=empty, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return fig


def premium_figure(d: ReportData) -> Any:
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    series = d.events.premium
    entries: dict[str, list[Trade]] = {}
    for t in d.trades:
        if t.pair.entry_premium_pct and t.pair.opened_at * 1e9 >= d.since_ns:
            entries.setdefault(t.pair.symbol, []).append(t)
    empty = None if series or entries else (
        "no premium samples in the event log (report.premium_sample_s is 0, or the run predates them)")
    fig = _figure("Premium and baseline per coin", "premium, %", empty)
    for i, sym in enumerate(sorted(set(series) | set(entries))):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        s = series.get(sym)
        if s is not None:
            x, y = thin(s.ts, s.premium_pct)
            fig.add_trace(go.Scatter(x=[_when(t) for t in x], y=y, mode="lines", name=f"{sym} premium",
                                     line={"color": colour, "width": 1.5}, connectgaps=False))
            x, y = thin(s.ts, s.baseline_pct)
            fig.add_trace(go.Scatter(x=[_when(t) for t in x], y=y, mode="lines", name=f"{sym} baseline",
                                     line={"color": colour, "width": 1.5, "dash": "dash"}, connectgaps=False))
        if sym in entries:
            ts = entries[sym][-MAX_POINTS:]
            fig.add_trace(go.Scatter(
                x=[_when(t.pair.opened_at) for t in ts], y=[t.pair.entry_premium_pct for t in ts],
                mode="markers", name=f"{sym} pair opened", marker={"color": colour, "symbol": "triangle-up",
                                                                   "size": 9, "line": {"width": 1}},
                text=[f"{t.pair.pair_id} {t.pair.direction} {t.pair.state}" for t in ts],
                hovertemplate="%{text}<br>entry %{y:.3f}%<extra></extra>"))
    return fig


def pnl_figure(d: ReportData) -> Any:
    import plotly.graph_objects as go

    fig = _figure("Realized PnL" + (" since the window's start" if d.since_ns else ""), "KRW",
                  None if d.points else "no order events in the ledger")
    if d.points:
        x, y = thin([p.ts for p in d.points], [p.realized_pnl_krw for p in d.points])
        fig.add_trace(go.Scatter(x=[_when(t) for t in x], y=y, mode="lines", line_shape="hv",
                                 name="realized PnL", line={"color": "#2ca02c"}))
    return fig


def exposure_figure(d: ReportData) -> Any:
    import plotly.graph_objects as go

    fig = _figure("Exposure (KRW value held, priced as the pairs were sized)", "KRW",
                  None if d.points else "no order events in the ledger")
    if d.points:
        x, y = thin([p.ts for p in d.points], [p.exposure_krw for p in d.points])
        fig.add_trace(go.Scatter(x=[_when(t) for t in x], y=y, mode="lines", line_shape="hv",
                                 name="exposure", fill="tozeroy", line={"color": "#ff7f0e"}))
    return fig


_BUCKETS_S = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 86_400)


def bucket_s(span_s: float, bars: int = 60) -> int:
    """The smallest round bucket that shows ``span_s`` in at most ~``bars`` bars."""
    return next((b for b in _BUCKETS_S if span_s / b <= bars), _BUCKETS_S[-1])


def orders_figure(d: ReportData) -> Any:
    """Counted here into round buckets, so the page carries a few numbers per
    venue rather than a timestamp per order (a busy day has 100,000s)."""
    import plotly.graph_objects as go

    times = [r.created_ns / 1e9 for r in d.orders]
    size = bucket_s(max(times) - min(times)) if times else 1
    fig = _figure(f"Orders per venue (per {_duration(size)})", "orders",
                  None if d.orders else "no orders in the ledger")
    fig.update_layout(barmode="stack", hovermode="x")
    for venue in sorted({r.venue for r in d.orders}):
        counts = Counter(int(r.created_ns / 1e9 // size) * size for r in d.orders if r.venue == venue)
        starts = sorted(counts)
        fig.add_trace(go.Bar(x=[_when(t + size / 2) for t in starts], y=[counts[t] for t in starts],
                             width=size * 1000, name=venue))
    return fig


def _duration(seconds: int) -> str:
    for unit, n in (("day", 86_400), ("h", 3600), ("min", 60)):
        if seconds >= n and seconds % n == 0:
            return f"{seconds // n} {unit}" if unit != "day" else "day"
    return f"{seconds} s"


# -- page -----------------------------------------------------------------------------

def _local(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    e = html.escape
    out = ["<table><thead><tr>", *(f"<th>{e(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _pairs_table(trades: list[Trade]) -> str:
    rows = []
    for t in trades[-MAX_ROWS:]:
        p = t.pair
        rows.append((p.pair_id, p.symbol, p.direction, p.state, _local(p.opened_at),
                     _local(p.closed_at) if p.closed_at is not None else "", f"{t.traded_qty:.8g}",
                     f"{t.filled_legs}/{len(t.legs)}",
                     f"{p.entry_premium_pct:+.3f}%" if p.entry_premium_pct else "",
                     "" if p.realized_pnl_krw is None else f"{p.realized_pnl_krw:+,.0f}", t.note))
    return _table(("pair", "coin", "direction", "state", "opened", "closed", "qty", "filled legs",
                   "entry premium", "PnL KRW", "note"), rows)


def _event_detail(rec: dict[str, Any]) -> str:
    skip = {"ts", "event_type", "actor"}
    return ", ".join(f"{k}={v}" for k, v in rec.items() if k not in skip)[:200]


def _summary(d: ReportData) -> str:
    tot = totals(d.trades, d.history)
    by_venue: Counter[tuple[str, str]] = Counter((r.venue, r.status) for r in d.orders)
    orders = "; ".join(f"{v} {s} {n:,}" for (v, s), n in sorted(by_venue.items())) or "none"
    states = ", ".join(f"{n} {s}" for s, n in tot["by_state"].items()) or "none"
    window = f"from {_local(d.since_ns / 1e9)}" if d.since_ns else "the whole run"
    notes = []
    if not d.ledger_found:
        notes.append("no ledger in this run directory: no pairs, PnL, exposure or orders")
    if not d.events.files:
        notes.append("no event log in this run directory: no premium, no events")
    if d.events.skipped_lines:
        notes.append(f"{d.events.skipped_lines:,} unreadable event-log line(s) skipped")
    rows = [("run directory", str(d.run_dir)), ("window", window), ("generated", _local(d.now)),
            ("pairs", f"{tot['pairs']:,} ({states})"),
            ("realized PnL in the window", f"{tot['realized_pnl_krw']:+,.0f} KRW"),
            ("exposure at the ledger's end", f"{tot['exposure_krw']:,.0f} KRW"),
            ("orders", orders)]
    return _table(("", ""), rows) + "".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 13px; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; } .note { color: #a15c00; } .plot { margin: 1em 0; }
"""


def time_range(d: ReportData) -> tuple[datetime, datetime] | None:
    """One time axis for every plot (what happened at once lines up): from
    the window's first data to its last, padded a little."""
    ts = [t for s in d.events.premium.values() for t in (s.ts[:1] + s.ts[-1:])]
    ts += [p.ts for p in d.points[:1] + d.points[-1:]]
    ts += [r.created_ns / 1e9 for r in d.orders[:1] + d.orders[-1:]]
    if not ts:
        return None
    lo, hi = min(ts), max(ts)
    pad = max((hi - lo) * 0.01, 0.5)
    return _when(lo - pad), _when(hi + pad)


def render(d: ReportData) -> str:
    """The whole page. The first plot carries plotly.js (include_plotlyjs=True);
    the others use it. Nothing on the page refers to another file or host."""
    figures = (premium_figure(d), pnl_figure(d), exposure_figure(d), orders_figure(d))
    span = time_range(d)
    if span is not None:
        for fig in figures:
            fig.update_xaxes(range=list(span))
    plots = [fig.to_html(full_html=False, include_plotlyjs=(i == 0), div_id=div, default_width="100%",
                         config={"displaylogo": False, "responsive": True})
             for i, (fig, div) in enumerate(zip(figures, PLOTS, strict=True))]
    ev = d.events
    counts = _table(("event", "count"), sorted(ev.counts.items()))
    notable = ev.notable[-MAX_ROWS:]
    events = _table(("time", "event", "actor", "detail"),
                    [(_local(r["ts"]), r.get("event_type", ""), r.get("actor", ""), _event_detail(r))
                     for r in notable])
    title = f"arbd report: {d.run_dir.name}"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>", _summary(d),
        *(f'<div class="plot">{p}</div>' for p in plots),
        f"<h2>Pairs ({len(d.trades):,}{', the newest ' + str(MAX_ROWS) if len(d.trades) > MAX_ROWS else ''})</h2>",
        _pairs_table(d.trades) if d.trades else "<p>none</p>",
        "<h2>Events in the event log</h2>", counts if ev.counts else "<p>none</p>",
        f"<h2>Events worth knowing ({', '.join(sorted(_shown(ev.notable)))})</h2>" if notable
        else "<h2>Events worth knowing</h2><p>none (no halt, fail-closed, restart, breaker, ...)</p>",
        events if notable else "",
        "</body></html>", ""])


def _shown(records: list[dict[str, Any]]) -> set[str]:
    return {str(r.get("event_type")) for r in records}
