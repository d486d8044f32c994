"""One order as a venue reports it: the shape every order path shares (the
signed hot path in :mod:`venues.order_http`, the ccxt client in
:mod:`venues.rest`). Kept apart from both so the hot path imports no ccxt
(half a second of an executor's start)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderResult:
    """One order as the venue reports it.

    ``status``: open | filled | partially_filled | cancelled | rejected.
    ``done`` is True when nothing more can fill (an IOC's final state, or a
    cancelled / rejected order; ``partially_filled`` may be either).
    ``fee`` is in the venue's quote currency (KRW, USDT); a commission
    charged in the base coin is converted at the average fill price. When
    the reply carries no commission for a fill (Binance's GET order has no
    fills), the fee is the taker rate times the filled notional and
    ``fee_estimated`` is True.
    """

    client_order_id: str
    venue_order_id: str
    status: str
    filled: float = 0.0
    avg_price: float = 0.0
    fee: float = 0.0
    reason: str = ""
    symbol: str = ""
    side: str = ""
    amount: float = 0.0
    price: float = 0.0
    done: bool = True
    fee_estimated: bool = False
