"""Soak: the daemon for a long stretch on the embedded exchange at a high
update rate, then a report in ``bench/soak.md``.

``make soak`` (``pytest -m soak -s tests``; never in CI). Settings from the
environment: ``ARBD_SOAK_SECONDS`` (default 600), ``ARBD_SOAK_MODE``
(``live_trading``, the default: every order goes through ccxt to the embedded
exchange and the ledger is checked against it at the end; or ``paper``).
The exchange runs at ``--set sim.update_hz=200``; supervision and watchdog
keep their production timings.

Progress is printed every ~30 s. The report gives each actor's RSS drift per
hour (least-squares slope over its longest incarnation, after a warm-up),
restarts, per-minute percentiles of the pipeline latency histograms
``arbd_quote_to_decision_seconds`` (quote received -> guard decision) and
``arbd_decision_to_ack_seconds`` (guard decision -> the leg's outcome back
in the executor), taken from the metrics endpoint (bucket deltas, interpolated
within a bucket as Prometheus' ``histogram_quantile`` does), and in
live_trading each venue's leg times from the ledger.

The test fails if the daemon dies, an actor restarts, an actor's RSS drifts
by more than ``MAX_DRIFT_PCT_PER_H``, or (live_trading) the ledger and the
exchange disagree - but only after the report is written.
"""

from __future__ import annotations

import math
import os
import platform
import re
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage.ledger import OrderRow
from tests.support.daemon import ROOT
from tests.support.ledger_check import check_all, read_ledger, report
from tests.support.run_daemon import LIVE_TRADING, PAPER, SimDaemon, config, sim_runs, with_keys

SOAK_S = float(os.environ.get("ARBD_SOAK_SECONDS", "600"))
MODE = os.environ.get("ARBD_SOAK_MODE", "live_trading")
UPDATE_HZ = 200
SAMPLE_EVERY_S = 2.0
SCRAPE_EVERY_S = 10.0
PROGRESS_EVERY_S = 30.0
WARMUP_S = min(60.0, SOAK_S / 4)  # RSS settles after imports, caches and the first trades
MAX_DRIFT_PCT_PER_H = 50.0  # a leak, not noise: +50 % of the actor's RSS per hour ...
MIN_DRIFT_SPAN_S = 300.0  # ... judged over at least five minutes (shorter runs only report it)
MAX_EXPOSURE_KRW = 500_000.0
HISTOGRAMS = ("arbd_quote_to_decision_seconds", "arbd_decision_to_ack_seconds")
REPORT = ROOT / "bench" / "soak.md"

_BUCKET = re.compile(r'^(\w+)_bucket\{le="([^"]+)"\} ([0-9.eE+-]+)$')


@dataclass
class Scrape:
    t: float  # seconds since the soak began
    buckets: dict[str, list[tuple[float, float]]]  # histogram -> [(upper bound, cumulative count)]


@dataclass
class Soak:
    t0: float = field(default_factory=time.monotonic)
    rss: dict[str, list[tuple[float, int, float]]] = field(default_factory=dict)  # actor -> (t, pid, MB)
    scrapes: list[Scrape] = field(default_factory=list)
    last_status: dict | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def sample(self, run: SimDaemon) -> dict | None:
        st = run.safe_status()
        if st is None:
            return None
        t = self.elapsed()
        for a in st["actors"]:
            if a["pid"] and a["rss_mb"] is not None and a["state"] == "running":
                self.rss.setdefault(a["name"], []).append((t, a["pid"], a["rss_mb"]))
        self.last_status = st
        return st

    def scrape(self, port: int) -> None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        buckets: dict[str, list[tuple[float, float]]] = {h: [] for h in HISTOGRAMS}
        for line in text.splitlines():
            m = _BUCKET.match(line)
            if m and m.group(1) in buckets:
                buckets[m.group(1)].append((float(m.group(2)), float(m.group(3))))
        self.scrapes.append(Scrape(self.elapsed(), {h: sorted(b) for h, b in buckets.items()}))


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over cumulative (bound, count) buckets."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # past the last finite bucket: its bound is all we know
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / span if span else 1.0)
        lower_bound, lower_count = bound, count
    return None


def delta(a: Scrape | None, b: Scrape, hist: str) -> list[tuple[float, float]]:
    before = dict(a.buckets.get(hist, [])) if a else {}
    out = [(bound, count - before.get(bound, 0.0)) for bound, count in b.buckets.get(hist, [])]
    if any(c < 0 for _, c in out):  # a reset (it should not happen: the exporter carries counts)
        return b.buckets.get(hist, [])
    return out


