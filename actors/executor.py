"""The executor: turns allowed guard decisions into orders.

Every leg is written to the ledger (WAL, fsynced) with its client
order id before anything is sent; the decision is acknowledged only after
that write, so a kill at any point leaves either nothing or a ledger row
that the next incarnation reconciles with the venue. Modes:
paper (fills against the latest books), live_readonly (every order refused),
live_trading (both legs at once through the venue gateway).

Before an open (or close) is sent, two pre-trade checks that only the
executor can make, since it alone sees every order's outcome and the
venues' private balance streams:

- **circuit breakers** (:mod:`arbitrage.breaker`): a venue that refused an
  order for funds, filters, 5xx or 429 gets no new open until a probe, sent
  leg by leg (the refusing venue's leg first), is accepted;
- **inventory** (:mod:`arbitrage.inventory`): an open the latest balances,
  net of in-flight orders, cannot fund is refused, not sent.

A reducing decision (an unwind the guard let through while halted or
fail-closed) skips both: it is the repair, and the venue is the judge.
``arbd_decision_to_ack_seconds`` is observed per decision when its last leg
has a final fill state; a decision with a leg that never left (our own rate
budget said no, or its probe was refused) is counted in
``arbd_decisions_unsent_total`` instead: it was refused here, not acknowledged
by a venue.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from actors.base import RoleActor
from arbitrage.breaker import CLOSED, CircuitBreakers, Transition
from arbitrage.inventory import Need, leg_need, unfunded
from arbitrage.venue_rules import BINANCE, BINANCE_FILTERS, UPBIT, UPBIT_MIN_ORDER_KRW, common_qty
from messages import (
    BookTop,
    FailClosed,
    GuardDecision,
    LedgerResync,
    OrderEvent,
    OrderIntent,
    OrderStats,
    TradingState,
    VenueHealth,
    clock,
)
from storage.ledger import Ledger, OrderRow
from supervisors.metricnames import Histogram, key
from venues.gateway import LegOrder, LegResult, VenueReply, make_gateway

log = logging.getLogger("arbd.executor")

MAX_DECISION_AGE_S = 2.0  # a decision older than this reflects a world that has moved on
VENUES = (UPBIT, BINANCE)
# Statuses that say the venue took the order (an IOC that found nothing at its limit included).
ACCEPTED = frozenset({"filled", "partially_filled", "cancelled", "open"})


def _paper_fills(config: Any) -> bool:
    return config.mode == "paper" and not config.backtest.tape


@dataclass(slots=True)
class _Decision:
    """The legs of one decision still waiting for a final state."""

    ts_ns: int
    pending: set[str]
    queued: list[LegOrder] = field(default_factory=list)  # a probe's legs, sent after the first
    unsent: bool = False  # a leg never left (our own rate budget, a refused probe): no ack to time


@dataclass(frozen=True, slots=True)
class _Failed:
    """A venue answer's handler raised on the gateway thread: end the actor."""

    error: Exception


