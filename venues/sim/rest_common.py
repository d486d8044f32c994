"""What both venues' REST front ends share: fault injection, rate limiting, delays.

A REST request passes, in order: an injected ``http_error`` fault (answered as is,
never counted as a violation) -> the flat test cap ``rest_rate_limit_per_s`` (off by
default) -> the venue's own limits (``gate``: Upbit's per-group windows, Binance's
request weight; Binance's per-account order count is checked in the order handler,
after authentication) -> the handler -> an injected ``delay`` -> the venue's headers
(``decorate``: ``Remaining-Req`` / ``X-MBX-USED-WEIGHT-1M``), 429s included.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from venues.sim.core import SimCore

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Returns the venue's 429 when a limit refuses the request, None when it may pass.
Gate = Callable[[web.Request, float], web.StreamResponse | None]
WS_PREFIXES = ("/ws", "/stream", "/websocket")


def dumps_bytes(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as the venues send it. orjson: at a thousand books
    a second the stdlib encoder was a sixth of the simulator's CPU, on the
    cores the daemon it feeds runs on. Numbers keep their shortest form
    (orjson writes 1e-5 where json writes 1e-05: both are the same JSON)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # outside orjson's types (e.g. an int past 64 bits)
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def dumps(obj: Any) -> str:
    return dumps_bytes(obj).decode()


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(obj), status=status, content_type="application/json")


def venue_middleware(
    core: SimCore,
    venue: str,
    *,
    too_many: Callable[[float], web.Response],
    server_error: Callable[[int], web.Response],
    decorate: Callable[[web.Request, web.StreamResponse, float], None],
    gate: Gate | None = None,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """REST requests pass: http_error fault -> flat cap -> venue gate -> handler -> delay
    fault -> headers.

    WebSocket handshakes skip all of it (the WS hubs apply their own faults).
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(WS_PREFIXES):
            return await handler(request)
        now = core.mono()
        fault = core.faults.take(venue, "http_error", now)
        if fault is not None:
            status = int(fault.params.get("status", 503))
            if status != 429:
                return server_error(status)
            injected = too_many(0.0)
            decorate(request, injected, now)  # a venue's 429 carries its quota headers too
            return injected
        window = core.rest_windows[venue]
        refused: web.StreamResponse | None = None
        if not window.admit(now):
            refused = too_many(window.retry_after(now))
        elif gate is not None:
            refused = gate(request, now)
        if refused is not None:
            response: web.StreamResponse = refused
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # 404/405 from the router: keep the venue's headers
                response = web.Response(status=exc.status, text=exc.text or exc.reason,
                                        content_type="text/plain")
        delay = core.faults.take(venue, "delay", core.mono())
        if delay is not None:
            await asyncio.sleep(float(delay.params.get("delay_s", 0.0)))
        decorate(request, response, now)
        return response

    return middleware
