"""Binance spot REST (``/api/v3``): market data, account and orders, HMAC-signed.

Errors are HTTP 400/401 with ``{"code", "msg"}``.

Rate limits (binance-spot-api-docs rest-api.md "LIMITS" [S3], errors.md [S4], the
spot FAQ "Spot Unfilled Order Count Rules" and D.5 of
/work/shared/reference/exchange_protocols.md); exchangeInfo's ``rateLimits`` lists
exactly the numbers enforced (SimConfig keys in brackets):

- REQUEST_WEIGHT, per IP, 6000 per sliding minute [binance_weight_per_min]: each
  request adds its endpoint's weight (``request_weight``). Past it: 429
  ``{"code": -1003, "msg": "Too much request weight used; ..."}`` with
  ``Retry-After`` (whole seconds until the request would fit). The refused request
  adds no weight (UNCONFIRMED for the real venue; it keeps Retry-After exact).
- RAW_REQUESTS, per IP, 61000 per 5 minutes [binance_raw_requests_per_5min]: every
  request counts 1; past it: the same -1003 429 (other message) with Retry-After.
- ORDERS, per account, 100 per 10 s and 200000 per day [binance_orders_per_10s,
  binance_orders_per_day], the "unfilled order count": only *successful* new orders
  (POST /api/v3/order) count - "Every successful request to place an order adds to
  the unfilled order count" (FAQ); rejected ones and test orders do not - and an
  order leaves the count once it trades ("orders which are partially or fully filled
  do not count against the rate limit"). Past it: 429 ``{"code": -1015, "msg": "Too
  many new orders; current limit is 100 orders per TEN_SECONDS."}`` (``per DAY`` for
  the daily one) *without* Retry-After ("When the order count exceeds the limit, you
  will receive a 429 error without the Retry-After header", rest-api.md). Checked
  after authentication, since it is the account's count.

Headers: ``X-MBX-USED-WEIGHT-1M`` (weight used in the last minute, this request
included) on every reply; ``X-MBX-ORDER-COUNT-10S`` / ``X-MBX-ORDER-COUNT-1D`` on
new-order replies that succeeded or were refused by -1015 (rest-api.md: successful
ones always; "rejected/unsuccessful orders are not guaranteed to have" them).
Not modelled: the 418 ban after repeated 429s.
"""

from __future__ import annotations

import math
import random
import string
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from arbitrage.venue_rules import BINANCE
from venues.sim import binance_format as fmt
from venues.sim.auth import binance_verify
from venues.sim.binance_orders import BinanceError, missing, order_terms
from venues.sim.core import SimCore
from venues.sim.engine import OrderRejected, SimOrder
from venues.sim.faults import LimitWindow, UnfilledOrderWindow
from venues.sim.rest_common import dumps, json_response, venue_middleware

# Request weights of the spot REST API (developers.binance.com spot rest-api "Request
# Weight" lines). Keys: (method or "*", path below /api/v3/); see request_weight for
# the ones that depend on parameters.
_WEIGHTS: dict[tuple[str, str], int] = {
    ("*", "ping"): 1, ("*", "time"): 1, ("*", "exchangeInfo"): 20, ("*", "account"): 20,
    ("POST", "order"): 1, ("GET", "order"): 4, ("DELETE", "order"): 1, ("*", "order/test"): 1,
    ("DELETE", "openOrders"): 1,
    ("*", "userDataStream"): 2,  # POST / PUT / DELETE (served by another module)
}
# (weight with symbol=, weight for every symbol)
_PER_SYMBOL_WEIGHTS: dict[tuple[str, str], tuple[int, int]] = {
    ("*", "ticker/bookTicker"): (2, 4), ("*", "ticker/price"): (2, 4), ("*", "ticker/24hr"): (2, 80),
    ("GET", "openOrders"): (6, 80),
}
MAX_RECV_WINDOW = 60_000
ORDER_COUNTS = web.RequestKey("order_counts", tuple)
_INTERVAL_WORDS = {"orders_10s": "TEN_SECONDS", "orders_1d": "DAY"}


