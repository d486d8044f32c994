"""The execution part of the status object: naked exposure per coin, each
venue's breaker, private stream and rate budget, and the trading behaviour.

``behaviour`` is ``active`` (orders flow), ``reducing`` (halted or
fail-closed while armed or halted: only orders that shrink exposure pass,
as NautilusTrader's ``TradingState.REDUCING``) or ``blocked`` (disarmed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from messages import PositionState, VenueHealth

if TYPE_CHECKING:
    from supervisors.daemon import Daemon

VENUES = ("upbit", "binance")


def behaviour(trading_state: str, fail_closed: bool) -> str:
    if trading_state == "disarmed":
        return "blocked"
    return "active" if trading_state == "armed" and not fail_closed else "reducing"


def execution_status(d: Daemon, trading_state: str, fail_closed: bool) -> dict[str, Any]:
    pos = d.bus.latest("position")
    naked = []
    if isinstance(pos, PositionState):
        for c in pos.coins:
            naked.append({"symbol": c.symbol, "upbit_qty": c.upbit_qty, "binance_qty": c.binance_qty,
                          "naked_qty": c.naked_qty, "naked_krw": round(c.naked_krw, 0),
                          "age_s": round(c.naked_age_s, 2)})
    venues = []
    for venue in VENUES:
        h = d.bus.latest(f"venue.{venue}")
        if isinstance(h, VenueHealth):
            venues.append({"venue": venue, "breaker": h.breaker, "reason": h.reason,
                           "retry_in_s": h.retry_in_s, "trips": h.trips, "refused_opens": h.refused_opens,
                           "stream_up": h.stream_up, "stream_age_s": round(h.stream_age_s, 3),
                           "budget": {k: round(v, 3) for k, v in h.budget.items()}})
    return {"behaviour": behaviour(trading_state, fail_closed),
            "naked_exposure_krw": round(sum(abs(n["naked_krw"]) for n in naked), 0),
            "naked": naked, "venues": venues}


def execution_lines(st: dict[str, Any]) -> list[str]:
    """Human lines for ``arbctl status`` (the table view)."""
    out = [f"behaviour: {st.get('behaviour', '?')}"]
    for n in st.get("naked") or []:
        if n["naked_qty"]:
            out.append(f"NAKED {n['symbol']}: {n['naked_qty']:+g} ({n['naked_krw']:,.0f} KRW) "
                       f"for {n['age_s']:.1f}s")
    for v in st.get("venues") or []:
        budget = " ".join(f"{k}={frac:.0%}" for k, frac in v["budget"].items())
        stream = "up" if v["stream_up"] else "DOWN"
        line = f"{v['venue']:<8} breaker {v['breaker']:<9} stream {stream:<4} budget {budget}"
        if v["breaker"] != "closed":
            line += f"  ({v['reason']}; probe in {v['retry_in_s']:.1f}s)"
        out.append(line)
    return out
