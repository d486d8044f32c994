"""Public trades and rolling day statistics per venue and coin (for ticker/trade messages)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PublicTrade:
    trade_id: int
    price: float
    qty: float
    taker_side: str  # "buy" (buyer-initiated) | "sell"
    ts_ms: int


@dataclass(slots=True)
class DayStats:
    open: float
    high: float
    low: float
    last: float
    prev_close: float
    volume: float = 0.0
    quote_volume: float = 0.0
    ask_volume: float = 0.0  # seller-initiated
    bid_volume: float = 0.0  # buyer-initiated
    count: int = 0
    last_trade: PublicTrade | None = None


class Tape:
    """Trades of one venue. ``stats[coin]`` is created at the first price seen."""

    def __init__(self, first_trade_id: int = 1) -> None:
        self._next_id = first_trade_id
        self.stats: dict[str, DayStats] = {}

    def seed_price(self, coin: str, price: float) -> None:
        if coin not in self.stats:
            self.stats[coin] = DayStats(open=price, high=price, low=price, last=price, prev_close=price)

    def record(self, coin: str, price: float, qty: float, taker_side: str, ts_ms: int) -> PublicTrade:
        self.seed_price(coin, price)
        trade = PublicTrade(self._next_id, price, qty, taker_side, ts_ms)
        self._next_id += 1
        s = self.stats[coin]
        s.high = max(s.high, price)
        s.low = min(s.low, price)
        s.last = price
        s.volume += qty
        s.quote_volume += price * qty
        if taker_side == "buy":
            s.bid_volume += qty
        else:
            s.ask_volume += qty
        s.count += 1
        s.last_trade = trade
        return trade