def per_minute(scrapes: list[Scrape], duration: float) -> list[tuple[int, dict[str, tuple]]]:
    rows = []
    for m in range(max(1, math.ceil((duration - SAMPLE_EVERY_S) / 60.0))):  # no sliver of a last minute
        start, end = m * 60.0, min((m + 1) * 60.0, duration)
        a = next((s for s in reversed(scrapes) if s.t <= start + 1e-9), None)
        b = next((s for s in reversed(scrapes) if s.t <= end + SCRAPE_EVERY_S / 2), None)
        if b is None or (a is not None and b.t <= a.t):
            continue
        cols = {}
        for h in HISTOGRAMS:
            d = delta(a, b, h)
            n = d[-1][1] if d else 0.0
            cols[h] = (int(n), *(quantile(q, d) for q in (0.5, 0.9, 0.99)))
        rows.append((m + 1, cols))
    return rows


def drift(samples: list[tuple[float, int, float]]) -> tuple[float, float, float, float, float] | None:
    """(first MB, last MB, MB per hour, % per hour, span s) over the longest incarnation after warm-up."""
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for t, pid, mb in samples:
        if t >= WARMUP_S:
            by_pid.setdefault(pid, []).append((t, mb))
    if not by_pid:
        return None
    pts = max(by_pid.values(), key=lambda p: p[-1][0] - p[0][0])
    if len(pts) < 3 or pts[-1][0] - pts[0][0] < 10:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mm = sum(v for _, v in pts) / n
    var = sum((t - mt) ** 2 for t, _ in pts)
    slope = sum((t - mt) * (v - mm) for t, v in pts) / var if var else 0.0
    per_h = slope * 3600.0
    return pts[0][1], pts[-1][1], per_h, per_h / mm * 100.0 if mm else 0.0, pts[-1][0] - pts[0][0]


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.2f}"


def leg_times(rows: list[OrderRow]) -> list[str]:
    """Per venue: ledger write -> last outcome of each leg (the REST side of decision->ack)."""
    out = []
    for venue in ("upbit", "binance"):
        d = sorted((r.updated_ns - r.created_ns) / 1e9 for r in rows if r.venue == venue)
        if d:
            out.append(f"| {venue} | {len(d)} | {ms(d[len(d) // 2])} | {ms(d[int(len(d) * 0.9)])} | "
                       f"{ms(d[min(len(d) - 1, int(len(d) * 0.99))])} | {ms(d[-1])} |")
    return out


