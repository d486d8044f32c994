"""The position actor: sizes opportunities into two-legged intents, owns
exposure, PnL and the rebalancer, and rebuilds all of it from the ledger on
start so that no restart resets a limit."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import replace

from actors.base import RoleActor
from arbitrage.accounting import Portfolio
from arbitrage.planner import IntentPlanner, PlannerConfig, sizer_from_manager
from arbitrage.position_adv import AdvancedPositionManager
from arbitrage.rebalancer import RiskModeRebalancer
from arbitrage.strategy import PairStrategy
from messages import (
    CoinExposure,
    GuardDecision,
    LedgerResync,
    Opportunity,
    OrderEvent,
    PositionState,
    RebalanceRequest,
    TradingState,
    VenueHealth,
    clock,
)
from storage.ledger import Ledger
from supervisors import logjson
from supervisors.metricnames import key

REPAIR_QUOTE_MAX_AGE_S = 30.0  # a repair priced off an older opportunity waits for a fresh one
log = logging.getLogger("arbd.position")

NAKED_EVENT_EVERY_S = 5.0  # while a leg stays naked, the event log hears of it this often
VOL_WINDOW = 120
VOL_SCALE_PCT = 1.0  # a premium std-dev of 1 percentage point reads as volatility 1.0


class PositionActor(RoleActor):
    role = "position"
    subscriptions = ("rebalance_req", "state", "venue.")
    direct = {"engine": ("opp.",)}  # straight from the engine's stream
    conflate = ("opp.",)  # the latest opportunity per symbol is the only one worth acting on
    has_inbox = True
    tick_interval_s = 0.5

    def on_start(self) -> None:
        cfg = self.ctx.config
        pa = cfg.position_adv
        self.manager = AdvancedPositionManager(pa.base_position_size_krw, pa.max_exposure_krw,
                                               pa.slippage_cost_threshold_pct)
        self.rebalancer = RiskModeRebalancer(replace(cfg.rebalancer, exposure_scale_krw=pa.max_exposure_krw),
                                             clock.monotonic)
        self.portfolio = Portfolio(clock.time)
        self.portfolio.rebuild(self._ledger_history())
        self.trading_active = False
        self.broken: set[str] = set()
        self.last_opp: dict[str, Opportunity] = {}
        self.naked_since: dict[str, float] = {}
        self._naked_logged: dict[str, float] = {}
        self.strategy = PairStrategy(replace(cfg.strategy, premium=cfg.engine), clock.time, self.portfolio,
                                     repair_context=lambda: (self.trading_active, frozenset(self.broken)))
        self.size_multiplier = 1.0
        self.premiums: dict[str, deque[float]] = {}
        self.vol: dict[str, float] = {}
        self.planner = IntentPlanner(
            PlannerConfig(max_exposure_krw=pa.max_exposure_krw), self.portfolio,
            sizer_from_manager(self.manager, lambda s: self.vol.get(s, 0.0), self._risk_mode),
            clock.time, multiplier=lambda: self.size_multiplier,
            exposure_limit_krw=lambda: self.manager.exposure_limit_krw)
        self.primary = cfg.venues.symbols[0]
        self.enabled = pa.enabled
        self._publish()

    def _risk_mode(self) -> str:
        return str(self.rebalancer.risk_mode)

    # -- opportunities -> intents ------------------------------------------------
    def _handle_opportunity(self, opp: Opportunity) -> None:
        self.portfolio.mark_fx(opp.fx)
        self.last_opp[opp.symbol] = opp
        self._observe_market(opp)
        if not self.enabled:
            return
        self._send(self.strategy.on_opportunity(opp))

    def _handle_trading_state(self, msg: TradingState) -> None:
        self.trading_active = msg.state == "armed" and not msg.fail_closed

    def _handle_venue_health(self, msg: VenueHealth) -> None:
        if msg.breaker == "open":
            self.broken.add(msg.venue)
        else:
            self.broken.discard(msg.venue)

    def _repair_on_tick(self) -> None:
        """Naked legs are repaired even when no fresh opportunity arrives (a feed
        gone stale, a halted engine): priced off the symbol's last one."""
        now = clock.time()
        for u in self.portfolio.needs_unwind():
            opp = self.last_opp.get(u.symbol)
            if opp is None or now - opp.ts_ns / 1e9 > REPAIR_QUOTE_MAX_AGE_S:
                continue
            self._send(self.strategy.repairs(opp))

    def _send(self, signals: list) -> None:
        for sig in signals:
            intent, why = self.planner.plan_one(sig)
            if intent is None:
                self.strategy.on_signal_dropped(sig.pair_id)
                self.ctx.count(key("c", "arbd_planner_drops_total", reason=why.split(" ")[0] or "none"))
                continue
            self.ctx.send("guard", intent)
            self.ctx.count(key("c", "arbd_intents_total", action=intent.action))

    def _observe_market(self, opp: Opportunity) -> None:
        hist = self.premiums.setdefault(opp.symbol, deque(maxlen=VOL_WINDOW))
        hist.append(opp.premium_pct)
        if len(hist) >= 10:
            mean = sum(hist) / len(hist)
            std = math.sqrt(sum((p - mean) ** 2 for p in hist) / (len(hist) - 1))
            self.vol[opp.symbol] = min(1.0, std / VOL_SCALE_PCT)
        if opp.symbol == self.primary:
            ask = opp.buy_upbit.upbit_price
            bid = opp.sell_upbit.upbit_price
            mid = (ask + bid) / 2
            if mid > 0 and ask >= bid:
                self.manager.update_market_data(mid, (ask - bid) / mid * 100.0)

    # -- outcomes -------------------------------------------------------------------
    def _handle_guard_decision(self, d: GuardDecision) -> None:
        if d.allowed:
            return
        self.portfolio.release(d.intent.id)
        self.strategy.on_refused(d.intent.pair_id)  # not again on the very next quote

    def _handle_order_event(self, evt: OrderEvent) -> None:
        before = self.portfolio.trades_closed
        pair = self.portfolio.apply(evt)
        if evt.status in ("refused",):
            self.portfolio.release(evt.intent_id)
            self.strategy.on_refused(evt.pair_id)
        elif evt.status in ("rejected", "failed") and evt.filled_qty <= 0 and evt.action != "open":
            self.strategy.on_refused(evt.pair_id)  # a close or repair the venue (or our budget) refused
        if evt.action == "unwind" and evt.status in ("rejected", "failed", "refused", "cancelled") \
                and evt.filled_qty <= 0:
            self.strategy.on_repair_failed(evt.pair_id, evt.venue)
        if evt.action == "open" and evt.status == "filled" and evt.venue == "upbit":
            self.manager.record_trade(evt.filled_qty * evt.avg_price)
        if self.portfolio.trades_closed > before:
            self.ctx.record_event("trade_closed", {"pair_id": pair.pair_id, "symbol": pair.symbol,
                                                   "realized_pnl_krw": round(pair.realized_pnl_krw, 2)})
        # At once, not at the next tick: a stop within the tick would leave
        # status and the run summary behind the ledger (trades, PnL, exposure).
        # Not for "sent": nothing a reader shows has changed, and the orders it
        # announces are in flight on the same two cores.
        if evt.status != "sent":
            self._publish()

    def _ledger_history(self) -> list[OrderEvent]:
        ledger = Ledger(self.ctx.run.ledger_path, readonly=True)
        try:
            return list(ledger.events()) + ledger.pending_events()
        finally:
            ledger.close()

    def _handle_ledger_resync(self, msg: LedgerResync) -> None:
        t0 = time.perf_counter()
        before = self.portfolio.exposure_krw
        self.portfolio.resync(self._ledger_history())
        logjson.log(log, logging.INFO, f"position re-read the ledger ({msg.reason})",
                    ms=round((time.perf_counter() - t0) * 1e3, 1), exposure_before=round(before),
                    exposure_after=round(self.portfolio.exposure_krw))
        self._publish()

    def _handle_rebalance_request(self, msg: RebalanceRequest) -> None:
        self.rebalancer.request(msg.reason)

    # -- periodic ----------------------------------------------------------------------
    def on_tick(self, now_ns: int) -> None:
        if self.enabled:
            self._repair_on_tick()
        vol = max(self.vol.values()) if self.vol else 0.0
        decision = self.rebalancer.update(self.portfolio.exposure_krw, vol)
        if decision is not None:
            self.size_multiplier = decision.size_multiplier
            self.ctx.record_event("rebalance", {"reason": decision.reason, "risk_mode": str(decision.risk_mode),
                                                "intensity": decision.intensity,
                                                "reduce_fraction": decision.reduce_fraction,
                                                "exposure_krw": round(decision.exposure_krw, 2)})
        elif self.size_multiplier < 1.0:
            # Recover sizing gradually once nothing asks for restraint.
            self.size_multiplier = min(1.0, self.size_multiplier + 0.01)
        self.manager.get_adjusted_exposure_limit(self.portfolio.exposure_krw,
                                                 self.rebalancer.get_metrics().get("exposure_drift_rate", 0.0))
        self._publish()

    def _publish(self) -> None:
        p = self.portfolio
        gauges = {k: float(v) for k, v in self.manager.get_metrics().items()
                  if k in ("volatility_smoothed", "trend_regime")}
        rb = self.rebalancer.get_metrics()
        gauges["exposure_drift_rate"] = float(rb.get("exposure_drift_rate", 0.0))
        gauges["risk_mode_current"] = float(rb.get("risk_mode_current", 0.0))
        self.ctx.counters[key("g", "arbd_size_multiplier")] = self.size_multiplier
        self.ctx.publish(PositionState(
            exposure_krw=p.exposure_krw, open_pairs=p.open_pairs, trades_opened=p.trades_opened,
            trades_closed=p.trades_closed, realized_pnl_krw=p.realized_pnl_krw,
            daily_pnl_krw=p.daily_pnl_krw(), gauges=gauges, coins=self._coins()))

    def _coins(self) -> tuple[CoinExposure, ...]:
        """Per coin, what the open pairs hold and how much of it is unhedged, and since when."""
        held: dict[str, list[float]] = {}
        for pair in self.portfolio.pairs():
            h = held.setdefault(pair.symbol, [0.0, 0.0, 0.0])
            h[0] += pair.upbit_qty
            h[1] += pair.binance_qty
            if not pair.balanced:
                h[2] += pair.upbit_qty + pair.binance_qty
        now = clock.time()
        out = []
        for symbol in sorted(set(held) | set(self.naked_since)):
            up, bn, naked = held.get(symbol, (0.0, 0.0, 0.0))
            opp = self.last_opp.get(symbol)
            px = (opp.sell_upbit.upbit_price + opp.buy_upbit.upbit_price) / 2 if opp else 0.0
            naked_krw = abs(naked) * px
            if naked:
                since = self.naked_since.setdefault(symbol, now)
            else:
                since = self.naked_since.pop(symbol, now)
            age = now - since if naked else 0.0
            self._note_naked(symbol, naked, naked_krw, age, now)
            c = self.ctx.counters
            c[key("g", "arbd_naked_exposure_krw", symbol=symbol)] = naked_krw
            c[key("g", "arbd_naked_exposure_age_seconds", symbol=symbol)] = age
            out.append(CoinExposure(symbol=symbol, upbit_qty=up, binance_qty=bn, naked_qty=naked,
                                    naked_krw=naked_krw, naked_age_s=age))
        return tuple(out)

    def _note_naked(self, symbol: str, naked: float, krw: float, age: float, now: float) -> None:
        """One event when a leg goes naked, every few seconds while it stays so, one when it is repaired."""
        last = self._naked_logged.get(symbol)
        if naked and (last is None or now - last >= NAKED_EVENT_EVERY_S):
            self._naked_logged[symbol] = now
            self.ctx.record_event("naked_exposure", {"symbol": symbol, "naked_qty": naked,
                                                     "naked_krw": round(krw, 0), "age_s": round(age, 2)})
        elif not naked and last is not None:
            del self._naked_logged[symbol]
            self.ctx.record_event("naked_exposure", {"symbol": symbol, "naked_qty": 0.0, "naked_krw": 0.0,
                                                     "age_s": 0.0, "repaired": True})
