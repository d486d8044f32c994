"""Paper fills: an IOC limit order against the latest book, level by level.

The same rule the embedded exchange applies to a marketable limit order,
so paper results on real quotes are a fair dry run."""

from __future__ import annotations

from dataclasses import dataclass

from arbitrage.venue_rules import BINANCE_TAKER_FEE, UPBIT_TAKER_FEE
from messages import BookTop


@dataclass(frozen=True, slots=True)
class PaperFill:
    filled_qty: float
    avg_price: float
    fee_quote: float  # in the venue's quote currency


def fill_ioc(book: BookTop, side: str, qty: float, limit: float) -> PaperFill:
    levels = book.asks if side == "buy" else book.bids
    if not levels:
        levels = ((book.ask, book.ask_size),) if side == "buy" else ((book.bid, book.bid_size),)
    remaining = qty
    cost = 0.0
    for price, size in levels:
        if (side == "buy" and price > limit) or (side == "sell" and price < limit):
            break
        take = min(remaining, size)
        cost += take * price
        remaining -= take
        if remaining <= 1e-12:
            break
    filled = qty - max(0.0, remaining)
    if filled <= 1e-12:
        return PaperFill(0.0, 0.0, 0.0)
    fee_rate = UPBIT_TAKER_FEE if book.venue == "upbit" else BINANCE_TAKER_FEE
    return PaperFill(filled, cost / filled, cost * fee_rate)
