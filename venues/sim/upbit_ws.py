"""Upbit quotation WebSocket ``/websocket/v1``: binary frames of UTF-8 JSON.

A request is one JSON array ``[{ticket}, {type, codes, is_only_snapshot?,
is_only_realtime?}, ..., {format}?]``; each new request *replaces* the
connection's subscription set (ccxt re-sends the full list each time it
watches something new). Orderbook codes take a depth suffix ``CODE.n``
(1, 5, 15, 30; anything else means 30). Every orderbook message is a full
top-N book. Text ``PING`` is answered ``{"status":"UP"}`` now and then every
10 s; protocol pings get pongs; a connection idle (nothing sent or received)
for 120 s is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from arbitrage.venue_rules import UPBIT
from venues.sim import upbit_format as fmt
from venues.sim.core import SimCore
from venues.sim.rest_common import dumps, dumps_bytes
from venues.sim.tape import PublicTrade
from venues.sim.ws_common import Conn

TYPES = ("ticker", "trade", "orderbook")
FORMATS = ("DEFAULT", "SIMPLE", "JSON_LIST", "SIMPLE_LIST")
DEPTHS = (1, 5, 15, 30)


@dataclass(frozen=True, slots=True)
class Sub:
    type: str
    code: str
    depth: int
    snapshot: bool
    realtime: bool


class UpbitConn(Conn):
    def __init__(self, request: web.Request, ws: web.WebSocketResponse, now: float) -> None:
        super().__init__(request, ws)
        self.subs: list[Sub] = []
        self.format = "DEFAULT"
        self.ticket = ""
        self.last_io = now
        self.next_status: float | None = None


def _flag(obj: dict[str, Any], snake: str, camel: str) -> bool:
    return bool(obj.get(snake, obj.get(camel, False)))


class UpbitWs:
    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.cfg = core.config
        self.conns: set[UpbitConn] = set()
        self.codes = {core.books[UPBIT][c].market_id: c for c in core.upbit_coins}
        core.listeners[UPBIT].append(self)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/websocket/v1", self.handle)]

    def _active(self, kind: str) -> bool:
        return self.core.faults.active(UPBIT, kind, self.core.mono()) is not None

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

    # -- encoding ---------------------------------------------------------------------

    def _message(self, sub: Sub, stream_type: str, trade: PublicTrade | None = None) -> dict[str, Any] | None:
        coin = self.codes[sub.code]
        book = self.core.books[UPBIT][coin]
        now = int(time.time() * 1000)
        stats = self.core.tapes[UPBIT].stats[coin]
        if sub.type == "orderbook":
            return fmt.orderbook_ws(book, min(sub.depth, self.cfg.upbit_levels), now, stream_type)
        if sub.type == "ticker":
            return fmt.ticker(sub.code, stats, now, stream_type)
        t = trade or stats.last_trade
        return None if t is None else fmt.trade(sub.code, t, stats, book, now, stream_type)

    @staticmethod
    def _encode(msg: dict[str, Any], form: str) -> bytes:
        if form in ("SIMPLE", "SIMPLE_LIST"):
            msg = fmt.simplify(msg)
        return dumps_bytes([msg] if form.endswith("_LIST") else msg)

    def _send(self, conn: UpbitConn, data: bytes) -> None:
        conn.last_io = self.core.mono()
        conn.send_bytes(data)

    # -- publishing -------------------------------------------------------------------

    def on_update(self, coin: str, changed: bool, trade: PublicTrade | None) -> None:
        if not self.conns or self._active("pause"):
            return
        code = self.core.books[UPBIT][coin].market_id
        garbage = self._active("malformed")
        cache: dict[tuple[str, int, str], bytes | None] = {}
        for conn in self.conns:
            for sub in conn.subs:
                if sub.code != code or not sub.realtime:
                    continue
                if sub.type == "orderbook" and not changed:
                    continue
                if sub.type in ("ticker", "trade") and trade is None:
                    continue
                if garbage:
                    conn.send_garbage()
                    continue
                key = (sub.type, sub.depth, conn.format)
                if key not in cache:
                    msg = self._message(sub, "REALTIME", trade)
                    cache[key] = None if msg is None else self._encode(msg, conn.format)
                data = cache[key]
                if data is not None:
                    self._send(conn, data)

    # -- connections ------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._active("drop"):
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(autoping=False, compress=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = UpbitConn(request, ws, self.core.mono())
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

    def _timeout(self, conn: UpbitConn) -> float:
        now = self.core.mono()
        deadline = conn.last_io + self.cfg.upbit_idle_timeout_s
        if conn.next_status is not None:
            deadline = min(deadline, conn.next_status)
        return deadline - now

    async def _tick(self, conn: UpbitConn) -> bool:
        now = self.core.mono()
        if conn.next_status is not None and now >= conn.next_status:
            conn.next_status = now + self.cfg.upbit_status_interval_s
            self._send(conn, b'{"status":"UP"}')
        if now - conn.last_io >= self.cfg.upbit_idle_timeout_s:
            await conn.close(1000, "idle timeout")
            return False
        return True

    def _error(self, conn: UpbitConn, name: str, message: str) -> None:
        self._send(conn, dumps({"error": {"name": name, "message": message}}).encode())

    def _on_request(self, conn: UpbitConn, text: str) -> None:
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
        if any(x.get("method") == "LIST_SUBSCRIPTIONS" for x in req):
            self._list(conn, ticket)
            return
        form = next((x["format"] for x in req if "format" in x), "DEFAULT")
        if form not in FORMATS:
            self._error(conn, "INVALID_PARAM", f"format does not have a valid value: {form}")
            return
        types = [x for x in req if "type" in x]
        if not types:
            self._error(conn, "NO_TYPE", "타입이 존재하지 않습니다. (no type)")
            return
        subs: list[Sub] = []
        for t in types:
            if t["type"] not in TYPES:
                self._error(conn, "INVALID_PARAM", f"type does not have a valid value: {t['type']}")
                return
            codes = t.get("codes")
            if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
                self._error(conn, "NO_CODES", "코드가 존재하지 않습니다. (no codes)")
                return
            only_snap = _flag(t, "is_only_snapshot", "isOnlySnapshot")
            only_real = _flag(t, "is_only_realtime", "isOnlyRealtime")
            for raw in codes:
                code, depth = raw, 30
                if t["type"] == "orderbook" and "." in raw:
                    code, _, n = raw.partition(".")
                    depth = int(n) if n.isdigit() and int(n) in DEPTHS else 30
                if code not in self.codes:
                    continue  # unknown or lower-case codes simply get no data
                subs.append(Sub(t["type"], code, depth, snapshot=not only_real, realtime=not only_snap))
        conn.ticket, conn.format = ticket, form
        conn.subs = [s for s in subs if s.realtime]
        if self._active("pause"):
            return
        for sub in subs:
            if sub.snapshot:
                msg = self._message(sub, "SNAPSHOT")
                if msg is not None:
                    self._send(conn, self._encode(msg, form))

    def _list(self, conn: UpbitConn, ticket: str) -> None:
        grouped: dict[str, list[str]] = {}
        for sub in conn.subs:
            code = sub.code if sub.type != "orderbook" or sub.depth == 30 else f"{sub.code}.{sub.depth}"
            grouped.setdefault(sub.type, []).append(code)
        result = [{"type": t, "codes": codes, **({"level": 0} if t == "orderbook" else {})}
                  for t, codes in grouped.items()]
        self._send(conn, dumps({"method": "LIST_SUBSCRIPTIONS", "result": result, "ticket": ticket}).encode())
