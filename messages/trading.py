"""The trade path: opportunity -> intent -> guard decision -> order events.

Quantities are in coin units, prices in the venue's quote currency (KRW on
Upbit, USDT on Binance), notionals and PnL in KRW unless a name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from messages.base import Message, register

SELL_UPBIT = "sell_upbit"  # upbit rich: sell on Upbit, buy on Binance
BUY_UPBIT = "buy_upbit"  # upbit cheap: buy on Upbit, sell on Binance


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectionQuote:
    """What one direction of the trade can do right now.

    ``premium_pct`` is the executable premium at the prices used, ``edge_pct``
    its distance from the baseline in this direction's favour after both
    venues' taker fees; ``qty`` is the coin quantity the books hold at prices
    no worse than ``upbit_price``/``binance_price`` (lot-rounded; 0 if none).
    """

    direction: str
    premium_pct: float
    edge_pct: float
    qty: float
    upbit_price: float
    binance_price: float


@register("opp")
@dataclass(frozen=True, slots=True, kw_only=True)
class Opportunity(Message):
    symbol: str
    premium_pct: float
    baseline_pct: float
    fx: float
    sell_upbit: DirectionQuote
    buy_upbit: DirectionQuote
    expires_ns: int
    origin_ts_ns: int = 0  # receive time of the quote that caused it

    def topic(self) -> str:
        return f"opp.{self.symbol}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLeg:
    venue: str
    side: str  # "buy" | "sell"
    qty: float
    price: float  # limit price in the venue's quote currency
    client_order_id: str


@register("intent")
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent(Message):
    pair_id: str
    action: str  # "open" | "close" | "unwind"
    symbol: str
    direction: str
    legs: tuple[OrderLeg, ...]
    notional_krw: float
    expires_ns: int
    opportunity_id: str = ""
    origin_ts_ns: int = 0  # receive time of the quote behind it
    opportunity_ts_ns: int = 0  # when the engine produced the opportunity (hop timing)


@register("decision")
@dataclass(frozen=True, slots=True, kw_only=True)
class GuardDecision(Message):
    intent: OrderIntent
    allowed: bool
    reason: str
    session_stop: bool = False
    scale: float = 1.0
    reduce_only: bool = False  # passed as a reducing order while trading is halted or fail-closed


@register("order")
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderEvent(Message):
    """One state change of one order leg, published by the executor."""

    intent_id: str
    pair_id: str
    action: str
    client_order_id: str
    venue: str
    symbol: str
    side: str
    status: str  # pending|sent|open|filled|partially_filled|cancelled|rejected|failed|refused
    qty: float
    price: float
    filled_qty: float = 0.0
    avg_price: float = 0.0
    fee_krw: float = 0.0
    reason: str = ""
    origin_ts_ns: int = 0
    fx: float = 0.0  # KRW per USDT at the fill, so PnL rebuilt later uses the rate of the day

    def topic(self) -> str:
        return f"order.{self.venue}"


@register("ledger_resync")
@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerResync(Message):
    """From a starting executor to the position: re-read the ledger. The
    incarnation it replaces may have committed outcomes to the ledger whose
    events died with it before they were sent."""

    reason: str


@register("venue_health")
@dataclass(frozen=True, slots=True, kw_only=True)
class VenueHealth(Message):
    """One venue as the executor sees it: its breaker, private stream and rate budget.

    ``breaker`` is ``closed`` (orders flow), ``open`` (no opens need it until
    the next probe, in ``retry_in_s``) or ``half_open`` (one probe may go).
    ``budget`` is the fraction of each rate bucket left (1.0 = full).
    """

    venue: str
    breaker: str
    reason: str = ""
    retry_in_s: float = 0.0
    trips: int = 0
    refused_opens: int = 0
    stream_up: bool = False
    stream_age_s: float = -1.0  # since the private stream's last message; -1 when never
    budget: dict[str, float] = field(default_factory=dict)

    def topic(self) -> str:
        return f"venue.{self.venue}"
