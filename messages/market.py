"""Market data: what feeds publish."""

from __future__ import annotations

from dataclasses import dataclass

from messages.base import Message, register

Level = tuple[float, float]  # (price, size)


@register("book")
@dataclass(frozen=True, slots=True, kw_only=True)
class BookTop(Message):
    """Top of one venue's book for one coin.

    ``symbol`` is the coin (``BTC``); the quote is implied by the venue
    (KRW on Upbit, USDT on Binance). Upbit's ``USDT`` book is the FX bridge.
    ``bids``/``asks`` hold the best few levels, best first, so sizing can be
    capped by real depth; ``bid``/``ask`` duplicate level 0 for cheap access.
    """

    venue: str
    symbol: str
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    bids: tuple[Level, ...] = ()
    asks: tuple[Level, ...] = ()
    exch_ts_ns: int = 0
    recv_ts_ns: int = 0

    def topic(self) -> str:
        return f"book.{self.venue}.{self.symbol}"

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2.0
