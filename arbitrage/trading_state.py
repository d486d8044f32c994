"""Whether orders may flow: ``disarmed | armed | halted`` plus a fail-closed overlay.

The state is the operator's: the daemon starts ``disarmed``, ``arm`` lets
orders flow, ``halt`` stops them and persists across restarts until the next
``arm``. The overlay is the system's: any actor may raise a fail-closed
condition (stale feed, actor down, unknown daily loss ...) under a key and
clear it again. Orders flow only when ``armed`` and no condition is raised.

Only the operator state is persisted (:meth:`TradingStateMachine.to_dict`):
fail-closed conditions describe the live system and are re-learnt after a
restart, never trusted from disk.
"""

from __future__ import annotations

from typing import Any

DISARMED = "disarmed"
ARMED = "armed"
HALTED = "halted"
STATES = (DISARMED, ARMED, HALTED)

MODES = ("paper", "live_readonly", "live_trading")
# The word an operator must type to arm real trading (arbctl arm --confirm ...).
LIVE_CONFIRM = "live_trading"

# Why trading is halted, as alerts tell it apart (arbd_halted{cause}). A halt
# the system itself raises starts its reason with "<cause>:"; every other
# reason is an operator's (arbctl halt --reason is free text).
SESSION_STOP = "session_stop"  # the guard: the day's loss passed live_trading.max_daily_loss
ESCALATION = "escalation"  # the supervisor: a child restarted past its intensity
OPERATOR = "operator"
HALT_CAUSES = (SESSION_STOP, ESCALATION, OPERATOR)


def halt_reason(cause: str, detail: str) -> str:
    """The reason text for a halt the system raises, which :func:`halt_cause` reads back."""
    return f"{cause}: {detail}"


def halt_cause(reason: str) -> str:
    """``session_stop``, ``escalation`` or ``operator``: one of a fixed few, so
    it can be a metric label where the free-text reason cannot."""
    head, sep, _ = reason.partition(":")
    head = head.strip()
    return head if sep and head in (SESSION_STOP, ESCALATION) else OPERATOR


class TradingStateMachine:
    """The operator state and the fail-closed overlay (see module docs)."""

    def __init__(self) -> None:
        self.state: str = DISARMED
        self.mode: str = ""
        self.halt_reason: str = ""
        self._fail_closed: dict[str, str] = {}

    # -- operator transitions ----------------------------------------------------
    def arm(self, mode: str, live_enabled: bool, confirm: str) -> tuple[bool, str]:
        """Arm for ``mode``; returns ``(ok, reason)`` and changes nothing when refused.

        ``live_trading`` needs ``live_trading.enabled`` in the config *and*
        ``confirm == "live_trading"``: two independent acts, so neither a
        config edit nor a stray command alone starts real trading. Arming
        clears a halt (that is how an operator lifts it). ``live_readonly``
        may arm, but its orders are refused by the risk guard regardless.
        """
        if mode not in MODES:
            return False, f"unknown mode {mode!r} (expected one of {', '.join(MODES)})"
        if mode == "live_trading":
            if not live_enabled:
                return False, "live_trading.enabled=False: refusing to arm live_trading"
            if confirm != LIVE_CONFIRM:
                return False, f"arming live_trading needs --confirm {LIVE_CONFIRM}"
        was = self.state
        self.state = ARMED
        self.mode = mode
        self.halt_reason = ""
        note = f"armed ({mode})"
        if was == HALTED:
            note += ", halt lifted"
        if mode == "live_readonly":
            note += "; live_readonly: orders stay disabled"
        if self._fail_closed:
            note += f"; orders wait: fail_closed: {'; '.join(self.reasons())}"
        return True, note

    def disarm(self) -> bool:
        """Back to ``disarmed``; a halt is left alone (only ``arm`` lifts it).
        Returns whether the state changed."""
        if self.state != ARMED:
            return False
        self.state = DISARMED
        return True

    def halt(self, reason: str) -> bool:
        """Stop orders until the next ``arm``. Returns whether the state
        changed; a second halt keeps the first reason (it is the cause)."""
        if self.state == HALTED:
            return False
        self.state = HALTED
        self.halt_reason = reason.strip() or "halted"
        return True

    # -- fail-closed overlay -------------------------------------------------------
    def raise_fail_closed(self, key: str, reason: str) -> bool:
        """Raise (or re-word) condition ``key``. Returns whether it is new."""
        new = key not in self._fail_closed
        self._fail_closed[key] = reason.strip() or key
        return new

    def clear_fail_closed(self, key: str) -> bool:
        """Clear condition ``key``. Returns whether it was raised."""
        return self._fail_closed.pop(key, None) is not None

    def fail_closed_keys(self) -> tuple[str, ...]:
        return tuple(sorted(self._fail_closed))

    @property
    def fail_closed(self) -> bool:
        return bool(self._fail_closed)

    def reasons(self) -> tuple[str, ...]:
        """The raised fail-closed conditions' reasons, ordered by key."""
        return tuple(self._fail_closed[k] for k in sorted(self._fail_closed))

    # -- the answer ------------------------------------------------------------------
    def orders_may_flow(self) -> bool:
        return self.state == ARMED and not self._fail_closed

    def blocking_reason(self) -> str:
        """Why orders may not flow, or ``""`` when they may: ``disarmed``,
        ``halted: <reason>`` or ``fail_closed: <reason>; <reason>``."""
        if self.state == HALTED:
            return f"halted: {self.halt_reason}"
        if self.state == DISARMED:
            return "disarmed"
        if self._fail_closed:
            return "fail_closed: " + "; ".join(self.reasons())
        return ""

    # -- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The operator state only; the fail-closed overlay is never persisted."""
        return {"state": self.state, "mode": self.mode, "halt_reason": self.halt_reason}

    @classmethod
    def from_dict(cls, data: object, mode: str | None = None) -> TradingStateMachine:
        """Restore from :meth:`to_dict` output (extra keys are ignored).

        A halt always survives. ``armed`` survives only for the same ``mode``
        (when given): an arm given for paper must not arm real trading.
        Unreadable data restores as halted, not as a fresh start: whatever
        was there might have been a halt.
        """
        sm = cls()
        if data is None or data == {}:
            return sm
        if not isinstance(data, dict) or data.get("state") not in STATES:
            got = data.get("state") if isinstance(data, dict) else type(data).__name__
            sm.halt(f"persisted trading state unreadable ({got!r})")
            return sm
        state = data["state"]
        saved_mode = str(data.get("mode") or "")
        if state == HALTED:
            sm.halt(str(data.get("halt_reason") or "halted before restart"))
            sm.mode = saved_mode
        elif state == ARMED and (mode is None or saved_mode == mode) and saved_mode in MODES:
            sm.state = ARMED
            sm.mode = saved_mode
        return sm
