"""Upbit private WebSocket ``/websocket/v1/private``: ``myOrder`` and ``myAsset``.

Handshake: ``Authorization: Bearer <JWT>`` signed with the account's secret
(``auth.decode_upbit_jwt``; no ``query_hash``, as ccxt's ``authenticate`` in
``ccxt/pro/upbit.py`` 4.5.90 builds it). Missing or invalid: HTTP 401 with
``{"error": {"name": "INVALID_AUTH", ...}}`` and no socket.

Requests are the usual array, each one replacing the connection's set, e.g.
``[{"ticket": "x"}, {"type": "myOrder", "codes": ["KRW-BTC"]}, {"type": "myAsset"},
{"format": "DEFAULT"}]``; ``codes`` is optional for ``myOrder`` (absent or empty:
every market). Formats ``DEFAULT``/``JSON_LIST`` (a one-element array) and
``SIMPLE``/``SIMPLE_LIST`` (abbreviated keys). Frames are binary UTF-8 JSON like
the public stream; text ``PING`` gets ``{"status":"UP"}``; idle 120 s closes.

Messages (field names from docs.upbit.com/kr/reference/websocket-myorder and
websocket-myasset, and the sample payloads in ccxt 4.5.90 ``pro/upbit.py``
``parse_ws_order`` / ``handle_balance``; numbers are JSON numbers):

- ``myOrder``: ``wait`` when the order is accepted (UNCONFIRMED whether the venue
  sends it for an order that matches at once), ``trade`` per fill (``price`` and
  ``volume`` are the fill's, ``trade_uuid``/``trade_fee``/``is_maker``/
  ``trade_timestamp`` set; null otherwise), then ``done`` (fully filled) or
  ``cancel`` (cancelled, or an IOC/FOK/market remainder returned; the
  2024-12-04 changelog "myorder_identifier" says best/price orders publish
  ``cancel`` in that case too). ``identifier`` is the client's id.
- ``myAsset``: ``{type, asset_uuid, assets: [{currency, balance, locked}],
  asset_timestamp, timestamp, stream_type}`` after each balance change, listing
  the currencies that changed (balance = free).

Engine events are captured synchronously and sent from one ``call_soon`` after
the request that caused them (within a loop iteration of the REST reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from arbitrage.venue_rules import UPBIT, UPBIT_TAKER_FEE
from venues.sim.auth import AuthError, decode_upbit_jwt
from venues.sim.core import SimCore
from venues.sim.engine import Fill, SimOrder
from venues.sim.rest_common import dumps, dumps_bytes, json_response
from venues.sim.ws_common import Conn

TYPES = ("myOrder", "myAsset")
FORMATS = ("DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST")
# SIMPLE abbreviations from the docs' tables; UNCONFIRMED for the fields added in
# 2024-12 (trade_fee, is_maker, identifier) whose short names the excerpts cut off.
SIMPLE_KEYS = {
    "type": "ty", "code": "cd", "uuid": "uid", "ask_bid": "ab", "order_type": "ot", "state": "s",
    "trade_uuid": "tuid", "price": "p", "avg_price": "ap", "volume": "v", "remaining_volume": "rv",
    "executed_volume": "ev", "trades_count": "tc", "reserved_fee": "rsf", "remaining_fee": "rmf",
    "paid_fee": "pf", "locked": "l", "executed_funds": "ef", "time_in_force": "tif", "trade_fee": "tf",
    "is_maker": "im", "identifier": "id", "trade_timestamp": "ttms", "order_timestamp": "otms",
    "timestamp": "tms", "stream_type": "st", "asset_uuid": "astuid", "assets": "ast", "currency": "cu",
    "balance": "b", "asset_timestamp": "asttms", "smp_type": "smpt",
}


@dataclass(frozen=True, slots=True)
class _Sub:
    type: str
    codes: frozenset[str]  # empty: every market


@dataclass(slots=True)
class _Event:
    """One myOrder (and maybe one myAsset) as it was when the engine reported it."""

    order_msg: dict[str, Any]
    code: str
    assets: dict[str, tuple[float, float]] = field(default_factory=dict)
    ts_ms: int = 0


class _PrivateConn(Conn):
    def __init__(self, request: web.Request, ws: web.WebSocketResponse, now: float) -> None:
        super().__init__(request, ws)
        self.subs: list[_Sub] = []
        self.format = "DEFAULT"
        self.last_io = now
        self.next_status: float | None = None

    def wants(self, kind: str, code: str = "") -> bool:
        return any(s.type == kind and (not s.codes or code in s.codes) for s in self.subs)


def _simplify(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {SIMPLE_KEYS.get(k, k): _simplify(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_simplify(x) for x in obj]
    return obj


class UpbitPrivateWs:
    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.cfg = core.config
        self.engine = core.engines[UPBIT]
        self.secrets = {core.keys["upbit"]["apiKey"]: core.keys["upbit"]["secret"]}
        self.conns: set[_PrivateConn] = set()
        self.asset_uuid = str(uuid.UUID(int=core.config.seed * 2654435761 + 99))
        self._pending: list[_Event] = []
        self._flush_scheduled = False
        acct = self.engine.account
        self._known = {a: (v["free"], v["locked"]) for a, v in acct.view().items()}
        self.engine.listeners.append(self._on_engine)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/websocket/v1/private", self.handle)]

    # -- faults -----------------------------------------------------------------------

    def _refusing(self) -> bool:
        now = self.core.mono()
        return any(self.core.faults.active(UPBIT, k, now) is not None for k in ("drop", "private_down"))

    def drop_all(self, graceful: bool) -> int:
        conns = list(self.conns)
        for conn in conns:
            if graceful:
                asyncio.ensure_future(conn.close(1001, "going away"))
            else:
                conn.abort()
        return len(conns)

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(1001, "server shutdown") for c in list(self.conns)), return_exceptions=True)

    # -- connections ------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            decode_upbit_jwt(token.strip(), self.secrets)
        except AuthError:
            return False
        return True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._refusing():
            return web.Response(status=503, text="Service Unavailable")
        if not self._authorized(request):
            return json_response({"error": {"name": "INVALID_AUTH", "message": "인증 정보가 올바르지 않습니다."}},
                                 status=401)
        ws = web.WebSocketResponse(autoping=False, compress=True, max_msg_size=1 << 16)
        await ws.prepare(request)
        conn = _PrivateConn(request, ws, self.core.mono())
        self.conns.add(conn)
        writer = asyncio.ensure_future(conn.writer(lambda: self._timeout(conn), lambda: self._tick(conn)))
        try:
            async for msg in ws:
                conn.last_io = self.core.mono()
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    self._on_request(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._on_request(conn, msg.data.decode("utf-8", "replace"))
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.conns.discard(conn)
            conn.closed = True
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        return ws

    def _timeout(self, conn: _PrivateConn) -> float:
        deadline = conn.last_io + self.cfg.upbit_idle_timeout_s
        if conn.next_status is not None:
            deadline = min(deadline, conn.next_status)
        return deadline - self.core.mono()

    async def _tick(self, conn: _PrivateConn) -> bool:
        now = self.core.mono()
        if conn.next_status is not None and now >= conn.next_status:
            conn.next_status = now + self.cfg.upbit_status_interval_s
            self._send(conn, b'{"status":"UP"}')
        if now - conn.last_io >= self.cfg.upbit_idle_timeout_s:
            await conn.close(1000, "idle timeout")
            return False
        return True

    def _send(self, conn: _PrivateConn, data: bytes) -> None:
        conn.last_io = self.core.mono()
        conn.send_bytes(data)

    def _error(self, conn: _PrivateConn, name: str, message: str) -> None:
        self._send(conn, dumps({"error": {"name": name, "message": message}}).encode())

    def _on_request(self, conn: _PrivateConn, text: str) -> None:
        if text.strip() == "PING":
            self._send(conn, b'{"status":"UP"}')
            if conn.next_status is None:
                conn.next_status = self.core.mono() + self.cfg.upbit_status_interval_s
            return
        try:
            req = json.loads(text)
        except ValueError:
            self._error(conn, "WRONG_FORMAT", "요청 형식이 올바르지 않습니다. (request is not valid JSON)")
            return
        if not isinstance(req, list) or not req or not all(isinstance(x, dict) for x in req):
            self._error(conn, "WRONG_FORMAT", "요청 형식이 올바르지 않습니다. (request must be a JSON array of objects)")
            return
        ticket = next((x["ticket"] for x in req if "ticket" in x), None)
        if not isinstance(ticket, str) or not ticket:
            self._error(conn, "NO_TICKET", "티켓이 존재하지 않습니다. (no ticket)")
            return
        form = next((x["format"] for x in req if "format" in x), "DEFAULT")
        if form not in FORMATS:
            self._error(conn, "INVALID_PARAM", f"format does not have a valid value: {form}")
            return
        types = [x for x in req if "type" in x]
        if not types:
            self._error(conn, "NO_TYPE", "타입이 존재하지 않습니다. (no type)")
            return
        subs = []
        for t in types:
            if t["type"] not in TYPES:
                self._error(conn, "INVALID_PARAM", f"type does not have a valid value: {t['type']}")
                return
            codes = t.get("codes") or []
            if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
                self._error(conn, "INVALID_PARAM", "codes does not have a valid value")
                return
            subs.append(_Sub(t["type"], frozenset(codes)))
        conn.subs, conn.format = subs, form

    # -- engine events ------------------------------------------------------------------

    def _changed(self, order: SimOrder) -> dict[str, tuple[float, float]]:
        acct, out = self.engine.account, {}
        for asset in (order.coin, self.engine.quote):
            now = (acct.free.get(asset, 0.0), acct.locked.get(asset, 0.0))
            if self._known.get(asset) != now:
                self._known[asset] = now
                out[asset] = now
        return out

    def _on_engine(self, kind: str, order: SimOrder, fill: Fill | None) -> None:
        changed = self._changed(order)
        if not self.conns:
            return
        now = int(time.time() * 1000)
        self._pending.append(_Event(self._order_msg(kind, order, fill, now), order.market_id, changed, now))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        events, self._pending = self._pending, []
        for ev in events:
            asset_msg = None
            if ev.assets:
                asset_msg = {"type": "myAsset", "asset_uuid": self.asset_uuid,
                             "assets": [{"currency": c, "balance": f, "locked": lk}
                                        for c, (f, lk) in ev.assets.items()],
                             "asset_timestamp": ev.ts_ms, "timestamp": int(time.time() * 1000),
                             "stream_type": "REALTIME"}
            cache: dict[tuple[str, str], bytes] = {}
            for conn in list(self.conns):
                for kind, msg in (("myOrder", ev.order_msg), ("myAsset", asset_msg)):
                    if msg is None or not conn.wants(kind, ev.code if kind == "myOrder" else ""):
                        continue
                    key = (kind, conn.format)
                    if key not in cache:
                        body = _simplify(msg) if conn.format.startswith("SIMPLE") else msg
                        cache[key] = dumps_bytes([body] if conn.format.endswith("_LIST") else body)
                    self._send(conn, cache[key])

    @staticmethod
    def _order_msg(kind: str, o: SimOrder, fill: Fill | None, now: int) -> dict[str, Any]:
        if kind == "new":
            state = "wait"
        elif kind == "fill":
            state = "trade"
        else:
            state = "done" if o.status == "filled" else "cancel"
        ord_type = o.meta.get("ord_type", o.type)
        by_funds = ord_type == "price" or (ord_type == "best" and o.side == "buy")
        price = o.quote_qty if by_funds else o.price
        volume = None if by_funds else o.qty
        remaining = None if by_funds else o.remaining()
        if o.side == "buy":
            reserved = (o.quote_qty if o.quote_qty is not None else (o.price or 0.0) * (o.qty or 0.0)) * UPBIT_TAKER_FEE
            remaining_fee = max(0.0, reserved - o.fee) if o.is_open or kind != "finish" else 0.0
        else:
            reserved = remaining_fee = 0.0
        if fill is not None:
            price, volume = fill.price, fill.qty
        return {
            "type": "myOrder", "code": o.market_id, "uuid": o.order_id,
            "ask_bid": "BID" if o.side == "buy" else "ASK", "order_type": ord_type, "state": state,
            "trade_uuid": f"{o.order_id[:24]}{fill.trade_id:012d}" if fill else None,
            "price": price, "avg_price": (o.cost / o.filled) if o.filled > 0 else 0.0,
            "volume": volume, "remaining_volume": remaining, "executed_volume": o.filled,
            "trades_count": len(o.fills), "reserved_fee": reserved, "remaining_fee": remaining_fee,
            "paid_fee": o.fee, "locked": max(o.locked, 0.0), "executed_funds": o.cost,
            "time_in_force": o.meta.get("time_in_force"), "trade_fee": fill.fee if fill else None,
            "is_maker": fill.maker if fill else None, "identifier": o.client_order_id,
            "smp_type": None, "trade_timestamp": fill.ts_ms if fill else None,
            "order_timestamp": o.created_ms, "timestamp": now, "stream_type": "REALTIME",
        }
