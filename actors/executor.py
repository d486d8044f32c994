"""The executor: turns allowed guard decisions into orders.

Every leg is written to the ledger (WAL, fsynced) with its client
order id before anything is sent; the decision is acknowledged only after
that write, so a kill at any point leaves either nothing or a ledger row
that the next incarnation reconciles with the venue. Modes:
paper (fills against the latest books), live_readonly (every order refused),
live_trading (both legs through ccxt)."""

from __future__ import annotations

import logging
import time
from typing import Any

from actors.base import RoleActor
from arbitrage.venue_rules import BINANCE_FILTERS, UPBIT_MIN_ORDER_KRW, common_qty
from messages import BookTop, GuardDecision, OrderEvent, OrderIntent, OrderStats, TradingState
from storage.ledger import Ledger, OrderRow
from supervisors.metricnames import Histogram, key
from venues.gateway import LegOrder, LegResult, make_gateway

log = logging.getLogger("arbd.executor")

MAX_DECISION_AGE_S = 2.0  # a decision older than this reflects a world that has moved on


class ExecutorActor(RoleActor):
    role = "executor"
    subscriptions = ("book.upbit.USDT", "state")
    conflate = ("book.",)  # only the latest quote of each book matters here
    _FEEDS = {"feed.upbit": ("book.",), "feed.binance": ("book.",)}

    # Paper fills walk every book, so in paper mode they come straight from
    # the feeds' streams (every one; the bus has ten a second). Live modes
    # need only the FX rate (fees and PnL in KRW), from the bus.
    @classmethod
    def subscriptions_for(cls, config: Any) -> tuple[str, ...]:
        return ("state",) if config.mode == "paper" else cls.subscriptions

    @classmethod
    def direct_for(cls, config: Any) -> dict[str, tuple[str, ...]]:
        return cls._FEEDS if config.mode == "paper" else {}
    has_inbox = True
    tick_interval_s = 1.0

    def on_start(self) -> None:
        cfg = self.ctx.config
        self.mode = cfg.mode
        self.ledger = Ledger(self.ctx.run.ledger_path)
        self.books: dict[tuple[str, str], BookTop] = {}
        self.trading: TradingState | None = None
        self.hist = Histogram(self.ctx.counters, "arbd_decision_to_ack_seconds")
        self.gateway = make_gateway(cfg, self.ctx.run, self.books, self._on_leg_result_threadsafe)
        self.inflight: dict[str, tuple[LegOrder, int]] = {}
        self._reconcile()
        self._publish_stats()

    def on_stop(self) -> None:
        self.gateway.close()
        self.ledger.close()

    # -- inputs ----------------------------------------------------------------
    def _handle_book_top(self, msg: BookTop) -> None:
        self.books[(msg.venue, msg.symbol)] = msg

    def _handle_trading_state(self, msg: TradingState) -> None:
        self.trading = msg

    def _handle_guard_decision(self, d: GuardDecision) -> None:
        intent = d.intent
        if not d.allowed:
            return
        if self.ledger.has_intent(intent.id):
            self.ctx.count("duplicate_decisions")
            return
        refusal = self._refusal(d)
        if refusal:
            self._refuse(intent, refusal)
            return
        legs = self._scaled_legs(intent, d.scale)
        if isinstance(legs, str):
            self._refuse(intent, legs)
            return
        # Durable before sent: the one rule that makes restarts safe.
        self.ledger.record_intent(intent, d.scale, [(lg.client_order_id, lg.venue, lg.side, lg.qty, lg.price)
                                                     for lg in legs])
        for lg in legs:
            self.inflight[lg.client_order_id] = (lg, d.ts_ns)
            self._emit(lg, "sent", 0.0, 0.0, 0.0, "")
        self.gateway.submit(legs)

    def _refusal(self, d: GuardDecision) -> str:
        if self.mode == "live_readonly":
            return "live_readonly: orders are disabled"
        age = (time.time_ns() - d.ts_ns) / 1e9
        if age > MAX_DECISION_AGE_S:
            return f"stale decision ({age:.1f}s old)"
        if d.intent.expires_ns and time.time_ns() > d.intent.expires_ns:
            return "intent expired before execution"
        t = self.trading
        if t is None or t.state != "armed" or t.fail_closed:
            why = "no trading state yet" if t is None else (
                f"trading {t.state}" if t.state != "armed" else "fail-closed: " + "; ".join(t.reasons))
            return f"executor cross-check: {why}"
        return ""

    def _scaled_legs(self, intent: OrderIntent, scale: float) -> list[LegOrder] | str:
        out = []
        qtys = {common_qty(leg.qty * scale, intent.symbol) for leg in intent.legs}
        if len(qtys) != 1:
            return "legs disagree on quantity"
        qty = qtys.pop()
        for leg in intent.legs:
            notional = qty * leg.price
            if qty <= 0:
                return "quantity rounds to zero after dry_run_scale"
            if leg.venue == "upbit" and notional < UPBIT_MIN_ORDER_KRW:
                return f"upbit leg {notional:.0f} KRW below the 5,000 KRW minimum"
            if leg.venue == "binance" and notional < BINANCE_FILTERS[intent.symbol].min_notional:
                return f"binance leg {notional:.2f} USDT below the NOTIONAL minimum"
            out.append(LegOrder(intent_id=intent.id, pair_id=intent.pair_id, action=intent.action,
                                venue=leg.venue, symbol=intent.symbol, side=leg.side, qty=qty,
                                price=leg.price, client_order_id=leg.client_order_id,
                                origin_ts_ns=intent.origin_ts_ns))
        return out

    def _refuse(self, intent: OrderIntent, reason: str) -> None:
        self.ctx.count(key("c", "arbd_orders_total", venue="all", status="refused"))
        log.info("refused intent %s: %s", intent.id, reason)
        self.ctx.record_event("risk_block", {"symbol": intent.symbol, "intent_id": intent.id,
                                             "reason": reason, "by": "executor"})
        for leg in intent.legs:
            lg = LegOrder(intent_id=intent.id, pair_id=intent.pair_id, action=intent.action, venue=leg.venue,
                          symbol=intent.symbol, side=leg.side, qty=leg.qty, price=leg.price,
                          client_order_id=leg.client_order_id, origin_ts_ns=intent.origin_ts_ns)
            self._emit(lg, "refused", 0.0, 0.0, 0.0, reason, to_position=True)

    # -- results -----------------------------------------------------------------
    def _on_leg_result_threadsafe(self, result: LegResult) -> None:
        # Called from the gateway's thread: hand over to the actor thread.
        self.actor_ref.tell(result)

    def on_receive(self, message: Any) -> Any:
        if type(message) is LegResult:
            self._on_leg_result(message)
            return None
        return super().on_receive(message)

    def _on_leg_result(self, r: LegResult) -> None:
        lg = r.leg
        entry = self.inflight.pop(lg.client_order_id, None)
        if entry is not None:
            self.hist.observe(max(0.0, (time.time_ns() - entry[1]) / 1e9))
        evt = self._emit(lg, r.status, r.filled_qty, r.avg_price, r.fee_krw, r.reason, to_position=True,
                         persist=False)
        self.ledger.apply(evt, r.venue_order_id)
        self.ctx.count(key("c", "arbd_orders_total", venue=lg.venue, status=r.status))
        if r.filled_qty > 0:
            self.ctx.record_event("trade", {"symbol": lg.symbol, "venue": lg.venue, "side": lg.side,
                                            "quantity": r.filled_qty, "price": r.avg_price,
                                            "client_order_id": lg.client_order_id, "action": lg.action,
                                            "pair_id": lg.pair_id, "fee_krw": round(r.fee_krw, 2)})

    def _emit(self, lg: LegOrder, status: str, filled: float, avg: float, fee_krw: float, reason: str,
              to_position: bool = False, persist: bool = False) -> OrderEvent:
        evt = OrderEvent(intent_id=lg.intent_id, pair_id=lg.pair_id, action=lg.action,
                         client_order_id=lg.client_order_id, venue=lg.venue, symbol=lg.symbol, side=lg.side,
                         status=status, qty=lg.qty, price=lg.price, filled_qty=filled, avg_price=avg,
                         fee_krw=fee_krw, reason=reason, origin_ts_ns=lg.origin_ts_ns,
                         fx=self._fx())
        self.ctx.publish(evt)
        if to_position:
            self.ctx.send("position", evt)
        return evt

    def _fx(self) -> float:
        b = self.books.get(("upbit", "USDT"))
        return b.mid if b is not None else 0.0

    # -- restart safety ---------------------------------------------------------------
    def _reconcile(self) -> None:
        rows = self.ledger.unresolved()
        if not rows:
            return
        log.warning("reconciling %d unresolved orders from the ledger", len(rows))
        self.ctx.record_event("restart", {"reconcile_orders": len(rows)})
        for row in rows:
            self.gateway.reconcile(self._leg_of(row))

    @staticmethod
    def _leg_of(row: OrderRow) -> LegOrder:
        return LegOrder(intent_id=row.intent_id, pair_id=row.pair_id, action=row.action, venue=row.venue,
                        symbol=row.symbol, side=row.side, qty=row.qty, price=row.price,
                        client_order_id=row.client_order_id, origin_ts_ns=0)

    # -- periodic ------------------------------------------------------------------------
    def on_tick(self, now_ns: int) -> None:
        self._publish_stats()
        self.ledger.checkpoint()  # here, not in the write before a send (see Ledger._prime_wal)
        # Legs whose outcome could not be learnt are looked up again, never resent.
        self._unknown_ticks = getattr(self, "_unknown_ticks", 0) + 1
        if self._unknown_ticks % 5 == 0:
            for row in self.ledger.orders("status='unknown'"):
                if row.client_order_id not in self.inflight:
                    self.gateway.reconcile(self._leg_of(row))
        bal = self.gateway.balances()
        if bal is not None:
            self.ctx.publish(bal)

    def _publish_stats(self) -> None:
        c = self.ledger.status_counts()
        self.ctx.publish(OrderStats(
            open=sum(c.get(s, 0) for s in ("pending", "sent", "open", "partially_filled", "unknown")),
            filled=c.get("filled", 0), cancelled=c.get("cancelled", 0),
            rejected=c.get("rejected", 0) + c.get("failed", 0), sent=sum(c.values())))

    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        if command == "cancel_all":
            n = self.gateway.cancel_all(str(args.get("reason", "")))
            self.ctx.record_event("cancel_all", {"reason": args.get("reason", ""), "cancelled": n})
            return {"cancelled": n}
        return super().on_command(command, args)
