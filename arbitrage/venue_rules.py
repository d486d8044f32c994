"""Each venue's trading rules: taker fees, tick and lot sizes, minimum orders.

Shared by the premium math (to size and round what it proposes) and the
embedded exchange (to reject what the real venue would reject).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

UPBIT = "upbit"
BINANCE = "binance"

UPBIT_TAKER_FEE = 0.0005  # KRW market, charged in KRW
BINANCE_TAKER_FEE = 0.001  # spot base rate, charged in the received asset
UPBIT_MIN_ORDER_KRW = 5000.0
UPBIT_VOLUME_DECIMALS = 8

# Upbit KRW-market tick table since 2025-07-31: (lower bound, tick), highest first.
_UPBIT_KRW_TICKS: tuple[tuple[float, float], ...] = (
    (1_000_000.0, 1000.0),
    (500_000.0, 500.0),
    (100_000.0, 100.0),
    (50_000.0, 50.0),
    (10_000.0, 10.0),
    (5_000.0, 5.0),
    (100.0, 1.0),
    (10.0, 0.1),
    (1.0, 0.01),
    (0.0, 0.001),
)
# Stablecoin books have their own, finer ticks (0.5 KRW in the 1,000-10,000 band).
_UPBIT_STABLE = frozenset({"USDT", "USDC"})


@dataclass(frozen=True, slots=True)
class BinanceFilters:
    tick_size: float
    step_size: float
    min_qty: float
    min_notional: float


BINANCE_FILTERS: dict[str, BinanceFilters] = {
    "BTC": BinanceFilters(tick_size=0.01, step_size=0.00001, min_qty=0.00001, min_notional=5.0),
    "ETH": BinanceFilters(tick_size=0.01, step_size=0.0001, min_qty=0.0001, min_notional=5.0),
    "XRP": BinanceFilters(tick_size=0.0001, step_size=0.1, min_qty=0.1, min_notional=5.0),
    "SOL": BinanceFilters(tick_size=0.01, step_size=0.001, min_qty=0.001, min_notional=5.0),
}


def upbit_tick_size(price: float, coin: str = "") -> float:
    if coin in _UPBIT_STABLE and 1_000.0 <= price < 10_000.0:
        return 0.5
    for lower, tick in _UPBIT_KRW_TICKS:
        if price >= lower:
            return tick
    return _UPBIT_KRW_TICKS[-1][1]


def _round_to(value: float, step: float, mode: str) -> float:
    units = value / step
    # Nudge by a relative epsilon so 0.1/0.1-style float noise does not cost a tick.
    if mode == "down":
        n = math.floor(units + 1e-9)
    elif mode == "up":
        n = math.ceil(units - 1e-9)
    else:
        n = round(units)
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return round(n * step, decimals + 2)


def round_upbit_price(price: float, coin: str = "", mode: str = "nearest") -> float:
    return _round_to(price, upbit_tick_size(price, coin), mode)


def is_upbit_price_on_tick(price: float, coin: str = "") -> bool:
    tick = upbit_tick_size(price, coin)
    units = price / tick
    return abs(units - round(units)) < 1e-6


def round_binance_price(price: float, coin: str, mode: str = "nearest") -> float:
    return _round_to(price, BINANCE_FILTERS[coin].tick_size, mode)


def round_binance_qty(qty: float, coin: str) -> float:
    return _round_to(qty, BINANCE_FILTERS[coin].step_size, "down")


def round_upbit_qty(qty: float) -> float:
    return math.floor(qty * 10**UPBIT_VOLUME_DECIMALS + 1e-6) / 10**UPBIT_VOLUME_DECIMALS


def common_qty(qty: float, coin: str) -> float:
    """The largest quantity no larger than ``qty`` that both venues accept."""
    return round_upbit_qty(round_binance_qty(qty, coin))
