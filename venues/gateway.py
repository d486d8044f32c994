"""Order gateways: where the executor's legs go, per mode.

``PaperGateway`` fills IOC limit orders against the latest books (the
embedded exchange's or real ones: a dry run on live quotes). ``LiveGateway``
sends them through ccxt on its own asyncio thread and reports back through a
callback; ``live_readonly`` uses it for balances only."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arbitrage.paper_fill import fill_ioc
from messages import Balances, BookTop
from supervisors.config import ArbdConfig
from supervisors.runfiles import RunDir

log = logging.getLogger("arbd.gateway")


@dataclass(frozen=True, slots=True)
class LegOrder:
    intent_id: str
    pair_id: str
    action: str
    venue: str
    symbol: str
    side: str
    qty: float
    price: float
    client_order_id: str
    origin_ts_ns: int


@dataclass(frozen=True, slots=True)
class LegResult:
    leg: LegOrder
    status: str  # filled | partially_filled | cancelled | rejected | failed | open | unknown
    filled_qty: float
    avg_price: float
    fee_krw: float
    reason: str = ""
    venue_order_id: str = ""


def _fx(books: dict[tuple[str, str], BookTop]) -> float:
    b = books.get(("upbit", "USDT"))
    return b.mid if b is not None else 0.0


class PaperGateway:
    def __init__(self, cfg: ArbdConfig, books: dict[tuple[str, str], BookTop],
                 on_result: Callable[[LegResult], None]) -> None:
        self.books = books
        self.on_result = on_result
        p = cfg.paper
        self.free: dict[str, dict[str, float]] = {
            "upbit": {"KRW": p.upbit_krw, **p.coin_units},
            "binance": {"USDT": p.binance_usdt, **p.coin_units},
        }

    def submit(self, legs: list[LegOrder]) -> None:
        for lg in legs:
            self.on_result(self._fill(lg))

    def _fill(self, lg: LegOrder) -> LegResult:
        book = self.books.get((lg.venue, lg.symbol))
        if book is None:
            return LegResult(lg, "rejected", 0.0, 0.0, 0.0, "no book for paper fill")
        quote = "KRW" if lg.venue == "upbit" else "USDT"
        bal = self.free[lg.venue]
        if lg.side == "sell" and bal.get(lg.symbol, 0.0) < lg.qty:
            return LegResult(lg, "rejected", 0.0, 0.0, 0.0, "insufficient paper balance")
        if lg.side == "buy" and bal.get(quote, 0.0) < lg.qty * lg.price * 1.002:
            return LegResult(lg, "rejected", 0.0, 0.0, 0.0, "insufficient paper balance")
        f = fill_ioc(book, lg.side, lg.qty, lg.price)
        if f.filled_qty <= 0:
            return LegResult(lg, "cancelled", 0.0, 0.0, 0.0, "IOC: nothing at the limit")
        sign = 1 if lg.side == "buy" else -1
        bal[lg.symbol] = bal.get(lg.symbol, 0.0) + sign * f.filled_qty
        bal[quote] = bal.get(quote, 0.0) - sign * f.filled_qty * f.avg_price - f.fee_quote
        fee_krw = f.fee_quote if lg.venue == "upbit" else f.fee_quote * _fx(self.books)
        status = "filled" if f.filled_qty >= lg.qty - 1e-12 else "partially_filled"
        return LegResult(lg, status, f.filled_qty, f.avg_price, fee_krw)

    def reconcile(self, lg: LegOrder) -> None:
        # Paper fills are synchronous: an unresolved row means we died
        # between the ledger write and the fill; nothing ever reached a venue.
        self.on_result(LegResult(lg, "failed", 0.0, 0.0, 0.0, "executor restarted before the paper fill"))

    def balances(self) -> Balances | None:
        return Balances(free={v: dict(b) for v, b in self.free.items()}, source="paper")

    def cancel_all(self, reason: str) -> int:
        return 0  # IOC only: nothing rests

    def close(self) -> None:
        pass


def env_keys(cfg: ArbdConfig, run: RunDir) -> dict[str, dict[str, str]]:
    """API keys from the environment only; with the embedded exchange, its
    published test keys unless the environment names others."""
    keys: dict[str, dict[str, str]] = {}
    ua, us = os.environ.get("UPBIT_ACCESS_KEY"), os.environ.get("UPBIT_SECRET_KEY")
    ba, bs = os.environ.get("BINANCE_API_KEY"), os.environ.get("BINANCE_API_SECRET")
    if ua and us:
        keys["upbit"] = {"apiKey": ua, "secret": us}
    if ba and bs:
        keys["binance"] = {"apiKey": ba, "secret": bs}
    if cfg.venues.source == "sim":
        try:
            from venues.sim.config import TEST_KEYS

            for venue, k in TEST_KEYS.items():
                keys.setdefault(venue, dict(k))
        except ImportError:
            pass
    return keys


class LiveGateway:
    """ccxt on a private event loop thread; results come back by callback."""

    BALANCE_EVERY_S = 5.0

    def __init__(self, cfg: ArbdConfig, run: RunDir, on_result: Callable[[LegResult], None],
                 allow_orders: bool, fx: Callable[[], float]) -> None:
        from venues.rest import VenueRest, build_binance, build_upbit

        self.on_result = on_result
        self.allow_orders = allow_orders
        self.fx = fx
        self.keys = env_keys(cfg, run)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-loop", daemon=True)
        self.thread.start()
        v = cfg.venues
        urls = {"upbit": {"rest": v.upbit_rest, "ws": v.upbit_ws},
                "binance": {"rest": v.binance_rest, "ws": v.binance_ws}}
        builders = {"upbit": build_upbit, "binance": build_binance}

        async def build() -> dict[str, Any]:
            # ccxt's aiohttp session belongs to the loop that creates it: this one.
            return {venue: VenueRest(venue, builders[venue](urls[venue], self.keys.get(venue)))
                    for venue in ("upbit", "binance")}

        self.rest: dict[str, Any] = self._call(build())
        self._balances: Balances | None = None
        self._said_no_keys = False
        self._last_balance_fetch = -1e9

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def submit(self, legs: list[LegOrder]) -> None:
        for lg in legs:
            if not self.allow_orders:
                self.on_result(LegResult(lg, "refused", 0.0, 0.0, 0.0, "orders disabled in this mode"))
                continue
            asyncio.run_coroutine_threadsafe(self._send(lg), self.loop)

    async def _send(self, lg: LegOrder) -> None:
        from venues.rest import OrderStatusUnknown, VenueUnavailable

        try:
            r = await self.rest[lg.venue].create_limit_order(lg.symbol, lg.side, lg.qty, lg.price,
                                                             lg.client_order_id)
        except VenueUnavailable as e:
            # Refused before processing every time: nothing is at the venue.
            self.on_result(LegResult(lg, "failed", 0.0, 0.0, 0.0, f"venue unavailable: {e}"))
            return
        except OrderStatusUnknown as e:
            self.on_result(LegResult(lg, "unknown", 0.0, 0.0, 0.0, str(e)))
            return
        except Exception as e:  # an unclear send is looked up, never resent
            log.warning("send of %s failed unclearly: %s", lg.client_order_id, type(e).__name__)
            await self._lookup(lg, f"send failed: {type(e).__name__}")
            return
        self.on_result(self._result(lg, r))

    async def _lookup(self, lg: LegOrder, why: str) -> None:
        try:
            r = await self.rest[lg.venue].fetch_order_by_client_id(lg.symbol, lg.client_order_id)
        except Exception as e:
            self.on_result(LegResult(lg, "unknown", 0.0, 0.0, 0.0, f"{why}; lookup failed: {type(e).__name__}"))
            return
        if r is None:
            self.on_result(LegResult(lg, "failed", 0.0, 0.0, 0.0, f"{why}; the venue has no such order"))
        else:
            self.on_result(self._result(lg, r))

    def _result(self, lg: LegOrder, r: Any) -> LegResult:
        fee = float(r.fee or 0.0)
        fee_krw = fee if lg.venue == "upbit" else fee * self.fx()
        status = r.status if r.status in ("filled", "partially_filled", "cancelled", "rejected", "open") \
            else "unknown"
        return LegResult(lg, status, float(r.filled or 0.0), float(r.avg_price or 0.0), fee_krw,
                         r.reason or "", str(r.venue_order_id or ""))

    def reconcile(self, lg: LegOrder) -> None:
        asyncio.run_coroutine_threadsafe(self._lookup(lg, "reconcile"), self.loop)

    def balances(self) -> Balances | None:
        if not self.keys:
            if not self._said_no_keys:
                log.warning("balances are unavailable without API keys (set UPBIT_ACCESS_KEY, "
                            "UPBIT_SECRET_KEY, BINANCE_API_KEY, BINANCE_API_SECRET)")
                self._said_no_keys = True
            return Balances(free={}, source="unavailable")
        now = time.monotonic()
        if now - self._last_balance_fetch >= self.BALANCE_EVERY_S:
            self._last_balance_fetch = now
            asyncio.run_coroutine_threadsafe(self._fetch_balances(), self.loop)
        return self._balances

    async def _fetch_balances(self) -> None:
        free: dict[str, dict[str, float]] = {}
        for venue, rest in self.rest.items():
            if venue not in self.keys:
                continue
            try:
                free[venue] = await rest.fetch_balance()
            except Exception as e:
                log.warning("balance fetch from %s failed: %s", venue, type(e).__name__)
        if free:
            self._balances = Balances(free=free, source="venue")

    def cancel_all(self, reason: str) -> int:
        total = 0
        for rest in self.rest.values():
            try:
                total += int(self._call(rest.cancel_all_open(prefix=""), timeout=10.0) or 0)
            except Exception as e:
                log.warning("cancel_all failed: %s", type(e).__name__)
        return total

    def close(self) -> None:
        for rest in self.rest.values():
            try:
                self._call(rest.close(), timeout=5.0)
            except Exception as e:
                log.debug("closing a REST client: %s", type(e).__name__)
        self.loop.call_soon_threadsafe(self.loop.stop)


def make_gateway(cfg: ArbdConfig, run: RunDir, books: dict[tuple[str, str], BookTop],
                 on_result: Callable[[LegResult], None]) -> Any:
    if cfg.mode == "paper":
        return PaperGateway(cfg, books, on_result)
    return LiveGateway(cfg, run, on_result, allow_orders=cfg.mode == "live_trading",
                       fx=lambda: _fx(books))
