"""Accounts, orders and matching against the simulated books (venue-neutral).

The REST adapters validate a request in the venue's terms, build a
``SimOrder`` and call ``VenueEngine.submit``; this module only knows balances,
fees and the book. Fee policies (``venue_rules``):

- Binance: the fee is taken from the received asset (base on a buy, quote on a sell).
- Upbit: the fee is paid in KRW on both sides; a buy reserves it up front.

Taker orders walk the opposite side of the book and take liquidity from it
(the next market step replenishes it). Resting limit orders fill at their own
price when the market crosses them, limited by the crossing liquidity.
Statuses are neutral: new, partially_filled, filled, canceled, expired, rejected.

``VenueEngine.listeners`` (the private streams) hear every state change of an
accepted order, synchronously and in order: ``("new", order, None)`` once its
funds are locked, ``("fill", order, fill)`` per fill (balances already moved),
``("finish", order, None)`` when it leaves the book (status final, leftover
funds unlocked). Balances change only at these three points, so a listener reads
the account at each call to see what moved. A listener must not call back into
the engine; with none registered the cost is one truth test per point.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arbitrage.venue_rules import UPBIT
from venues.sim.books import Book
from venues.sim.tape import Tape

OPEN_STATES = ("new", "partially_filled")
_TOL = 1e-9


class OrderRejected(Exception):
    """The engine refused an order: ``reason`` is neutral (the adapter words it)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: int
    price: float
    qty: float
    quote: float
    fee: float
    fee_asset: str
    ts_ms: int
    maker: bool


@dataclass(slots=True, eq=False)
class SimOrder:
    venue: str
    order_id: str
    client_order_id: str | None
    coin: str
    market_id: str
    side: str  # buy | sell
    type: str  # limit | market
    tif: str = "GTC"  # GTC | IOC | FOK | POST_ONLY
    price: float | None = None
    qty: float | None = None
    quote_qty: float | None = None  # market order sized in quote currency
    ts_ns: int = 0
    status: str = "new"
    filled: float = 0.0
    cost: float = 0.0
    fee: float = 0.0
    fee_asset: str = ""
    fills: list[Fill] = field(default_factory=list)
    reason: str = ""
    updated_ms: int = 0
    locked_asset: str = ""
    locked: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def created_ms(self) -> int:
        return self.ts_ns // 1_000_000

    def remaining(self) -> float:
        return max(0.0, (self.qty or 0.0) - self.filled)

    def record(self) -> dict[str, Any]:
        """The admin view (``GET /_sim/orders``)."""
        return {
            "venue": self.venue, "client_order_id": self.client_order_id, "symbol": self.market_id,
            "coin": self.coin, "side": self.side, "type": self.type, "tif": self.tif,
            "price": self.price, "qty": self.qty, "quote_qty": self.quote_qty,
            "status": self.status, "filled": round(self.filled, 12), "cost": round(self.cost, 10),
            "fee": round(self.fee, 12), "ts_ns": self.ts_ns, "order_id": self.order_id,
            "reason": self.reason,
        }


class Account:
    """Free and locked balance per asset."""

    def __init__(self, balances: dict[str, float]) -> None:
        self.free: dict[str, float] = {a: float(v) for a, v in balances.items()}
        self.locked: dict[str, float] = {a: 0.0 for a in balances}

    def available(self, asset: str) -> float:
        return self.free.get(asset, 0.0)

    def lock(self, asset: str, amount: float) -> None:
        self.free[asset] = _clean(self.free.get(asset, 0.0) - amount)
        self.locked[asset] = _clean(self.locked.get(asset, 0.0) + amount)

    def unlock(self, asset: str, amount: float) -> None:
        self.locked[asset] = _clean(self.locked.get(asset, 0.0) - amount)
        self.free[asset] = _clean(self.free.get(asset, 0.0) + amount)

    def spend_locked(self, asset: str, amount: float) -> None:
        self.locked[asset] = _clean(self.locked.get(asset, 0.0) - amount)

    def credit(self, asset: str, amount: float) -> None:
        self.free[asset] = _clean(self.free.get(asset, 0.0) + amount)
        self.locked.setdefault(asset, 0.0)

    def view(self) -> dict[str, dict[str, float]]:
        assets = sorted(set(self.free) | set(self.locked))
        return {a: {"free": self.free.get(a, 0.0), "locked": self.locked.get(a, 0.0)} for a in assets}


def _clean(x: float) -> float:
    """Round away float dust (1e-10 of a unit) so balances stay readable."""
    r = round(x, 10)
    return 0.0 if abs(r) < 1e-10 else r


