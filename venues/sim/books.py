"""Order books on each venue's tick and lot grid, with Binance-style update ids.

A ``Book`` holds the *effective* levels (what REST and WS show and what orders
match against) and a *target* ladder regenerated from the model mid on every
step. Every change to the effective levels - a market step or liquidity taken
by a fill - is one update with the next ``update_id``; its changed levels are
merged into each registered *pending* diff (one per Binance diff-stream
interval), so diff events built from them carry contiguous ``U``/``u`` ranges
that continue from any REST snapshot's ``lastUpdateId``.

Tick and lot rules come from ``arbitrage.venue_rules``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from arbitrage.venue_rules import (
    BINANCE,
    BINANCE_FILTERS,
    UPBIT,
    round_upbit_price,
    upbit_tick_size,
)

# Median resting notional of one level, USD (deeper levels hold more).
_LEVEL_NOTIONAL_USD = {BINANCE: 25_000.0, UPBIT: 12_000.0}
_EPS = 1e-12
_SPREAD_CHANGE_RATE = 2.0  # per second
_NORMAL = NormalDist()


def _lognormal(u: float) -> float:
    """A lognormal(0, 0.8) variate from one uniform (inverse CDF)."""
    return math.exp(0.8 * _NORMAL.inv_cdf(min(max(u, 1e-12), 1.0 - 1e-12)))


def _key(price: float) -> float:
    return round(price, 8)


@dataclass(slots=True)
class PendingDiff:
    """Changes since the last diff event of one stream interval."""

    first_id: int = 0  # 0 = nothing pending
    bids: dict[float, float] = field(default_factory=dict)
    asks: dict[float, float] = field(default_factory=dict)


class Book:
    """One venue's book for one coin. ``coin`` may be ``USDT`` on Upbit."""

    def __init__(self, venue: str, coin: str, levels: int, seed: int, usd_per_unit: float) -> None:
        self.venue = venue
        self.coin = coin
        self.levels = levels
        self.market_id = f"KRW-{coin}" if venue == UPBIT else f"{coin}USDT"
        tag = (0 if venue == UPBIT else 1, sum(ord(ch) * 131**i for i, ch in enumerate(coin)))
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1, *tag])))
        self._usd_per_unit = usd_per_unit  # rough, for sizing only
        if venue == BINANCE:
            f = BINANCE_FILTERS[coin]
            self.tick = f.tick_size
            self.step = f.step_size
            self._price_dec = max(0, -int(math.floor(math.log10(f.tick_size))))
            self._qty_dec = max(0, -int(math.floor(math.log10(f.step_size))))
        else:
            self.tick = 0.0  # varies with price
            self.step = 1e-8
            self._price_dec = 8
            self._qty_dec = 8
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._sizes: dict[float, float] = {}  # resting size per price near the touch
        self._ladders: dict[tuple[float, int], tuple[list[float], list[float]]] = {}
        self._spread = 0
        self._last_bids: list[float] | None = None
        self._last_asks: list[float] | None = None
        self._clean = False  # effective levels == target (nothing taken since the last rebuild)
        self.update_id = 1_000_000 + int(self._rng.integers(0, 1_000_000))
        self.pending: dict[str, PendingDiff] = {}
        self.mid = 0.0

    # -- ladder generation ----------------------------------------------------------

    def _ladder(self, mid: float, spread_ticks: int) -> tuple[list[float], list[float]]:
        if self.venue == BINANCE:
            units = mid / self.tick
            bid_u = math.floor(units - spread_ticks / 2.0 + 1e-9)
            ask_u = bid_u + spread_ticks
            d = self._price_dec
            bids = [round((bid_u - k) * self.tick, d) for k in range(self.levels) if bid_u - k > 0]
            asks = [round((ask_u + k) * self.tick, d) for k in range(self.levels)]
            return bids, asks
        tick = upbit_tick_size(mid, self.coin)
        bid = round_upbit_price(mid - spread_ticks * tick / 2.0, self.coin, "down")
        lo, hi = bid - (self.levels - 1) * tick, bid + (spread_ticks + self.levels - 1) * tick
        if lo > 0 and upbit_tick_size(bid, self.coin) == tick == upbit_tick_size(lo, self.coin) \
                == upbit_tick_size(hi, self.coin):  # one tick band: plain arithmetic
            units = round(bid / tick)
            return ([_key((units - k) * tick) for k in range(self.levels)],
                    [_key((units + spread_ticks + k) * tick) for k in range(self.levels)])
        ask = bid
        for _ in range(spread_ticks):
            ask = round_upbit_price(ask + upbit_tick_size(ask, self.coin), self.coin, "nearest")
        bids, asks = [], []
        p = bid
        for _ in range(self.levels):
            if p <= 0:
                break
            bids.append(_key(p))
            nxt = p - upbit_tick_size(p - 1e-9, self.coin)
            p = round_upbit_price(nxt, self.coin, "nearest") if nxt > 0 else 0.0
        p = ask
        for _ in range(self.levels):
            asks.append(_key(p))
            p = round_upbit_price(p + upbit_tick_size(p, self.coin), self.coin, "nearest")
        return bids, asks

    def _size(self, depth: int, draw: float) -> float:
        notional = _LEVEL_NOTIONAL_USD[self.venue] * (1.0 + 0.15 * depth) * draw
        qty = notional / max(self._usd_per_unit, 1e-12)
        return self._round_qty(max(qty, self.step * 10))

    def _round_qty(self, qty: float) -> float:
        n = math.floor(qty / self.step + 1e-9)
        return round(n * self.step, self._qty_dec)

    def _cached_ladder(self, mid: float, spread: int) -> tuple[list[float], list[float]]:
        if self.venue == BINANCE:
            key: tuple[float, int] = (math.floor(mid / self.tick - spread / 2.0 + 1e-9), spread)
        else:
            tick = upbit_tick_size(mid, self.coin)
            key = (round_upbit_price(mid - spread * tick / 2.0, self.coin, "down"), spread)
        ladder = self._ladders.get(key)
        if ladder is None:
            if len(self._ladders) > 512:
                self._ladders.clear()
            ladder = self._ladders[key] = self._ladder(mid, spread)
        return ladder

    def regenerate(self, mid: float, usd_per_unit: float, dt: float = 0.0) -> bool:
        """Rebuild the target ladder around ``mid``; apply the difference. True if changed.

        Draws six uniforms, plus one lognormal per price level never seen before:
        the spread (1-3 ticks) changes about twice a second, one level per side
        is redrawn per step, and a price keeps its size while it stays near the touch.
        """
        self.mid = mid
        self._usd_per_unit = usd_per_unit if usd_per_unit > 0 else mid
        u = self._rng.random(6)
        if not self._spread or u[0] < 1.0 - math.exp(-_SPREAD_CHANGE_RATE * dt):
            self._spread = 1 if u[1] < 0.7 else (2 if u[1] < 0.9 else 3)
        bids, asks = self._cached_ladder(mid, self._spread)
        sizes = self._sizes
        if bids is self._last_bids and asks is self._last_asks and self._clean:
            # Same ladder, nothing taken since: only the two resized levels change.
            bid_changes, ask_changes = {}, {}
            for ladder, ui, uf, changes in ((bids, u[2], u[3], bid_changes), (asks, u[4], u[5], ask_changes)):
                if ladder:
                    k = min(len(ladder) - 1, int(ui * len(ladder)))
                    q = self._size(k, _lognormal(uf))
                    if q != sizes[ladder[k]]:
                        sizes[ladder[k]] = changes[ladder[k]] = q
            return self._apply(bid_changes, ask_changes)
        self._last_bids, self._last_asks, self._clean = bids, asks, True
        missing = [(k, p) for k, p in enumerate(bids) if p not in sizes]
        missing += [(k, p) for k, p in enumerate(asks) if p not in sizes]
        if missing:
            draws = self._rng.lognormal(0.0, 0.8, len(missing))
            for (k, p), d in zip(missing, draws.tolist(), strict=True):
                sizes[p] = self._size(k, d)
        for ladder, ui, uf in ((bids, u[2], u[3]), (asks, u[4], u[5])):
            if ladder:
                k = min(len(ladder) - 1, int(ui * len(ladder)))
                sizes[ladder[k]] = self._size(k, _lognormal(uf))
        if len(sizes) > 8 * self.levels:  # forget prices far from the touch
            keep = set(bids) | set(asks)
            self._sizes = sizes = {p: q for p, q in sizes.items() if p in keep}
        new_bids = {p: sizes[p] for p in bids}
        new_asks = {p: sizes[p] for p in asks}
        return self._apply(self._diff(self.bids, new_bids), self._diff(self.asks, new_asks))

    @staticmethod
    def _diff(old: dict[float, float], new: dict[float, float]) -> dict[float, float]:
        changes = {p: q for p, q in new.items() if old.get(p) != q}
        for p in old:
            if p not in new:
                changes[p] = 0.0
        return changes

    # -- updates --------------------------------------------------------------------

    def _apply(self, bid_changes: dict[float, float], ask_changes: dict[float, float]) -> bool:
        if not bid_changes and not ask_changes:
            return False
        self.update_id += 1
        for changes, side in ((bid_changes, self.bids), (ask_changes, self.asks)):
            for p, q in changes.items():
                if q <= _EPS:
                    side.pop(p, None)
                else:
                    side[p] = q
        for pend in self.pending.values():
            if not pend.first_id:
                pend.first_id = self.update_id
            pend.bids.update(bid_changes)
            pend.asks.update(ask_changes)
        return True

    def take(self, side: str, price: float, qty: float) -> None:
        """Remove ``qty`` at ``price`` from ``side`` ('bids' or 'asks') as one update."""
        self._clean = False
        levels = self.bids if side == "bids" else self.asks
        left = self._round_qty(levels.get(price, 0.0) - qty) if self.venue == BINANCE else round(levels.get(price, 0.0) - qty, 8)
        change = {price: max(left, 0.0)}
        if side == "bids":
            self._apply(change, {})
        else:
            self._apply({}, change)

    def register_pending(self, name: str) -> None:
        self.pending.setdefault(name, PendingDiff())

    def pop_pending(self, name: str) -> tuple[int, int, dict[float, float], dict[float, float]] | None:
        """(U, u, bid changes, ask changes) since the last pop, or None if nothing changed."""
        pend = self.pending.get(name)
        if pend is None or not pend.first_id:
            return None
        out = (pend.first_id, self.update_id, pend.bids, pend.asks)
        self.pending[name] = PendingDiff()
        return out

    # -- views ----------------------------------------------------------------------

    def top_bids(self, n: int | None = None) -> list[tuple[float, float]]:
        return sorted(self.bids.items(), key=lambda kv: -kv[0])[:n]

    def top_asks(self, n: int | None = None) -> list[tuple[float, float]]:
        return sorted(self.asks.items())[:n]

    def best_bid(self) -> tuple[float, float] | None:
        return max(self.bids.items()) if self.bids else None

    def best_ask(self) -> tuple[float, float] | None:
        return min(self.asks.items()) if self.asks else None

    def fmt_price(self, p: float) -> str:
        return f"{p:.8f}"

    def fmt_qty(self, q: float) -> str:
        return f"{q:.8f}"

    def synthetic_trade(self, prob: float) -> tuple[str, float, float] | None:
        """Maybe a public trade at the touch: (taker side, price, qty). Three draws always."""
        u = self._rng.random(3)
        if u[0] >= prob:
            return None
        if u[1] < 0.5:
            best = self.best_ask()
            side = "buy"
        else:
            best = self.best_bid()
            side = "sell"
        if best is None:
            return None
        qty = self._round_qty(best[1] * (0.01 + 0.2 * u[2]))
        if qty <= 0:
            qty = self.step
        return side, best[0], qty
