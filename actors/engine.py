"""The engine: BookTops in, Opportunities out.

Books come straight from the feeds' streams, Opportunities go straight to
the position on the engine's stream (``opp.<symbol>``; a copy on the bus
four times a second per symbol for status and metrics, see ``bus_every``).
Not point-to-point: like the books they are made of, each opportunity is a
snapshot that the next one supersedes, so the position takes them
latest-value (conflated) and nothing needs acknowledging. Orders start at
the position's intents, which are point-to-point."""

from __future__ import annotations

import time

from actors.base import RoleActor
from arbitrage.baseline import PremiumBaseline
from arbitrage.premium import FX_SYMBOL, PremiumCalculator, mid_premium_pct
from messages import BookTop
from supervisors.metricnames import key


class EngineActor(RoleActor):
    role = "engine"
    # Books straight from the feeds' streams (no proxy hop); only the latest of each matters.
    direct = {"feed.upbit": ("book.",), "feed.binance": ("book.",)}
    conflate = ("book.",)
    streams = ("opp.",)
    bus_every = {"opp.": 0.25}  # every one to the position, four a second per symbol to the bus

    def on_start(self) -> None:
        cfg = self.ctx.config
        self.symbols = tuple(cfg.venues.symbols)
        self.calc = PremiumCalculator(cfg.engine, time.time)
        self.baseline = PremiumBaseline(cfg.baseline, time.monotonic)
        self.books: dict[tuple[str, str], BookTop] = {}
        self._keys: dict[str, tuple[str, str, str, str]] = {}
        self.c = self.ctx.counters
        self.c.setdefault("loops", 0)
        self.c.setdefault("loop_ms_total", 0.0)

    def _handle_book_top(self, msg: BookTop) -> None:
        t0 = time.perf_counter()
        k = (msg.venue, msg.symbol)
        prev = self.books.get(k)
        if prev is not None and prev.recv_ts_ns > msg.recv_ts_ns:
            return  # an older quote (e.g. from a snapshot) never replaces a newer one
        self.books[k] = msg
        fx = self.books.get(("upbit", FX_SYMBOL))
        affected = self.symbols if msg.symbol == FX_SYMBOL else (msg.symbol,)
        for sym in affected:
            self._evaluate(sym, fx)
        self.c["loops"] += 1
        self.c["loop_ms_total"] += (time.perf_counter() - t0) * 1e3

    def _evaluate(self, sym: str, fx: BookTop | None) -> None:
        up = self.books.get(("upbit", sym))
        bn = self.books.get(("binance", sym))
        if up is None or bn is None or fx is None or fx.bid <= 0:
            return
        base = self.baseline.update(sym, mid_premium_pct(up, bn, fx))
        opp, reason = self.calc.evaluate(up, bn, fx, base)
        if opp is None:
            self.ctx.count(key("c", "arbd_engine_skips_total", reason=reason.split(" ")[0]))
            return
        self.ctx.publish(opp)
        c = self.c
        k_mid, k_sell, k_buy, k_base = self._gauge_keys(sym)
        c[k_mid] = opp.premium_pct
        c[k_sell] = opp.sell_upbit.premium_pct
        c[k_buy] = opp.buy_upbit.premium_pct
        c[k_base] = opp.baseline_pct

    def _gauge_keys(self, sym: str) -> tuple[str, str, str, str]:
        keys = self._keys.get(sym)
        if keys is None:  # built once per symbol: this runs on every quote
            keys = self._keys[sym] = (
                key("g", "arbd_premium_pct", symbol=sym, direction="mid"),
                key("g", "arbd_premium_pct", symbol=sym, direction="sell_upbit"),
                key("g", "arbd_premium_pct", symbol=sym, direction="buy_upbit"),
                key("g", "arbd_premium_baseline_pct", symbol=sym))
        return keys
