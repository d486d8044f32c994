"""Binance spot user data stream: listenKey REST and ``/ws/<listenKey>``.

REST (through the venue middleware, so each call adds ``request_weight``'s 2 for
``userDataStream`` to REQUEST_WEIGHT), API key in ``X-MBX-APIKEY``, no signature:

- ``POST /api/v3/userDataStream`` -> ``{"listenKey": "<60 alphanumerics>"}``. While
  the account has an active key, that key is returned again and extended.
- ``PUT /api/v3/userDataStream?listenKey=`` keepalive (validity 60 min again) -> ``{}``.
- ``DELETE /api/v3/userDataStream?listenKey=`` -> ``{}``; the key is gone and its
  sockets are closed (1000).
- Errors: no key header -2014 (401), wrong key -2015 (401), no ``listenKey``
  -1102, unknown or expired key ``{"code": -1125, "msg": "This listenKey does not
  exist."}`` (400).

WebSocket ``GET /ws/<listenKey>`` (the public ``/ws`` and ``/stream`` routes stay
as they are: only a 60-character alphanumeric tail reaches this module). An
unknown or expired key is refused at the handshake with HTTP 400 and the -1125
body. Text frames; the server pings like the public streams (``binance_ping_*``).
At expiry the socket gets ``{"e": "listenKeyExpired", "E", "listenKey"}`` and is
closed (the real venue stops sending; closing tells a client to reconnect sooner).

Events (field names from binance/binance-spot-api-docs ``user-data-stream.md``,
the listenKey edition of 2024-12-17, commit 947d9ba, and its execution types):

- ``executionReport`` per order state change: one ``NEW`` when the order is
  accepted, one ``TRADE`` per fill (``X`` ``PARTIALLY_FILLED``, or ``FILLED`` on
  the fill that completes it), then ``EXPIRED`` for an IOC/FOK/market remainder or
  ``CANCELED`` for a cancel. ``n``/``N`` are the fill's own commission and asset
  (``"0"``/null on non-trade events); ``z``/``Z`` are cumulative. On a cancel ``C``
  is the original client order id and ``c`` a fresh one (the engine does not know
  the cancel request's ``newClientOrderId``, so one is generated as the venue does
  when none is sent).
- ``outboundAccountPosition`` ``{e, E, u, B: [{a, f, l}]}`` after every
  executionReport that moved a balance, listing only the assets that changed.

Engine events are captured synchronously (cumulative values and balances as
they were) and sent from one ``call_soon`` right after the request that caused
them, so a frame is on the socket within a loop iteration of the REST reply.
A request that is refused at the REST level (filters, funds) sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import string
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from arbitrage.venue_rules import BINANCE
from venues.sim.binance_format import STATUS, s8
from venues.sim.core import SimCore
from venues.sim.engine import Fill, SimOrder
from venues.sim.rest_common import dumps, json_response
from venues.sim.ws_common import Conn

KEY_LENGTH = 60
VALIDITY_S = 3600.0
_UNKNOWN_KEY = {"code": -1125, "msg": "This listenKey does not exist."}
_KEY_CHARS = string.ascii_letters + string.digits


@dataclass(slots=True)
class _Event:
    """One executionReport as it was when the engine reported it."""

    kind: str  # new | fill | finish
    order: SimOrder
    fill: Fill | None
    filled: float
    cost: float
    ts_ms: int
    changed: dict[str, tuple[float, float]] = field(default_factory=dict)  # asset -> (free, locked)
    final: bool = False  # this fill completed the order


class _UserConn(Conn):
    def __init__(self, request: web.Request, ws: web.WebSocketResponse, key: str, now: float) -> None:
        super().__init__(request, ws)
        self.key = key
        self.opened = now
        self.last_pong = now
        self.next_ping = now


@dataclass(slots=True)
class _Key:
    expires: float
    conns: set[_UserConn] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None


class BinanceUserStream:
    def __init__(self, core: SimCore, validity_s: float = VALIDITY_S) -> None:
        self.core = core
        self.cfg = core.config
        self.validity_s = validity_s
        self.engine = core.engines[BINANCE]
        self.api_key = core.keys["binance"]["apiKey"]
        self.keys: dict[str, _Key] = {}
        self._rng = random.Random(core.config.seed * 15485863 + 5)
        self._pending: list[_Event] = []
        self._flush_scheduled = False
        self._exec_id = 1
        acct = self.engine.account
        self._known = {a: (v["free"], v["locked"]) for a, v in acct.view().items()}
        self.engine.listeners.append(self._on_engine)

    def rest_routes(self) -> list[web.RouteDef]:
        path = "/api/v3/userDataStream"
        return [web.post(path, self.create), web.put(path, self.keepalive), web.delete(path, self.close_key)]

    def ws_routes(self) -> list[web.RouteDef]:
        """Register before the public ``/ws/{tail}`` route: aiohttp tries routes in order."""
        return [web.get("/ws/{listen_key:[A-Za-z0-9]{" + str(KEY_LENGTH) + "}}", self.handle)]

    @property
    def conns(self) -> list[_UserConn]:
        return [c for k in self.keys.values() for c in k.conns]

    # -- REST -------------------------------------------------------------------------

    def _auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("X-MBX-APIKEY")
        if not key:
            return json_response({"code": -2014, "msg": "API-key format invalid."}, status=401)
        if key != self.api_key:
            return json_response({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
                                 status=401)
        return None

    def _live_key(self, key: str | None) -> _Key | None:
        entry = self.keys.get(key or "")
        if entry is not None and self.core.mono() >= entry.expires:
            self._expire(str(key))
            return None
        return entry

    async def create(self, request: web.Request) -> web.Response:
        refused = self._auth(request)
        if refused is not None:
            return refused
        live = next((k for k in list(self.keys) if self._live_key(k) is not None), None)
        key = live or "".join(self._rng.choice(_KEY_CHARS) for _ in range(KEY_LENGTH))
        self._extend(key)
        return json_response({"listenKey": key})

    async def _key_param(self, request: web.Request) -> tuple[str | None, web.Response | None]:
        refused = self._auth(request)
        if refused is not None:
            return None, refused
        params = dict(parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True))
        if request.can_read_body:
            params.update(parse_qsl(await request.text(), keep_blank_values=True))
        key = params.get("listenKey")
        if not key:
            return None, json_response({"code": -1102, "msg": "Mandatory parameter 'listenKey' was not sent, "
                                                              "was empty/null, or malformed."}, status=400)
        if self._live_key(key) is None:
            return None, json_response(_UNKNOWN_KEY, status=400)
        return key, None

    async def keepalive(self, request: web.Request) -> web.Response:
        key, refused = await self._key_param(request)
        if refused is not None:
            return refused
        self._extend(str(key))
        return json_response({})

    async def close_key(self, request: web.Request) -> web.Response:
        key, refused = await self._key_param(request)
        if refused is not None:
            return refused
        entry = self.keys.pop(str(key))
        if entry.timer is not None:
            entry.timer.cancel()
        for conn in list(entry.conns):
            asyncio.ensure_future(conn.close(1000, "listenKey closed"))
        return json_response({})

    def _extend(self, key: str) -> None:
        entry = self.keys.setdefault(key, _Key(expires=0.0))
        entry.expires = self.core.mono() + self.validity_s
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = asyncio.get_running_loop().call_later(self.validity_s, self._expire, key)

    def _expire(self, key: str) -> None:
        entry = self.keys.get(key)
        if entry is None:
            return
        if self.core.mono() < entry.expires:  # extended meanwhile (a timer raced a keepalive)
            return
        del self.keys[key]
        if entry.timer is not None:
            entry.timer.cancel()
        note = dumps({"e": "listenKeyExpired", "E": int(time.time() * 1000), "listenKey": key})
        for conn in list(entry.conns):
            asyncio.ensure_future(self._last_word(conn, note))

    @staticmethod
    async def _last_word(conn: _UserConn, note: str) -> None:
        # Sent directly: a frame queued just before close() would be dropped by the writer.
        with contextlib.suppress(Exception):
            await conn.ws.send_str(note)
        await conn.close(1000, "listenKey expired")

    # -- faults -----------------------------------------------------------------------

    def _refusing(self) -> bool:
        now = self.core.mono()
        return any(self.core.faults.active(BINANCE, k, now) is not None for k in ("drop", "private_down"))

    def drop_all(self, graceful: bool) -> int:
        conns = self.conns
        for conn in conns:
            if graceful:
                asyncio.ensure_future(conn.close(1001, "going away"))
            else:
                conn.abort()
        return len(conns)

    async def close_all(self) -> None:
        for entry in self.keys.values():
            if entry.timer is not None:
                entry.timer.cancel()
        await asyncio.gather(*(c.close(1001, "server shutdown") for c in self.conns), return_exceptions=True)

    # -- WebSocket ----------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._refusing():
            return web.Response(status=503, text="Service Unavailable")
        key = request.match_info["listen_key"]
        entry = self._live_key(key)
        if entry is None:
            return json_response(_UNKNOWN_KEY, status=400)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 16)
        await ws.prepare(request)
        now = self.core.mono()
        conn = _UserConn(request, ws, key, now)
        conn.next_ping = now + self.cfg.binance_ping_interval_s
        entry.conns.add(conn)
        writer = asyncio.ensure_future(conn.writer(lambda: conn.next_ping - self.core.mono(),
                                                   lambda: self._tick(conn)))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.last_pong = self.core.mono()
                # anything else a client sends on a user stream is ignored
        except (ConnectionError, RuntimeError):
            pass
        finally:
            live = self.keys.get(key)
            if live is not None:
                live.conns.discard(conn)
            conn.closed = True
            conn.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        return ws

    async def _tick(self, conn: _UserConn) -> bool:
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
        if not self.keys:  # nobody can be listening: keep only the balance baseline current
            self._changed(order)
            return
        changed = self._changed(order)
        if kind == "finish" and order.status == "filled":
            # The fill that completed the order is reported as FILLED; no event of its own.
            last = next((e for e in reversed(self._pending) if e.order is order and e.kind == "fill"), None)
            if last is not None:
                last.final = True
                last.changed.update(changed)
                return
        self._pending.append(_Event(kind, order, fill, order.filled, order.cost,
                                    int(time.time() * 1000), changed))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        events, self._pending = self._pending, []
        conns = self.conns
        if not conns:
            return
        for ev in events:
            frames = [dumps(self._report(ev))]
            if ev.changed:
                frames.append(dumps({"e": "outboundAccountPosition", "E": int(time.time() * 1000), "u": ev.ts_ms,
                                     "B": [{"a": a, "f": s8(f), "l": s8(lk)} for a, (f, lk) in ev.changed.items()]}))
            for conn in conns:
                for frame in frames:
                    conn.send_text(frame)

    def _report(self, ev: _Event) -> dict[str, Any]:
        o, fill = ev.order, ev.fill
        if ev.kind == "new":
            x = status = "NEW"
        elif ev.kind == "fill":
            x, status = "TRADE", ("FILLED" if ev.final else "PARTIALLY_FILLED")
        else:
            x = status = STATUS[o.status]
        cid, orig = o.client_order_id or "", ""
        if x == "CANCELED":
            cid, orig = "".join(self._rng.choice(_KEY_CHARS) for _ in range(22)), o.client_order_id or ""
        working = o.type == "limit" and o.tif in ("GTC", "POST_ONLY") and x in ("NEW", "TRADE") \
            and status != "FILLED"
        exec_id, self._exec_id = self._exec_id, self._exec_id + 1
        out: dict[str, Any] = {
            "e": "executionReport", "E": int(time.time() * 1000), "s": o.market_id, "c": cid,
            "S": o.side.upper(), "o": o.meta.get("order_type", "LIMIT"), "f": o.meta.get("time_in_force", "GTC"),
            "q": s8(o.qty), "p": s8(o.price if o.type == "limit" else 0.0), "P": s8(0.0), "F": s8(0.0),
            "g": -1, "C": orig, "x": x, "X": status, "r": "NONE", "i": int(o.order_id),
            "l": s8(fill.qty if fill else 0.0), "z": s8(ev.filled), "L": s8(fill.price if fill else 0.0),
            "n": s8(fill.fee) if fill else "0", "N": fill.fee_asset if fill else None,
            "T": fill.ts_ms if fill else ev.ts_ms, "t": fill.trade_id if fill else -1, "I": exec_id,
            "w": working, "m": bool(fill and fill.maker), "M": False, "O": o.created_ms,
            "Z": s8(ev.cost), "Y": s8(fill.quote if fill else 0.0), "Q": s8(o.quote_qty),
        }
        if working:
            out["W"] = o.created_ms
        out["V"] = "EXPIRE_MAKER"
        return out
