"""The intent planner: strategy signals -> ``OrderIntent``\\s the guard can judge.

- Open: two legs of one quantity. The KRW size comes from an injected sizer
  (``AdvancedPositionManager.get_dynamic_position_size`` in the daemon, see
  :func:`sizer_from_manager`), times the rebalancer's multiplier if given, and
  is converted to coin at the Upbit leg's limit price. The quantity is capped
  by what the quote's books hold and by the room left under
  ``max_exposure_krw`` *counting every in-flight and reserved open* (the
  portfolio's committed exposure); the planner reserves each intent in the
  portfolio as it issues it, so the next plan sees it at once. Exposure is
  valued at the Upbit open limit price, exactly as the portfolio values it,
  so the cap holds to the won. An optional ``exposure_limit_krw`` callable
  (``AdvancedPositionManager.exposure_limit_krw``, lowered while exposure grows
  fast) can only lower the cap, never raise it. Feeding the manager back
  (``record_trade(intent.notional_krw)``) is the caller's: the planner does not
  know which intents the guard lets through.
- Close: the pair's hedged quantity on both venues, priced from the close
  direction's quote. Closes and unwinds reduce exposure and are never capped.
- Unwind: one leg on one venue, priced from the side of the book it trades
  against, with a wider allowance (it must fill).

Limit prices are the quote's price moved by the slippage allowance against
us (sells lower, buys higher), then tick-rounded the conservative way.
``client_order_id`` is ``<intent id>-<leg index>``, or a hash of the intent id
when that would not match Binance's ``^[.A-Z:/a-z0-9_-]{1,36}$``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from arbitrage.accounting import OPEN, Portfolio
from arbitrage.premium import meets_minimums, meets_venue_minimum, round_limit
from arbitrage.strategy import Signal
from arbitrage.venue_rules import (
    BINANCE,
    BINANCE_FILTERS,
    UPBIT,
    common_qty,
    round_binance_qty,
    round_upbit_qty,
)
from messages.base import new_id
from messages.trading import SELL_UPBIT, DirectionQuote, OrderIntent, OrderLeg

Sizer = Callable[[str], float]  # symbol -> position size in KRW
PlanResult = tuple[OrderIntent | None, str]  # (intent, "") or (None, why it was dropped)

_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerConfig:
    max_exposure_krw: float = 500_000.0
    slippage_pct: float = 0.05  # limit allowance for opens and closes, percent of price
    unwind_slippage_pct: float = 0.3
    intent_ttl_s: float = 2.0

    def __post_init__(self) -> None:
        errors = []
        if self.max_exposure_krw < 0:
            errors.append("max_exposure_krw must be >= 0")
        if not 0 <= self.slippage_pct < 100 or not 0 <= self.unwind_slippage_pct < 100:
            errors.append("slippage_pct and unwind_slippage_pct must be in [0, 100)")
        if self.intent_ttl_s <= 0:
            errors.append("intent_ttl_s must be > 0")
        if errors:
            raise ValueError("PlannerConfig: " + "; ".join(errors))


def client_order_id(intent_id: str, leg: int) -> str:
    """Deterministic and unique per (intent, leg); always a valid Binance/Upbit client id."""
    cid = f"{intent_id}-{leg}"
    if _CLIENT_ID.match(cid):
        return cid
    return f"h{hashlib.blake2b(intent_id.encode(), digest_size=12).hexdigest()}-{leg}"


def sizer_from_manager(manager: Any, volatility: Callable[[str], float],
                       risk_mode: Callable[[], str | None]) -> Sizer:
    """Adapt ``AdvancedPositionManager.get_dynamic_position_size`` to a :data:`Sizer`.

    ``risk_mode`` returns ``normal``/``cautious``/``extreme`` (the rebalancer's
    mode), or None to let the manager derive it from its smoothed volatility.
    """
    def size(symbol: str) -> float:
        return float(manager.get_dynamic_position_size(volatility_estimate=volatility(symbol),
                                                       risk_mode=risk_mode()))
    return size


def _sides(direction: str) -> tuple[str, str]:
    """(upbit side, binance side) of a trade in ``direction``."""
    return ("sell", "buy") if direction == SELL_UPBIT else ("buy", "sell")


def _limit(venue: str, side: str, price: float, slippage_pct: float, symbol: str) -> float:
    moved = price * (1.0 - slippage_pct / 100.0 if side == "sell" else 1.0 + slippage_pct / 100.0)
    return round_limit(venue, side, moved, symbol)


def _pair_limits(direction: str, quote: DirectionQuote, slippage_pct: float,
                 symbol: str) -> tuple[str, float, str, float]:
    """(upbit side, upbit limit, binance side, binance limit) for a pair trade in ``direction``."""
    up_side, bn_side = _sides(direction)
    return (up_side, _limit(UPBIT, up_side, quote.upbit_price, slippage_pct, symbol),
            bn_side, _limit(BINANCE, bn_side, quote.binance_price, slippage_pct, symbol))


class IntentPlanner:
    """Turns signals into intents and reserves them in ``portfolio``. ``now`` returns seconds."""

    def __init__(self, config: PlannerConfig, portfolio: Portfolio, size_krw: Sizer,
                 now: Callable[[], float], *, multiplier: Callable[[], float] | None = None,
                 exposure_limit_krw: Callable[[], float] | None = None,
                 ids: Callable[[], str] = new_id) -> None:
        self.config = config
        self.portfolio = portfolio
        self.size_krw = size_krw
        self.now = now
        self.multiplier = multiplier
        self.exposure_limit_krw = exposure_limit_krw
        self.ids = ids

    def plan(self, signals: Iterable[Signal]) -> list[OrderIntent]:
        """Intents for the signals that can be traded; the rest are dropped (see :meth:`plan_one`)."""
        return [i for i in (self.plan_one(s)[0] for s in signals) if i is not None]

    def plan_one(self, sig: Signal) -> PlanResult:
        if sig.action == "open":
            return self._open(sig)
        if sig.action == "close":
            return self._close(sig)
        if sig.action == "unwind":
            return self._unwind(sig)
        return None, f"unknown action {sig.action!r}"

    # -- actions ---------------------------------------------------------------------
    def _open(self, sig: Signal) -> PlanResult:
        cfg, sym, q = self.config, sig.symbol, sig.quote
        if q is None:
            return None, "open signal without a quote"
        up_side, up_px, bn_side, bn_px = _pair_limits(sig.direction, q, cfg.slippage_pct, sym)
        size = self.size_krw(sym) * (max(0.0, self.multiplier()) if self.multiplier else 1.0)
        if not size > 0:
            return None, "position size is zero"
        cap = cfg.max_exposure_krw
        if self.exposure_limit_krw is not None:
            cap = min(cap, self.exposure_limit_krw())
        budget = min(size, cap - self.portfolio.committed_exposure_krw())
        if not budget > 0:
            return None, f"exposure cap reached ({cap:.0f} KRW incl. in-flight opens)"
        qty = common_qty(min(sig.qty, budget / up_px), sym)
        if qty * up_px > budget:  # float noise in the lot rounding must not cost the cap
            qty = common_qty(qty - BINANCE_FILTERS[sym].step_size, sym)
        if qty <= 0 or not meets_minimums(sym, qty, up_px, bn_px):
            return None, (f"{qty:g} {sym} (budget {budget:.0f} KRW) is below the venue minimums")
        opp = sig.opportunity
        expires = min(opp.expires_ns, self._now_ns() + int(cfg.intent_ttl_s * 1e9))
        return self._issue(sig, ((UPBIT, up_side, qty, up_px), (BINANCE, bn_side, qty, bn_px)),
                           qty * up_px, expires), ""

    def _close(self, sig: Signal) -> PlanResult:
        cfg, sym, q = self.config, sig.symbol, sig.quote
        pair = self.portfolio.pair(sig.pair_id)
        if pair is None or pair.state != OPEN or q is None:
            return None, f"pair {sig.pair_id} is not open"
        up_side, up_px, bn_side, bn_px = _pair_limits(sig.direction, q, cfg.slippage_pct, sym)
        qty = common_qty(min(sig.qty, pair.qty), sym)
        if qty <= 0 or not meets_minimums(sym, qty, up_px, bn_px):
            return None, f"close of {qty:g} {sym} is below the venue minimums"
        expires = self._now_ns() + int(cfg.intent_ttl_s * 1e9)
        return self._issue(sig, ((UPBIT, up_side, qty, up_px), (BINANCE, bn_side, qty, bn_px)),
                           qty * up_px, expires), ""

    def _unwind(self, sig: Signal) -> PlanResult:
        cfg, sym, opp = self.config, sig.symbol, sig.opportunity
        venue, side = sig.venue, sig.side
        # Buy at the asks, sell at the bids: the SELL_UPBIT quote holds Upbit's bid and
        # Binance's ask, the BUY_UPBIT quote Upbit's ask and Binance's bid.
        if venue == UPBIT:
            quote = opp.buy_upbit if side == "buy" else opp.sell_upbit
            price, qty = quote.upbit_price, round_upbit_qty(sig.qty)
        else:
            quote = opp.sell_upbit if side == "buy" else opp.buy_upbit
            price, qty = quote.binance_price, round_binance_qty(sig.qty, sym)
        px = _limit(venue, side, price, cfg.unwind_slippage_pct, sym)
        if not meets_venue_minimum(venue, sym, qty, px):
            return None, f"unwind of {qty:g} {sym} on {venue} is below its minimum"
        notional = qty * px if venue == UPBIT else qty * px * opp.fx
        expires = self._now_ns() + int(cfg.intent_ttl_s * 1e9)
        return self._issue(sig, ((venue, side, qty, px),), notional, expires), ""

    # -- helpers ---------------------------------------------------------------------
    def _now_ns(self) -> int:
        return int(self.now() * 1e9)

    def _issue(self, sig: Signal, legs: tuple[tuple[str, str, float, float], ...], notional_krw: float,
               expires_ns: int) -> OrderIntent:
        intent_id = self.ids()
        opp = sig.opportunity
        intent = OrderIntent(
            id=intent_id, ts_ns=self._now_ns(), pair_id=sig.pair_id, action=sig.action,
            symbol=sig.symbol, direction=sig.direction,
            legs=tuple(OrderLeg(venue=v, side=s, qty=q, price=p, client_order_id=client_order_id(intent_id, i))
                       for i, (v, s, q, p) in enumerate(legs)),
            notional_krw=notional_krw, expires_ns=expires_ns, opportunity_id=opp.id, opportunity_ts_ns=opp.ts_ns,
            origin_ts_ns=opp.origin_ts_ns)
        self.portfolio.reserve(intent, fx=opp.fx)
        return intent


__all__ = ["IntentPlanner", "PlanResult", "PlannerConfig", "Sizer", "client_order_id",
           "sizer_from_manager"]
