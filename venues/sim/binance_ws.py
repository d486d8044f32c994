"""Binance spot market streams: ``/ws/<stream>``, ``/ws`` + SUBSCRIBE, ``/stream?streams=``.

Streams: ``<sym>@bookTicker`` (every change of the touch), ``<sym>@trade``, ``<sym>@aggTrade``,
``<sym>@ticker`` and ``<sym>@miniTicker`` (1 s),
``<sym>@depth<5|10|20>[@100ms|@1000ms]`` (partial book) and ``<sym>@depth[@100ms|@1000ms]``
(diff depth, contiguous ``U``/``u`` continuing from ``/api/v3/depth``'s
``lastUpdateId``). Text frames. The server pings every 20 s and drops a
connection without a pong for 60 s, one that sends more than 5 messages a
second (close 1008), and any connection after 24 h.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from typing import Any

from aiohttp import WSMsgType, web

from arbitrage.venue_rules import BINANCE
from venues.sim import binance_format as fmt
from venues.sim.core import SimCore
from venues.sim.rest_common import dumps
from venues.sim.tape import PublicTrade
from venues.sim.ws_common import Conn

STREAM_RE = re.compile(
    r"^([a-z0-9]+)@(bookTicker|trade|aggTrade|ticker|miniTicker|depth(5|10|20)?(@(100|1000)ms)?)$")
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
INTERVALS = {"100ms": 0.1, "1000ms": 1.0}
_ID_RE = re.compile(r"^[A-Za-z0-9]{1,36}$")
log = logging.getLogger("venues.sim")


class BinanceConn(Conn):
    def __init__(self, request: web.Request, ws: web.WebSocketResponse, combined: bool, now: float) -> None:
        super().__init__(request, ws)
        self.combined = combined
        self.streams: list[str] = []
        self.inbound: deque[float] = deque()
        self.opened = now
        self.last_pong = now
        self.next_ping = now


class BinanceWs:
    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.cfg = core.config
        self.conns: set[BinanceConn] = set()
        self.subs: dict[str, set[BinanceConn]] = {}
        self.by_symbol = {b.market_id.lower(): b for b in core.books[BINANCE].values()}
        self._last_top: dict[str, tuple[str, str, str, str] | None] = {}
        for book in core.books[BINANCE].values():
            for name in INTERVALS:
                book.register_pending(name)
        core.listeners[BINANCE].append(self)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/ws", self.handle), web.get("/ws/{tail:.*}", self.handle),
                web.get("/stream", self.handle)]

    # -- fault state ------------------------------------------------------------------

    def _active(self, kind: str) -> bool:
        return self.core.faults.active(BINANCE, kind, self.core.mono()) is not None

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

    # -- publishing -------------------------------------------------------------------

    def _publish(self, names: tuple[str, ...], payload: dict[str, Any]) -> None:
        raw: str | None = None
        garbage = None
        for name in names:
            conns = self.subs.get(name)
            if not conns:
                continue
            if garbage is None:
                garbage = self._active("malformed")
            if raw is None:
                raw = dumps(payload)
            for conn in conns:
                if garbage:
                    conn.send_garbage()
                elif conn.combined:
                    conn.send_text(f'{{"stream":"{name}","data":{raw}}}')
                else:
                    conn.send_text(raw)

    def on_update(self, coin: str, changed: bool, trade: PublicTrade | None) -> None:
        if not self.subs or self._active("pause"):
            return
        book = self.core.books[BINANCE][coin]
        sym = book.market_id.lower()
        if changed and self.subs.get(f"{sym}@bookTicker"):
            bt = fmt.book_ticker(book)
            top = None if bt is None else (bt["b"], bt["B"], bt["a"], bt["A"])
            if bt is not None and top != self._last_top.get(sym):  # only when the touch changes
                self._last_top[sym] = top
                self._publish((f"{sym}@bookTicker",), bt)
        if trade is not None:
            now = int(time.time() * 1000)
            if self.subs.get(f"{sym}@trade"):
                self._publish((f"{sym}@trade",), fmt.trade_event(book, trade, now))
            if self.subs.get(f"{sym}@aggTrade"):
                self._publish((f"{sym}@aggTrade",), fmt.agg_trade_event(book, trade, now))

    def emit_interval(self, name: str) -> None:
        """Partial-depth and diff-depth events for one interval ('100ms' or '1000ms')."""
        if self._active("pause"):
            return  # pending diffs keep accumulating: the stream resumes contiguous
        now = int(time.time() * 1000)
        slow = name == "1000ms"
        for sym, book in self.by_symbol.items():
            diff_names = (f"{sym}@depth", f"{sym}@depth@1000ms") if slow else (f"{sym}@depth@100ms",)
            pending = book.pop_pending(name)
            if pending is not None:
                first, last, bids, asks = pending
                if any(self.subs.get(n) for n in diff_names):
                    self._publish(diff_names, fmt.depth_update(book, first, last, bids, asks, now))
            if slow:
                coin = book.coin
                for stream, mini in ((f"{sym}@ticker", False), (f"{sym}@miniTicker", True)):
                    if self.subs.get(stream):
                        stats = self.core.tapes[BINANCE].stats[coin]
                        self._publish((stream,), fmt.ticker_24h(book, stats, now, mini))
            for n in (5, 10, 20):
                names = (f"{sym}@depth{n}", f"{sym}@depth{n}@1000ms") if slow else (f"{sym}@depth{n}@100ms",)
                if any(self.subs.get(x) for x in names):
                    self._publish(names, fmt.depth_snapshot(book, n))

    async def interval_loop(self, name: str) -> None:
        period = INTERVALS[name]
        loop = asyncio.get_running_loop()
        next_t = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            next_t = max(next_t + period, loop.time())
            try:
                self.emit_interval(name)
            except Exception:
                log.exception("sim binance %s depth emission failed", name)

    # -- connections ------------------------------------------------------------------

    def _subscribe(self, conn: BinanceConn, names: list[str]) -> None:
        for name in names:
            if name not in conn.streams:
                conn.streams.append(name)
                self.subs.setdefault(name, set()).add(conn)

    def _unsubscribe(self, conn: BinanceConn, names: list[str]) -> None:
        for name in names:
            if name in conn.streams:
                conn.streams.remove(name)
                subs = self.subs.get(name)
                if subs is not None:
                    subs.discard(conn)
                    if not subs:
                        del self.subs[name]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._active("drop"):
            return web.Response(status=503, text="Service Unavailable")
        combined = request.path.startswith("/stream")
        if combined:
            initial = [s for s in request.query.get("streams", "").split("/") if s]
        else:
            initial = [s for s in request.match_info.get("tail", "").split("/") if s]
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        now = self.core.mono()
        conn = BinanceConn(request, ws, combined, now)
        conn.next_ping = now + self.cfg.binance_ping_interval_s
        self._subscribe(conn, [s for s in initial if STREAM_RE.match(s)])  # e.g. ccxt's /ws/0: no stream
        self.conns.add(conn)
        writer = asyncio.ensure_future(conn.writer(lambda: self._timeout(conn), lambda: self._tick(conn)))
        try:
            async for msg in ws:
                if not self._count_inbound(conn):
                    await conn.close(1008, "Too many requests")
                    break
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = self.core.mono()
                elif msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._reply(conn, {"code": 3, "msg": "Invalid JSON: binary frames are not supported"})
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self.conns.discard(conn)
            self._unsubscribe(conn, list(conn.streams))
            conn.closed = True
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        return ws

    def _count_inbound(self, conn: BinanceConn) -> bool:
        limit = self.cfg.binance_ws_msg_limit_per_s
        if limit <= 0:
            return True
        now = self.core.mono()
        while conn.inbound and conn.inbound[0] <= now - 1.0:
            conn.inbound.popleft()
        conn.inbound.append(now)
        return len(conn.inbound) <= limit

    def _timeout(self, conn: BinanceConn) -> float:
        return conn.next_ping - self.core.mono()

    async def _tick(self, conn: BinanceConn) -> bool:
        now = self.core.mono()
        if now - conn.opened >= self.cfg.binance_ws_lifetime_s:
            await conn.close(1000, "connection lifetime exceeded")
            return False
        if now - conn.last_pong >= self.cfg.binance_pong_timeout_s:
            await conn.close(1008, "pong timeout")
            return False
        if now >= conn.next_ping:
            conn.next_ping = now + self.cfg.binance_ping_interval_s
            await conn.ws.ping(str(int(time.time() * 1000)).encode())
        return True

    def _reply(self, conn: BinanceConn, obj: dict[str, Any]) -> None:
        conn.send_text(dumps(obj))

    def _on_text(self, conn: BinanceConn, text: str) -> None:
        try:
            req = json.loads(text)
        except ValueError as exc:
            self._reply(conn, {"code": 3, "msg": f"Invalid JSON: {exc}", "id": None})
            return
        if not isinstance(req, dict):
            self._reply(conn, {"code": 2, "msg": "Invalid request: request must be a JSON object", "id": None})
            return
        rid = req.get("id")
        if not (rid is None or (isinstance(rid, int) and not isinstance(rid, bool) and -(2**63) <= rid < 2**63)
                or (isinstance(rid, str) and _ID_RE.match(rid))):
            self._reply(conn, {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer",
                               "id": None})
            return
        method = req.get("method")
        if method is None:
            self._reply(conn, {"code": 2, "msg": "Invalid request: missing field `method`", "id": rid})
            return
        if method not in METHODS:
            self._reply(conn, {"code": 2, "msg": f"Invalid request: unknown variant `{method}`, expected one of "
                                                 + ", ".join(f"`{m}`" for m in METHODS), "id": rid})
            return
        params = req.get("params", [])
        if not isinstance(params, list) or not all(isinstance(p, str | bool) for p in params):
            self._reply(conn, {"code": 2, "msg": "Invalid request: invalid params", "id": rid})
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [p for p in params if not isinstance(p, str) or not STREAM_RE.match(p)]
            if bad or not params:
                self._reply(conn, {"code": 2, "msg": f"Invalid request: invalid stream name {bad[0] if bad else ''!r}",
                                   "id": rid})
                return
            if method == "SUBSCRIBE":
                if len(set(conn.streams) | set(params)) > 1024:
                    self._reply(conn, {"code": 2, "msg": "Invalid request: too many streams", "id": rid})
                    return
                self._subscribe(conn, params)  # type: ignore[arg-type]
            else:
                self._unsubscribe(conn, params)  # type: ignore[arg-type]
            self._reply(conn, {"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            self._reply(conn, {"result": list(conn.streams), "id": rid})
        elif method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined" or not isinstance(params[1], bool):
                self._reply(conn, {"code": 0, "msg": "Unknown property", "id": rid})
                return
            conn.combined = params[1]
            self._reply(conn, {"result": None, "id": rid})
        else:  # GET_PROPERTY
            if params != ["combined"]:
                self._reply(conn, {"code": 0, "msg": "Unknown property", "id": rid})
                return
            self._reply(conn, {"result": conn.combined, "id": rid})
