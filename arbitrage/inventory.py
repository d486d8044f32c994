"""Can the venues' balances fund an order? Checked before an open is sent.

An open whose leg the venue cannot fund is refused there, and the other leg
— already sent, since both go at once — is left naked. So the executor asks
first, against the latest balances the venues' private streams reported,
net of what its own in-flight orders will still take: an order the venue has
accepted but not yet reported in a balance update holds funds the next one
cannot use.

What a leg needs (fees per ``arbitrage.venue_rules``): a buy needs
``qty × price × (1 + taker fee)`` of the quote (Upbit reserves its KRW fee up
front; Binance takes its fee from the coin received, so the factor is a
margin there), a sell needs ``qty`` of the coin. ``margin`` keeps a little
back for rounding and for balances that moved since the last update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arbitrage.venue_rules import BINANCE, BINANCE_TAKER_FEE, UPBIT, UPBIT_TAKER_FEE

QUOTE = {UPBIT: "KRW", BINANCE: "USDT"}
FEE = {UPBIT: UPBIT_TAKER_FEE, BINANCE: BINANCE_TAKER_FEE}


@dataclass(frozen=True, slots=True, kw_only=True)
class Need:
    """What one leg takes from one venue's balance."""

    venue: str
    asset: str
    amount: float


def leg_need(venue: str, symbol: str, side: str, qty: float, price: float) -> Need:
    if side == "buy":
        return Need(venue=venue, asset=QUOTE[venue], amount=qty * price * (1.0 + FEE[venue]))
    return Need(venue=venue, asset=symbol, amount=qty)


def reserved(needs: Iterable[Need]) -> dict[tuple[str, str], float]:
    """Sum of needs per (venue, asset): what in-flight orders still hold."""
    out: dict[tuple[str, str], float] = {}
    for n in needs:
        out[(n.venue, n.asset)] = out.get((n.venue, n.asset), 0.0) + n.amount
    return out


def unfunded(needs: Iterable[Need], free: Mapping[str, Mapping[str, float]],
             held: Mapping[tuple[str, str], float], margin: float = 0.002) -> str:
    """Why these needs cannot all be met, or ``""`` when they can.

    ``free`` is venue -> asset -> free balance as last reported; ``held`` what
    in-flight orders hold on top of that (see :func:`reserved`). A venue whose
    balances were never reported cannot fund anything: not knowing is not
    having.
    """
    for (venue, asset), amount in reserved(needs).items():
        bal = free.get(venue)
        if bal is None:
            return f"{venue} balances unknown"
        available = bal.get(asset, 0.0) - held.get((venue, asset), 0.0)
        if amount * (1.0 + margin) > available:
            return (f"{venue} {asset}: needs {amount:.8g}, {available:.8g} available "
                    f"({bal.get(asset, 0.0):.8g} free, {held.get((venue, asset), 0.0):.8g} in flight)")
    return ""


__all__ = ["FEE", "QUOTE", "Need", "leg_need", "reserved", "unfunded"]
