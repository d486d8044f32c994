"""The stability watchdog: quote freshness, drift, latency degradation, RSS.

Stale feed -> fail-closed at once and, later, a restart request for that
feed. Leaking actor -> graceful recycle (trade-path roles fail closed while
they recycle). Loop-latency degradation -> a rebalance request. Long-run
snapshots go to ``logs/stability/`` every ``longrun.interval_loops`` checks.
"""

from __future__ import annotations

import json
import time
from collections import deque

from actors.base import RoleActor
from arbitrage.freshness import FreshnessMonitor
from arbitrage.longrun import LongRunTester
from arbitrage.memory_guard import MemoryGuard
from messages import (
    ActorInfo,
    BookTop,
    FailClosed,
    RebalanceRequest,
    RestartRequest,
    SupervisorReport,
    clock,
)
from supervisors.metricnames import key
from supervisors.runfiles import atomic_write_text

# An actor's RSS reaches the watchdog late (its heartbeat, then the
# supervisor's report every REPORT_INTERVAL_S) and a recycle takes effect a
# little later still. A fast leak grows past the memory guard's early margin
# within that time, so RSS is judged where it will be one reaction time ahead,
# at the growth rate of the last few reports.
REPORT_INTERVAL_S = 0.5
RSS_GROWTH_REPORTS = 5


