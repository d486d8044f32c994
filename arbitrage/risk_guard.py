"""The per-intent risk decision: trading state, expiry, mode, LiveSafetyGuard.

In order, the first failing check decides:

1. orders may flow (``armed`` and no fail-closed condition) — else
   ``disarmed`` / ``halted: <reason>`` / ``fail_closed: <reasons>``, with one
   exception, the **reducing** behaviour (NautilusTrader's
   ``TradingState.REDUCING``): while halted or fail-closed (never while
   disarmed: an operator who never armed allowed nothing), an ``unwind``
   whose every leg shrinks what is held on its venue and the coin's net
   naked quantity passes as ``reducing``. Opens and closes never do. A
   naked leg must be repaired exactly when something has gone wrong;
2. no venue the intent trades on has an open circuit breaker (opens and
   closes only: an unwind is the repair, and the strategy routes it away
   from a broken venue when it can);
3. the intent has not expired (``expires_ns`` of 0 means no expiry, as in the
   executor);
4. ``live_readonly`` never sends: ``live_readonly: orders disabled``;
5. ``live_trading`` only: the D47 LiveSafetyGuard on the intent's notional
   converted KRW -> USDT, then the venue minimums after ``dry_run_scale``.
   ``dry_run_scale`` sizes opens only: a close or an unwind trades what the
   fills left, which the scale already shrank once. A reducing unwind runs
   only the ``enabled`` check (it cannot add risk, and a halted session has
   no daily loss left to protect).

``paper`` runs no LiveSafetyGuard (the seed's mode table) and scales by 1.0.
A rejection is a :class:`messages.GuardDecision` with ``allowed=False`` and a
reason, never an exception. ``session_stop`` is passed on for the actor to
persist a halt; this class does not change the trading state itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from arbitrage.live_guard import LiveSafetyGuard, LiveTradingConfig, normalize_symbol
from arbitrage.trading_state import DISARMED, MODES, TradingStateMachine
from arbitrage.venue_rules import BINANCE, BINANCE_FILTERS, UPBIT, UPBIT_MIN_ORDER_KRW, common_qty
from messages import GuardDecision, OrderIntent

Holdings = Callable[[str], tuple[float, float] | None]  # symbol -> (upbit qty, binance qty), signed
_QTY_TOL = 1e-9


def _no_holdings(symbol: str) -> tuple[float, float] | None:
    return None


def _no_breakers() -> Mapping[str, str]:
    return {}


class RiskGuard:
    """Decides every :class:`messages.OrderIntent` (see module docs).

    ``now_ns`` is a clock in epoch nanoseconds (the unit of ``expires_ns``).
    ``holdings`` gives what the open pairs hold per venue for a symbol (from
    the position's latest report; None when unknown); ``breakers`` the
    venues whose breaker is open, with why.
    """

    def __init__(self, mode: str, live_config: LiveTradingConfig, state: TradingStateMachine,
                 now_ns: Callable[[], int], holdings: Holdings = _no_holdings,
                 breakers: Callable[[], Mapping[str, str]] = _no_breakers) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.live_config = live_config
        self.state = state
        self.now_ns = now_ns
        self.holdings = holdings
        self.breakers = breakers
        self.live_guard = LiveSafetyGuard(live_config)
        self._allowed = 0
        self._blocked = 0
        self._session_stops = 0
        self._by_reason: Counter[str] = Counter()
        self.last_category = ""  # of the latest decision: a stable label for metrics

    def decide(self, intent: OrderIntent, balance_usdt: float, daily_pnl_usdt: float,
               fx: float) -> GuardDecision:
        """Allow or refuse ``intent``.

        ``balance_usdt`` is the account balance and ``daily_pnl_usdt`` the
        day's PnL (negative when losing), both in USDT; ``fx`` is KRW per
        USDT, used to convert ``intent.notional_krw`` for the live checks.
        """
        now = self.now_ns()
        try:
            category, reason, session_stop, scale = self._evaluate(intent, balance_usdt,
                                                                    daily_pnl_usdt, fx, now)
        except Exception as e:  # noqa: BLE001 - a guard bug must refuse, not crash or allow
            category, reason, session_stop, scale = (
                "internal_error", f"internal_error: {type(e).__name__}: {e}", False, 0.0)
        allowed = category in ("allowed", "reducing")
        self.last_category = category
        if allowed:
            self._allowed += 1
        else:
            self._blocked += 1
            self._by_reason[category] += 1
            if session_stop:
                self._session_stops += 1
        return GuardDecision(intent=intent, allowed=allowed, reason=reason,
                             session_stop=session_stop, scale=scale if allowed else 0.0, ts_ns=now,
                             reduce_only=category == "reducing")

    def _evaluate(self, intent: OrderIntent, balance_usdt: float, daily_pnl_usdt: float,
                  fx: float, now: int) -> tuple[str, str, bool, float]:
        """(category, reason, session_stop, scale); ``allowed`` and ``reducing`` allow."""
        if not self.state.orders_may_flow():
            why = self.state.blocking_reason()  # "disarmed" | "halted: ..." | "fail_closed: ..."
            if intent.action != "unwind" or self.state.state == DISARMED:
                return why.split(":")[0], why, False, 0.0
            not_reducing = self._shrinks(intent)
            if not_reducing:
                return "not_reducing", f"{why}; unwind refused: {not_reducing}", False, 0.0
            category, reason, _, _ = self._checks(intent, balance_usdt, daily_pnl_usdt, fx, now,
                                                      reducing=True)
            if category != "allowed":
                return category, reason, False, 0.0
            return "reducing", f"reducing: the unwind shrinks exposure ({why})", False, 1.0
        if intent.action != "unwind":
            broken = self.breakers()
            for leg in intent.legs:
                if leg.venue in broken:
                    return "breaker", f"breaker: {leg.venue} is refusing orders ({broken[leg.venue]})", False, 0.0
        return self._checks(intent, balance_usdt, daily_pnl_usdt, fx, now)

    def _checks(self, intent: OrderIntent, balance_usdt: float, daily_pnl_usdt: float,
                fx: float, now: int, reducing: bool = False) -> tuple[str, str, bool, float]:
        if intent.expires_ns and intent.expires_ns < now:
            late_ms = (now - intent.expires_ns) / 1e6
            return "expired", f"expired: intent {intent.id} expired {late_ms:.1f} ms ago", False, 0.0
        if self.mode == "live_readonly":
            return "live_readonly", "live_readonly: orders disabled", False, 0.0
        if self.mode == "paper":
            return "allowed", "ok", False, 1.0
        if intent.action != "open" or reducing:  # closes and unwinds trade what is held: already scaled
            if not self.live_config.enabled:
                return "live_guard.enabled", "live_trading.enabled is false", False, 0.0
            return "allowed", "ok (trades what the fills hold)", False, 1.0
        # live_trading
        if not (isinstance(fx, (int, float)) and math.isfinite(fx) and fx > 0.0):
            return "invalid_input", f"invalid_input: fx {fx!r} KRW/USDT unknown", False, 0.0
        notional_usdt = intent.notional_krw / fx
        live = self.live_guard.check_before_send_order(
            symbol=intent.symbol, notional=notional_usdt, balance=balance_usdt,
            daily_loss=daily_pnl_usdt)
        if not live.allowed:
            return f"live_guard.{live.check}", live.reason, live.session_stop, 0.0
        scale = self.live_config.dry_run_scale
        too_small = _below_venue_minimum(intent, scale)
        if too_small:
            return "venue_minimum", f"venue_minimum: {too_small}", False, 0.0
        return "allowed", f"ok (dry_run_scale={scale})", False, scale

    def _shrinks(self, intent: OrderIntent) -> str:
        """Why this unwind does not shrink exposure, or ``""`` when every leg does."""
        held = self.holdings(intent.symbol)
        if held is None:
            return "holdings unknown: cannot verify the order reduces exposure"
        up, bn = held
        net = up + bn
        for leg in intent.legs:
            venue_qty = up if leg.venue == UPBIT else bn if leg.venue == BINANCE else None
            if venue_qty is None:
                return f"unknown venue {leg.venue!r}"
            signed = leg.qty if leg.side == "buy" else -leg.qty
            after = venue_qty + signed
            if not (abs(after) < abs(venue_qty) - _QTY_TOL and venue_qty * after >= -_QTY_TOL):
                return (f"{leg.side} {leg.qty:g} {intent.symbol} on {leg.venue} would not shrink "
                        f"its holding of {venue_qty:+g}")
            if abs(net + signed) >= abs(net) - _QTY_TOL:
                return f"{leg.side} {leg.qty:g} {intent.symbol} would not shrink the net {net:+g}"
            net += signed
        return ""

    def get_summary(self) -> dict[str, Any]:
        """Counts since start: allowed, blocked (by reason category), session stops,
        and the LiveSafetyGuard's own summary."""
        return {
            "mode": self.mode,
            "decisions": self._allowed + self._blocked,
            "allowed": self._allowed,
            "blocked": self._blocked,
            "session_stops": self._session_stops,
            "blocked_by_reason": dict(self._by_reason),
            "live_guard": self.live_guard.get_summary(),
        }


def _below_venue_minimum(intent: OrderIntent, scale: float) -> str:
    """Why the legs, scaled and lot-rounded as the executor will, would be
    rejected by a venue; ``""`` when every leg is acceptable."""
    coin = normalize_symbol(intent.symbol)
    filters = BINANCE_FILTERS.get(coin)
    if filters is None:
        return f"no venue rules for {coin}"
    if not intent.legs:
        return "intent has no legs"
    for leg in intent.legs:
        # Both legs trade one common quantity, rounded down to both lot sizes.
        qty = common_qty(leg.qty * scale, coin)
        notional = qty * leg.price
        where = f"{leg.venue} {leg.side} {qty:g} {coin} (dry_run_scale={scale})"
        if qty <= 0.0:
            return f"{where}: quantity rounds to zero"
        if leg.venue == UPBIT:
            if notional < UPBIT_MIN_ORDER_KRW:
                return f"{where}: {notional:.0f} KRW < min order {UPBIT_MIN_ORDER_KRW:.0f} KRW"
        elif leg.venue == BINANCE:
            if qty < filters.min_qty:
                return f"{where}: below min qty {filters.min_qty:g}"
            if notional < filters.min_notional:
                return f"{where}: {notional:.2f} USDT < min notional {filters.min_notional:g} USDT"
        else:
            return f"unknown venue {leg.venue!r}"
    return ""
