"""The status object (the `arbctl status --json` contract) and the run summary,
built from the supervisor's child table and the bus's last-value cache."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from messages import BookTop, OrderStats, PositionState, TradingState, WarmState, decode
from messages.codec import DecodeError
from supervisors.status_execution import execution_status

if TYPE_CHECKING:
    from supervisors.daemon import Daemon
    from supervisors.supervisor import Child


def _warmth(d: Daemon, c: Child, now_m: float, now_ns: int) -> dict[str, Any]:
    """``warm``, ``waiting_for``, ``waiting_s`` of one actor: from the WarmState
    its current incarnation published (actors.base), else from its process state."""
    if c.state != "running":
        since = c.started_at if c.state == "starting" else (c.last_hb_at or c.started_at)
        return {"warm": False, "waiting_for": f"process ({c.state})",
                "waiting_s": round(max(0.0, now_m - since), 3) if since else 0.0}
    frame = d.bus.last.get(f"warm.{c.spec.name}".encode())
    env = None
    if frame is not None:
        try:
            env = decode(frame)
        except DecodeError:
            env = None
    if env is None or type(env.msg) is not WarmState or env.msg.incarnation != c.incarnation:
        return {"warm": False, "waiting_for": "first warm report",
                "waiting_s": round(max(0.0, now_m - c.started_at), 3)}
    m = env.msg
    return {"warm": m.warm, "waiting_for": m.waiting_for,
            "waiting_s": 0.0 if m.warm else round(max(0.0, (now_ns - m.since_ns) / 1e9), 3)}


def _persisted_state(d: Daemon) -> dict[str, Any]:
    try:
        return json.loads(d.run.trading_state_file.read_text())
    except (OSError, ValueError):
        return {}


def build_status(d: Daemon) -> dict[str, Any]:
    now_m = time.monotonic()
    now_ns = time.time_ns()
    actors = []
    nodes = getattr(d, "nodes", None)
    offsets = nodes.offsets_ns() if nodes is not None else {d.supervisor.host: 0}
    for name in d.supervisor.order:
        c = d.supervisor.children[name]
        hb = c.last_hb
        remote_up = c.spec.host != d.supervisor.host and c.state in ("starting", "running") and bool(c.pid)
        actors.append({
            "name": name,
            "host": c.spec.host,
            "clock_offset_ms": round(offsets[c.spec.host] / 1e6, 3) if c.spec.host in offsets else None,
            "pid": c.pid,
            "state": c.state,
            "uptime_s": round(now_m - c.started_at, 3) if c.handle is not None or remote_up else 0.0,
            "restarts": c.restarts,
            "heartbeat_age_s": round(now_m - c.last_hb_at, 3) if hb is not None else None,
            "rss_mb": round(hb.rss_mb, 1) if hb is not None else None,
            "loop_latency_ms": round(hb.loop_latency_ms, 3) if hb is not None else None,
            **_warmth(d, c, now_m, now_ns),
        })
    feeds = []
    premium: dict[str, float] = {}
    for topic, frame in sorted(d.bus.last.items()):
        if topic.startswith(b"book."):
            try:
                env = decode(frame)
            except DecodeError:
                continue
            # A book from another host carries that host's clock: read it on ours.
            m = nodes.clocks.correct(env.msg, env.sender) if nodes is not None else env.msg
            if isinstance(m, BookTop):
                feeds.append({"venue": m.venue, "symbol": m.symbol, "bid": m.bid, "ask": m.ask,
                              "age_s": round((now_ns - m.recv_ts_ns) / 1e9, 3) if m.recv_ts_ns else None})
        elif topic.startswith(b"opp."):
            try:
                m = decode(frame).msg
            except DecodeError:
                continue
            premium[m.symbol] = round(m.premium_pct, 4)  # type: ignore[attr-defined]
    ts = d.bus.latest("state")
    guard_up = d.supervisor.children.get("guard")
    guard_running = guard_up is not None and guard_up.state == "running"
    if isinstance(ts, TradingState) and guard_running:
        trading_state, fail_closed, reasons = ts.state, ts.fail_closed, list(ts.reasons)
        guard = {"allowed": ts.allowed, "blocked": ts.blocked, "daily_pnl": ts.daily_pnl}
        halt_reason = ts.halt_reason
    else:
        persisted = _persisted_state(d)
        trading_state = persisted.get("state", "disarmed")
        halt_reason = persisted.get("halt_reason", "")
        fail_closed = True
        reasons = ["no trading state from the guard yet" if guard_up is not None and guard_up.handle
                   is not None else "guard not running"]
        guard = {"allowed": 0, "blocked": 0, "daily_pnl": 0.0}
    for a in actors:
        if a["state"] != "running" and a["name"] not in ("sim",):
            fail_closed = True
            why = f"actor {a['name']} {a['state']}"
            if why not in reasons:  # the guard may have been told already, in the same words
                reasons.append(why)
    pos = d.bus.latest("position")
    ost = d.bus.latest("orderstats")
    return {
        "mode": d.cfg.mode,
        "pid": d.pid,
        "run_dir": str(d.run.root),
        "uptime_s": round(now_m - d.started, 3),
        "trading_state": trading_state,
        "halt_reason": halt_reason,
        "fail_closed": fail_closed,
        "fail_closed_reasons": reasons,
        "actors": actors,
        "feeds": feeds,
        "premium_pct": premium,
        "guard": guard,
        "orders": ({"open": ost.open, "filled": ost.filled, "cancelled": ost.cancelled,
                    "rejected": ost.rejected, "sent": ost.sent}
                   if isinstance(ost, OrderStats) else {"open": 0, "filled": 0, "cancelled": 0,
                                                        "rejected": 0, "sent": 0}),
        "pnl": round(pos.realized_pnl_krw, 2) if isinstance(pos, PositionState) else 0.0,
        "exposure_krw": round(pos.exposure_krw, 2) if isinstance(pos, PositionState) else 0.0,
        "trades": ({"opened": pos.trades_opened, "closed": pos.trades_closed, "open_pairs": pos.open_pairs}
                   if isinstance(pos, PositionState) else {"opened": 0, "closed": 0, "open_pairs": 0}),
        **execution_status(d, trading_state, fail_closed),
        "hosts": nodes.status() if nodes is not None else [
            {"name": d.supervisor.host, "state": "up", "clock_offset_ms": 0.0, "rtt_ms": None,
             "actors": list(d.supervisor.order)}],
    }


def run_summary(d: Daemon) -> dict[str, Any]:
    pos = d.bus.latest("position")
    ost = d.bus.latest("orderstats")
    engine = d.supervisor.children.get("engine")
    loops = 0.0
    loop_ms_total = 0.0
    if engine is not None and engine.last_hb is not None:
        loops = engine.last_hb.counters.get("loops", 0.0)
        loop_ms_total = engine.last_hb.counters.get("loop_ms_total", 0.0)
    loops += d.metrics.carried("engine", "loops")
    loop_ms_total += d.metrics.carried("engine", "loop_ms_total")
    return {
        "duration_s": round(time.monotonic() - d.started, 1),
        "loops": int(loops),
        "trades_opened": pos.trades_opened if isinstance(pos, PositionState) else 0,
        "trades_closed": pos.trades_closed if isinstance(pos, PositionState) else 0,
        "total_pnl_krw": round(pos.realized_pnl_krw, 2) if isinstance(pos, PositionState) else 0.0,
        "active_orders": ost.open if isinstance(ost, OrderStats) else 0,
        "avg_loop_ms": round(loop_ms_total / loops, 4) if loops else 0.0,
        "exit_reason": d._stop_reason,
    }


def format_summary(s: dict[str, Any]) -> str:
    return "\n".join([
        "=== arbd run summary ===",
        f"Duration:       {s['duration_s']:.1f}s",
        f"Loops:          {s['loops']}",
        f"Trades Opened:  {s['trades_opened']}",
        f"Trades Closed:  {s['trades_closed']}",
        f"Total PnL:      {s['total_pnl_krw']:,.0f} KRW",
        f"Active Orders:  {s['active_orders']}",
        f"Avg Loop Time:  {s['avg_loop_ms']:.3f}ms",
        f"Exit:           {s['exit_reason']}",
    ])


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def progress_line(d: Daemon) -> str:
    """One line for long runs: elapsed / total, trades, PnL, restarts, trading state."""
    elapsed = time.monotonic() - d.started
    total = d.max_runtime_s or 0.0
    pct = f" ({100 * elapsed / total:.1f}%)" if total else ""
    pos = d.bus.latest("position")
    ts = d.bus.latest("state")
    restarts = sum(c.restarts for c in d.supervisor.children.values())
    trades = f"{pos.trades_opened}/{pos.trades_closed}" if isinstance(pos, PositionState) else "0/0"
    pnl = pos.realized_pnl_krw if isinstance(pos, PositionState) else 0.0
    state = ts.state + (" fail-closed" if ts.fail_closed else "") if isinstance(ts, TradingState) else "?"
    return (f"longrun {_hms(elapsed)} / {_hms(total)}{pct}  trades opened/closed {trades}  "
            f"pnl {pnl:,.0f} KRW  restarts {restarts}  trading {state}")
