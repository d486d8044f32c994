"""Pairs, exposure and PnL, built from order events alone.

A *pair* is the hedged position one ``pair_id`` holds: its ``open`` legs
(sell where the coin is rich, buy where it is cheap, same quantity), its
``close`` legs (the opposite pair) and any ``unwind`` legs that flatten a
broken hedge. Everything here is derived from ``OrderEvent``\\s, so
:meth:`Portfolio.rebuild` over the ledger's event history reproduces what
incremental :meth:`Portfolio.apply` produced, and a restart resets no limit.

Conventions:

- ``filled_qty``, ``avg_price`` and ``fee_krw`` of an event are cumulative for
  its order (``client_order_id``), as the executor reports them. Applying an
  event twice changes nothing; an older event arriving late never lowers a fill
  or reopens a terminal order.
- Exposure is the KRW value of the coin a pair holds on the venue where it
  holds more, priced at the pair's Upbit *open limit price* (the price the
  planner sized it at), so a favourable fill never pushes exposure past the
  cap it was sized under. ``committed_exposure_krw`` adds what in-flight open
  orders (and reserved intents not yet seen by the executor) would add.
- Realized PnL is booked when a pair is flat again on both venues: KRW flow
  on Upbit + USDT flow on Binance at the fx of the pair's last Binance fill −
  all fees (KRW). A remainder too small to trade on its venue (under the
  5,000 KRW or NOTIONAL minimum) counts as flat: it is dust, not a position.
- Days are KST (UTC+9) calendar days by default: the operator's day, which is
  what a daily loss limit means to them. ``utc_offset_s=0`` gives UTC days
  (both venues' own daily boundaries). A close counts on the day of the event
  that made the pair flat (its ``ts_ns``), so a rebuild puts it on the same day.
- Fx: ``OrderEvent`` carries no fx, so a fill takes the fx its intent was
  reserved with, else the last :meth:`Portfolio.mark_fx`. If the executor adds
  an ``fx`` field to its events, that value wins (read with ``getattr``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from arbitrage.premium import meets_venue_minimum, opposite
from arbitrage.venue_rules import BINANCE, UPBIT, round_binance_qty, round_upbit_qty
from messages.trading import BUY_UPBIT, SELL_UPBIT, OrderEvent, OrderIntent

OPENING, OPEN, CLOSING, CLOSED, FAILED = "opening", "open", "closing", "closed", "failed"
RESERVED = "reserved"  # an intent the planner issued, before the executor's first event
TERMINAL = frozenset({"filled", "cancelled", "rejected", "failed", "refused", "expired"})
KST_OFFSET_S = 9 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class Pair:
    """One pair as the events describe it. Quantities in coin, signed (+ long)."""

    pair_id: str
    symbol: str
    direction: str  # SELL_UPBIT | BUY_UPBIT: how it was opened
    state: str  # opening | open | closing | closed | failed
    qty: float  # hedged quantity: what a close trades on each venue
    upbit_qty: float
    binance_qty: float
    balanced: bool  # the two venues' holdings cancel out (to within dust)
    upbit_entry_price: float  # KRW, average of the open fills
    binance_entry_price: float  # USDT
    entry_fx: float
    entry_premium_pct: float
    opened_at: float  # seconds: the pair's first order
    closed_at: float | None
    exposure_krw: float
    committed_krw: float  # exposure if every in-flight open order fills
    realized_pnl_krw: float | None  # set once closed
    in_flight: str  # "" or the action of a live order: open | close | unwind
    orders: int  # orders known, reservations included


@dataclass(frozen=True, slots=True, kw_only=True)
class Unwind:
    """One order that flattens a pair whose legs filled unequally."""

    pair_id: str
    symbol: str
    venue: str
    side: str
    qty: float
    reason: str


class _Order:
    __slots__ = ("client_order_id", "intent_id", "action", "venue", "side", "qty", "price", "status",
                 "filled", "avg_price", "fee_krw", "fx", "first_ns", "reserved")

    def __init__(self, *, client_order_id: str, intent_id: str, action: str, venue: str, side: str,
                 qty: float, price: float, status: str, fx: float, first_ns: int,
                 reserved: bool = False) -> None:
        self.client_order_id = client_order_id
        self.intent_id = intent_id
        self.action = action
        self.venue = venue
        self.side = side
        self.qty = qty
        self.price = price
        self.status = status
        self.filled = 0.0
        self.avg_price = 0.0
        self.fee_krw = 0.0
        self.fx = fx
        self.first_ns = first_ns
        self.reserved = reserved


class _Book:
    __slots__ = ("pair_id", "symbol", "direction", "orders", "fx_close", "view", "unwind", "day",
                 "counted_open", "closed_ns")

    def __init__(self, pair_id: str, symbol: str) -> None:
        self.pair_id = pair_id
        self.symbol = symbol
        self.direction = ""
        self.orders: dict[str, _Order] = {}
        self.fx_close = 0.0
        self.view: Pair | None = None
        self.unwind: Unwind | None = None
        self.day: int | None = None
        self.counted_open = False
        self.closed_ns = 0


def _direction_of(action: str, venue: str, side: str) -> str:
    sells_upbit = (venue == UPBIT) == (side == "sell")  # an upbit sell or a binance buy
    d = SELL_UPBIT if sells_upbit else BUY_UPBIT
    return d if action == "open" else opposite(d) if action == "close" else ""


class Portfolio:
    """The position and PnL view of every pair. ``now`` returns seconds."""

    def __init__(self, now: Callable[[], float], *, fx_krw_per_usdt: float = 0.0,
                 reservation_timeout_s: float = 30.0, utc_offset_s: int = KST_OFFSET_S) -> None:
        self.now = now
        self.fx = fx_krw_per_usdt
        self.reservation_timeout_s = reservation_timeout_s
        self.utc_offset_s = utc_offset_s
        self._reset()

    def _reset(self) -> None:
        self._books: dict[str, _Book] = {}
        self._active: dict[str, _Book] = {}
        self._intents: dict[str, str] = {}  # intent_id -> pair_id
        self._reserved: dict[str, _Book] = {}  # client_order_id -> book, while reserved
        self._realized = 0.0
        self._daily: dict[int, float] = {}
        self._opened = 0
        self._closed = 0

    # -- inputs --------------------------------------------------------------------
    def mark_fx(self, fx_krw_per_usdt: float) -> None:
        """The latest KRW per USDT, for fills whose event and intent carry none."""
        if fx_krw_per_usdt > 0:
            self.fx = fx_krw_per_usdt

    def reserve(self, intent: OrderIntent, fx: float = 0.0) -> Pair:
        """Count an issued intent's legs as live orders until the executor reports them.

        An open intent's notional is committed exposure from this moment, so the
        cap holds while the intent travels through guard and executor. Undone by
        :meth:`release`, by the executor's events, or after ``reservation_timeout_s``.
        """
        book = self._book(intent.pair_id, intent.symbol)
        if not book.direction and intent.action == "open":
            book.direction = intent.direction
        self._intents[intent.id] = intent.pair_id
        now_ns = int(self.now() * 1e9)
        for leg in intent.legs:
            if leg.client_order_id in book.orders:
                continue
            book.orders[leg.client_order_id] = _Order(
                client_order_id=leg.client_order_id, intent_id=intent.id, action=intent.action,
                venue=leg.venue, side=leg.side, qty=leg.qty, price=leg.price, status=RESERVED,
                fx=fx or self.fx, first_ns=now_ns, reserved=True)
            self._reserved[leg.client_order_id] = book
        return self._evaluate(book, now_ns)

    def release(self, intent_id: str) -> Pair | None:
        """An intent that will never execute (guard refused it): free what it reserved."""
        pair_id = self._intents.get(intent_id)
        book = self._books.get(pair_id) if pair_id is not None else None
        if book is None:
            return None
        for o in book.orders.values():
            if o.intent_id == intent_id and o.reserved and o.status == RESERVED:
                o.status = "refused"
                self._reserved.pop(o.client_order_id, None)
        return self._evaluate(book, int(self.now() * 1e9))

    def apply(self, ev: OrderEvent) -> Pair:
        """Apply one order event; returns the pair as it now stands."""
        book = self._book(ev.pair_id, ev.symbol)
        o = book.orders.get(ev.client_order_id)
        fx = getattr(ev, "fx", 0.0) or (o.fx if o is not None else 0.0) or self.fx
        if o is None:
            o = book.orders[ev.client_order_id] = _Order(
                client_order_id=ev.client_order_id, intent_id=ev.intent_id, action=ev.action,
                venue=ev.venue, side=ev.side, qty=ev.qty, price=ev.price, status=ev.status, fx=fx,
                first_ns=ev.ts_ns)
        elif o.reserved:  # the executor's first word replaces the planner's reservation
            o.reserved = False
            o.first_ns = ev.ts_ns
            o.status = ev.status
            self._reserved.pop(o.client_order_id, None)
        elif ev.status in TERMINAL or o.status not in TERMINAL:
            o.status = ev.status
        o.qty, o.price = ev.qty, ev.price  # the executor may have scaled the intent
        if ev.filled_qty >= o.filled:
            if ev.filled_qty > o.filled:
                o.fx = fx
                if o.venue != UPBIT:
                    book.fx_close = fx
            o.filled, o.avg_price, o.fee_krw = ev.filled_qty, ev.avg_price, ev.fee_krw
        self._intents.setdefault(ev.intent_id, ev.pair_id)
        if not book.direction:
            book.direction = _direction_of(ev.action, ev.venue, ev.side)
        return self._evaluate(book, ev.ts_ns)

    def rebuild(self, events: Iterable[OrderEvent]) -> None:
        """Forget everything (reservations too) and replay the event history in order."""
        self._reset()
        for ev in events:
            self.apply(ev)

    def resync(self, events: Iterable[OrderEvent]) -> None:
        """Replace the view with the ledger's history, keeping the reservations
        it does not know yet (intents on their way through guard and executor).

        For a peer's restart: a killed executor may have committed outcomes to
        the ledger whose events never left it, and the ledger is the truth."""
        history = list(events)
        kept = [(book.pair_id, book.symbol, book.direction, book.orders[cid]) for cid, book in self._reserved.items()]
        self.rebuild(history)
        known = {ev.client_order_id for ev in history}
        now_ns = int(self.now() * 1e9)
        for pair_id, symbol, direction, o in kept:
            if o.client_order_id in known:
                continue
            book = self._book(pair_id, symbol)
            if not book.direction:
                book.direction = direction
            book.orders[o.client_order_id] = o
            self._reserved[o.client_order_id] = book
            self._intents.setdefault(o.intent_id, pair_id)
            self._evaluate(book, now_ns)

    # -- queries --------------------------------------------------------------------
    def pair(self, pair_id: str) -> Pair | None:
        self._expire_reservations()
        book = self._books.get(pair_id)
        return book.view if book is not None else None

    def pairs(self, symbol: str | None = None) -> list[Pair]:
        """Pairs still holding or moving something (not closed, not failed)."""
        self._expire_reservations()
        return [b.view for b in self._active.values()
                if b.view is not None and (symbol is None or b.symbol == symbol)]

    def needs_unwind(self, symbol: str | None = None) -> list[Unwind]:
        """Orders that flatten pairs whose legs filled unequally (none in flight)."""
        self._expire_reservations()
        return [b.unwind for b in self._active.values()
                if b.unwind is not None and (symbol is None or b.symbol == symbol)]

    @property
    def exposure_krw(self) -> float:
        self._expire_reservations()
        return sum(b.view.exposure_krw for b in self._active.values() if b.view is not None)

    def committed_exposure_krw(self) -> float:
        """Exposure plus what every in-flight or reserved open would add if it filled."""
        self._expire_reservations()
        return sum(b.view.committed_krw for b in self._active.values() if b.view is not None)

    @property
    def realized_pnl_krw(self) -> float:
        return self._realized

    def daily_pnl_krw(self, at: float | None = None) -> float:
        """Realized PnL of the day (KST by default) containing ``at`` (default: now)."""
        t = self.now() if at is None else at
        return self._daily.get(self._day(int(t * 1e9)), 0.0)

    @property
    def trades_opened(self) -> int:
        return self._opened

    @property
    def trades_closed(self) -> int:
        return self._closed

    @property
    def open_pairs(self) -> int:
        return sum(1 for b in self._active.values() if b.view is not None and b.view.state != OPENING)

    def snapshot(self) -> dict[str, object]:
        """Everything derived, for comparisons and status (reservations expired first)."""
        self._expire_reservations()
        return {"pairs": {pid: b.view for pid, b in sorted(self._books.items())},
                "exposure_krw": self.exposure_krw, "realized_pnl_krw": self._realized,
                "daily_pnl_krw": dict(sorted(self._daily.items())),
                "trades_opened": self._opened, "trades_closed": self._closed}

    # -- internals ------------------------------------------------------------------
    def _book(self, pair_id: str, symbol: str) -> _Book:
        book = self._books.get(pair_id)
        if book is None:
            book = self._books[pair_id] = self._active[pair_id] = _Book(pair_id, symbol)
        return book

    def _day(self, ts_ns: int) -> int:
        return (ts_ns // 1_000_000_000 + self.utc_offset_s) // 86_400

    def _expire_reservations(self) -> None:
        if not self._reserved:
            return
        now_ns = int(self.now() * 1e9)
        limit_ns = int(self.reservation_timeout_s * 1e9)
        for cid, book in list(self._reserved.items()):
            o = book.orders[cid]
            if now_ns - o.first_ns > limit_ns:
                o.status = "expired"
                del self._reserved[cid]
                self._evaluate(book, now_ns)

    def _dust(self, venue: str, symbol: str, qty: float, price: float) -> bool:
        """Too little to trade on ``venue`` (under its minimum order): counts as nothing."""
        qty = abs(qty)
        if qty <= 1e-12 or price <= 0:
            return qty <= 1e-12
        return not meets_venue_minimum(venue, symbol, qty, price)

    def _evaluate(self, book: _Book, ts_ns: int) -> Pair:
        """Re-derive the pair from its orders and move the totals by the difference."""
        symbol = book.symbol
        u = b = krw = usdt = fees = 0.0  # coin per venue, cash flows, fees
        rem_u = rem_b = 0.0  # what live open orders would still add
        open_u = open_u_cost = open_b = open_b_cost = open_b_fx = 0.0
        ref: dict[str, float] = {}  # venue -> the price the pair is valued at
        live = ""
        for o in book.orders.values():
            if o.action == "open":
                ref.setdefault(o.venue, o.price)
            sign = 1.0 if o.side == "buy" else -1.0
            upbit = o.venue == UPBIT
            if o.filled > 0:
                signed, cash = sign * o.filled, sign * o.filled * o.avg_price
                if upbit:
                    u, krw = u + signed, krw - cash
                else:
                    b, usdt = b + signed, usdt - cash
                if o.action == "open" and upbit:
                    open_u, open_u_cost = open_u + o.filled, open_u_cost + o.filled * o.avg_price
                elif o.action == "open":
                    open_b, open_b_cost = open_b + o.filled, open_b_cost + o.filled * o.avg_price
                    open_b_fx += o.filled * o.fx
            fees += o.fee_krw
            if o.status not in TERMINAL:
                if o.action == "open":
                    live = "open"
                    left = sign * max(o.qty - o.filled, 0.0)
                    rem_u, rem_b = (rem_u + left, rem_b) if upbit else (rem_u, rem_b + left)
                elif live != "open":
                    live = o.action
        for o in book.orders.values():
            ref.setdefault(o.venue, o.price)
        ref_u, ref_b = ref.get(UPBIT, 0.0), ref.get(BINANCE, 0.0)
        entry_fx = open_b_fx / open_b if open_b else (book.fx_close or self.fx)
        up_entry = open_u_cost / open_u if open_u else 0.0
        bn_entry = open_b_cost / open_b if open_b else 0.0
        ref_krw = ref_u or ref_b * entry_fx
        had_fill = any(o.filled > 0 for o in book.orders.values())
        had_open_fill = open_u > 0 or open_b > 0

        if live == "open":
            state = OPENING
        elif live:
            state = CLOSING
        elif self._dust(UPBIT, symbol, u, ref_u) and self._dust(BINANCE, symbol, b, ref_b):
            state = CLOSED if had_fill else FAILED
        else:
            state = OPEN
        done = state in (CLOSED, FAILED)

        # Hedge check: the venue holding more gives back the excess (never flipping sign).
        excess = u + b
        venue, net = (UPBIT, u) if abs(u) >= abs(b) else (BINANCE, b)
        fix = min(abs(excess), abs(net))
        fix = round_upbit_qty(fix) if venue == UPBIT else round_binance_qty(fix, symbol)
        balanced = self._dust(venue, symbol, fix, ref_u if venue == UPBIT else ref_b)
        book.unwind = None
        if state == OPEN and not balanced:
            side = "sell" if net > 0 else "buy"
            book.unwind = Unwind(
                pair_id=book.pair_id, symbol=symbol, venue=venue, side=side, qty=fix,
                reason=f"legs filled unequally (upbit {u:+.8g}, binance {b:+.8g}): {side} {fix:g} on {venue}")

        prev = book.view
        pnl = krw + usdt * (book.fx_close or entry_fx) - fees if state == CLOSED else None
        old = prev.realized_pnl_krw if prev is not None else None
        if pnl != old:  # touch the totals only on a change, so repeats leave them bit-identical
            if old is not None and book.day is not None:
                self._realized -= old
                self._daily[book.day] -= old
            if pnl is None:
                book.day, book.closed_ns = None, 0
            else:
                if book.day is None:
                    book.day, book.closed_ns = self._day(ts_ns), ts_ns
                self._realized += pnl
                self._daily[book.day] = self._daily.get(book.day, 0.0) + pnl
        self._closed += (state == CLOSED) - (prev is not None and prev.state == CLOSED)
        self._opened += had_open_fill - book.counted_open
        book.counted_open = had_open_fill
        if done:
            self._active.pop(book.pair_id, None)
        else:
            self._active[book.pair_id] = book

        held = max(abs(u), abs(b))
        book.view = Pair(
            pair_id=book.pair_id, symbol=symbol, direction=book.direction, state=state,
            qty=min(abs(u), abs(b)) if u * b < 0 else 0.0, upbit_qty=u, binance_qty=b,
            balanced=balanced, upbit_entry_price=up_entry, binance_entry_price=bn_entry,
            entry_fx=entry_fx,
            entry_premium_pct=(up_entry / (bn_entry * entry_fx) - 1.0) * 100.0
            if up_entry and bn_entry and entry_fx else 0.0,
            opened_at=min(o.first_ns for o in book.orders.values()) / 1e9 if book.orders else 0.0,
            closed_at=book.closed_ns / 1e9 if pnl is not None else None,
            exposure_krw=0.0 if done else held * ref_krw,
            committed_krw=0.0 if done else max(held, abs(u + rem_u), abs(b + rem_b)) * ref_krw,
            realized_pnl_krw=pnl, in_flight=live, orders=len(book.orders))
        return book.view


__all__ = ["CLOSED", "CLOSING", "FAILED", "KST_OFFSET_S", "OPEN", "OPENING", "Pair", "Portfolio",
           "RESERVED", "TERMINAL", "Unwind"]
