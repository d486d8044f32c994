"""What a person at the terminal should hear of a run: one line per pair
opened, closed or unwound, per change of the trading state, per restart,
and a compact status line.

Pure: messages in, :class:`Line`\\s out, a clock passed in. The daemon's
console (:mod:`supervisors.console`) feeds it what the supervisor process
already receives - every ``OrderEvent`` and ``TradingState`` through the bus
proxy, its own supervisor events - and prints what it returns.

Pairs are followed with the position actor's own accounting
(:class:`arbitrage.accounting.Portfolio`) over the same order events, so a
line says what the position believes: a pair is *opened* when no open order
of it is live any more and it holds coin, *closed* when it is flat again
(with the realized PnL the position books), *failed* when its open filled
nothing. Trading-state lines wait until the state has held for ``settle_s``:
at start the guard's fail-closed reasons change a dozen times within a
fraction of a second, and a person needs the outcome, not the churn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from arbitrage.accounting import CLOSED, CLOSING, FAILED, OPEN, OPENING, TERMINAL, Pair, Portfolio
from arbitrage.premium import premium_pct
from arbitrage.venue_rules import BINANCE, UPBIT
from messages import BUY_UPBIT, SELL_UPBIT, OrderEvent, PositionState, TradingState

# Tones: how a line should look; the console maps them to styles.
GOOD, BAD, WARN, NOTE, QUIET = "good", "bad", "warn", "note", "quiet"
STATE_SETTLE_S = 0.5
NARRATED_RESTART_EVENTS = frozenset({"kill", "restart", "recycle", "escalate"})

_DIRECTION = {SELL_UPBIT: "sell upbit / buy binance", BUY_UPBIT: "buy upbit / sell binance"}


@dataclass(frozen=True, slots=True)
class Line:
    level: int  # a logging level
    actor: str  # the role the line is about
    tag: str  # OPEN, CLOSE, UNWIND, ... STATUS
    text: str
    tone: str = NOTE


@dataclass(frozen=True, slots=True)
class _StateView:
    state: str
    fail_closed: bool
    reasons: tuple[str, ...]
    halt_reason: str
    mode: str


def _num(x: float) -> str:
    """A price or quantity as a person reads it: whole won, cents of a dollar, four digits of a coin."""
    if abs(x) >= 100_000:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:,.2f}".rstrip("0").rstrip(".")
    return f"{x:.4g}"


def _held(pair: Pair) -> str:
    if not (pair.closed_at and pair.opened_at):
        return ""
    s = max(0.0, pair.closed_at - pair.opened_at)
    return f"  held {s:.1f}s" if s < 10 else f"  held {s:.0f}s" if s < 600 else f"  held {s / 60:.0f}m"


def _avg(legs: Iterable[OrderEvent], venue: str) -> tuple[float, float, float]:
    """(filled, average price, fx) over the filled legs on ``venue``."""
    qty = cost = fx_w = 0.0
    for ev in legs:
        if ev.venue == venue and ev.filled_qty > 0:
            qty += ev.filled_qty
            cost += ev.filled_qty * ev.avg_price
            fx_w += ev.filled_qty * ev.fx
    return (qty, cost / qty, fx_w / qty) if qty else (0.0, 0.0, 0.0)


def _premium(legs: list[OrderEvent]) -> float | None:
    """The premium the two venues' fills of ``legs`` were traded at (None without both)."""
    _, up_px, _ = _avg(legs, UPBIT)
    _, bn_px, fx = _avg(legs, BINANCE)
    if not (up_px and bn_px and fx):
        return None
    return premium_pct(up_px, bn_px, fx)


def _outcomes(legs: list[OrderEvent]) -> str:
    """Each leg's end as one phrase: "upbit filled 0.0008, binance rejected (reason)"."""
    parts = []
    for ev in sorted(legs, key=lambda e: e.client_order_id):
        what = f"{ev.venue} {ev.side} {ev.status}"
        if ev.filled_qty > 0:
            what += f" {_num(ev.filled_qty)} @ {_num(ev.avg_price)}"
        if ev.reason and ev.status != "filled":
            what += f" ({ev.reason})"
        parts.append(what)
    return ", ".join(parts)


