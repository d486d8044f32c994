"""The guard: owns the trading state (disarmed | armed | halted, plus the
fail-closed overlay), runs the LiveSafetyGuard on every intent, and is the
only way an intent reaches the executor. A rejection is an event with a
reason, never an exception."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import psutil

from actors.base import CommandError, RoleActor
from arbitrage.live_guard import LiveSafetyGuard
from arbitrage.risk_guard import RiskGuard
from arbitrage.trading_state import SESSION_STOP, TradingStateMachine, halt_reason
from messages import (
    Balances,
    BookTop,
    FailClosed,
    OrderIntent,
    PositionState,
    SupervisorReport,
    TradingState,
    VenueHealth,
    clock,
)
from supervisors.metricnames import Histogram, key
from supervisors.runfiles import atomic_write_json

REPORT_STALE_S = 3.0


def _session_id() -> str:
    """Identifies this daemon run: an 'armed' state survives a guard restart
    within it, but never a daemon restart (a halt survives both)."""
    ppid = os.getppid()
    with contextlib.suppress(psutil.Error):
        return f"{ppid}:{psutil.Process(ppid).create_time():.3f}"
    return str(ppid)


class GuardActor(RoleActor):
    role = "guard"
    subscriptions = ("failclosed.", "actors", "position", "balances", "book.upbit.USDT", "venue.")
    conflate = ("book.",)  # only the latest quote of each book matters here
    has_inbox = True
    tick_interval_s = 0.5

    def on_start(self) -> None:
        cfg = self.ctx.config
        self.mode = cfg.mode
        self.session = _session_id()
        self.state = TradingStateMachine()
        self._restore()
        self.holdings: dict[str, tuple[float, float]] | None = None  # None until the position reports
        self.broken: dict[str, str] = {}  # venue -> why its breaker is open
        self.risk = RiskGuard(self.mode, cfg.live_trading, self.state, clock.time_ns,
                              holdings=self._holdings, breakers=lambda: self.broken)
        self.live_guard = LiveSafetyGuard(cfg.live_trading)
        self.fx = 0.0
        self.daily_pnl_krw: float | None = None
        self.balance_usdt: float | None = None
        self.last_report_at = time.monotonic()
        self.hist = Histogram(self.ctx.counters, "arbd_quote_to_decision_seconds")
        self.allowed = 0
        self.blocked = 0
        self.state.raise_fail_closed("startup", "waiting for the first supervisor report")
        self._publish_state()

    # -- persistence ---------------------------------------------------------
    def _restore(self) -> None:
        path = self.ctx.run.trading_state_file
        data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(path.read_text())
        if data.get("state") == "halted":
            self.state.halt(str(data.get("halt_reason") or "halted before restart"))
        elif data.get("state") == "armed" and data.get("session") == self.session:
            ok, _ = self.state.arm(self.mode, self.ctx.config.live_trading.enabled, "live_trading")
        elif self.ctx.config.trading.arm_on_start and self.mode != "live_trading":
            self.state.arm(self.mode, self.ctx.config.live_trading.enabled, "")
            self._persist()

    def _persist(self) -> None:
        d = self.state.to_dict()
        d.update({"session": self.session, "mode": self.mode, "ts": time.time()})
        atomic_write_json(self.ctx.run.trading_state_file, d)

    def _publish_state(self) -> None:
        self.ctx.publish(TradingState(
            mode=self.mode, state=self.state.state, fail_closed=self.state.fail_closed,
            reasons=self.state.reasons(), allowed=self.allowed, blocked=self.blocked,
            daily_pnl=round((self.daily_pnl_krw or 0.0) / self.fx, 4) if self.fx else 0.0,
            halt_reason=self.state.halt_reason))
        c = self.ctx.counters
        c[key("g", "arbd_fail_closed_reasons")] = float(len(self.state.reasons()))
        if self.fx:
            c[key("g", "arbd_daily_pnl_usdt")] = (self.daily_pnl_krw or 0.0) / self.fx
        c[key("g", "arbd_max_daily_loss_usdt")] = self.ctx.config.live_trading.max_daily_loss

    # -- inputs ----------------------------------------------------------------
    def _handle_fail_closed(self, msg: FailClosed) -> None:
        changed = self._set_fail_closed(msg.key, msg.active, msg.reason)
        if changed and msg.active:
            self.ctx.record_event("fail_closed", {"key": msg.key, "reason": msg.reason, "source": msg.source})
        elif changed and msg.source != "watchdog":  # the watchdog logs its own clears
            self.ctx.record_event("fail_closed_cleared", {"key": msg.key, "reason": msg.reason,
                                                          "source": msg.source})

    def _set_fail_closed(self, k: str, active: bool, reason: str) -> bool:
        had = k in self.state.fail_closed_keys()
        if active and not had:
            self.state.raise_fail_closed(k, reason)
        elif not active and had:
            self.state.clear_fail_closed(k)
        else:
            return False
        self._publish_state()
        return True

    def _handle_supervisor_report(self, msg: SupervisorReport) -> None:
        self.last_report_at = time.monotonic()
        self._set_fail_closed("startup", False, "")
        self._set_fail_closed("report", False, "")
        needed = {a.name: a for a in msg.actors if a.trade_path or a.name == "watchdog"}
        for name, a in needed.items():
            if name == "guard":
                continue
            self._set_fail_closed(f"actor.{name}", a.state != "running", f"actor {name} {a.state}")

    def _handle_position_state(self, msg: PositionState) -> None:
        self.daily_pnl_krw = msg.daily_pnl_krw
        self.holdings = {c.symbol: (c.upbit_qty, c.binance_qty) for c in msg.coins}
        self._set_fail_closed("position", False, "")

    def _holdings(self, symbol: str) -> tuple[float, float] | None:
        if self.holdings is None:
            return None
        return self.holdings.get(symbol, (0.0, 0.0))

    def _handle_venue_health(self, msg: VenueHealth) -> None:
        if msg.breaker == "open":
            self.broken[msg.venue] = msg.reason
        else:  # closed, or half_open: the executor admits the one probe itself
            self.broken.pop(msg.venue, None)

    def _handle_balances(self, msg: Balances) -> None:
        if msg.source == "unavailable" or not self.fx:
            self.balance_usdt = None
            return
        usdt = msg.free.get("binance", {}).get("USDT", 0.0)
        krw = msg.free.get("upbit", {}).get("KRW", 0.0)
        self.balance_usdt = usdt + krw / self.fx

    def _handle_book_top(self, msg: BookTop) -> None:
        if msg.venue == "upbit" and msg.symbol == "USDT" and msg.bid > 0:
            self.fx = msg.mid

    def on_tick(self, now_ns: int) -> None:
        if time.monotonic() - self.last_report_at > REPORT_STALE_S:
            self._set_fail_closed("report", True, "no supervisor report (supervisor unreachable?)")
        self._publish_state()

    # -- the decision ------------------------------------------------------------
    def _handle_order_intent(self, intent: OrderIntent) -> None:
        if self.daily_pnl_krw is None and self.mode == "live_trading":
            self._set_fail_closed("position", True, "waiting for position state (daily loss unknown)")
        decision = self.risk.decide(intent, balance_usdt=self.balance_usdt if self.balance_usdt is not None
                                    else 0.0, daily_pnl_usdt=((self.daily_pnl_krw or 0.0) / self.fx)
                                    if self.fx else 0.0, fx=self.fx)
        if intent.origin_ts_ns:
            self.hist.observe(max(0.0, (clock.time_ns() - intent.origin_ts_ns) / 1e9))
        self.ctx.count(key("c", "arbd_guard_decisions_total", result=self.risk.last_category or "unknown"))
        if decision.allowed:
            self.allowed += 1
            self.ctx.send("executor", decision)
        else:
            self.blocked += 1
            self.ctx.send("position", decision)
            self.ctx.record_event("risk_block", {"symbol": intent.symbol, "intent_id": intent.id,
                                                 "action": intent.action, "reason": decision.reason,
                                                 "notional_krw": round(intent.notional_krw, 2)})
        # A copy on the bus (after the point-to-point send) for observers: it
        # carries every stamp of the path (quote, opportunity, intent, decision).
        self.ctx.publish(decision)
        if decision.session_stop and self.state.state != "halted":
            self.state.halt(halt_reason(SESSION_STOP, decision.reason))
            self._persist()
            self.ctx.record_event("halt", {"reason": decision.reason, "by": "live_guard"})
            self._publish_state()
        # Otherwise the counts (allowed, blocked) go out on the tick: a state on
        # the bus with every decision woke the executor, the position and the
        # supervisor while the decision's orders were in flight.

    # -- operator commands ---------------------------------------------------------
    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        if command == "halt":
            reason = str(args.get("reason") or "operator halt")
            self.state.halt(reason)
            self._persist()
            self.ctx.record_event("halt", {"reason": reason, "by": "operator"})
            self._publish_state()
            return {"state": "halted", "halt_reason": reason}
        if command == "arm":
            ok, reason = self.state.arm(self.mode, self.ctx.config.live_trading.enabled,
                                        str(args.get("confirm") or ""))
            if not ok:
                raise CommandError("refused", reason)
            self._persist()
            self.ctx.record_event("arm", {"mode": self.mode})
            self._publish_state()
            return {"state": self.state.state, "mode": self.mode}
        if command == "summary":
            return {"guard": self.risk.get_summary(), "live_guard": self.live_guard.get_summary()}
        return super().on_command(command, args)
