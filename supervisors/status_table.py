"""`arbctl status` for people: a compact table, coloured on a terminal."""

from __future__ import annotations

from typing import Any

from supervisors.status_execution import execution_lines

_COLORS = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}


class Paint:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, color: str) -> str:
        if not self.enabled:
            return text
        return f"\033[{_COLORS[color]}m{text}\033[0m"


def _num(v: Any, fmt: str = "{:,.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _uptime(s: float) -> str:
    s = int(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}"


def _warm_cell(a: dict[str, Any], p: Paint) -> str:
    """``yes``, or ``no`` with what the actor waits for and how long it has."""
    if "warm" not in a:
        return "-"
    if a["warm"]:
        return p("yes", "green")
    return p("no", "yellow") + f"  waiting {a.get('waiting_s', 0.0):.1f}s for {a.get('waiting_for') or '?'}"


def render(st: dict[str, Any], color: bool) -> str:
    p = Paint(color)
    ts = st["trading_state"]
    ts_col = {"armed": "green", "halted": "red"}.get(ts, "yellow")
    lines = [
        p(f"arbd  pid {st.get('pid')}  mode {st['mode']}  up {_uptime(st.get('uptime_s', 0))}", "bold"),
        f"trading  {p(ts.upper(), ts_col)}"
        + (f"  (halt: {st['halt_reason']})" if ts == "halted" and st.get("halt_reason") else "")
        + ("  " + p("FAIL-CLOSED", "red") + ": " + "; ".join(st["fail_closed_reasons"])
           if st["fail_closed"] else "  " + p("orders may flow", "green") if ts == "armed" else ""),
        "",
    ]
    hosts = st.get("hosts") or []
    several = len(hosts) > 1  # then each actor is shown as name@host
    width = max([14] + [len(a["name"]) + len(a.get("host", "")) + 3 for a in st["actors"]]) if several else 14
    lines.append(p(f"{'ACTOR':<{width}}{'STATE':<12}{'PID':>8}{'UPTIME':>10}{'RESTARTS':>10}{'HEARTBEAT':>11}"
                   f"{'RSS MB':>9}  {'WARM':<5}", "dim"))
    for a in st["actors"]:
        col = {"running": "green", "starting": "yellow", "restarting": "yellow"}.get(a["state"], "red")
        hb = a["heartbeat_age_s"]
        state = p(f"{a['state']:<12}", col)
        name = f"{a['name']}@{a.get('host', '')}" if several else a["name"]
        lines.append(
            f"{name:<{width}}{state}{a['pid'] or '-':>8}"
            f"{_uptime(a['uptime_s']):>10}{a['restarts']:>10}"
            f"{(f'{hb:.1f}s' if hb is not None else '-'):>11}{_num(a['rss_mb'], '{:.0f}'):>9}  "
            + _warm_cell(a, p))
    if several:
        lines += ["", p(f"{'HOST':<10}{'STATE':<15}{'ADDRESS':<18}{'CLOCK OFFSET':>14}{'RTT':>10}  ACTORS", "dim")]
        for h in hosts:
            col = "green" if h["state"] == "up" else "red"
            off, rtt = h.get("clock_offset_ms"), h.get("rtt_ms")
            state = p(f"{h['state']:<15}", col)
            off_cell = f"{off:+.1f} ms" if off is not None else "-"
            rtt_cell = f"{rtt:.2f} ms" if rtt is not None else "-"
            lines.append(f"{h['name']:<10}{state}{h.get('address') or '-':<18}{off_cell:>14}{rtt_cell:>10}  "
                         + ", ".join(h.get("actors", [])))
    lines += ["", p(f"{'FEED':<18}{'BID':>16}{'ASK':>16}{'AGE':>8}", "dim")]
    for f in st["feeds"]:
        age = f["age_s"]
        stale = age is not None and age > 5
        lines.append(f"{f['venue'] + ' ' + f['symbol']:<18}{_num(f['bid'], '{:,.4f}'):>16}"
                     f"{_num(f['ask'], '{:,.4f}'):>16}{p(f'{age:.1f}s' if age is not None else '-', 'red' if stale else 'green'):>8}")
    if st["premium_pct"]:
        lines += ["", "premium  " + "  ".join(f"{k} {v:+.3f}%" for k, v in sorted(st["premium_pct"].items()))]
    g, o, t = st["guard"], st["orders"], st.get("trades", {})
    lines += [
        "",
        f"guard    allowed {g['allowed']}  blocked {g['blocked']}  daily pnl {g['daily_pnl']:,.2f}",
        f"orders   open {o['open']}  filled {o['filled']}  cancelled {o['cancelled']}"
        f"  rejected {o.get('rejected', 0)}",
        f"trades   opened {t.get('opened', 0)}  closed {t.get('closed', 0)}  open pairs {t.get('open_pairs', 0)}"
        f"  exposure {st.get('exposure_krw', 0):,.0f} KRW",
        "pnl      " + p(f"{st['pnl']:,.0f} KRW", "green" if st["pnl"] >= 0 else "red"),
    ]
    if "behaviour" in st:
        lines += [""] + execution_lines(st)
    return "\n".join(lines)
