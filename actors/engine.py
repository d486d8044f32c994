"""The engine: BookTops in, Opportunities out (to the position actor,
point-to-point; a throttled copy on the bus for status and metrics)."""

from __future__ import annotations

import time

from actors.base import RoleActor
from arbitrage.baseline import PremiumBaseline
from arbitrage.premium import FX_SYMBOL, PremiumCalculator, mid_premium_pct
from messages import BookTop
from supervisors.metricnames import key

PUBLISH_EVERY_S = 0.25


class EngineActor(RoleActor):
    role = "engine"
    subscriptions = ("book.",)
    conflate = ("book.",)  # only the latest quote of each book matters here

    def on_start(self) -> None:
        cfg = self.ctx.config
        self.symbols = tuple(cfg.venues.symbols)
        self.calc = PremiumCalculator(cfg.engine, time.time)
        self.baseline = PremiumBaseline(cfg.baseline, time.monotonic)
        self.books: dict[tuple[str, str], BookTop] = {}
        self.last_published: dict[str, float] = {}
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
        self.ctx.send("position", opp)
        c = self.c
        c[key("g", "arbd_premium_pct", symbol=sym, direction="mid")] = opp.premium_pct
        c[key("g", "arbd_premium_pct", symbol=sym, direction="sell_upbit")] = opp.sell_upbit.premium_pct
        c[key("g", "arbd_premium_pct", symbol=sym, direction="buy_upbit")] = opp.buy_upbit.premium_pct
        c[key("g", "arbd_premium_baseline_pct", symbol=sym)] = opp.baseline_pct
        now = time.monotonic()
        if now - self.last_published.get(sym, 0.0) >= PUBLISH_EVERY_S:
            self.last_published[sym] = now
            self.ctx.publish(opp)
