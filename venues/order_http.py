"""The hot order path: one signed keep-alive HTTP request per leg.

Why not ccxt here: ``bench/orders.py`` measures a ccxt ``create_order`` at
well over 1.5x a bare signed request even with its throttle off (it builds
markets, parses into a unified order, and on Upbit asks again for the
fills), and with the throttle on it serialises a venue's orders behind its
polls. So orders (and lookups by client id, the fallback when a private
stream is late) are signed here (:mod:`venues.signing`) and sent on one
aiohttp session per venue, connections kept open; ccxt stays for markets,
balances and cancel-all (:mod:`venues.rest`).

- Binance: ``POST /api/v3/order`` LIMIT IOC with ``newClientOrderId`` and
  ``newOrderRespType=FULL`` (the fills are in the reply);
  ``GET /api/v3/order?origClientOrderId=`` for a lookup.
- Upbit: ``POST /v1/orders`` limit with ``time_in_force=ioc`` and
  ``identifier``; ``GET /v1/order?identifier=``. The reply may still say
  ``wait`` (the venue matches after answering): the leg's end then comes
  from the private stream, or a lookup.

Every reply's rate headers update the venue's :class:`VenueBudget`; a 429 /
418 blocks it for ``Retry-After``. An order is never resent here: a clear
refusal is ``rejected`` with a kind for the breakers (funds, filter,
rate_limit, auth, duplicate, other); an unclear one (timeout, 5xx, network,
an unreadable body) raises :class:`UnclearSend`, and only a lookup by client
id after :attr:`OrderHttp.settle_s` may say the venue never took it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp

from arbitrage.rate_budget import POLL, VenueBudget
from arbitrage.venue_rules import BINANCE_TAKER_FEE, UPBIT_TAKER_FEE
from messages import clock  # rate budgets run on the market's clock (a replay's tape time)
from venues import BINANCE, UPBIT
from venues.order_result import OrderResult
from venues.signing import binance_signature, upbit_jwt

log = logging.getLogger("arbd.order_http")

RECV_WINDOW_MS = 5000


class UnclearSend(Exception):
    """The venue may or may not have the order: look it up, never resend."""

    def __init__(self, message: str, kind: str = "server") -> None:
        super().__init__(message)
        self.kind = kind


class NotSent(Exception):
    """The request never left (no connection): the venue cannot have it."""


class LookupFailed(Exception):
    """A lookup could not be made or read (budget, 5xx, network): try again later."""


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    result: OrderResult
    kind: str = ""  # "" accepted; else why it was refused


def num(x: float) -> str:
    """The shortest decimal that reads back as ``x``, without exponent (both
    venues refuse ``1e-05``) or float noise (``3567380.7``, not ``...0000002``)."""
    text = format(Decimal(repr(round(float(x), 8))), "f")  # no venue takes more than 8 decimals
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _float(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) else 0.0


def classify_binance(status: int, code: Any, msg: str) -> str:
    text = msg.lower()
    if status in (418, 429) or code in (-1003, -1015):
        return "rate_limit"
    if code in (-2014, -2015, -1022, -1021, -1002):
        return "auth"
    if "insufficient balance" in text:
        return "funds"
    if "duplicate" in text:
        return "duplicate"
    if code == -1013 or "filter" in text or code in (-1100, -1101, -1102, -1104, -1106, -1111, -1121):
        return "filter"
    return "other"


def classify_upbit(status: int, name: str) -> str:
    if status in (418, 429):
        return "rate_limit"
    if status == 401 or name in ("jwt_verification", "nonce_used", "invalid_query_payload",
                                 "invalid_access_key", "expired_access_key", "no_authorization_ip",
                                 "out_of_scope"):
        return "auth"
    if name.startswith("insufficient_funds"):
        return "funds"
    if "duplicate" in name:
        return "duplicate"
    if name.startswith(("under_min_total", "invalid_price", "invalid_volume", "create_", "validation_error",
                        "market_does_not_exist", "invalid_")):
        return "filter"
    return "other"


def parse_binance_order(o: Mapping[str, Any], cid: str, base: str) -> OrderResult:
    """A Binance order reply (FULL or a GET) as an :class:`OrderResult`."""
    raw_status = o.get("status")
    oid = o.get("orderId")
    if not isinstance(raw_status, str) or oid is None:
        raise ValueError("not an order")
    filled = _float(o.get("executedQty"))
    quote = _float(o.get("cummulativeQuoteQty"))
    avg = quote / filled if filled > 0 else 0.0
    fills = o.get("fills")
    if isinstance(fills, list):
        fee, estimated = 0.0, False
        for f in fills:
            c = _float(f.get("commission"))
            fee += c * _float(f.get("price")) if f.get("commissionAsset") == base else c
    else:
        fee, estimated = quote * BINANCE_TAKER_FEE, True
    done = raw_status in ("FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH")
    if raw_status == "FILLED":
        status = "filled"
    elif raw_status == "NEW":
        status = "open"
    elif raw_status == "REJECTED":
        status = "rejected"
    elif raw_status == "PARTIALLY_FILLED" or filled > 0:
        status = "partially_filled"
    else:
        status = "cancelled"
    return OrderResult(client_order_id=str(o.get("clientOrderId") or cid), venue_order_id=str(oid),
                       status=status, filled=filled, avg_price=avg, fee=fee, symbol=base,
                       side=str(o.get("side", "")).lower(), amount=_float(o.get("origQty")),
                       price=_float(o.get("price")), done=done, fee_estimated=estimated)


def parse_upbit_order(o: Mapping[str, Any], cid: str, coin: str) -> OrderResult:
    state, uid = o.get("state"), o.get("uuid")
    if not isinstance(state, str) or not uid:
        raise ValueError("not an order")
    filled = _float(o.get("executed_volume"))
    funds = _float(o.get("executed_funds"))
    volume = _float(o.get("volume"))
    avg = funds / filled if filled > 0 else 0.0
    done = state in ("done", "cancel")
    if state == "done":
        status = "filled" if volume <= 0 or filled >= volume * (1 - 1e-9) else "partially_filled"
    elif state == "cancel":
        status = "partially_filled" if filled > 0 else "cancelled"
    else:  # wait / watch
        status = "partially_filled" if filled > 0 else "open"
    estimated = "paid_fee" not in o
    fee = funds * UPBIT_TAKER_FEE if estimated else _float(o.get("paid_fee"))
    return OrderResult(client_order_id=str(o.get("identifier") or cid), venue_order_id=str(uid),
                       status=status, filled=filled, avg_price=avg, fee=fee, symbol=coin,
                       side="buy" if o.get("side") == "bid" else "sell", amount=volume,
                       price=_float(o.get("price")), done=done, fee_estimated=estimated)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


class OrderHttp:
    """Signed order requests on one venue (see the module docs)."""

    def __init__(self, venue: str, rest_url: str, keys: Mapping[str, str], budget: VenueBudget, *,
                 timeout_s: float = 2.0, recv_window_ms: int = RECV_WINDOW_MS) -> None:
        if venue not in (UPBIT, BINANCE):
            raise ValueError(f"unknown venue {venue!r}")
        self.venue = venue
        self.root = rest_url.rstrip("/")
        self.api_key = keys["apiKey"]
        self.secret = keys["secret"]
        self.budget = budget
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.recv_window_ms = recv_window_ms
        # After this long a request can no longer be taken: Binance refuses one older
        # than recvWindow (+1 s clock allowance); Upbit answers within its timeout.
        self.settle_s = recv_window_ms / 1000.0 + 1.0 if venue == BINANCE else timeout_s + 1.0
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=16, keepalive_timeout=60.0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout,
                                                  json_serialize=json.dumps)
        return self._session

    async def warm(self) -> None:
        """Open a keep-alive connection before the first order needs one."""
        path = "/api/v3/ping" if self.venue == BINANCE else "/v1/market/all"
        try:
            async with self._http().get(self.root + path) as r:
                await r.read()
                self.budget.on_headers(r.headers, clock.monotonic())
        except (TimeoutError, aiohttp.ClientError) as e:
            log.info("%s: connection warm-up failed: %s", self.venue, type(e).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- orders ------------------------------------------------------------------------
    async def create_ioc(self, symbol: str, side: str, qty: float, price: float, cid: str) -> OrderOutcome:
        """Send one IOC limit order (its budget already taken by the caller)."""
        if side not in ("buy", "sell") or not (qty > 0 and price > 0):
            raise ValueError("side must be buy/sell and qty, price positive")
        try:
            if self.venue == BINANCE:
                return await self._binance_order(symbol, side, qty, price, cid)
            return await self._upbit_order(symbol, side, qty, price, cid)
        except NotSent as e:
            return OrderOutcome(OrderResult(client_order_id=cid, venue_order_id="", status="rejected",
                                            reason=f"not sent: {e}", symbol=symbol, side=side, amount=qty,
                                            price=price), kind="unavailable")

    async def _binance_order(self, coin: str, side: str, qty: float, price: float, cid: str) -> OrderOutcome:
        params = [("symbol", f"{coin}USDT"), ("side", side.upper()), ("type", "LIMIT"), ("timeInForce", "IOC"),
                  ("quantity", num(qty)), ("price", num(price)), ("newClientOrderId", cid),
                  ("newOrderRespType", "FULL"), ("recvWindow", str(self.recv_window_ms)),
                  ("timestamp", str(int(time.time() * 1000)))]
        body = urlencode(params)
        body += "&signature=" + binance_signature(self.secret, body)
        status, headers, data = await self._send("POST", "/api/v3/order", body=body,
                                                 headers={"X-MBX-APIKEY": self.api_key,
                                                          "Content-Type": "application/x-www-form-urlencoded"})
        if 200 <= status < 300:  # taken, but what became of it only a readable reply says
            try:
                if isinstance(data, Mapping):
                    return OrderOutcome(parse_binance_order(data, cid, coin))
            except ValueError:
                pass
            raise UnclearSend("binance: unreadable order reply")
        return self._refused(coin, side, qty, price, cid, status, headers, data)

    async def _upbit_order(self, coin: str, side: str, qty: float, price: float, cid: str) -> OrderOutcome:
        params = [("market", f"KRW-{coin}"), ("side", "bid" if side == "buy" else "ask"), ("volume", num(qty)),
                  ("price", num(price)), ("ord_type", "limit"), ("time_in_force", "ioc"), ("identifier", cid)]
        token = upbit_jwt(self.api_key, self.secret, params)
        status, headers, data = await self._send("POST", "/v1/orders", body=json.dumps(dict(params)),
                                                 headers={"Authorization": f"Bearer {token}",
                                                          "Content-Type": "application/json"})
        if 200 <= status < 300:
            try:
                if isinstance(data, Mapping):
                    return OrderOutcome(parse_upbit_order(data, cid, coin))
            except ValueError:
                pass
            raise UnclearSend("upbit: unreadable order reply")
        return self._refused(coin, side, qty, price, cid, status, headers, data)

    def _refused(self, coin: str, side: str, qty: float, price: float, cid: str, status: int,
                 headers: Mapping[str, str], data: Any) -> OrderOutcome:
        if status >= 500 or status == 0:
            raise UnclearSend(f"{self.venue}: HTTP {status}")
        if self.venue == BINANCE:
            code = data.get("code") if isinstance(data, Mapping) else None
            msg = str(data.get("msg", "")) if isinstance(data, Mapping) else ""
            kind = classify_binance(status, code, msg)
            reason = f"binance {code}: {msg}"[:200]
        else:
            err = data.get("error") if isinstance(data, Mapping) else None
            name = str(err.get("name", "")) if isinstance(err, Mapping) else ""
            kind = classify_upbit(status, name)
            reason = f"upbit {status} {name}: {err.get('message', '') if isinstance(err, Mapping) else ''}"[:200]
        if kind == "rate_limit":
            self.budget.on_rate_limited(_retry_after(headers), clock.monotonic())
        return OrderOutcome(OrderResult(client_order_id=cid, venue_order_id="", status="rejected",
                                        reason=reason, symbol=coin, side=side, amount=qty, price=price),
                            kind=kind)

    # -- lookups -----------------------------------------------------------------------
    async def lookup(self, coin: str, cid: str) -> OrderResult | None:
        """The venue's view of ``cid``; None when it has no such order. Paid
        from the poll budget; raises :class:`LookupFailed` when it cannot be made."""
        cost = VenueBudget.cost_of(self.venue, "lookup")
        if not self.budget.try_acquire(POLL, cost, clock.monotonic()):
            raise LookupFailed(f"{self.venue}: no rate budget for a lookup")
        try:
            if self.venue == BINANCE:
                params = [("symbol", f"{coin}USDT"), ("origClientOrderId", cid),
                          ("recvWindow", str(self.recv_window_ms)), ("timestamp", str(int(time.time() * 1000)))]
                query = urlencode(params)
                query += "&signature=" + binance_signature(self.secret, query)
                status, headers, data = await self._send("GET", "/api/v3/order?" + query,
                                                         headers={"X-MBX-APIKEY": self.api_key})
                if status == 200 and isinstance(data, Mapping):
                    return parse_binance_order(data, cid, coin)
                if isinstance(data, Mapping) and data.get("code") == -2013:
                    return None
            else:
                params = [("identifier", cid)]
                token = upbit_jwt(self.api_key, self.secret, params)
                status, headers, data = await self._send("GET", "/v1/order?" + urlencode(params),
                                                         headers={"Authorization": f"Bearer {token}"})
                if status == 200 and isinstance(data, Mapping):
                    return parse_upbit_order(data, cid, coin)
                err = data.get("error") if isinstance(data, Mapping) else None
                if status == 404 and isinstance(err, Mapping) and err.get("name") == "order_not_found":
                    return None
        except (UnclearSend, NotSent) as e:
            raise LookupFailed(str(e)) from None
        except ValueError:
            raise LookupFailed(f"{self.venue}: unreadable lookup reply") from None
        if status in (418, 429):
            self.budget.on_rate_limited(_retry_after(headers), clock.monotonic())
        raise LookupFailed(f"{self.venue}: lookup answered HTTP {status}")

    # -- balances -------------------------------------------------------------------------
    async def balances(self) -> dict[str, float]:
        """Free balance per asset (Upbit ``GET /v1/accounts``, Binance ``GET
        /api/v3/account``), paid from the poll budget; raises
        :class:`LookupFailed` when it cannot be read. The executor's first
        balances come from here, not from ccxt, which an executor start does
        not wait to import."""
        cost = VenueBudget.cost_of(self.venue, "balance")
        if not self.budget.try_acquire(POLL, cost, clock.monotonic()):
            raise LookupFailed(f"{self.venue}: no rate budget for a balance read")
        try:
            if self.venue == BINANCE:
                params = [("omitZeroBalances", "true"), ("recvWindow", str(self.recv_window_ms)),
                          ("timestamp", str(int(time.time() * 1000)))]
                query = urlencode(params)
                query += "&signature=" + binance_signature(self.secret, query)
                status, headers, data = await self._send("GET", "/api/v3/account?" + query,
                                                         headers={"X-MBX-APIKEY": self.api_key})
                rows = data.get("balances") if status == 200 and isinstance(data, Mapping) else None
                key, amount = "asset", "free"
            else:
                status, headers, data = await self._send(
                    "GET", "/v1/accounts", headers={"Authorization": f"Bearer {upbit_jwt(self.api_key, self.secret)}"})
                rows = data if status == 200 else None
                key, amount = "currency", "balance"
        except (UnclearSend, NotSent) as e:
            raise LookupFailed(str(e)) from None
        if status in (418, 429):
            self.budget.on_rate_limited(_retry_after(headers), clock.monotonic())
        if not isinstance(rows, list):
            raise LookupFailed(f"{self.venue}: balances answered HTTP {status}")
        out: dict[str, float] = {}
        for row in rows:
            if isinstance(row, Mapping) and isinstance(row.get(key), str):
                value = _float(row.get(amount))
                if value >= 0:
                    out[row[key]] = value
        return out

    # -- the wire ----------------------------------------------------------------------------
    async def _send(self, method: str, path: str, *, body: str | None = None,
                    headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], Any]:
        try:
            async with self._http().request(method, self.root + path, data=body, headers=dict(headers)) as r:
                raw = await r.read()
                self.budget.on_headers(r.headers, clock.monotonic())
                status, hdrs = r.status, r.headers
        except aiohttp.ClientConnectorError as e:
            raise NotSent(f"{self.venue}: {type(e).__name__}") from None
        except TimeoutError:
            raise UnclearSend(f"{self.venue}: no reply within {self.timeout.total:g}s", kind="unavailable") from None
        except aiohttp.ClientError as e:
            raise UnclearSend(f"{self.venue}: {type(e).__name__}", kind="unavailable") from None
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None  # an HTML error page, a truncated body: judged by the status
        return status, hdrs, data