class ExecutorActor(RoleActor):
    role = "executor"
    subscriptions = ("book.upbit.USDT", "state")
    conflate = ("book.",)  # only the latest quote of each book matters here
    _FEEDS = {"feed.upbit": ("book.",), "feed.binance": ("book.",)}

    # Paper fills walk every book, so in paper mode they come straight from
    # the feeds' streams (every one; the bus has ten a second). Live modes
    # need only the FX rate (fees and PnL in KRW), from the bus; so does a
    # backtest, whose fills are the replay exchange's.
    @classmethod
    def subscriptions_for(cls, config: Any) -> tuple[str, ...]:
        return ("state",) if _paper_fills(config) else cls.subscriptions

    @classmethod
    def direct_for(cls, config: Any) -> dict[str, tuple[str, ...]]:
        return cls._FEEDS if _paper_fills(config) else {}
    has_inbox = True
    tick_interval_s = 0.5

    def on_start(self) -> None:
        cfg = self.ctx.config
        self.mode = cfg.mode
        self.exe = cfg.execution
        steps: dict[str, float] = {}
        t0 = time.perf_counter()
        self.ledger = Ledger(self.ctx.run.ledger_path)
        steps["ledger_ms"] = (time.perf_counter() - t0) * 1e3
        self.books: dict[tuple[str, str], BookTop] = {}
        self.trading: TradingState | None = None
        self.hist = Histogram(self.ctx.counters, "arbd_decision_to_ack_seconds")
        self.breakers = CircuitBreakers(self.exe.breaker, VENUES)
        self.decisions: dict[str, _Decision] = {}
        self.inflight: dict[str, LegOrder] = {}
        self.unanswered: dict[str, tuple[str, float]] = {}  # sent, no word yet: cid -> (venue, market monotonic)
        self.needs: dict[str, tuple[Need, int]] = {}  # cid -> (what it holds, done ts_ns or 0)
        self._unknown_ticks = 0
        self._results_told = self._results_done = 0  # gateway answers via pykka (see _on_leg_result_threadsafe)
        t0 = time.perf_counter()
        self.gateway = make_gateway(cfg, self.ctx.run, self.books, self._on_leg_result_threadsafe)
        steps["gateway_ms"] = (time.perf_counter() - t0) * 1e3
        t0 = time.perf_counter()
        n = self._reconcile()
        steps["reconcile_ms"] = (time.perf_counter() - t0) * 1e3
        # Whatever the incarnation before this one committed to the ledger but never
        # sent (a kill between the commit and the send) the position reads there.
        self.ctx.send("position", LedgerResync(reason="executor started"))
        self._publish_stats()
        self._publish_health()
        log.info("executor ready: %s", ", ".join(f"{k}={v:.1f}" for k, v in steps.items()))
        self.ctx.record_event("executor_start", {**{k: round(v, 1) for k, v in steps.items()},
                                                 "reconciled": n})

    def warmth(self) -> tuple[bool, str]:
        waiting = self.gateway.waiting_for()
        return (not waiting), waiting

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
        probes: tuple[str, ...] = ()
        if not d.reduce_only and self.mode == "live_trading":
            why = self._unfunded(legs)
            if why:
                self.ctx.count(key("c", "arbd_inventory_refusals_total", symbol=intent.symbol))
                self._refuse(intent, f"inventory: {why}")
                return
            why = self._unanswered(tuple(lg.venue for lg in legs))
            if why:
                self._refuse(intent, why)
                return
            ok, why, probes = self.breakers.admit_open(tuple(lg.venue for lg in legs), clock.monotonic())
            if not ok:
                self._refuse(intent, why)
                return
        why = self.gateway.budget_refusal(legs)
        if why:  # before the ledger: a decision the budget cannot carry costs no fsync
            self.ctx.count(key("c", "arbd_decisions_unsent_total", reason="budget"))
            self._refuse(intent, why)
            return
        # Durable before sent: the one rule that makes restarts safe.
        self.ledger.record_intent(intent, d.scale, [(lg.client_order_id, lg.venue, lg.side, lg.qty, lg.price)
                                                     for lg in legs], decided_ns=d.ts_ns)
        if probes:  # the probed venue's leg alone first: a refusal there leaves nothing naked
            legs.sort(key=lambda lg: lg.venue not in probes)
        first, rest = (legs[:1], legs[1:]) if probes else (legs, [])
        self.decisions[intent.id] = _Decision(ts_ns=d.ts_ns, pending={lg.client_order_id for lg in legs},
                                              queued=rest)
        for lg in legs:
            self.inflight[lg.client_order_id] = lg
            self.needs[lg.client_order_id] = (leg_need(lg.venue, lg.symbol, lg.side, lg.qty, lg.price), 0)
        for lg in first:
            self._emit(lg, "sent", 0.0, 0.0, 0.0, "")
        self._submit(first)

    def _submit(self, legs: list[LegOrder]) -> None:
        if self.mode == "live_trading":  # each order sent gets one VenueReply: its answer or our timeout
            now = clock.monotonic()
            for lg in legs:
                self.unanswered[lg.client_order_id] = (lg.venue, now)
        self.gateway.submit(legs)

    def _unanswered(self, venues: tuple[str, ...]) -> str:
        """Why an open may not go to ``venues`` now: one of them has left an
        order request of ours unanswered past ``breaker.slow_after_s`` (its
        fill on the private stream does not count: the order endpoint is what
        is late). Past the reply timeout the breaker judges, and a request
        with no reply by then (never, by the gateway's contract) is dropped."""
        now, limit = clock.monotonic(), self.exe.breaker.slow_after_s
        forget = self.exe.order_timeout_s + 1.0
        for cid, (venue, sent) in tuple(self.unanswered.items()):
            if now - sent > forget:
                del self.unanswered[cid]
            elif venue in venues and now - sent > limit:
                return f"venue slow: {venue} has not answered an order for {now - sent:.1f}s"
        return ""

    def _refusal(self, d: GuardDecision) -> str:
        if self.mode == "live_readonly":
            return "live_readonly: orders are disabled"
        age = (clock.time_ns() - d.ts_ns) / 1e9
        if age > MAX_DECISION_AGE_S:
            return f"stale decision ({age:.1f}s old)"
        if d.intent.expires_ns and clock.time_ns() > d.intent.expires_ns:
            return "intent expired before execution"
        t = self.trading
        if t is None:
            return "executor cross-check: no trading state yet"
        if d.reduce_only:  # the guard checked that it shrinks exposure; only disarmed stops it here
            return "executor cross-check: trading disarmed" if t.state == "disarmed" else ""
        if t.state != "armed" or t.fail_closed:
            why = f"trading {t.state}" if t.state != "armed" else "fail-closed: " + "; ".join(t.reasons)
            return f"executor cross-check: {why}"
        return ""

    def _unfunded(self, legs: list[LegOrder]) -> str:
        view = self.gateway.balance_view()
        if view is None:
            return ""  # the gateway has no balance source (never in live_trading with keys)
        free, updated_ns = view
        held: dict[tuple[str, str], float] = {}
        for cid, (need, done_ns) in list(self.needs.items()):
            # Held until a balance update newer than the leg's end shows what it took.
            if done_ns and updated_ns.get(need.venue, 0) > done_ns:
                del self.needs[cid]
                continue
            held[(need.venue, need.asset)] = held.get((need.venue, need.asset), 0.0) + need.amount
        needs = [leg_need(lg.venue, lg.symbol, lg.side, lg.qty, lg.price) for lg in legs]
        return unfunded(needs, free, held, margin=self.exe.inventory_margin)

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
            out.append(self._leg(intent, leg.venue, leg.side, qty, leg.price, leg.client_order_id))
        return out

    @staticmethod
    def _leg(intent: OrderIntent, venue: str, side: str, qty: float, price: float, cid: str) -> LegOrder:
        return LegOrder(intent_id=intent.id, pair_id=intent.pair_id, action=intent.action, venue=venue,
                        symbol=intent.symbol, side=side, qty=qty, price=price, client_order_id=cid,
                        origin_ts_ns=intent.origin_ts_ns)

    def _refuse(self, intent: OrderIntent, reason: str) -> None:
        self.ctx.count(key("c", "arbd_orders_total", venue="all", status="refused"))
        log.info("refused intent %s: %s", intent.id, reason)
        self.ctx.record_event("risk_block", {"symbol": intent.symbol, "intent_id": intent.id,
                                             "action": intent.action, "reason": reason, "by": "executor"})
        for leg in intent.legs:
            lg = self._leg(intent, leg.venue, leg.side, leg.qty, leg.price, leg.client_order_id)
            self._emit(lg, "refused", 0.0, 0.0, 0.0, reason, to_position=True)

    # -- results -----------------------------------------------------------------
    def _on_leg_result_threadsafe(self, result: LegResult | VenueReply) -> None:
        """Called on the gateway's loop thread with each venue answer.

        As the host does with bus messages (``ActorHost._deliver``): when the
        actor is idle and has handled everything this thread handed over
        before, the answer is handled right here under ``host_run_lock`` (the
        actor stays single-threaded, the order per leg is kept), sparing the
        two thread wake-ups of a pykka hand-off on the way to the ack. A busy
        actor gets it through its inbox as before. A handler that raises here
        is re-raised on the actor thread, which ends the actor as a failed
        ``tell`` would."""
        if (self._results_told == self._results_done and self.host_ready
                and self.host_run_lock.acquire(blocking=False)):
            try:
                if not self.actor_stopped.is_set():
                    self._on_venue_answer(result)
                    return
            except Exception as e:  # noqa: BLE001 - handed to the actor thread to end it
                self.actor_ref.tell(_Failed(e))
                return
            finally:
                self.host_run_lock.release()
        self._results_told += 1
        self.actor_ref.tell(result)

    def on_receive(self, message: Any) -> Any:
        if type(message) is LegResult or type(message) is VenueReply:
            try:
                self._on_venue_answer(message)
            finally:
                self._results_done += 1
            return None
        if type(message) is _Failed:
            raise message.error
        return super().on_receive(message)

    def _on_venue_answer(self, message: LegResult | VenueReply) -> None:
        if type(message) is LegResult:
            self._on_leg_result(message)
        else:
            # The order endpoint answered (or our timeout did): a fill on the private
            # stream alone does not say the venue answers its orders in time.
            self.unanswered.pop(message.client_order_id, None)
            if self.mode == "live_trading":  # paper fills never reach a venue: nothing to break
                self._breaker_result(message.venue, message.accepted, message.kind or "other", message.reason)
        if self.ctx.progress is not None:
            self.ctx.progress.set(pending=self.pending_work())

    def pending_work(self) -> int:
        """Legs at a venue, sent and not final (a backtest's clock waits for them);
        a probe's partner legs are not sent yet."""
        return len(self.inflight) - sum(len(d.queued) for d in self.decisions.values())

    def _on_leg_result(self, r: LegResult) -> None:
        lg = r.leg
        evt = self._emit(lg, r.status, r.filled_qty, r.avg_price, r.fee_krw, r.reason, to_position=True)
        self.ledger.apply(evt, r.venue_order_id)
        self.ctx.count(key("c", "arbd_orders_total", venue=lg.venue, status=r.status))
        if r.filled_qty > 0:
            self.ctx.record_event("trade", {"symbol": lg.symbol, "venue": lg.venue, "side": lg.side,
                                            "quantity": r.filled_qty, "price": r.avg_price,
                                            "client_order_id": lg.client_order_id, "action": lg.action,
                                            "pair_id": lg.pair_id, "fee_krw": round(r.fee_krw, 2)})
        if r.status == "unknown" or not r.done:
            return  # a final state follows (stream, lookup, or the reconcile on tick)
        self.inflight.pop(lg.client_order_id, None)
        if r.kind == "budget":  # never sent: no reply will come
            self.unanswered.pop(lg.client_order_id, None)
        if lg.client_order_id in self.needs:
            self.needs[lg.client_order_id] = (self.needs[lg.client_order_id][0], time.time_ns())
        accepted = r.status in ACCEPTED
        if r.status in ("rejected", "failed") and r.kind:
            self.ctx.count(key("c", "arbd_venue_rejects_total", venue=lg.venue, kind=r.kind))
        d = self.decisions.get(lg.intent_id)
        if d is None:
            return
        d.pending.discard(lg.client_order_id)
        if r.kind == "budget":
            d.unsent = True
        if d.queued:
            queued, d.queued = d.queued, []
            if accepted:
                for q in queued:
                    self._emit(q, "sent", 0.0, 0.0, 0.0, "")
                self._submit(queued)
            else:  # the probe was refused: the other legs are never sent, so nothing is naked
                for q in queued:
                    self._not_sent(q, f"not sent: the probe leg on {lg.venue} was refused ({r.reason})")
                    d.pending.discard(q.client_order_id)
                d.unsent = True
        if not d.pending:
            del self.decisions[lg.intent_id]
            if d.unsent:  # refused here, not acknowledged there: counted, not timed
                self.ctx.count(key("c", "arbd_decisions_unsent_total", reason=r.kind or "probe"))
            else:
                self.hist.observe(max(0.0, (clock.time_ns() - d.ts_ns) / 1e9))

    def _not_sent(self, lg: LegOrder, reason: str) -> None:
        self.inflight.pop(lg.client_order_id, None)
        self.unanswered.pop(lg.client_order_id, None)
        self.needs.pop(lg.client_order_id, None)
        evt = self._emit(lg, "failed", 0.0, 0.0, 0.0, reason, to_position=True)
        self.ledger.apply(evt)

    def _breaker_result(self, venue: str, accepted: bool, kind: str, reason: str) -> None:
        tr = self.breakers.on_result(venue, accepted, kind, reason, clock.monotonic())
        if tr is not None:
            self._on_transition(tr)

    def _on_transition(self, tr: Transition) -> None:
        level = logging.INFO if tr.state == CLOSED else logging.WARNING
        log.log(level, "breaker %s for %s: %s (next probe in %.1fs)", tr.state, tr.venue, tr.reason, tr.backoff_s)
        self.ctx.record_event("breaker", {"venue": tr.venue, "state": tr.state, "reason": tr.reason,
                                          "backoff_s": tr.backoff_s, "trips": tr.trips})
        if tr.state != CLOSED:
            self.ctx.count(key("c", "arbd_breaker_trips_total", venue=tr.venue))
        self._publish_health()

    def _emit(self, lg: LegOrder, status: str, filled: float, avg: float, fee_krw: float, reason: str,
              to_position: bool = False) -> OrderEvent:
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
    def _reconcile(self) -> int:
        rows = self.ledger.unresolved()
        if not rows:
            return 0
        log.warning("reconciling %d unresolved orders from the ledger", len(rows))
        self.ctx.record_event("restart", {"reconcile_orders": len(rows)})
        for row in rows:
            self.gateway.reconcile(self._leg_of(row), row.created_ns)
        return len(rows)

    @staticmethod
    def _leg_of(row: OrderRow) -> LegOrder:
        return LegOrder(intent_id=row.intent_id, pair_id=row.pair_id, action=row.action, venue=row.venue,
                        symbol=row.symbol, side=row.side, qty=row.qty, price=row.price,
                        client_order_id=row.client_order_id, origin_ts_ns=0)

    # -- periodic ------------------------------------------------------------------------
    def on_tick(self, now_ns: int) -> None:
        self._publish_stats()
        self._publish_health()
        self.ledger.checkpoint()  # here, not in the write before a send (see Ledger._prime_wal)
        # Legs whose outcome could not be learnt are looked up again, never resent.
        self._unknown_ticks += 1
        if self._unknown_ticks % 5 == 0:
            for row in self.ledger.orders("status='unknown'"):
                if row.client_order_id not in self.inflight:
                    self.gateway.reconcile(self._leg_of(row), row.created_ns)
        bal = self.gateway.balances()
        if bal is not None:
            self.ctx.publish(bal)

    def _publish_stats(self) -> None:
        c = self.ledger.status_counts()
        self.ctx.publish(OrderStats(
            open=sum(c.get(s, 0) for s in ("pending", "sent", "open", "partially_filled", "unknown")),
            filled=c.get("filled", 0), cancelled=c.get("cancelled", 0),
            rejected=c.get("rejected", 0) + c.get("failed", 0), sent=sum(c.values())))

    def _publish_health(self) -> None:
        now = clock.monotonic()
        snap = self.breakers.snapshot(now)
        gw = self.gateway.health()
        for venue in VENUES:
            b, g = snap[venue], gw.get(venue, {})
            self.ctx.publish(VenueHealth(
                venue=venue, breaker=str(b["state"]), reason=str(b["reason"]),
                retry_in_s=float(b["retry_in_s"]), trips=int(b["trips"]),  # type: ignore[call-overload]
                refused_opens=int(b["refused_opens"]),  # type: ignore[call-overload]
                stream_up=bool(g.get("stream_up", False)), stream_age_s=float(g.get("stream_age_s", -1.0)),
                budget={k: float(v) for k, v in (g.get("budget") or {}).items()}))
            c = self.ctx.counters
            c[key("g", "arbd_breaker_open", venue=venue)] = 0.0 if b["state"] == CLOSED else 1.0
            c[key("g", "arbd_private_stream_up", venue=venue)] = 1.0 if g.get("stream_up") else 0.0
            for bucket, frac in (g.get("budget") or {}).items():
                c[key("g", "arbd_rate_budget_remaining_ratio", venue=venue, bucket=bucket)] = float(frac)
            if self.mode == "live_trading" and g.get("keys"):
                # Fills and balances come from the private stream: without it trading runs
                # blind (REST lookups keep resolving legs, and reducing orders still pass).
                down = float(g.get("stream_down_s", 0.0))
                self.ctx.publish(FailClosed(
                    source=self.role, key=f"stream.{venue}", active=down >= self.exe.stream_grace_s,
                    reason=f"{venue} private stream down for {down:.1f}s"))

    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        if command == "cancel_all":
            n = self.gateway.cancel_all(str(args.get("reason", "")))
            self.ctx.record_event("cancel_all", {"reason": args.get("reason", ""), "cancelled": n})
            return {"cancelled": n}
        return super().on_command(command, args)
