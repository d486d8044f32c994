"""Upbit REST (``/v1``): quotation, accounts and orders, JWT-authenticated.

Errors are ``{"error": {"name", "message"}}`` with the venue's status codes,
except 429 (and injected 5xx), which answer plain text so that ccxt falls
through to its HTTP-status mapping (RateLimitExceeded / ExchangeNotAvailable).

Rate limits (https://docs.upbit.com/kr/docs/rate-limits, [U6, U7] and D.5 of
/work/shared/reference/exchange_protocols.md): per group, per second, sliding 1 s
windows; a refused request is not counted (older guide: "실패한 요청은 요청 횟수에
포함되지 않습니다"). Groups:

==========  ================================================  ====  ===========================
group       requests                                          /s    SimConfig key
==========  ================================================  ====  ===========================
order       POST /v1/orders (and /v1/orders/cancel_and_new)   8     upbit_order_limit_per_s
order-test  POST /v1/orders/test, its own group per its       8     upbit_order_limit_per_s
            reference page (docs.upbit.com/kr/reference/
            order-test)
default     every other exchange (JWT) call: /v1/accounts,    30    upbit_exchange_limit_per_s
            /v1/orders/chance, GET|DELETE /v1/order,
            /v1/orders/open, /v1/orders/closed
market      /v1/market/*                                      10    upbit_quotation_limit_per_s
ticker      /v1/ticker*                                       10    upbit_quotation_limit_per_s
orderbook   /v1/orderbook* (instruments too)                  10    upbit_quotation_limit_per_s
candles     /v1/candles/*                                     10    upbit_quotation_limit_per_s
trades      /v1/trades/*                                      10    upbit_quotation_limit_per_s
==========  ================================================  ====  ===========================

Every REST reply, 429s included, carries ``Remaining-Req: group=<group>; min=1800;
sec=<n>``, ``n`` the requests left in that group's window after this one (0 on a
429). ``min`` is deprecated and "returned as a fixed value" [U7]; the sim always
sends 1800, the value of the docs' example. Not modelled: DELETE /v1/orders/open's
1 per 2 s, the Origin-header 1 per 10 s, and the 418 ban after repeated 429s.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from arbitrage.venue_rules import (
    UPBIT,
    UPBIT_MIN_ORDER_KRW,
    UPBIT_TAKER_FEE,
    is_upbit_price_on_tick,
)
from venues.sim import upbit_format as fmt
from venues.sim.auth import AuthError, decode_upbit_jwt, upbit_query_hash
from venues.sim.core import SimCore
from venues.sim.engine import OrderRejected, SimOrder
from venues.sim.faults import LimitWindow
from venues.sim.rest_common import json_response, venue_middleware

QUOTATION_GROUPS = (("/v1/market/", "market"), ("/v1/ticker", "ticker"), ("/v1/orderbook", "orderbook"),
                    ("/v1/candles", "candles"), ("/v1/trades", "trades"))
MIN_REMAINING = 1800  # the deprecated, fixed "min" field of Remaining-Req


def rate_group(method: str, path: str) -> str:
    """The Upbit rate-limit group of a REST request (see the module docstring)."""
    if method == "POST" and path in ("/v1/orders", "/v1/orders/cancel_and_new"):
        return "order"
    if method == "POST" and path == "/v1/orders/test":
        return "order-test"
    for prefix, group in QUOTATION_GROUPS:
        if path.startswith(prefix):
            return group
    return "default"


NAMES = {"BTC": ("비트코인", "Bitcoin"), "ETH": ("이더리움", "Ethereum"), "XRP": ("엑스알피(리플)", "XRP"),
         "SOL": ("솔라나", "Solana"), "USDT": ("테더", "Tether")}
# UNCONFIRMED: Upbit's error name for a reused identifier (docs truncate at "중복 오류가").
DUPLICATE_IDENTIFIER = "duplicate_identifier"
_NONCE_MEMORY = 200_000


class UpbitError(Exception):
    def __init__(self, status: int, name: str | int, message: str) -> None:
        super().__init__(message)
        self.status, self.name, self.message = status, name, message


def error_response(status: int, name: str | int, message: str) -> web.Response:
    return json_response({"error": {"name": name, "message": message}}, status=status)


def _num(text: Any, field: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UpbitError(400, "validation_error", f"{field} does not have a valid value") from None
    if not value > 0 or value != value or value == float("inf"):
        raise UpbitError(400, "validation_error", f"{field} does not have a valid value")
    return value


class UpbitRest:
    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.engine = core.engines[UPBIT]
        self.secrets = {core.keys["upbit"]["apiKey"]: core.keys["upbit"]["secret"]}
        self.nonces: OrderedDict[str, None] = OrderedDict()
        self.identifiers: set[str] = set()
        self._uuid_rng = random.Random(core.config.seed * 7919 + 17)
        self.markets = {core.books[UPBIT][c].market_id: c for c in core.upbit_coins}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/market/all", self.market_all),
            web.get("/v1/orderbook", self.orderbook),
            web.get("/v1/orderbook/instruments", self.instruments),
            web.get("/v1/ticker", self.ticker),
            web.get("/v1/accounts", self.accounts),
            web.get("/v1/orders/chance", self.chance),
            web.post("/v1/orders", self.create_order),
            web.post("/v1/orders/test", self.create_order),
            web.get("/v1/order", self.get_order),
            web.delete("/v1/order", self.cancel_order),
            web.get("/v1/orders/open", self.open_orders),
            web.get("/v1/orders/closed", self.closed_orders),
        ]

    def middleware(self) -> Any:
        return venue_middleware(self.core, UPBIT, too_many=self._too_many, server_error=self._server_error,
                                decorate=self._decorate, gate=self._gate)

    def _gate(self, request: web.Request, now: float) -> web.Response | None:
        window = self.core.limits[UPBIT][rate_group(request.method, request.path)]
        return None if window.admit(now) else self._too_many(0.0)

    @staticmethod
    def _too_many(_retry: float) -> web.Response:
        return web.Response(status=429, text="Too many API requests.", content_type="text/plain")

    @staticmethod
    def _server_error(status: int) -> web.Response:
        return web.Response(status=status, text=f"{status} Server Error", content_type="text/plain")

    def _decorate(self, request: web.Request, response: web.StreamResponse, now: float) -> None:
        group = rate_group(request.method, request.path)
        window = self.core.limits[UPBIT][group]
        assert isinstance(window, LimitWindow)
        left = 0 if response.status == 429 else window.remaining(now)
        response.headers["Remaining-Req"] = f"group={group}; min={MIN_REMAINING}; sec={left}"

    # -- plumbing -------------------------------------------------------------------

    def _new_uuid(self) -> str:
        return str(uuid.UUID(int=self._uuid_rng.getrandbits(128), version=4))

    def _authenticate(self, request: web.Request, params: list[tuple[str, Any]]) -> None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            raise AuthError("jwt_verification", "Jwt 토큰 검증에 실패했습니다.")
        payload = decode_upbit_jwt(header[len("Bearer "):].strip(), self.secrets)
        nonce = str(payload["nonce"])
        if nonce in self.nonces:
            raise AuthError("nonce_used", "이미 요청한 nonce값이 다시 사용되었습니다.")
        if (params or payload.get("query_hash")) and payload.get("query_hash") != upbit_query_hash(params):
            raise AuthError("invalid_query_payload", "JWT 헤더의 페이로드가 올바르지 않습니다.")
        self.nonces[nonce] = None
        if len(self.nonces) > _NONCE_MEMORY:
            self.nonces.popitem(last=False)

    @staticmethod
    def _query(request: web.Request) -> list[tuple[str, str]]:
        raw = request.rel_url.raw_query_string
        pairs = []
        for part in raw.split("&") if raw else []:
            k, _, v = part.partition("=")
            pairs.append((unquote(k), unquote(v)))
        return pairs

    async def _private(self, request: web.Request, body: bool = False) -> dict[str, Any]:
        """Authenticate; return the request's parameters (query, or JSON body for POST)."""
        if body:
            text = await request.text()
            try:
                obj = json.loads(text or "{}", object_pairs_hook=lambda kv: kv)
            except ValueError:
                raise UpbitError(400, "validation_error", "request body is not valid JSON") from None
            params = list(obj) if isinstance(obj, list) else []
        else:
            params = self._query(request)
        self._authenticate(request, params)
        return dict(params)

    async def _run(self, request: web.Request, fn: Any, *, private: bool, body: bool = False) -> web.Response:
        try:
            params = await self._private(request, body) if private else dict(self._query(request))
            return fn(params)
        except AuthError as exc:
            return error_response(401, exc.name, exc.message)
        except UpbitError as exc:
            return error_response(exc.status, exc.name, exc.message)
        except (ValueError, TypeError) as exc:  # a malformed parameter
            return error_response(400, "validation_error", f"invalid parameter: {exc}")

    def _market(self, code: str | None) -> str:
        if code not in self.markets:
            raise UpbitError(404, 404, "Code not found")
        return self.markets[code]

    def _codes(self, params: dict[str, Any]) -> list[str]:
        raw = params.get("markets") or params.get("markets[]") or ""
        codes = [c.strip() for c in str(raw).split(",") if c.strip()]
        if not codes:
            raise UpbitError(400, "validation_error", "markets is missing")
        for c in codes:
            self._market(c)
        return codes

    # -- quotation ------------------------------------------------------------------

    async def market_all(self, request: web.Request) -> web.Response:
        def run(params: dict[str, Any]) -> web.Response:
            details = str(params.get("isDetails", "false")).lower() == "true"
            out = []
            for code, coin in self.markets.items():
                ko, en = NAMES.get(coin, (coin, coin))
                item: dict[str, Any] = {"market": code, "korean_name": ko, "english_name": en}
                if details:
                    item["market_event"] = {"warning": False, "caution": {}}
                out.append(item)
            return json_response(out)
        return await self._run(request, run, private=False)

    async def orderbook(self, request: web.Request) -> web.Response:
        def run(params: dict[str, Any]) -> web.Response:
            count = int(params.get("count", 30) or 30)
            now = int(time.time() * 1000)
            return json_response([fmt.orderbook_rest(self.core.books[UPBIT][self.markets[c]], max(1, count), now)
                                  for c in self._codes(params)])
        return await self._run(request, run, private=False)

    async def instruments(self, request: web.Request) -> web.Response:
        from arbitrage.venue_rules import upbit_tick_size

        def run(params: dict[str, Any]) -> web.Response:
            out = []
            for c in self._codes(params):
                book = self.core.books[UPBIT][self.markets[c]]
                out.append({"market": c, "quote_currency": "KRW",
                            "tick_size": fmt.num(upbit_tick_size(book.mid, self.markets[c])),
                            "supported_levels": [0]})
            return json_response(out)
        return await self._run(request, run, private=False)

    async def ticker(self, request: web.Request) -> web.Response:
        def run(params: dict[str, Any]) -> web.Response:
            now = int(time.time() * 1000)
            tape = self.core.tapes[UPBIT]
            return json_response([fmt.ticker(c, tape.stats[self.markets[c]], now, None) for c in self._codes(params)])
        return await self._run(request, run, private=False)

    # -- exchange -------------------------------------------------------------------

    async def accounts(self, request: web.Request) -> web.Response:
        def run(_params: dict[str, Any]) -> web.Response:
            acct = self.core.accounts[UPBIT]
            out = []
            for asset, v in acct.view().items():
                if asset != "KRW" and v["free"] <= 0 and v["locked"] <= 0:
                    continue
                out.append({"currency": asset, "balance": fmt.num(v["free"]), "locked": fmt.num(v["locked"]),
                            "avg_buy_price": "0", "avg_buy_price_modified": False, "unit_currency": "KRW"})
            return json_response(out)
        return await self._run(request, run, private=True)

    async def chance(self, request: web.Request) -> web.Response:
        def run(params: dict[str, Any]) -> web.Response:
            code = params.get("market")
            coin = self._market(code)
            acct = self.core.accounts[UPBIT]
            fee = fmt.num(UPBIT_TAKER_FEE)

            def account(cur: str) -> dict[str, Any]:
                return {"currency": cur, "balance": fmt.num(acct.free.get(cur, 0.0)),
                        "locked": fmt.num(acct.locked.get(cur, 0.0)), "avg_buy_price": "0",
                        "avg_buy_price_modified": False, "unit_currency": "KRW"}
            return json_response({
                "bid_fee": fee, "ask_fee": fee, "maker_bid_fee": fee, "maker_ask_fee": fee,
                "market": {"id": code, "name": f"{coin}/KRW", "order_types": ["limit"],
                           "ask_types": ["limit", "market", "best_fok", "best_ioc", "limit_fok", "limit_ioc"],
                           "bid_types": ["limit", "price", "best_fok", "best_ioc", "limit_fok", "limit_ioc"],
                           "order_sides": ["ask", "bid"],
                           "bid": {"currency": "KRW", "min_total": fmt.num(UPBIT_MIN_ORDER_KRW)},
                           "ask": {"currency": coin, "min_total": fmt.num(UPBIT_MIN_ORDER_KRW)},
                           "max_total": "1000000000", "state": "active"},
                "bid_account": account("KRW"), "ask_account": account(coin),
            })
        return await self._run(request, run, private=True)

    async def create_order(self, request: web.Request) -> web.Response:
        test = request.path.endswith("/test")
        return await self._run(request, lambda p: self._create(p, test), private=True, body=True)

    def _create(self, params: dict[str, Any], test: bool) -> web.Response:
        code, side_raw = params.get("market"), params.get("side")
        coin = self.markets.get(str(code), "")
        ident = params.get("identifier")
        order = SimOrder(venue=UPBIT, order_id=self._new_uuid(), client_order_id=None if ident is None else str(ident),
                         coin=coin, market_id=str(code), side="buy" if side_raw == "bid" else "sell",
                         type="limit", ts_ns=time.time_ns())
        side_word = "bid" if side_raw == "bid" else "ask"
        try:
            if order.client_order_id is not None:
                if order.client_order_id in self.identifiers:
                    raise UpbitError(400, DUPLICATE_IDENTIFIER, "identifier가 중복되었습니다. (identifier already used)")
                if not test:
                    self.identifiers.add(order.client_order_id)
            self._fill_terms(order, params, coin, side_word)
        except UpbitError as exc:
            if not test:
                self.engine.record_rejected(order, str(exc.name))
                self.engine.remember(order)
            return error_response(exc.status, exc.name, exc.message)
        if test:
            return json_response(fmt.order_json(order, UPBIT_TAKER_FEE), status=201)
        deny = self.core.faults.active(UPBIT, "insufficient_funds", self.core.mono()) is not None
        try:
            self.engine.submit(order, deny_funds=deny)
        except OrderRejected as exc:
            if exc.reason == "insufficient_funds":
                cur = "KRW" if order.side == "buy" else coin
                return error_response(400, f"insufficient_funds_{side_word}", f"주문가능한 금액({cur})이 부족합니다.")
            return error_response(400, f"create_{side_word}_error", "주문 요청 정보가 올바르지 않습니다.")
        if order.fills:
            self.core.notify_book(UPBIT, coin)
        return json_response(fmt.accepted_json(order, UPBIT_TAKER_FEE), status=201)

    def _fill_terms(self, order: SimOrder, params: dict[str, Any], coin: str, side_word: str) -> None:
        if params.get("side") not in ("bid", "ask"):
            raise UpbitError(400, "validation_error", "side is missing, side does not have a valid value")
        if not coin:
            raise UpbitError(400, "validation_error", "market does not have a valid value")
        ord_type = params.get("ord_type")
        tif = params.get("time_in_force")
        if ord_type not in ("limit", "price", "market", "best"):
            raise UpbitError(400, "validation_error", "ord_type does not have a valid value")
        if tif not in (None, "ioc", "fok", "post_only"):
            raise UpbitError(400, "validation_error", "time_in_force does not have a valid value")
        if ord_type == "best" and tif not in ("ioc", "fok"):
            raise UpbitError(400, "validation_error", "time_in_force is required for best orders")
        if tif == "post_only" and ord_type != "limit":
            raise UpbitError(400, "validation_error", "post_only is only for limit orders")
        order.meta["ord_type"] = ord_type
        order.meta["time_in_force"] = tif
        order.tif = {"ioc": "IOC", "fok": "FOK", "post_only": "POST_ONLY", None: "GTC"}[tif]
        book = self.core.books[UPBIT][coin]
        if ord_type == "limit":
            order.price = _num(params.get("price"), "price")
            order.qty = self._volume(params.get("volume"))
            if not is_upbit_price_on_tick(order.price, coin):
                raise UpbitError(400, f"invalid_price_{side_word}", "주문 가격 단위를 잘못 입력하셨습니다. 확인 후 시도해주세요.")
            total = order.price * order.qty
        elif order.side == "buy":  # price / best bid: spend KRW
            if params.get("volume") not in (None, ""):
                raise UpbitError(400, "create_bid_error", "주문 요청 정보가 올바르지 않습니다. 시장가 매수는 volume 없이 price만 입력해주세요.")
            order.type, order.quote_qty = "market", _num(params.get("price"), "price")
            total = order.quote_qty
        else:  # market / best ask: sell volume
            if params.get("price") not in (None, ""):
                raise UpbitError(400, "create_ask_error", "주문 요청 정보가 올바르지 않습니다. 시장가 매도는 price 없이 volume만 입력해주세요.")
            order.type, order.qty = "market", self._volume(params.get("volume"))
            best = book.best_bid()
            total = order.qty * (best[0] if best else 0.0)
        if ord_type in ("price", "market") and order.tif == "GTC":
            order.tif = "IOC"
        if total < UPBIT_MIN_ORDER_KRW - 1e-9:
            raise UpbitError(400, f"under_min_total_{side_word}", "최소주문금액 이상으로 주문해주세요")

    @staticmethod
    def _volume(raw: Any) -> float:
        volume = _num(raw, "volume")
        if abs(volume * 1e8 - round(volume * 1e8)) > 1e-4:
            raise UpbitError(400, "validation_error", "volume은 소수점 8자리까지 입력 가능합니다.")
        return volume

    def _find(self, params: dict[str, Any]) -> SimOrder:
        uid, ident = params.get("uuid"), params.get("identifier")
        if not uid and not ident:
            raise UpbitError(400, "validation_error", "uuid or identifier is required")
        order = self.engine.orders.get(str(uid)) if uid else None
        if order is None and ident:
            order = self.engine.by_client.get(str(ident))
        if order is None or order.status == "rejected":
            raise UpbitError(404, "order_not_found", "주문을 찾지 못했습니다.")
        return order

    async def get_order(self, request: web.Request) -> web.Response:
        return await self._run(request, lambda p: json_response(
            fmt.order_json(self._find(p), UPBIT_TAKER_FEE, with_trades=True)), private=True)

    async def cancel_order(self, request: web.Request) -> web.Response:
        def run(params: dict[str, Any]) -> web.Response:
            order = self._find(params)
            if not order.is_open:
                raise UpbitError(404, "order_not_found", "주문을 찾지 못했습니다.")
            body = fmt.order_json(order, UPBIT_TAKER_FEE, state="wait")
            self.engine.cancel(order)
            return json_response(body)
        return await self._run(request, run, private=True)

    def _list(self, params: dict[str, Any], open_: bool) -> web.Response:
        code = params.get("market")
        if code:
            self._market(code)
        states = [s for k, s in params.items() if k in ("state", "states[]")]
        limit = max(1, min(1000, int(params.get("limit", 100) or 100)))
        source = self.engine.open_orders.values() if open_ else self.engine.orders.values()
        orders = [o for o in source if (not code or o.market_id == code) and o.status != "rejected"]
        if open_:
            if states and "wait" not in states:
                orders = []
        else:
            wanted = set(states) or {"done", "cancel"}
            orders = [o for o in orders if not o.is_open and fmt.order_state(o) in wanted]
        orders.sort(key=lambda o: o.ts_ns, reverse=params.get("order_by", "desc") != "asc")
        return json_response([fmt.order_json(o, UPBIT_TAKER_FEE) for o in orders[:limit]])

    async def open_orders(self, request: web.Request) -> web.Response:
        return await self._run(request, lambda p: self._list(p, True), private=True)

    async def closed_orders(self, request: web.Request) -> web.Response:
        return await self._run(request, lambda p: self._list(p, False), private=True)
