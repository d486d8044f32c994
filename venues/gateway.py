"""Order gateways: where the executor's legs go, per mode.

``PaperGateway`` fills IOC limit orders against the latest books (the
embedded exchange's or real ones: a dry run on live quotes).
:class:`venues.live_gateway.LiveGateway` sends them on signed HTTP, learns
fills from the private streams and reports back through a callback;
``live_readonly`` uses it for balances only."""

from __future__ import annotations

import logging
import os
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
    """One state of one leg. ``done``: nothing more can fill (an IOC's end).
    ``kind`` classifies a refusal for the breakers (see ``arbitrage.breaker``):
    funds, filter, rate_limit, server, auth, unavailable, duplicate, budget, other."""

    leg: LegOrder
    status: str  # filled | partially_filled | cancelled | rejected | failed | open | unknown | refused
    filled_qty: float
    avg_price: float
    fee_krw: float
    reason: str = ""
    venue_order_id: str = ""
    kind: str = ""
    done: bool = True


@dataclass(frozen=True, slots=True)
class VenueReply:
    """How a venue answered one order request (its REST reply, or none in time):
    what the breakers judge a venue by. Fills arrive separately, often sooner,
    on the private stream; ``accepted`` says the order endpoint is healthy."""

    venue: str
    accepted: bool
    kind: str
    reason: str
    took_s: float
    client_order_id: str = ""


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
            return LegResult(lg, "rejected", 0.0, 0.0, 0.0, "no book for paper fill", kind="other")
        quote = "KRW" if lg.venue == "upbit" else "USDT"
        bal = self.free[lg.venue]
        if lg.side == "sell" and bal.get(lg.symbol, 0.0) < lg.qty:
            return LegResult(lg, "rejected", 0.0, 0.0, 0.0, "insufficient paper balance", kind="funds")
        if lg.side == "buy" and bal.get(quote, 0.0) < lg.qty * lg.price * 1.002:
            return LegResult(lg, "rejected", 0.0, 0.0, 0.0, "insufficient paper balance", kind="funds")
        f = fill_ioc(book, lg.side, lg.qty, lg.price)
        if f.filled_qty <= 0:
            return LegResult(lg, "cancelled", 0.0, 0.0, 0.0, "IOC: nothing at the limit")
        sign = 1 if lg.side == "buy" else -1
        bal[lg.symbol] = bal.get(lg.symbol, 0.0) + sign * f.filled_qty
        bal[quote] = bal.get(quote, 0.0) - sign * f.filled_qty * f.avg_price - f.fee_quote
        fee_krw = f.fee_quote if lg.venue == "upbit" else f.fee_quote * _fx(self.books)
        status = "filled" if f.filled_qty >= lg.qty - 1e-12 else "partially_filled"
        return LegResult(lg, status, f.filled_qty, f.avg_price, fee_krw)

    def reconcile(self, lg: LegOrder, created_ns: int = 0) -> None:
        # Paper fills are synchronous: an unresolved row means we died
        # between the ledger write and the fill; nothing ever reached a venue.
        self.on_result(LegResult(lg, "failed", 0.0, 0.0, 0.0, "executor restarted before the paper fill"))

    def balances(self) -> Balances | None:
        return Balances(free={v: dict(b) for v, b in self.free.items()}, source="paper")

    def balance_view(self) -> None:
        return None  # paper fills check their own balances

    def budget_refusal(self, legs: list[LegOrder]) -> str:
        return ""  # nothing reaches a venue: no rate budget

    def waiting_for(self) -> str:
        return ""

    def health(self) -> dict[str, dict[str, Any]]:
        return {}

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


def make_gateway(cfg: ArbdConfig, run: RunDir, books: dict[tuple[str, str], BookTop],
                 on_result: Callable[[LegResult], None]) -> Any:
    # A backtest's paper orders go to the replay exchange like live ones: it fills
    # them against the tape's books, with each venue's latency and fees.
    backtest = bool(cfg.backtest.tape)
    if cfg.mode == "paper" and not backtest:
        return PaperGateway(cfg, books, on_result)
    from venues.live_gateway import LiveGateway  # not imported in paper mode: no HTTP clients there

    return LiveGateway(cfg, run, on_result, allow_orders=cfg.mode == "live_trading" or
                       (cfg.mode == "paper" and backtest), fx=lambda: _fx(books))