class WatchdogActor(RoleActor):
    role = "watchdog"
    subscriptions = ("book.", "actors")
    conflate = ("book.",)  # only the latest quote of each book matters here
    tick_interval_s = 0.25
    wants_snapshot = False  # old quotes in a snapshot would look fresh

    def on_start(self) -> None:
        cfg = self.ctx.config
        wd = cfg.watchdog
        symbols = tuple(cfg.venues.symbols)
        # Quote freshness is market time (a replay's tape time); memory and loop
        # latency below are the process's own.
        self.fresh = FreshnessMonitor({"upbit": (*symbols, "USDT"), "binance": symbols},
                                      wd.fail_closed_after_s, wd.restart_after_s, wd.clear_after_s,
                                      clock.monotonic, clear_after_samples=wd.clear_after_samples,
                                      flap_window_s=wd.flap_window_s, clear_max_s=wd.clear_max_s)
        self.mem = MemoryGuard(wd.rss_limit_mb, wd.memory_drift_threshold, wd.memory_drift_window,
                               wd.min_recycle_interval_s, time.monotonic)
        self.longrun = LongRunTester(enabled=cfg.longrun.enabled, interval_loops=cfg.longrun.interval_loops,
                                     now=time.monotonic,
                                     latency_sustain_s=wd.latency_degradation_sustain_s,
                                     # 360 samples x 8 checks x 0.25 s: drift over ~12 minutes.
                                     stride=8)
        self.rss_reaction_s = REPORT_INTERVAL_S + cfg.supervision.heartbeat_interval_s + 0.25
        self.rss_seen: dict[str, tuple[int, deque[tuple[float, float]]]] = {}
        self.ws_lag_ms: dict[str, float] = {}
        self.recycling: dict[str, str] = {}
        self.degraded = False
        self.last_report: SupervisorReport | None = None

    def _handle_book_top(self, msg: BookTop) -> None:
        self.fresh.on_quote(msg.venue, msg.symbol)
        if self.fresh.any_failed:  # clear as soon as the hysteresis allows, not on the next tick
            self._act(self.fresh.evaluate())
        if msg.exch_ts_ns and msg.recv_ts_ns:
            lag = (msg.recv_ts_ns - msg.exch_ts_ns) / 1e6
            prev = self.ws_lag_ms.get(msg.venue, lag)
            self.ws_lag_ms[msg.venue] = prev + 0.1 * (lag - prev)

    def _handle_supervisor_report(self, msg: SupervisorReport) -> None:
        self.last_report = msg
        for a in msg.actors:
            if a.name in self.recycling and a.state == "running" and a.pid != 0 and \
                    a.heartbeat_age_s >= 0 and self.mem.pids.get(a.name) != a.pid:
                self._fail_closed(f"recycle.{a.name}", False, f"{a.name} recycled")
                del self.recycling[a.name]
            if a.state != "running" or a.pid == 0 or a.name == "watchdog":
                continue
            expected = self._rss_ahead(a)
            decision = self.mem.observe(a.name, a.pid, expected)
            if decision is not None and a.name not in self.recycling:
                self.recycling[a.name] = decision.reason
                if a.trade_path:
                    self._fail_closed(f"recycle.{a.name}", True, f"recycling {a.name}: {decision.reason}")
                self.ctx.record_event("recycle", {"target": a.name, "reason": decision.reason,
                                                  "rss_mb": round(a.rss_mb, 1),
                                                  "rss_expected_mb": round(expected, 1)})
                self.ctx.to_supervisor(RestartRequest(actor=a.name, reason=decision.reason, recycle=True))

    def _rss_ahead(self, a: ActorInfo) -> float:
        """``a``'s RSS one reaction time from now, if it keeps growing as it has."""
        now = time.monotonic()
        seen = self.rss_seen.get(a.name)
        if seen is None or seen[0] != a.pid:  # a new process starts a new history
            seen = self.rss_seen[a.name] = (a.pid, deque(maxlen=RSS_GROWTH_REPORTS))
        samples = seen[1]
        samples.append((now, a.rss_mb))
        (t0, r0), (t1, r1) = samples[0], samples[-1]
        if t1 - t0 < REPORT_INTERVAL_S / 2 or r1 <= r0:
            return a.rss_mb
        return a.rss_mb + (r1 - r0) / (t1 - t0) * self.rss_reaction_s

    def _fail_closed(self, k: str, active: bool, reason: str) -> None:
        self.ctx.publish(FailClosed(source="watchdog", key=k, active=active, reason=reason))
        self.ctx.record_event("fail_closed" if active else "fail_closed_cleared",
                              {"key": k, "reason": reason})

    def warmth(self) -> tuple[bool, str]:
        missing = sorted(f"{v}.{s}" for v, syms in self.fresh.required.items() for s in syms
                         if (v, s) not in self.fresh.ever_seen)
        if missing:
            return False, "first quotes of " + ", ".join(missing)
        return True, ""

    def _act(self, actions: list) -> None:
        for act in actions:
            if act.kind == "fail_closed":
                self._fail_closed(act.key, True, act.reason)
            elif act.kind == "clear":
                self._fail_closed(act.key, False, act.reason)
            elif act.kind == "fresh_at_start":  # whatever a predecessor raised no longer holds
                self.ctx.publish(FailClosed(source="watchdog", key=act.key, active=False, reason=act.reason))
            elif act.kind == "restart_feed":
                feed = f"feed.{act.venue}"
                self.ctx.record_event("restart", {"target": feed, "reason": act.reason})
                self.ctx.to_supervisor(RestartRequest(actor=feed, reason=f"stale feed: {act.reason}"))

    def on_tick(self, now_ns: int) -> None:
        self._act(self.fresh.evaluate())
        ages = self.fresh.ages()
        c = self.ctx.counters
        for (venue, symbol), age in ages.items():
            c[key("g", "ws_freshness_seconds", venue=venue, symbol=symbol)] = round(age, 3)
        for venue, lag in self.ws_lag_ms.items():
            c[key("g", "arbd_feed_lag_seconds", venue=venue)] = lag / 1e3
        self._drift(max(ages.values()) if ages else 0.0)

    def _drift(self, state_age_s: float) -> None:
        report = self.last_report
        if report is None:
            return
        rss = sum(a.rss_mb for a in report.actors if a.state == "running")
        trade_lat = [a.loop_latency_ms for a in report.actors if a.trade_path and a.state == "running"]
        self.longrun.update_drift_metrics({
            "rss_mb": rss,
            "ws_lag_ms": max(self.ws_lag_ms.values()) if self.ws_lag_ms else 0.0,
            "state_age_s": state_age_s,
            "loop_latency_ms": max(trade_lat) if trade_lat else 0.0,
        })
        c = self.ctx.counters
        mem_drift = self.longrun.get_drift_rate("memory")
        c[key("g", "memory_drift_rate")] = mem_drift
        c[key("g", "ws_lag_drift_rate")] = self.longrun.get_drift_rate("ws_lag")
        c[key("g", "state_age_drift_rate")] = self.longrun.get_drift_rate("state_age")
        degraded = self.longrun.check_latency_degradation()
        if degraded and not self.degraded:
            self.ctx.record_event("drift_alert", {"kind": "loop_latency", "memory_drift_rate": mem_drift})
            self.ctx.record_event("rebalance", {"reason": "loop latency degradation", "requested_by": "watchdog"})
            self.ctx.publish(RebalanceRequest(reason="loop latency degradation"))
        self.degraded = degraded
        if self.longrun.tick_loop():
            self._snapshot()

    def _snapshot(self) -> None:
        cfg = self.ctx.config.longrun
        out_dir = self.ctx.run.root / cfg.snapshot_path
        out_dir.mkdir(parents=True, exist_ok=True)
        snap = self.longrun.snapshot()
        report = self.last_report
        snap["actors"] = [{"name": a.name, "pid": a.pid, "state": a.state, "rss_mb": round(a.rss_mb, 1),
                           "restarts": a.restarts} for a in report.actors] if report else []
        snap["ws_freshness_seconds"] = {f"{v}.{s}": round(a, 3) for (v, s), a in self.fresh.ages().items()}
        name = time.strftime("snapshot_%Y%m%d_%H%M%S.json", time.gmtime())
        atomic_write_text(out_dir / name, json.dumps(snap, sort_keys=True, default=str) + "\n")
