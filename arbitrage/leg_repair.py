"""How to repair a broken hedge: unwind the excess, or complete the missing leg.

When one leg of a pair filled and the other did not (or filled less), the
coin is held naked on one venue. Two orders restore a flat net position, and
both trade the same side and quantity (the excess); they differ in venue:

- **unwind** on the venue holding the excess: the pair goes back to flat.
  Its cost is certain: the adverse move since the fill (bought at the ask,
  sold back at today's bid: the spread at least) plus the exit fee.
- **complete** on the venue that missed: the pair becomes the hedge it was
  meant to be, at today's price on that venue. Its expected cost is minus the
  edge the pair's direction still shows (``DirectionQuote.edge_pct``: the
  premium's distance from the baseline net of both venues' fees — what an
  open would earn now). Positive edge means completing is expected to pay.

:func:`choose_repair` takes the cheaper, with two rules first: a completion
only while trading is active (halted or fail-closed, arbd only *reduces*
exposure — NautilusTrader's ``TradingState.REDUCING`` — and a completion
opens a new position on the missing venue), and never on a venue whose
breaker is open, nor after a completion of this pair was already refused
there. An unwind is allowed on any venue whose breaker is closed, and on an
open one too when it is the only way out: a repair is bounded by the naked
quantity, so it cannot hammer a venue the way opens would.
"""

from __future__ import annotations

from dataclasses import dataclass

from arbitrage.inventory import FEE
from arbitrage.premium import quote_for
from arbitrage.venue_rules import BINANCE, UPBIT
from messages.trading import Opportunity

UNWIND, COMPLETE = "unwind", "complete"


@dataclass(frozen=True, slots=True, kw_only=True)
class Naked:
    """One pair's excess: ``qty`` of ``symbol`` to ``side`` to be flat again."""

    pair_id: str
    symbol: str
    direction: str  # how the pair was opened
    held_venue: str  # where the excess is held
    side: str  # the side that removes it (same on either venue)
    qty: float
    entry_price: float  # average open fill on ``held_venue``, in its quote


@dataclass(frozen=True, slots=True, kw_only=True)
class Repair:
    how: str  # UNWIND | COMPLETE
    venue: str
    side: str
    qty: float
    cost_krw: float  # expected cost of this choice (negative: expected gain)
    other_cost_krw: float | None  # of the choice not taken; None when it was not allowed
    reason: str


def _other(venue: str) -> str:
    return BINANCE if venue == UPBIT else UPBIT


def exit_price(opp: Opportunity, venue: str, side: str) -> float:
    """The touch a taker ``side`` order meets on ``venue`` (bids for a sell, asks for a buy).

    The SELL_UPBIT quote holds Upbit's bid and Binance's ask; BUY_UPBIT the reverse.
    """
    if venue == UPBIT:
        return (opp.sell_upbit if side == "sell" else opp.buy_upbit).upbit_price
    return (opp.buy_upbit if side == "sell" else opp.sell_upbit).binance_price


def unwind_cost_krw(n: Naked, opp: Opportunity) -> float:
    px = exit_price(opp, n.held_venue, n.side)
    to_krw = 1.0 if n.held_venue == UPBIT else opp.fx
    # Sold back below the buy price (or bought back above the sell price): a loss.
    adverse = (n.entry_price - px) if n.side == "sell" else (px - n.entry_price)
    if n.entry_price <= 0:
        adverse = 0.0
    return n.qty * (adverse + px * FEE[n.held_venue]) * to_krw


def complete_cost_krw(n: Naked, opp: Opportunity) -> float:
    q = quote_for(opp, n.direction)
    return -q.edge_pct / 100.0 * n.qty * q.upbit_price


def choose_repair(n: Naked, opp: Opportunity, *, active: bool, breaker_open: frozenset[str],
                  completion_refused: bool = False) -> Repair | None:
    """The repair to send now, or None when no venue can take it."""
    missing = _other(n.held_venue)
    u_cost = unwind_cost_krw(n, opp)
    can_complete = active and missing not in breaker_open and not completion_refused
    c_cost = complete_cost_krw(n, opp) if can_complete else None
    if c_cost is not None and c_cost < u_cost:
        return Repair(how=COMPLETE, venue=missing, side=n.side, qty=n.qty, cost_krw=c_cost,
                      other_cost_krw=u_cost,
                      reason=f"complete the missing leg on {missing}: expected cost {c_cost:,.0f} KRW "
                             f"< unwind {u_cost:,.0f} KRW")
    if n.held_venue in breaker_open and can_complete:
        return Repair(how=COMPLETE, venue=missing, side=n.side, qty=n.qty, cost_krw=c_cost or 0.0,
                      other_cost_krw=u_cost, reason=f"complete on {missing}: {n.held_venue}'s breaker is open")
    why = ("trading is reducing: only unwinds" if not active else
           f"{missing}'s breaker is open" if missing in breaker_open else
           f"a completion on {missing} was refused" if completion_refused else
           f"unwind {u_cost:,.0f} KRW <= complete {c_cost:,.0f} KRW")
    return Repair(how=UNWIND, venue=n.held_venue, side=n.side, qty=n.qty, cost_krw=u_cost,
                  other_cost_krw=c_cost, reason=f"unwind the excess on {n.held_venue} ({why})")


__all__ = ["COMPLETE", "UNWIND", "Naked", "Repair", "choose_repair", "complete_cost_krw", "exit_price",
           "unwind_cost_krw"]