class Narrator:
    """Turns order events, trading states and supervisor events into lines."""

    def __init__(self, now: Callable[[], float], history: Iterable[OrderEvent] = (),
                 settle_s: float = STATE_SETTLE_S) -> None:
        self.now = now
        self.settle_s = settle_s
        self.portfolio = Portfolio(now)
        self._legs: dict[str, dict[str, OrderEvent]] = {}  # pair id -> client order id -> latest event
        self._pending: _StateView | None = None
        self._pending_at = 0.0
        self._reported: _StateView | None = None
        # Pairs opened before this start: known, so their close reads as a close.
        for ev in history:
            self._remember(self.portfolio.apply(ev), ev)

    # -- pairs -------------------------------------------------------------------
    def order_event(self, ev: OrderEvent) -> list[Line]:
        prev = self.portfolio.pair(ev.pair_id)
        pair = self.portfolio.apply(ev)
        legs = self._remember(pair, ev)
        was = prev.state if prev is not None else None
        if pair.state == OPEN:
            if was in (None, OPENING):
                return [self._opened(pair, legs)]
            if was == CLOSING:
                return [self._still_open(pair, ev, legs)]
            if prev is not None and prev.balanced != pair.balanced:
                return [self._hedge(pair, legs)]
        elif pair.state == CLOSED and was != CLOSED:
            return [self._closed(pair, ev, legs)]
        elif pair.state == FAILED and was != FAILED:
            return self._failed(pair, legs)
        return []

    def _remember(self, pair: Pair, ev: OrderEvent) -> list[OrderEvent]:
        legs = self._legs.setdefault(ev.pair_id, {})
        old = legs.get(ev.client_order_id)
        if old is None or old.status not in TERMINAL or ev.status in TERMINAL:
            legs[ev.client_order_id] = ev
        out = list(legs.values())
        if pair.state in (CLOSED, FAILED):
            del self._legs[ev.pair_id]  # done: only open pairs are held
        return out

    def _opened(self, pair: Pair, legs: list[OrderEvent]) -> Line:
        opens = [e for e in legs if e.action == "open"]
        head = f"{pair.symbol}  {_DIRECTION.get(pair.direction, pair.direction)}"
        if not pair.balanced:
            return Line(logging.WARNING, "executor", "OPEN", f"{head}: legs unequal (upbit {pair.upbit_qty:+g}, "
                        f"binance {pair.binance_qty:+g}): {_outcomes(opens)}; a repair follows", WARN)
        _, up_px, _ = _avg(opens, UPBIT)
        _, bn_px, _ = _avg(opens, BINANCE)
        return Line(logging.INFO, "executor", "OPEN",
                    f"{head}  {_num(pair.qty)}  premium {pair.entry_premium_pct:+.2f}%  "
                    f"(upbit {_num(up_px)} KRW, binance {_num(bn_px)} USDT)", NOTE)

    def _closed(self, pair: Pair, ev: OrderEvent, legs: list[OrderEvent]) -> Line:
        pnl = pair.realized_pnl_krw or 0.0
        tone = GOOD if pnl >= 0 else BAD
        held = _held(pair)
        if ev.action == "unwind":
            unwinds = [e for e in legs if e.action == "unwind" and e.filled_qty > 0]
            return Line(logging.INFO, "executor", "UNWIND",
                        f"{pair.symbol}  flat again after unwinding {_outcomes(unwinds) or 'its excess'}  "
                        f"PnL {pnl:+,.0f} KRW{held}", tone)
        closes = [e for e in legs if e.action == "close"]
        qty = max(_avg(closes, UPBIT)[0], _avg(closes, BINANCE)[0])
        exit_pct = _premium(closes)
        premium = f"premium {pair.entry_premium_pct:+.2f}%" + (f" -> {exit_pct:+.2f}%" if exit_pct is not None else "")
        return Line(logging.INFO, "executor", "CLOSE",
                    f"{pair.symbol}  {_DIRECTION.get(pair.direction, pair.direction)}  {_num(qty)}  {premium}  "
                    f"PnL {pnl:+,.0f} KRW{held}", tone)

    def _still_open(self, pair: Pair, ev: OrderEvent, legs: list[OrderEvent]) -> Line:
        """A close or an unwind ended and the pair still holds coin."""
        mine = [e for e in legs if e.intent_id == ev.intent_id]
        if ev.action == "unwind" and pair.balanced:
            return Line(logging.INFO, "executor", "UNWIND",
                        f"{pair.symbol}  hedge repaired: {_outcomes(mine)}; the pair stays open", GOOD)
        unequal = "" if pair.balanced else \
            f"; legs unequal (upbit {pair.upbit_qty:+g}, binance {pair.binance_qty:+g})"
        level = logging.INFO if pair.balanced and all(e.status in ("filled", "cancelled") for e in mine) \
            else logging.WARNING
        return Line(level, "executor", ev.action.upper(),
                    f"{pair.symbol}  not done: {_outcomes(mine)}; the pair stays open{unequal}",
                    QUIET if level == logging.INFO else WARN)

    def _hedge(self, pair: Pair, legs: list[OrderEvent]) -> Line:
        if pair.balanced:
            return Line(logging.INFO, "executor", "HEDGED", f"{pair.symbol}  legs equal again", GOOD)
        return Line(logging.WARNING, "executor", "NAKED",
                    f"{pair.symbol}  legs unequal (upbit {pair.upbit_qty:+g}, binance {pair.binance_qty:+g})", WARN)

    def _failed(self, pair: Pair, legs: list[OrderEvent]) -> list[Line]:
        """An open that filled nothing. Refused before it was sent (our own
        rate budget, breaker, inventory) it is a risk block, not news here."""
        if all(e.status == "refused" for e in legs):
            return []
        venue_said_no = any(e.status in ("rejected", "failed") for e in legs)
        return [Line(logging.WARNING if venue_said_no else logging.INFO, "executor", "NO FILL",
                     f"{pair.symbol}  {_DIRECTION.get(pair.direction, pair.direction)}: {_outcomes(legs)}",
                     WARN if venue_said_no else QUIET)]

    # -- trading state --------------------------------------------------------------
    def trading_state(self, ts: TradingState) -> None:
        view = _StateView(ts.state, ts.fail_closed, tuple(ts.reasons), ts.halt_reason, ts.mode)
        if view != self._pending:
            self._pending, self._pending_at = view, self.now()

    def poll(self) -> list[Line]:
        """Lines for a trading state that has held for ``settle_s`` and not been told yet."""
        new = self._pending
        if new is None or new == self._reported or self.now() - self._pending_at < self.settle_s:
            return []
        old, self._reported = self._reported, new
        out = []
        if old is None or old.state != new.state:
            if new.state == "halted":
                out.append(Line(logging.WARNING, "guard", "HALTED",
                                f"{new.halt_reason or 'halted'}; orders stop until `arbctl arm`", BAD))
            elif new.state == "armed":
                out.append(Line(logging.INFO, "guard", "ARMED",
                                f"{new.mode}: " + ("orders wait while fail-closed" if new.fail_closed
                                                   else "orders may flow"), GOOD))
            else:
                out.append(Line(logging.INFO if old is None else logging.WARNING, "guard", "DISARMED",
                                f"{new.mode}: no orders until `arbctl arm`", WARN))
        if new.fail_closed and (old is None or not old.fail_closed or old.reasons != new.reasons):
            out.append(Line(logging.WARNING, "guard", "FAIL-CLOSED", "; ".join(new.reasons) or "no reason given", BAD))
        elif not new.fail_closed and old is not None and old.fail_closed:
            out.append(Line(logging.INFO, "guard", "RESUMED", "fail-closed cleared" + (
                ": orders may flow" if new.state == "armed" else f" (trading {new.state})"), GOOD))
        return out

    # -- supervision -----------------------------------------------------------------
    @staticmethod
    def supervisor_event(kind: str, data: dict[str, object]) -> list[Line]:
        """A line for a restart-log record the supervisor announces (kill, restart, recycle, escalate)."""
        event, actor, reason = str(data.get("event", kind)), str(data.get("actor", "?")), str(data.get("reason", ""))
        if kind == "escalate" or event == "escalate":
            return [Line(logging.ERROR, "supervisor", "ESCALATE",
                         f"{reason}: trading halted, open orders cancelled, arbd exits", BAD)]
        asked = reason.endswith("requested")  # an operator's or the watchdog's restart: not a failure
        if event == "kill":
            return [Line(logging.WARNING, "supervisor", "KILL", f"{actor}: {reason}", WARN)]
        if event == "restart":
            backoff = data.get("backoff_s")
            when = f" in {backoff:g}s" if isinstance(backoff, (int, float)) and backoff > 0 else ""
            return [Line(logging.INFO if asked else logging.WARNING, "supervisor", "RESTART",
                         f"{actor} ({reason}): restart #{data.get('restarts', '?')}{when}", QUIET if asked else WARN)]
        if event == "recycle":
            return [Line(logging.INFO, "supervisor", "RECYCLE", f"{actor}: {reason}", QUIET)]
        return []


def status_line(premiums: dict[str, float], pos: PositionState | None, ts: TradingState | None) -> Line:
    """The compact status: premium per coin, trades, PnL, exposure, trading state."""
    prem = "  ".join(f"{sym} {p:+.2f}%" for sym, p in sorted(premiums.items())) or "no premium yet"
    if pos is not None:
        trades = f"trades {pos.trades_opened} opened, {pos.trades_closed} closed, {pos.open_pairs} open"
        money = f"PnL {pos.realized_pnl_krw:+,.0f} KRW | exposure {pos.exposure_krw:,.0f} KRW"
    else:
        trades, money = "trades -", "PnL - | exposure -"
    state = "trading ?" if ts is None else f"{ts.state}" + (" FAIL-CLOSED" if ts.fail_closed else "")
    bad = ts is not None and (ts.fail_closed or ts.state != "armed")
    return Line(logging.INFO, "supervisor", "STATUS", f"{prem} | {trades} | {money} | {state}",
                WARN if bad else QUIET)


__all__ = ["BAD", "GOOD", "NARRATED_RESTART_EVENTS", "NOTE", "QUIET", "STATE_SETTLE_S", "WARN", "Line",
           "Narrator", "status_line"]
