"""The simulator's state, shared by both venues' REST and WS front ends.

One ``SimCore`` owns the market model, every book, both accounts and order
engines, the order records, the fault board and the REST limit windows
(``limits``: per venue and limit name, see ``upbit_rest.py`` / ``binance_rest.py``
for what each counts). It is driven from one asyncio
loop, so a handler that does not ``await`` in the middle sees and changes it
atomically. ``step(dt)`` advances the model and refreshes every book, then
tells the registered listeners (the WS hubs) what changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from arbitrage.venue_rules import BINANCE, BINANCE_TAKER_FEE, UPBIT, UPBIT_TAKER_FEE
from venues.sim.books import Book
from venues.sim.config import TEST_KEYS, SimConfig
from venues.sim.engine import Account, SimOrder, VenueEngine
from venues.sim.faults import FaultBoard, LimitBoard, LimitWindow, UnfilledOrderWindow
from venues.sim.market import MarketModel
from venues.sim.tape import PublicTrade, Tape


class BookListener(Protocol):
    def on_update(self, coin: str, changed: bool, trade: PublicTrade | None) -> None: ...


class SimCore:
    """Everything both simulated venues know. ``mono`` is the monotonic clock (seconds)."""

    def __init__(self, config: SimConfig, mono: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.mono = mono
        self.model = MarketModel(config)
        self.coins: tuple[str, ...] = tuple(config.symbols)
        self.upbit_coins: tuple[str, ...] = (*self.coins, "USDT")
        self.keys = TEST_KEYS
        self.books: dict[str, dict[str, Book]] = {
            UPBIT: {c: Book(UPBIT, c, config.upbit_levels, config.seed, self._usd_unit(c)) for c in self.upbit_coins},
            BINANCE: {c: Book(BINANCE, c, config.binance_levels, config.seed, self._usd_unit(c)) for c in self.coins},
        }
        self.tapes = {UPBIT: Tape(first_trade_id=1), BINANCE: Tape(first_trade_id=500_000_000)}
        self.accounts = {
            UPBIT: Account(dict(config.upbit_balances)),
            BINANCE: Account(dict(config.binance_balances)),
        }
        self.records: list[SimOrder] = []
        self.engines = {
            UPBIT: VenueEngine(UPBIT, "KRW", UPBIT_TAKER_FEE, self.books[UPBIT], self.accounts[UPBIT],
                               self.tapes[UPBIT], self.records.append),
            BINANCE: VenueEngine(BINANCE, "USDT", BINANCE_TAKER_FEE, self.books[BINANCE],
                                 self.accounts[BINANCE], self.tapes[BINANCE], self.records.append),
        }
        self.faults = FaultBoard()
        # The flat test cap (rest_rate_limit_per_s) is not a venue's limit, but its 429s
        # are counted too, as "rest_flat", when it is on.
        self.rest_windows = {v: LimitWindow(config.rest_rate_limit_per_s, 1.0) for v in (UPBIT, BINANCE)}
        self.limits = self._limit_board(config)
        self.listeners: dict[str, list[BookListener]] = {UPBIT: [], BINANCE: []}
        self.steps = 0
        self.refresh(trades=False)
        for venue, books in self.books.items():
            for coin, book in books.items():
                mid = book.mid
                self.tapes[venue].seed_price(coin, mid)

    def _limit_board(self, config: SimConfig) -> LimitBoard:
        on = config.venue_rate_limits
        order, default, quote = (config.upbit_order_limit_per_s, config.upbit_exchange_limit_per_s,
                                 config.upbit_quotation_limit_per_s)
        upbit: dict[str, LimitWindow | UnfilledOrderWindow] = {
            "order": LimitWindow(order, 1.0, enforce=on),
            "order-test": LimitWindow(order, 1.0, enforce=on),
            "default": LimitWindow(default, 1.0, enforce=on),
            **{g: LimitWindow(quote, 1.0, enforce=on) for g in ("market", "ticker", "orderbook", "candles", "trades")},
        }
        binance: dict[str, LimitWindow | UnfilledOrderWindow] = {
            "weight_1m": LimitWindow(config.binance_weight_per_min, 60.0, enforce=on),
            "raw_5m": LimitWindow(config.binance_raw_requests_per_5min, 300.0, enforce=on),
            "orders_10s": UnfilledOrderWindow(config.binance_orders_per_10s, 10.0, enforce=on),
            "orders_1d": UnfilledOrderWindow(config.binance_orders_per_day, 86_400.0, enforce=on),
        }
        if config.rest_rate_limit_per_s > 0:
            upbit["rest_flat"] = self.rest_windows[UPBIT]
            binance["rest_flat"] = self.rest_windows[BINANCE]
        return LimitBoard({UPBIT: upbit, BINANCE: binance})

    def _usd_unit(self, coin: str) -> float:
        return 1.0 if coin == "USDT" else self.model.binance_mid(coin)

    # -- evolution ------------------------------------------------------------------

    def step(self, dt: float) -> None:
        self.model.step(dt)
        self.steps += 1
        self.refresh(dt=dt)

    def refresh(self, trades: bool = True, dt: float = 0.0) -> None:
        """Rebuild every book from the model, fill crossed resting orders, notify."""
        now_ms = time.time_ns() // 1_000_000
        for venue, books in self.books.items():
            engine = self.engines[venue]
            for coin, book in books.items():
                mid = self.model.upbit_mid(coin) if venue == UPBIT else self.model.binance_mid(coin)
                changed = book.regenerate(mid, self._usd_unit(coin), dt)
                trade = None
                if trades:
                    t = book.synthetic_trade(self.config.trade_prob)
                    if t is not None:
                        trade = self.tapes[venue].record(coin, t[1], t[2], t[0], now_ms)
                if engine.open_orders and engine.match_resting(coin):
                    changed = True
                for listener in self.listeners[venue]:
                    listener.on_update(coin, changed, trade)

    def notify_book(self, venue: str, coin: str) -> None:
        """A fill took liquidity outside a market step: tell the hubs."""
        for listener in self.listeners[venue]:
            listener.on_update(coin, True, None)

    # -- admin views ------------------------------------------------------------------

    def order_records(self, venue: str | None = None) -> list[dict[str, Any]]:
        return [o.record() for o in self.records if venue is None or o.venue == venue]

    def balances(self) -> dict[str, Any]:
        return {venue: acct.view() for venue, acct in self.accounts.items()}

    def market_view(self) -> dict[str, Any]:
        snap = self.model.snapshot()
        out: dict[str, Any] = {
            "t": round(snap.t, 6), "steps": self.steps, "fx": snap.fx, "premium_pct": snap.premium_pct,
            "baseline_pct": snap.baseline_pct, "regime": snap.regime, "usd": snap.usd,
            "coin_premium_pct": snap.coin_premium_pct, "books": {},
        }
        for venue, books in self.books.items():
            for book in books.values():
                bid, ask = book.best_bid(), book.best_ask()
                out["books"][f"{venue}:{book.market_id}"] = {
                    "bid": bid[0] if bid else None, "ask": ask[0] if ask else None,
                    "update_id": book.update_id,
                }
        return out