def write_report(soak: Soak, run: SimDaemon, duration: float, restarts: dict[str, int],
                 unplanned: list[dict], drifts: dict[str, tuple | None], summary: str,
                 problems: list[str], orders_seen: int, rows: list[OrderRow]) -> str:
    st = soak.last_status or {}
    lines = [
        "# Soak run",
        "",
        f"{duration / 60:.1f}-minute run ({duration:.0f} s, `ARBD_SOAK_SECONDS={SOAK_S:g}`), "
        f"`make soak`, generated by `tests/soak/test_soak.py` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"- mode `{MODE}` on the embedded exchange, `--set sim.update_hz={UPDATE_HZ}` "
        "(book updates per second per symbol and venue), production supervision and watchdog timings",
        f"- host: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        f"- trades opened/closed: {st.get('trades', {}).get('opened', 0)}/{st.get('trades', {}).get('closed', 0)}, "
        f"orders {st.get('orders', {})}, realized PnL {st.get('pnl', 0):,.0f} KRW"
        + (f", orders at the exchange: {orders_seen}" if MODE == "live_trading" else ""),
        f"- ledger vs exchange (live_trading): {'consistent' if not problems else f'{len(problems)} problem(s)'}"
        if MODE == "live_trading" else "- ledger vs exchange: not checked (paper)",
        "",
        "## RSS per actor",
        "",
        f"Least-squares slope over each actor's longest incarnation, samples every {SAMPLE_EVERY_S:g} s "
        f"after a {WARMUP_S:g} s warm-up. A run shorter than {MIN_DRIFT_SPAN_S / 60:g} minutes extrapolates "
        "a fraction of a megabyte to an hour: read it as noise (the test judges drift only over "
        f"{MIN_DRIFT_SPAN_S / 60:g} minutes or more, against {MAX_DRIFT_PCT_PER_H:g} %/h).",
        "",
        "| actor | restarts | RSS after warm-up MB | RSS at end MB | drift MB/h | drift %/h |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in sorted(drifts):
        d = drifts[name]
        if d is None:
            lines.append(f"| {name} | {restarts.get(name, 0)} | - | - | - | - |")
        else:
            lines.append(f"| {name} | {restarts.get(name, 0)} | {d[0]:.1f} | {d[1]:.1f} | {d[2]:+.1f} | {d[3]:+.1f} |")
    lines += ["", "## Restarts", ""]
    if unplanned:
        lines += [f"- `{r['actor']}` {r['event']} pid {r['pid']}: {r['reason']}" for r in unplanned]
    else:
        lines.append("None: no actor exited, was killed or restarted during the run.")
    lines += ["", "## Pipeline latency per minute", "",
              "From the metrics endpoint's histograms (bucket deltas per minute; buckets 0.5, 1, 2, 5, 10, 25, "
              "50, 100, 250 ms ..., interpolated within a bucket).", "",
              "| minute | quote→decision n | p50 ms | p90 ms | p99 ms | decision→ack n | p50 ms | p90 ms | p99 ms |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for minute, cols in per_minute(soak.scrapes, duration):
        q, a = cols[HISTOGRAMS[0]], cols[HISTOGRAMS[1]]
        lines.append(f"| {minute} | {q[0]} | {ms(q[1])} | {ms(q[2])} | {ms(q[3])} | "
                     f"{a[0]} | {ms(a[1])} | {ms(a[2])} | {ms(a[3])} |")
    if rows:
        lines += ["", "Per leg, from the ledger: written (just before the send) to its last outcome, by venue. "
                  "This is the REST side of decision→ack; it includes ccxt's client-side throttle "
                  "(`enableRateLimit`, 50 ms between requests per venue, shared by concurrent legs and the "
                  "balance polls) and, on Upbit, a second request for the fill details the order reply lacks.",
                  "",
                  "| venue | legs | p50 ms | p90 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|",
                  *leg_times(rows)]
    lines += ["", "## Run summary (arbd's own)", "", "```", summary.strip() or "(none printed)", "```", ""]
    if problems:
        lines += ["## Ledger problems", "", "```", report(problems), "```", ""]
    text = "\n".join(lines)
    REPORT.write_text(text)
    return text


@pytest.mark.soak
@pytest.mark.timeout(SOAK_S + 300)
def test_soak(tmp_path: Path) -> None:
    assert MODE in ("live_trading", "paper"), f"ARBD_SOAK_MODE={MODE!r}: live_trading or paper"
    base = LIVE_TRADING if MODE == "live_trading" else PAPER
    cfg = config(base, {"position_adv": {"max_exposure_krw": MAX_EXPOSURE_KRW}}, fast=False)
    with sim_runs(tmp_path) as runs:
        run = runs.make(cfg, env=with_keys(), args=("--set", f"sim.update_hz={UPDATE_HZ}"),
                        max_runtime_s=SOAK_S + 240)
        if MODE == "live_trading":
            run.arm_live()
        port = int(cfg["metrics"]["port"])
        soak = Soak()
        soak.scrape(port)
        print(f"\nsoak: {MODE}, {SOAK_S:g} s, sim.update_hz={UPDATE_HZ}, run dir {run.run_dir}", flush=True)
        next_sample = next_scrape = 0.0
        next_progress = PROGRESS_EVERY_S
        while (now := soak.elapsed()) < SOAK_S:
            assert run.alive(), f"arbd died after {now:.0f}s:\n{run.stderr()[-3000:]}"
            if now >= next_sample:
                soak.sample(run)
                next_sample = now + SAMPLE_EVERY_S
            if now >= next_scrape:
                soak.scrape(port)
                next_scrape = now + SCRAPE_EVERY_S
            if now >= next_progress and soak.last_status:
                st = soak.last_status
                rss = ", ".join(f"{a['name']} {a['rss_mb']:.0f}" for a in st["actors"] if a["rss_mb"] is not None)
                print(f"soak {now:5.0f}s  trades {st['trades']['opened']}/{st['trades']['closed']}  "
                      f"orders {st['orders']['filled']} filled  pnl {st['pnl']:,.0f} KRW  "
                      f"fail_closed {st['fail_closed']}  restarts {sum(a['restarts'] for a in st['actors'])}  "
                      f"RSS MB: {rss}", flush=True)
                next_progress += PROGRESS_EVERY_S
            time.sleep(max(0.0, min(next_sample, next_scrape, next_progress) - soak.elapsed()))  # pacing
        duration = soak.elapsed()
        soak.sample(run)
        soak.scrape(port)

        problems: list[str] = []
        orders_seen = 0
        rows: list[OrderRow] = []
        if MODE == "live_trading":
            run.quiesce(timeout=60)
            orders = run.sim_orders()
            orders_seen = len(orders)
            data = read_ledger(run.ledger())
            rows = data.rows
            problems = check_all(orders, data, MAX_EXPOSURE_KRW)
        soak.sample(run)  # the numbers after the last order resolved
        final = soak.last_status or {}
        code = run.stop(timeout=30)
        summary = run.stdout()
        restarts = {a["name"]: a["restarts"] for a in final.get("actors", [])}
        unplanned = [r for r in run.restart_log() if r["event"] in ("exit", "kill", "restart", "recycle", "escalate")
                     and r["reason"] != "shutdown"]
        drifts = {name: drift(s) for name, s in soak.rss.items()}
        text = write_report(soak, run, duration, restarts, unplanned, drifts, summary, problems, orders_seen,
                            rows)
        print("\n" + text, flush=True)

    assert code == 0, f"arbd exited {code}"
    assert not unplanned, unplanned
    leaking = {n: d for n, d in drifts.items()
               if d is not None and d[4] >= MIN_DRIFT_SPAN_S and d[3] > MAX_DRIFT_PCT_PER_H}
    assert not leaking, f"RSS drift above {MAX_DRIFT_PCT_PER_H} %/h: {leaking}"
    assert not problems, report(problems)
