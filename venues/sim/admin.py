"""Admin API (loopback only): orders, balances, faults and market nudges.

=======  ===============  ===========================================================
GET      /_sim/orders     every order ever received (``?venue=upbit|binance``)
GET      /_sim/balances   ``{"upbit": {ASSET: {"free", "locked"}}, "binance": {...}}``
GET      /_sim/fault      active faults
POST     /_sim/fault      ``{"venue", "kind", "seconds", ...}`` (see ``faults.py``)
DELETE   /_sim/fault      clear every fault
GET      /_sim/market     model state (premium, fx, USD prices, best bid/ask per book)
POST     /_sim/market     ``{"premium_pct"?, "baseline_pct"?, "fx"?, "usd": {COIN: price}?,
                          "usd_move_pct"?}``: applied now, books rebuilt, crossed
                          resting orders filled before the reply
GET      /_sim/limits     the venues' REST limits and how they were used (below)
POST     /_sim/limits/reset  zero every ``violations`` and ``max_in_window``
=======  ===============  ===========================================================

Bad bodies get 400 with a one-line ``{"error": "..."}``.

Holding a venue's private stream down (its order/balance push) while everything
else stays up: ``POST /_sim/fault {"venue": "binance", "kind": "private_down",
"seconds": 5}`` closes that venue's private sockets now (the reply's ``dropped``
counts them) and refuses new private handshakes with 503 for 5 s; ``DELETE
/_sim/fault`` ends it early. ``"kind": "drop"`` closes the private sockets along
with the public ones.

``GET /_sim/limits``: ``{venue: {limit name: {"limit", "window_s", "violations",
"max_in_window"}}}``. ``limit`` is per ``window_s`` seconds (0 = off); ``violations``
counts the 429s answered because that limit was full (an injected ``http_error``
429 is not one); ``max_in_window`` is the most the window ever held once a request
was admitted (requests, request weight, or unfilled orders). Names: Upbit's groups
``order``, ``order-test``, ``default``, ``market``, ``ticker``, ``orderbook``,
``candles``, ``trades``; Binance's ``weight_1m``, ``raw_5m``, ``orders_10s``,
``orders_1d``; plus ``rest_flat`` on both while ``rest_rate_limit_per_s`` is on.
``POST /_sim/limits/reset`` answers ``{"ok": true, "limits": <the zeroed view>}``;
the windows' contents stay (a venue does not forget what it just counted).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from venues.sim.core import SimCore
from venues.sim.faults import FaultError, parse_fault
from venues.sim.rest_common import json_response

_MARKET_KEYS = {"premium_pct", "baseline_pct", "fx", "usd", "usd_move_pct"}


def _bad(message: str, status: int = 400) -> web.Response:
    return json_response({"error": message}, status=status)


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


class Admin:
    def __init__(self, core: SimCore, droppers: dict[str, Callable[[bool], int]],
                 private_droppers: dict[str, Callable[[bool], int]] | None = None) -> None:
        self.core = core
        self.droppers = droppers  # every WS of a venue, private ones included
        self.private_droppers = private_droppers or {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sim/orders", self.orders), web.get("/_sim/balances", self.balances),
            web.get("/_sim/fault", self.faults), web.post("/_sim/fault", self.set_fault),
            web.delete("/_sim/fault", self.clear_faults),
            web.get("/_sim/market", self.market), web.post("/_sim/market", self.nudge),
            web.get("/_sim/limits", self.limits), web.post("/_sim/limits/reset", self.reset_limits),
        ]

    @web.middleware
    async def loopback_only(self, request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if not _is_loopback(request.remote):
            return _bad("admin is loopback-only", 403)
        return await handler(request)

    async def orders(self, request: web.Request) -> web.Response:
        venue = request.query.get("venue")
        if venue not in (None, "upbit", "binance"):
            return _bad("venue must be upbit or binance")
        return json_response(self.core.order_records(venue))

    async def balances(self, request: web.Request) -> web.Response:
        return json_response(self.core.balances())

    async def faults(self, request: web.Request) -> web.Response:
        return json_response(self.core.faults.view(self.core.mono()))

    @staticmethod
    async def _body(request: web.Request) -> Any:
        try:
            return json.loads(await request.text())
        except ValueError:
            raise FaultError("body is not valid JSON") from None

    async def set_fault(self, request: web.Request) -> web.Response:
        try:
            venue, kind, seconds, params = parse_fault(await self._body(request))
        except FaultError as exc:
            return _bad(str(exc))
        fault = self.core.faults.set(venue, kind, seconds, params, self.core.mono())
        out: dict[str, Any] = {"ok": True, "fault": fault.view(self.core.mono())}
        if kind == "drop":
            out["dropped"] = self.droppers[venue](bool(params.get("graceful", False)))
        elif kind == "private_down":
            dropper = self.private_droppers.get(venue)
            out["dropped"] = dropper(bool(params.get("graceful", False))) if dropper else 0
        return json_response(out)

    async def clear_faults(self, request: web.Request) -> web.Response:
        return json_response({"ok": True, "cleared": self.core.faults.clear()})

    async def limits(self, request: web.Request) -> web.Response:
        return json_response(self.core.limits.view())

    async def reset_limits(self, request: web.Request) -> web.Response:
        self.core.limits.reset()
        return json_response({"ok": True, "limits": self.core.limits.view()})

    async def market(self, request: web.Request) -> web.Response:
        return json_response(self.core.market_view())

    async def nudge(self, request: web.Request) -> web.Response:
        try:
            body = await self._body(request)
        except FaultError as exc:
            return _bad(str(exc))
        if not isinstance(body, dict) or not body:
            return _bad("body must be a non-empty JSON object")
        unknown = sorted(set(body) - _MARKET_KEYS)
        if unknown:
            return _bad(f"unknown field '{unknown[0]}' (allowed: {', '.join(sorted(_MARKET_KEYS))})")
        kwargs: dict[str, Any] = {}
        for key in ("premium_pct", "baseline_pct", "fx", "usd_move_pct"):
            if key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                    return _bad(f"'{key}' must be a number")
                if key == "fx" and value <= 0:
                    return _bad("'fx' must be > 0")
                if key == "usd_move_pct" and value <= -100:
                    return _bad("'usd_move_pct' must be > -100")
                kwargs[key] = float(value)
        if "usd" in body:
            usd = body["usd"]
            if not isinstance(usd, dict) or not all(
                    c in self.core.coins and not isinstance(p, bool) and isinstance(p, int | float) and p > 0
                    for c, p in usd.items()):
                return _bad(f"'usd' must map simulated coins ({', '.join(self.core.coins)}) to prices > 0")
            kwargs["usd"] = {c: float(p) for c, p in usd.items()}
        self.core.model.nudge(**kwargs)
        self.core.refresh(trades=False)
        return json_response(self.core.market_view())
