""":class:`VenueRest`, the one place that decides when a REST call may be
repeated (the ccxt clients themselves are built in :mod:`venues.ccxt_clients`).

Retry rules of :class:`VenueRest`:

- Reads and cancels are idempotent: retried on 429/418, 5xx and network
  errors with exponential backoff + jitter, at most ``max_attempts`` times.
- 429/418 also pause *every* call of this venue for the server's
  ``Retry-After`` (when it sends one) or the backoff; a pause longer than
  ``max_wait_s`` fails fast with :class:`VenueUnavailable` instead of waiting.
- An order send is *never* repeated blindly. A clear refusal (400-class
  error) is a ``rejected`` result. A 429 was refused before processing, so
  it is resent after the pause. An **unclear** failure (timeout, 5xx,
  network) is followed by a lookup by client order id — repeated until the
  order shows up or ``unclear_settle_s`` has passed since the send (on
  Binance a request older than ``recvWindow`` can no longer be accepted, so
  the default waits that long) — and only if the venue then has no such
  order is it sent again, with the *same* client id. If the lookup itself
  cannot be done, :class:`OrderStatusUnknown` is raised and nothing is sent.
- A duplicate-id refusal after such a resend means the first send did land:
  it is looked up again and returned, or OrderStatusUnknown is raised.

ccxt's own throttle (``enableRateLimit``) spaces every attempt. No key ever
reaches a log line or an exception message: ccxt's debug logging (which
prints request headers) is routed to a logger capped at INFO, and every
message taken from a ccxt exception is redacted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ccxt.base import errors as cx

from arbitrage.venue_rules import BINANCE_TAKER_FEE, UPBIT_TAKER_FEE
from venues import BINANCE, UPBIT, VenueError
from venues.ccxt_clients import build_binance, build_upbit
from venues.order_result import OrderResult

log = logging.getLogger("venues.rest")

__all__ = ["VenueRest", "OrderResult", "VenueRestError", "VenueUnavailable", "VenueRejected",
           "OrderStatusUnknown", "build_binance", "build_upbit", "redact"]

QUOTES = {UPBIT: "KRW", BINANCE: "USDT"}
TAKER_FEES = {UPBIT: UPBIT_TAKER_FEE, BINANCE: BINANCE_TAKER_FEE}

OPEN, FILLED, PARTIALLY_FILLED, CANCELLED, REJECTED = (
    "open", "filled", "partially_filled", "cancelled", "rejected")


class VenueRestError(VenueError):
    """A REST call failed; the message is redacted."""


class VenueUnavailable(VenueRestError):
    """Rate limited, 5xx or network trouble that outlasted the retries."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class VenueRejected(VenueRestError):
    """The venue clearly refused a read or cancel (auth, bad symbol, ...).
    ``not_found`` tells "no such order" apart from other refusals."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


class OrderStatusUnknown(VenueRestError):
    """An order send failed unclearly and its lookup failed too: reconcile
    later by client order id; never resend before that."""

    def __init__(self, message: str, client_order_id: str) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id


def _readable(raw: Any) -> bool:
    """An order reply names its order (the venue's id) and its state; a body
    ccxt could not make sense of (not JSON, truncated, an HTML error page,
    fields of the wrong type) parses into an order of Nones, which must never
    read as "open, nothing filled"."""
    return isinstance(raw, Mapping) and bool(raw.get("id")) and isinstance(raw.get("status"), str)


# -- redaction ---------------------------------------------------------------------

_QUERY_RE = re.compile(r"\?\S*")
_SIGNATURE_RE = re.compile(r"(signature=|Bearer\s+)[A-Za-z0-9._\-]+", re.IGNORECASE)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """``text`` without query strings, signatures, bearer tokens or ``secrets``."""
    text = _SIGNATURE_RE.sub(r"\1***", text)
    text = _QUERY_RE.sub("?***", text)
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text[:300]


# -- the wrapper ---------------------------------------------------------------------

_RATE_LIMITED = (cx.RateLimitExceeded, cx.DDoSProtection)
# Timeouts, 5xx, network errors, and Binance's -1000/-1001 "unknown error while
# processing": the request may or may not have been executed. (After _RATE_LIMITED,
# whose classes are NetworkErrors too.)
_UNCLEAR = (cx.OperationFailed,)
_DUPLICATE_MARKERS = ("duplicate", "identifier already used", "중복")


class VenueRest:
    """Orders, balances and lookups on one venue, with the retry rules above."""

    def __init__(self, venue: str, exchange: Any, *, max_attempts: int = 4,
                 backoff_initial_s: float = 0.25, backoff_max_s: float = 8.0,
                 max_wait_s: float = 30.0, unclear_settle_s: float | None = None,
                 lookup_interval_s: float = 0.5, ioc_resolve_s: float = 3.0,
                 rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if venue not in QUOTES:
            raise ValueError(f"unknown venue {venue!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.venue = venue
        self.exchange = exchange
        self.quote = QUOTES[venue]
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_wait_s = max_wait_s
        if unclear_settle_s is None:
            # Binance refuses a request older than recvWindow (+1 s clock allowance).
            recv_ms = float((getattr(exchange, "options", None) or {}).get("recvWindow", 5000))
            unclear_settle_s = recv_ms / 1000.0 + 1.0 if venue == BINANCE else 2.0
        self.unclear_settle_s = unclear_settle_s
        self.lookup_interval_s = lookup_interval_s
        self.ioc_resolve_s = ioc_resolve_s
        self.rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._mono = monotonic
        self._pause_until = 0.0
        self._markets_loaded = False
        self._secrets = tuple(s for s in (getattr(exchange, "apiKey", ""), getattr(exchange, "secret", ""))
                              if isinstance(s, str) and s)

    # -- public API ----------------------------------------------------------------
    async def close(self) -> None:
        await self.exchange.close()

    async def load_markets(self) -> None:
        if not self._markets_loaded:
            await self._retry("load_markets", self.exchange.load_markets)
            self._markets_loaded = True

    async def fetch_balance(self) -> dict[str, float]:
        """Free balance per currency."""
        raw = await self._retry("fetch_balance", self.exchange.fetch_balance)
        free = raw.get("free") or {}
        return {cur: float(v) for cur, v in free.items() if v is not None}

    async def fetch_order_by_client_id(self, symbol: str, client_order_id: str) -> OrderResult | None:
        """The order with this client id, or None if the venue has none."""
        await self.load_markets()
        market = self.market_symbol(symbol)
        try:
            raw = await self._retry("fetch_order", self._fetch_by_cid, market, client_order_id)
        except VenueRejected as e:
            if e.not_found:
                return None
            raise
        return self._to_result(raw, client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[OrderResult]:
        await self.load_markets()
        market = self.market_symbol(symbol) if symbol else None
        raws = await self._retry("fetch_open_orders", self.exchange.fetch_open_orders, market)
        return [self._to_result(r, r.get("clientOrderId") or "") for r in raws]

    async def cancel(self, symbol: str, *, client_order_id: str | None = None,
                     order_id: str | None = None) -> OrderResult | None:
        """Cancel by client id (or venue id); the order's state afterwards, or
        None if the venue has no such order."""
        if not client_order_id and not order_id:
            raise ValueError("cancel needs client_order_id or order_id")
        await self.load_markets()
        market = self.market_symbol(symbol)
        try:
            raw = await self._retry("cancel", self._cancel, market, client_order_id, order_id)
        except VenueRejected as e:
            if not e.not_found:
                raise
            # Already finished (or never there): report what the venue has.
            if client_order_id:
                return await self.fetch_order_by_client_id(symbol, client_order_id)
            return None
        result = self._to_result(raw, client_order_id or raw.get("clientOrderId") or "")
        if not result.done and client_order_id:  # cancel accepted, not yet applied
            later = await self.fetch_order_by_client_id(symbol, client_order_id)
            if later is not None:
                return later
        return result

    async def cancel_all_open(self, prefix: str = "", symbol: str | None = None) -> int:
        """Cancel every open order whose client id starts with ``prefix``."""
        n = 0
        for o in await self.fetch_open_orders(symbol):
            if o.client_order_id.startswith(prefix):
                await self.cancel(o.symbol, client_order_id=o.client_order_id or None,
                                  order_id=None if o.client_order_id else o.venue_order_id)
                n += 1
        return n

    async def create_limit_order(self, symbol: str, side: str, qty: float, price: float,
                                 client_order_id: str, time_in_force: str = "IOC") -> OrderResult:
        """Send a limit order (IOC by default) under ``client_order_id``.

        Returns the venue's view (``rejected`` with a reason for a clear
        refusal, or when every unclear send was followed by a settled lookup
        that found nothing). Raises:

        - VenueUnavailable: no order under this id is at the venue — every
          send was refused before processing (429/418), or none was made
          (rate-limit pause too long, markets unavailable);
        - OrderStatusUnknown: a send failed unclearly and the lookup could
          not be made; reconcile by client id later, never resend first.
        """
        if side not in ("buy", "sell"):
            raise ValueError("side must be 'buy' or 'sell'")
        if not (qty > 0 and price > 0 and math.isfinite(qty) and math.isfinite(price)):
            raise ValueError("qty and price must be positive and finite")
        if not client_order_id:
            raise ValueError("client_order_id is required")
        tif = time_in_force.upper()
        await self.load_markets()
        market = self.market_symbol(symbol)
        sends = 0
        unclear = 0
        while True:
            await self._respect_pause()
            sends += 1
            sent_at = self._mono()
            try:
                raw = await self.exchange.create_order(market, "limit", side, qty, price,
                                                       self._order_params(client_order_id, tif))
                if not _readable(raw):  # processed or not, we cannot tell: an unclear send
                    raise cx.BadResponse(f"{self.venue}: unreadable order reply")
            except _RATE_LIMITED as e:  # refused before processing: may be resent
                if sends >= self.max_attempts:
                    raise VenueUnavailable(self._msg("create_order", e)) from None
                await self._pause_after(e, sends)
                continue
            except _UNCLEAR as e:
                unclear += 1
                log.warning("%s: send of %s failed unclearly (%s); looking it up by client id",
                            self.venue, client_order_id, type(e).__name__)
                found = await self._settle_lookup(market, client_order_id, sent_at)
                if found is not None:
                    return await self._resolve_ioc(symbol, found, tif)
                if sends >= self.max_attempts:
                    return self._rejected(client_order_id, symbol, side, qty, price,
                                          f"not accepted after {sends} unclear sends: {type(e).__name__}")
                await self._sleep(self._backoff(sends))
                continue
            except cx.ExchangeError as e:  # a clear refusal
                if unclear and self._is_duplicate(e):
                    found = await self._settle_lookup(market, client_order_id, sent_at)
                    if found is not None:
                        return await self._resolve_ioc(symbol, found, tif)
                    raise OrderStatusUnknown(
                        f"{self.venue}: {client_order_id} refused as a duplicate but not found",
                        client_order_id) from None
                return self._rejected(client_order_id, symbol, side, qty, price,
                                      self._msg("create_order", e))
            result = self._to_result(raw, client_order_id)
            if self.venue == UPBIT and result.filled > 0 and not (raw.get("info") or {}).get("trades"):
                # POST /v1/orders has no trades: its "average" is the limit price.
                # GET /v1/order has them; best effort, the reply stands if it fails.
                try:
                    result = await self.fetch_order_by_client_id(symbol, client_order_id) or result
                except VenueRestError as e:
                    log.warning("%s: fill details of %s unavailable: %s", self.venue, client_order_id, e)
            return await self._resolve_ioc(symbol, result, tif)

    def market_symbol(self, symbol: str) -> str:
        """``BTC`` -> ``BTC/KRW`` on Upbit, ``BTC/USDT`` on Binance."""
        return symbol if "/" in symbol else f"{symbol.upper()}/{self.quote}"

    # -- venue specifics ---------------------------------------------------------
    def _order_params(self, client_order_id: str, tif: str) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": client_order_id}
        if tif in ("IOC", "FOK"):
            params["timeInForce"] = tif
        elif tif == "GTC" and self.venue == BINANCE:
            params["timeInForce"] = "GTC"
        return params

    async def _fetch_by_cid(self, market: str, cid: str) -> Any:
        if self.venue == BINANCE:
            raw = await self.exchange.fetch_order(None, market, {"origClientOrderId": cid})
        else:
            raw = self.exchange.parse_order(await self.exchange.privateGetOrder({"identifier": cid}))
        if not _readable(raw):  # retried like any unclear read, never taken for an open order
            raise cx.BadResponse(f"{self.venue}: unreadable order lookup reply")
        return raw

    async def _cancel(self, market: str, cid: str | None, oid: str | None) -> Any:
        if self.venue == BINANCE:
            params = {"origClientOrderId": cid} if cid else {}
            return await self.exchange.cancel_order(oid, market, params)
        if cid:
            raw = await self.exchange.privateDeleteOrder({"identifier": cid})
            return self.exchange.parse_order(raw)
        return await self.exchange.cancel_order(oid, market)

    @staticmethod
    def _is_duplicate(e: Exception) -> bool:
        text = str(e).lower()
        return any(m in text for m in _DUPLICATE_MARKERS)

    # -- lookups after an unclear send -------------------------------------------------
    async def _settle_lookup(self, market: str, cid: str, sent_at: float) -> OrderResult | None:
        deadline = sent_at + self.unclear_settle_s
        while True:
            try:
                raw = await self._retry("lookup", self._fetch_by_cid, market, cid)
                return self._to_result(raw, cid)
            except VenueRejected as e:
                if not e.not_found:
                    raise OrderStatusUnknown(f"{self.venue}: lookup of {cid} refused: {e}", cid) from None
            except VenueUnavailable as e:
                raise OrderStatusUnknown(f"{self.venue}: lookup of {cid} failed: {e}", cid) from None
            remaining = deadline - self._mono()
            if remaining <= 0:
                return None
            await self._sleep(min(self.lookup_interval_s, remaining))

    async def _resolve_ioc(self, symbol: str, result: OrderResult, tif: str) -> OrderResult:
        """An IOC/FOK the venue still reports as open is polled to its end."""
        if result.done or tif not in ("IOC", "FOK") or result.status == REJECTED:
            return result
        deadline = self._mono() + self.ioc_resolve_s
        while self._mono() < deadline:
            await self._sleep(min(self.lookup_interval_s, max(0.0, deadline - self._mono())))
            try:
                later = await self.fetch_order_by_client_id(symbol, result.client_order_id)
            except VenueRestError as e:  # the order is at the venue: its outcome is unknown, not absent
                raise OrderStatusUnknown(f"{self.venue}: {result.client_order_id} sent, outcome "
                                         f"unreadable: {e}", result.client_order_id) from None
            if later is not None:
                result = later
                if later.done:
                    break
        return result

    # -- retries -------------------------------------------------------------------------
    async def _retry(self, op: str, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Call an idempotent ccxt method with the retry rules."""
        attempt = 0
        while True:
            await self._respect_pause()
            attempt += 1
            try:
                return await fn(*args)
            except _RATE_LIMITED as e:
                if attempt >= self.max_attempts:
                    raise VenueUnavailable(self._msg(op, e), self._retry_after() or 0.0) from None
                await self._pause_after(e, attempt)
            except _UNCLEAR as e:
                if attempt >= self.max_attempts:
                    raise VenueUnavailable(self._msg(op, e)) from None
                await self._sleep(self._backoff(attempt))
            except cx.ExchangeError as e:
                raise VenueRejected(self._msg(op, e), isinstance(e, cx.OrderNotFound)) from None

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** (attempt - 1))
        return base * (0.5 + 0.5 * self.rng.random())

    def _retry_after(self) -> float | None:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        for k, v in headers.items():
            if k.lower() == "retry-after":
                try:
                    return max(0.0, float(v))
                except (TypeError, ValueError):
                    return None
        return None

    async def _pause_after(self, e: Exception, attempt: int) -> None:
        wait = self._retry_after()
        wait = self._backoff(attempt) if wait is None else max(wait, self._backoff(attempt))
        self._pause_until = max(self._pause_until, self._mono() + wait)
        log.warning("%s: rate limited (%s); pausing %.2fs", self.venue, type(e).__name__, wait)
        await self._respect_pause()

    async def _respect_pause(self) -> None:
        remaining = self._pause_until - self._mono()
        if remaining <= 0:
            return
        if remaining > self.max_wait_s:
            raise VenueUnavailable(f"{self.venue}: rate-limit pause for {remaining:.0f}s more", remaining)
        await self._sleep(remaining)

    # -- mapping -------------------------------------------------------------------------
    def _msg(self, op: str, e: Exception) -> str:
        return f"{self.venue} {op}: {type(e).__name__}: {redact(str(e), self._secrets)}"

    def _rejected(self, cid: str, symbol: str, side: str, qty: float, price: float,
                  reason: str) -> OrderResult:
        return OrderResult(client_order_id=cid, venue_order_id="", status=REJECTED, reason=reason,
                           symbol=symbol.split("/")[0].upper(), side=side, amount=qty, price=price)

    def _to_result(self, o: Mapping[str, Any], cid: str) -> OrderResult:
        filled = float(o.get("filled") or 0.0)
        amount = float(o.get("amount") or 0.0)
        ccxt_status = o.get("status")
        if ccxt_status == "open" or ccxt_status is None:
            status, done = (PARTIALLY_FILLED if filled > 0 else OPEN), False
        elif ccxt_status == "closed":
            status = FILLED if amount <= 0 or filled >= amount * (1 - 1e-9) else PARTIALLY_FILLED
            done = True
        elif ccxt_status in ("canceled", "cancelled", "expired"):
            status, done = (PARTIALLY_FILLED if filled > 0 else CANCELLED), True
        elif ccxt_status == "rejected":
            status, done = REJECTED, True
        else:
            status, done = (PARTIALLY_FILLED if filled > 0 else OPEN), False
        avg = o.get("average")
        if not avg and filled > 0 and o.get("cost"):
            avg = float(o["cost"]) / filled
        avg = float(avg or 0.0)
        market = str(o.get("symbol") or "")
        base = market.split("/")[0] if market else ""
        fee = self._fee_in_quote(o, base, avg)
        estimated = fee == 0.0 and filled > 0 and not (o.get("fees") or o.get("fee"))
        if estimated:
            fee = filled * avg * TAKER_FEES[self.venue]
        return OrderResult(
            client_order_id=str(o.get("clientOrderId") or cid),
            venue_order_id=str(o.get("id") or ""),
            status=status, filled=filled, avg_price=avg,
            fee=fee, fee_estimated=estimated,
            reason="" if status != REJECTED else str((o.get("info") or {}).get("reason", "")),
            symbol=base, side=str(o.get("side") or ""), amount=amount,
            price=float(o.get("price") or 0.0), done=done,
        )

    def _fee_in_quote(self, o: Mapping[str, Any], base: str, avg: float) -> float:
        fees = o.get("fees") or ([o["fee"]] if o.get("fee") else [])
        total = 0.0
        for f in fees:
            if not f or f.get("cost") is None:
                continue
            cost, cur = float(f["cost"]), f.get("currency")
            if cur == self.quote or cur is None:
                total += cost
            elif cur == base:
                total += cost * avg
        return total
