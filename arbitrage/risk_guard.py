"""The per-intent risk decision: trading state, expiry, mode, LiveSafetyGuard.

In order, the first failing check decides:

1. orders may flow (``armed`` and no fail-closed condition) — else
   ``disarmed`` / ``halted: <reason>`` / ``fail_closed: <reasons>``;
2. the intent has not expired (``expires_ns`` of 0 means no expiry, as in the
   executor);
3. ``live_readonly`` never sends: ``live_readonly: orders disabled``;
4. ``live_trading`` only: the D47 LiveSafetyGuard on the intent's notional
   converted KRW -> USDT, then the venue minimums after ``dry_run_scale``.

``paper`` runs no LiveSafetyGuard (the seed's mode table) and scales by 1.0.
A rejection is a :class:`messages.GuardDecision` with ``allowed=False`` and a
reason, never an exception. ``session_stop`` is passed on for the actor to
persist a halt; this class does not change the trading state itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from arbitrage.live_guard import LiveSafetyGuard, LiveTradingConfig, normalize_symbol
from arbitrage.trading_state import MODES, TradingStateMachine
from arbitrage.venue_rules import BINANCE, BINANCE_FILTERS, UPBIT, UPBIT_MIN_ORDER_KRW, common_qty
from messages import GuardDecision, OrderIntent


class RiskGuard:
    """Decides every :class:`messages.OrderIntent` (see module docs).

    ``now_ns`` is a clock in epoch nanoseconds (the unit of ``expires_ns``).
    """

    def __init__(self, mode: str, live_config: LiveTradingConfig, state: TradingStateMachine,
                 now_ns: Callable[[], int]) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self.live_config = live_config
        self.state = state
        self.now_ns = now_ns
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
        allowed = category == "allowed"
        self.last_category = category
        if allowed:
            self._allowed += 1
        else:
            self._blocked += 1
            self._by_reason[category] += 1
            if session_stop:
                self._session_stops += 1
        return GuardDecision(intent=intent, allowed=allowed, reason=reason,
                             session_stop=session_stop, scale=scale if allowed else 0.0, ts_ns=now)

    def _evaluate(self, intent: OrderIntent, balance_usdt: float, daily_pnl_usdt: float,
                  fx: float, now: int) -> tuple[str, str, bool, float]:
        """(category, reason, session_stop, scale); category ``allowed`` allows."""
        if not self.state.orders_may_flow():
            why = self.state.blocking_reason()  # "disarmed" | "halted: ..." | "fail_closed: ..."
            return why.split(":")[0], why, False, 0.0
        if intent.expires_ns and intent.expires_ns < now:
            late_ms = (now - intent.expires_ns) / 1e6
            return "expired", f"expired: intent {intent.id} expired {late_ms:.1f} ms ago", False, 0.0
        if self.mode == "live_readonly":
            return "live_readonly", "live_readonly: orders disabled", False, 0.0
        if self.mode == "paper":
            return "allowed", "ok", False, 1.0
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