class VenueEngine:
    """Orders and balances of one venue's simulated account."""

    def __init__(self, venue: str, quote: str, fee_rate: float, books: dict[str, Book],
                 account: Account, tape: Tape, recorder: Callable[[SimOrder], None],
                 now_ms: Callable[[], int] | None = None) -> None:
        self.venue = venue
        self.quote = quote
        self.fee_rate = fee_rate
        self.books = books
        self.account = account
        self.tape = tape
        self._record = recorder
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self.orders: dict[str, SimOrder] = {}
        self.open_orders: dict[str, SimOrder] = {}
        self.by_client: dict[str, SimOrder] = {}
        self.listeners: list[Callable[[str, SimOrder, Fill | None], None]] = []

    def _emit(self, kind: str, order: SimOrder, fill: Fill | None = None) -> None:
        for listener in self.listeners:
            listener(kind, order, fill)

    # -- intake ---------------------------------------------------------------------

    def record_rejected(self, order: SimOrder, reason: str) -> SimOrder:
        order.status = "rejected"
        order.reason = reason
        order.updated_ms = self._now_ms()
        self._record(order)
        return order

    def submit(self, order: SimOrder, *, deny_funds: bool = False) -> SimOrder:
        """Lock funds, take liquidity, rest or finish. Raises OrderRejected (recorded)."""
        order.updated_ms = self._now_ms()
        book = self.books[order.coin]
        try:
            if order.tif == "POST_ONLY" and self._would_take(order, book):
                raise OrderRejected("would_take")
            asset, amount = self._reservation(order, book)
            if deny_funds or amount > self.account.available(asset) + _TOL:
                raise OrderRejected("insufficient_funds", asset)
        except OrderRejected as exc:
            self.record_rejected(order, exc.reason)
            self.remember(order)
            raise
        self.account.lock(asset, amount)
        order.locked_asset, order.locked = asset, amount
        self.remember(order)
        self._record(order)
        if self.listeners:
            self._emit("new", order)
        if order.tif == "FOK" and not self._fok_possible(order, book):
            self._finish(order, "expired")
            return order
        if order.tif != "POST_ONLY":
            self._take(order, book)
        if self._done(order):
            self._finish(order, "filled")
        elif order.type == "market" or order.tif in ("IOC", "FOK"):
            self._finish(order, "expired")
        else:
            order.status = "partially_filled" if order.filled > 0 else "new"
            self.open_orders[order.order_id] = order
        return order

    def remember(self, order: SimOrder) -> None:
        """Index an order; rejected ones are not found by client id (they never existed)."""
        self.orders[order.order_id] = order
        if order.client_order_id and order.status != "rejected":
            self.by_client[order.client_order_id] = order

    def cancel(self, order: SimOrder) -> SimOrder:
        if order.is_open:
            self._finish(order, "canceled")
        return order

    # -- reservation ------------------------------------------------------------------

    def _buy_fee_factor(self) -> float:
        return 1.0 + self.fee_rate if self.venue == UPBIT else 1.0

    def _reservation(self, order: SimOrder, book: Book) -> tuple[str, float]:
        if order.side == "buy":
            if order.quote_qty is not None:
                return self.quote, order.quote_qty * self._buy_fee_factor()
            if order.type == "limit":
                return self.quote, (order.price or 0.0) * (order.qty or 0.0) * self._buy_fee_factor()
            cost = sum(p * q for p, q in self._walk(book, "buy", order.qty or 0.0, None, None))
            return self.quote, cost * self._buy_fee_factor()
        if order.quote_qty is not None:  # market sell sized in quote
            qty = sum(q for _, q in self._walk(book, "sell", None, order.quote_qty, None))
            order.meta["reserved_qty"] = qty
            return order.coin, qty
        return order.coin, order.qty or 0.0

    # -- matching ---------------------------------------------------------------------

    def _walk(self, book: Book, side: str, qty: float | None, quote: float | None,
              limit: float | None) -> list[tuple[float, float]]:
        """What a taker would get: [(price, qty)] without changing anything."""
        levels = book.top_asks() if side == "buy" else book.top_bids()
        out: list[tuple[float, float]] = []
        left_q, left_c = qty, quote
        for price, size in levels:
            if limit is not None and ((side == "buy" and price > limit + _TOL) or (side == "sell" and price < limit - _TOL)):
                break
            q = size
            if left_q is not None:
                q = min(q, left_q)
            if left_c is not None:
                q = min(q, self._floor_qty(book, left_c / price))
            if q <= 0:
                break
            out.append((price, q))
            if left_q is not None:
                left_q = round(left_q - q, 12)
                if left_q <= _TOL:
                    break
            if left_c is not None:
                left_c -= price * q
                if left_c <= _TOL:
                    break
        return out

    @staticmethod
    def _floor_qty(book: Book, qty: float) -> float:
        n = math.floor(qty / book.step + 1e-9)
        return round(n * book.step, 8)

    def _would_take(self, order: SimOrder, book: Book) -> bool:
        best = book.best_ask() if order.side == "buy" else book.best_bid()
        if best is None or order.price is None:
            return False
        return best[0] <= order.price if order.side == "buy" else best[0] >= order.price

    def _fok_possible(self, order: SimOrder, book: Book) -> bool:
        plan = self._walk(book, order.side, order.qty, order.quote_qty, order.price)
        if order.quote_qty is not None:
            return order.quote_qty - sum(p * q for p, q in plan) < max(plan[-1][0] if plan else 1.0, 1.0) * book.step + _TOL
        return sum(q for _, q in plan) >= (order.qty or 0.0) - _TOL

    def _left(self, order: SimOrder) -> tuple[float | None, float | None]:
        if order.quote_qty is not None:
            if order.side == "sell" and "reserved_qty" in order.meta:
                return order.meta["reserved_qty"] - order.filled, order.quote_qty - order.cost
            return None, order.quote_qty - order.cost
        return order.remaining(), None

    def _take(self, order: SimOrder, book: Book) -> None:
        limit = order.price if order.type == "limit" else None
        qty, quote = self._left(order)
        for price, q in self._walk(book, order.side, qty, quote, limit):
            book.take("asks" if order.side == "buy" else "bids", price, q)
            self._fill(order, price, q, maker=False)

    def _done(self, order: SimOrder) -> bool:
        book = self.books[order.coin]
        if order.quote_qty is not None:
            best = book.best_ask() if order.side == "buy" else book.best_bid()
            unit = (best[0] if best else 0.0) * book.step
            return order.quote_qty - order.cost <= max(unit, _TOL)
        return order.remaining() <= _TOL

    def match_resting(self, coin: str) -> list[SimOrder]:
        """Fill resting orders the market now crosses, at their own price. Returns touched orders."""
        book = self.books[coin]
        touched = []
        for order in [o for o in self.open_orders.values() if o.coin == coin]:
            levels = book.top_asks() if order.side == "buy" else book.top_bids()
            price = order.price or 0.0
            before = len(order.fills)
            for lvl_price, size in levels:
                crosses = lvl_price <= price + _TOL if order.side == "buy" else lvl_price >= price - _TOL
                if not crosses or order.remaining() <= _TOL:
                    break
                q = min(size, order.remaining())
                book.take("asks" if order.side == "buy" else "bids", lvl_price, q)
                self._fill(order, price, q, maker=True)
            if len(order.fills) > before:
                touched.append(order)
                if order.remaining() <= _TOL:
                    self._finish(order, "filled")
                else:
                    order.status = "partially_filled"
        return touched

    # -- settlement -------------------------------------------------------------------

    def _fill(self, order: SimOrder, price: float, qty: float, *, maker: bool) -> None:
        acct, quote_amt = self.account, price * qty
        fee_rate = self.fee_rate
        if order.side == "buy":
            if self.venue == UPBIT:
                fee, fee_asset = quote_amt * fee_rate, self.quote
                spend, receive = quote_amt + fee, qty
            else:
                fee, fee_asset = qty * fee_rate, order.coin
                spend, receive = quote_amt, qty - fee
            acct.spend_locked(self.quote, spend)
            order.locked -= spend
            acct.credit(order.coin, receive)
        else:
            fee, fee_asset = quote_amt * fee_rate, self.quote
            acct.spend_locked(order.coin, qty)
            order.locked -= qty
            acct.credit(self.quote, quote_amt - fee)
        now = self._now_ms()
        trade = self.tape.record(order.coin, price, qty, order.side if not maker else _other(order.side), now)
        order.fills.append(Fill(trade.trade_id, price, qty, quote_amt, fee, fee_asset, now, maker))
        order.filled = round(order.filled + qty, 12)
        order.cost += quote_amt
        order.fee += fee
        order.fee_asset = fee_asset
        order.updated_ms = now
        if self.listeners:
            self._emit("fill", order, order.fills[-1])

    def _finish(self, order: SimOrder, status: str) -> None:
        if order.locked > _TOL:
            self.account.unlock(order.locked_asset, order.locked)
        order.locked = 0.0
        order.status = status
        order.updated_ms = self._now_ms()
        self.open_orders.pop(order.order_id, None)
        if self.listeners:
            self._emit("finish", order)


def _other(side: str) -> str:
    return "sell" if side == "buy" else "buy"