def request_weight(method: str, path: str, query: Mapping[str, str]) -> int:
    """The REQUEST_WEIGHT of one request, from its method, path and query string."""
    name = path.removeprefix("/api/v3/")
    if name == "depth":
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            limit = 100
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
    per_symbol = _PER_SYMBOL_WEIGHTS.get((method, name)) or _PER_SYMBOL_WEIGHTS.get(("*", name))
    if per_symbol is not None:
        return per_symbol[0] if query.get("symbol") else per_symbol[1]
    return _WEIGHTS.get((method, name), _WEIGHTS.get(("*", name), 1))


class BinanceRest:
    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.engine = core.engines[BINANCE]
        self.api_key = core.keys["binance"]["apiKey"]
        self.secret = core.keys["binance"]["secret"]
        limits = core.limits[BINANCE]
        weight, raw = limits["weight_1m"], limits["raw_5m"]
        orders_10s, orders_1d = limits["orders_10s"], limits["orders_1d"]
        assert isinstance(weight, LimitWindow) and isinstance(raw, LimitWindow)
        assert isinstance(orders_10s, UnfilledOrderWindow) and isinstance(orders_1d, UnfilledOrderWindow)
        self.weights, self.raw_requests = weight, raw
        self.order_windows = {"orders_10s": orders_10s, "orders_1d": orders_1d}
        self._next_order_id = 10_000_001
        self._rng = random.Random(core.config.seed * 104729 + 3)
        self.symbols = {core.books[BINANCE][c].market_id: c for c in core.coins}

    def routes(self) -> list[web.RouteDef]:
        p = "/api/v3/"
        return [
            web.get(p + "ping", self.ping), web.get(p + "time", self.time),
            web.get(p + "exchangeInfo", self.exchange_info), web.get(p + "depth", self.depth),
            web.get(p + "ticker/bookTicker", self.book_ticker), web.get(p + "ticker/price", self.ticker_price),
            web.get(p + "ticker/24hr", self.ticker_24hr),
            web.get(p + "account", self.account),
            web.post(p + "order", self.new_order), web.post(p + "order/test", self.test_order),
            web.get(p + "order", self.get_order), web.delete(p + "order", self.cancel_order),
            web.get(p + "openOrders", self.open_orders), web.delete(p + "openOrders", self.cancel_all),
        ]

    def middleware(self) -> Any:
        return venue_middleware(self.core, BINANCE, too_many=self._too_many, server_error=self._server_error,
                                decorate=self._decorate, gate=self._gate)

    def _too_many(self, retry_after: float) -> web.Response:
        """The flat test cap's (and an injected fault's) 429."""
        limit = self.core.config.rest_rate_limit_per_s
        return self._ip_limited(f"Too many requests; current limit is {limit:g} requests per SECOND.", retry_after)

    @staticmethod
    def _ip_limited(msg: str, retry_after: float) -> web.Response:
        body = {"code": -1003,
                "msg": msg + " Please use WebSocket Streams for live updates to avoid polling the API."}
        return web.Response(status=429, text=dumps(body), content_type="application/json",
                            headers={"Retry-After": str(max(1, math.ceil(retry_after)))})

    def _gate(self, request: web.Request, now: float) -> web.Response | None:
        """The IP limits, before the handler: raw requests, then request weight."""
        if not self.raw_requests.admit(now):
            return self._ip_limited(
                f"Too many requests; current limit is {self.raw_requests.limit:g} requests per 5 MINUTE.",
                self.raw_requests.retry_after(now))
        weight = request_weight(request.method, request.path, request.query)
        if not self.weights.admit(now, weight):
            return self._ip_limited(
                f"Too much request weight used; current limit is {self.weights.limit:g} request weight per "
                "1 MINUTE.", self.weights.retry_after(now, weight))
        return None

    @staticmethod
    def _server_error(status: int) -> web.Response:
        if status == 500:
            body = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
            return web.Response(status=500, text=dumps(body), content_type="application/json")
        return web.Response(status=status, text=f"<html><body><h1>{status} Service Unavailable</h1></body></html>",
                            content_type="text/html")

    def _decorate(self, request: web.Request, response: web.StreamResponse, now: float) -> None:
        response.headers["X-MBX-USED-WEIGHT-1M"] = str(self.weights.used(now))
        counts = request.get(ORDER_COUNTS)
        if counts:
            response.headers["X-MBX-ORDER-COUNT-10S"] = str(counts[0])
            response.headers["X-MBX-ORDER-COUNT-1D"] = str(counts[1])

    # -- plumbing -------------------------------------------------------------------

    async def _params(self, request: web.Request) -> tuple[dict[str, str], str]:
        raw_body = (await request.text()) if request.can_read_body else ""
        raw_query = request.rel_url.raw_query_string
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        params.update(parse_qsl(raw_body, keep_blank_values=True))
        return params, raw_body

    async def _signed(self, request: web.Request) -> dict[str, str]:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            raise BinanceError(-2014, "API-key format invalid.", 401)
        if key != self.api_key:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        params, raw_body = await self._params(request)
        if "signature" not in params:
            raise missing("signature")
        if not binance_verify(self.secret, request.rel_url.raw_query_string, raw_body):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        if not params.get("timestamp", "").isdigit():
            raise missing("timestamp")
        recv = params.get("recvWindow", "5000")
        try:
            recv_ms = float(recv)
        except ValueError:
            raise missing("recvWindow") from None
        if recv_ms > MAX_RECV_WINDOW:
            raise BinanceError(-1131, f"recvWindow must be less than {MAX_RECV_WINDOW}")
        ts, server = int(params["timestamp"]), int(time.time() * 1000)
        if not (ts < server + 1000 and server - ts <= recv_ms):
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    async def _run(self, request: web.Request, fn: Any, *, signed: bool) -> web.Response:
        try:
            params = await self._signed(request) if signed else (await self._params(request))[0]
            return fn(request, params)
        except BinanceError as exc:
            return json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)
        except (ValueError, TypeError):  # a malformed parameter
            return json_response({"code": -1100, "msg": "Illegal characters found in a parameter."}, status=400)

    def _coin(self, params: dict[str, str], required: bool = True) -> str | None:
        sym = params.get("symbol")
        if not sym:
            if required:
                raise missing("symbol")
            return None
        if sym not in self.symbols:
            raise BinanceError(-1121, "Invalid symbol.")
        return self.symbols[sym]

    # -- public ---------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return json_response({})

    async def time(self, request: web.Request) -> web.Response:
        return json_response({"serverTime": int(time.time() * 1000)})

    async def exchange_info(self, request: web.Request) -> web.Response:
        def run(_req: web.Request, params: dict[str, str]) -> web.Response:
            wanted = list(self.symbols)
            if params.get("symbol"):
                self._coin(params)
                wanted = [params["symbol"]]
            elif params.get("symbols"):
                names = [s.strip().strip('"') for s in params["symbols"].strip("[]").split(",") if s.strip()]
                for s in names:
                    self._coin({"symbol": s})
                wanted = names
            model = self.core.model
            return json_response({
                "timezone": "UTC", "serverTime": int(time.time() * 1000),
                "rateLimits": self.rate_limits(),
                "exchangeFilters": [],
                "symbols": [fmt.symbol_info(self.symbols[s], model.config.usd_price(self.symbols[s])) for s in wanted],
            })
        return await self._run(request, run, signed=False)

    def rate_limits(self) -> list[dict[str, Any]]:
        """exchangeInfo's ``rateLimits``: the limits this sim enforces (0 = off: not listed)."""
        cfg = self.core.config
        out = [("REQUEST_WEIGHT", "MINUTE", 1, cfg.binance_weight_per_min),
               ("ORDERS", "SECOND", 10, cfg.binance_orders_per_10s),
               ("ORDERS", "DAY", 1, cfg.binance_orders_per_day),
               ("RAW_REQUESTS", "MINUTE", 5, cfg.binance_raw_requests_per_5min)]
        return [{"rateLimitType": kind, "interval": interval, "intervalNum": num, "limit": int(limit)}
                for kind, interval, num, limit in out if limit > 0]

    async def depth(self, request: web.Request) -> web.Response:
        def run(req: web.Request, params: dict[str, str]) -> web.Response:
            coin = self._coin(params)
            try:
                limit = int(params.get("limit", "100"))
            except ValueError:
                raise missing("limit") from None
            limit = max(1, min(5000, limit))
            return json_response(fmt.depth_snapshot(self.core.books[BINANCE][str(coin)], limit))
        return await self._run(request, run, signed=False)

    def _tickers(self, params: dict[str, str], build: Any) -> web.Response:
        coin = self._coin(params, required=False)
        coins = [coin] if coin else list(self.core.coins)
        out = [build(self.core.books[BINANCE][c], c) for c in coins]
        return json_response(out[0] if coin else out)

    async def book_ticker(self, request: web.Request) -> web.Response:
        def build(book: Any, _c: str) -> dict[str, Any]:
            bt = fmt.book_ticker(book) or {}
            return {"symbol": book.market_id, "bidPrice": bt.get("b"), "bidQty": bt.get("B"),
                    "askPrice": bt.get("a"), "askQty": bt.get("A")}
        return await self._run(request, lambda _r, p: self._tickers(p, build), signed=False)

    async def ticker_price(self, request: web.Request) -> web.Response:
        def build(book: Any, c: str) -> dict[str, Any]:
            return {"symbol": book.market_id, "price": fmt.s8(self.core.tapes[BINANCE].stats[c].last)}
        return await self._run(request, lambda _r, p: self._tickers(p, build), signed=False)

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        def build(book: Any, c: str) -> dict[str, Any]:
            s = self.core.tapes[BINANCE].stats[c]
            bid, ask = book.best_bid() or (0.0, 0.0), book.best_ask() or (0.0, 0.0)
            now = int(time.time() * 1000)
            change = s.last - s.open
            return {"symbol": book.market_id, "priceChange": fmt.s8(change),
                    "priceChangePercent": f"{100 * change / s.open:.3f}" if s.open else "0.000",
                    "weightedAvgPrice": fmt.s8(s.quote_volume / s.volume if s.volume else s.last),
                    "prevClosePrice": fmt.s8(s.prev_close), "lastPrice": fmt.s8(s.last),
                    "lastQty": fmt.s8(s.last_trade.qty if s.last_trade else 0.0),
                    "bidPrice": fmt.s8(bid[0]), "bidQty": fmt.s8(bid[1]), "askPrice": fmt.s8(ask[0]),
                    "askQty": fmt.s8(ask[1]), "openPrice": fmt.s8(s.open), "highPrice": fmt.s8(s.high),
                    "lowPrice": fmt.s8(s.low), "volume": fmt.s8(s.volume), "quoteVolume": fmt.s8(s.quote_volume),
                    "openTime": now - 86_400_000, "closeTime": now, "firstId": 0, "lastId": s.count,
                    "count": s.count}
        return await self._run(request, lambda _r, p: self._tickers(p, build), signed=False)

    # -- private --------------------------------------------------------------------

    async def account(self, request: web.Request) -> web.Response:
        def run(_req: web.Request, params: dict[str, str]) -> web.Response:
            omit = params.get("omitZeroBalances", "false").lower() == "true"
            balances = [{"asset": a, "free": fmt.s8(v["free"]), "locked": fmt.s8(v["locked"])}
                        for a, v in self.core.accounts[BINANCE].view().items()
                        if not omit or v["free"] > 0 or v["locked"] > 0]
            rate = fmt.s8(self.engine.fee_rate)
            return json_response({
                "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
                "commissionRates": {"maker": rate, "taker": rate, "buyer": fmt.s8(0), "seller": fmt.s8(0)},
                "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                "requireSelfTradePrevention": False, "preventSor": False,
                "updateTime": int(time.time() * 1000), "accountType": "SPOT", "balances": balances,
                "permissions": ["SPOT"], "uid": 354937868})
        return await self._run(request, run, signed=True)

    async def new_order(self, request: web.Request) -> web.Response:
        def run(req: web.Request, params: dict[str, str]) -> web.Response:
            # Check, submit and count in one synchronous step, so that concurrent
            # requests cannot all pass the check before any of them is counted.
            now = self.core.mono()
            for name, window in self.order_windows.items():
                if window.full(now):
                    req[ORDER_COUNTS] = tuple(w.used(now) for w in self.order_windows.values())
                    raise BinanceError(-1015, f"Too many new orders; current limit is {window.limit:g} orders "
                                              f"per {_INTERVAL_WORDS[name]}.", 429)
            return self._create(params, test=False, counted=req)
        return await self._run(request, run, signed=True)

    async def test_order(self, request: web.Request) -> web.Response:
        return await self._run(request, lambda _r, p: self._create(p, test=True), signed=True)

    def _gen_cid(self, prefix: str = "") -> str:
        return prefix + "".join(self._rng.choice(string.ascii_letters + string.digits) for _ in range(22))

    def _create(self, params: dict[str, str], test: bool, counted: web.Request | None = None) -> web.Response:
        """Validate and place (or, ``test``, only validate) a new order. A placed order
        is counted in the ORDERS windows, its counts stored on ``counted``."""
        coin = self._coin(params)
        assert coin is not None
        cid = params.get("newClientOrderId") or self._gen_cid()
        order = SimOrder(venue=BINANCE, order_id=str(self._next_order_id), client_order_id=cid, coin=coin,
                         market_id=params["symbol"], side=params.get("side", "").lower(),
                         type=params.get("type", "").lower(), ts_ns=time.time_ns())
        try:
            order_terms(order, params, self.core.config.usd_price(coin), self.core.books[BINANCE][coin].mid)
            existing = self.engine.by_client.get(cid)
            if existing is not None and existing.is_open:
                raise BinanceError(-2010, "Duplicate order sent.")
        except BinanceError as exc:
            if not test:
                self._next_order_id += 1
                self.engine.record_rejected(order, exc.msg)
                self.engine.remember(order)
            raise
        if test:
            return json_response({})
        self._next_order_id += 1
        deny = self.core.faults.active(BINANCE, "insufficient_funds", self.core.mono()) is not None
        try:
            self.engine.submit(order, deny_funds=deny)
        except OrderRejected as exc:
            if exc.reason == "would_take":
                raise BinanceError(-2010, "Order would immediately match and take.") from None
            raise BinanceError(-2010, "Account has insufficient balance for requested action.") from None
        if counted is not None:
            now = self.core.mono()
            counted[ORDER_COUNTS] = tuple(w.add(now, order) for w in self.order_windows.values())
        if order.fills:
            self.core.notify_book(BINANCE, coin)
        return json_response(fmt.order_new(order, order.meta["resp_type"]))

    def _lookup(self, params: dict[str, str], code: int, msg: str) -> SimOrder:
        coin = self._coin(params)
        oid, cid = params.get("orderId"), params.get("origClientOrderId")
        if not oid and not cid:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        order = self.engine.orders.get(oid) if oid else self.engine.by_client.get(str(cid))
        if order is None or order.status == "rejected" or order.coin != coin:
            raise BinanceError(code, msg)
        return order

    async def get_order(self, request: web.Request) -> web.Response:
        return await self._run(request, lambda _r, p: json_response(
            fmt.order_query(self._lookup(p, -2013, "Order does not exist."))), signed=True)

    async def cancel_order(self, request: web.Request) -> web.Response:
        def run(_req: web.Request, params: dict[str, str]) -> web.Response:
            order = self._lookup(params, -2011, "Unknown order sent.")
            if not order.is_open:
                raise BinanceError(-2011, "Unknown order sent.")
            self.engine.cancel(order)
            new_cid = params.get("newClientOrderId") or self._gen_cid()
            return json_response(fmt.order_cancel(order, new_cid, order.client_order_id))
        return await self._run(request, run, signed=True)

    async def open_orders(self, request: web.Request) -> web.Response:
        def run(req: web.Request, params: dict[str, str]) -> web.Response:
            coin = self._coin(params, required=False)
            orders = [o for o in self.engine.open_orders.values() if coin is None or o.coin == coin]
            return json_response([fmt.order_query(o) for o in orders])
        return await self._run(request, run, signed=True)

    async def cancel_all(self, request: web.Request) -> web.Response:
        def run(_req: web.Request, params: dict[str, str]) -> web.Response:
            coin = self._coin(params)
            orders = [o for o in self.engine.open_orders.values() if o.coin == coin]
            if not orders:
                raise BinanceError(-2011, "Unknown order sent.")
            out = []
            for o in orders:
                self.engine.cancel(o)
                out.append(fmt.order_cancel(o, self._gen_cid(), o.client_order_id))
            return json_response(out)
        return await self._run(request, run, signed=True)
