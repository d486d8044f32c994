"""TradingStateMachine: operator state, fail-closed overlay, persistence."""

from __future__ import annotations

import json

import pytest

from arbitrage.trading_state import (
    ESCALATION,
    HALT_CAUSES,
    SESSION_STOP,
    TradingStateMachine,
    halt_cause,
    halt_reason,
)


def armed(mode: str = "paper") -> TradingStateMachine:
    sm = TradingStateMachine()
    ok, _ = sm.arm(mode, live_enabled=True, confirm="live_trading")
    assert ok
    return sm


# -- arming ---------------------------------------------------------------------------

def test_a_new_machine_starts_disarmed_and_blocks_orders() -> None:
    sm = TradingStateMachine()

    assert sm.state == "disarmed"
    assert sm.orders_may_flow() is False
    assert sm.blocking_reason() == "disarmed"


def test_paper_mode_arms_without_confirmation() -> None:
    sm = TradingStateMachine()

    ok, reason = sm.arm("paper", live_enabled=False, confirm="")

    assert ok is True
    assert reason == "armed (paper)"
    assert sm.orders_may_flow() is True


def test_live_trading_refuses_to_arm_when_not_enabled_in_config() -> None:
    sm = TradingStateMachine()

    ok, reason = sm.arm("live_trading", live_enabled=False, confirm="live_trading")

    assert ok is False
    assert "live_trading.enabled=False" in reason
    assert sm.state == "disarmed"


def test_live_trading_refuses_to_arm_without_the_confirm_word() -> None:
    sm = TradingStateMachine()

    ok, reason = sm.arm("live_trading", live_enabled=True, confirm="yes")

    assert ok is False
    assert "--confirm live_trading" in reason
    assert sm.state == "disarmed"


def test_live_trading_arms_with_config_enabled_and_confirmation() -> None:
    sm = TradingStateMachine()

    ok, _ = sm.arm("live_trading", live_enabled=True, confirm="live_trading")

    assert ok is True
    assert sm.orders_may_flow() is True


def test_live_readonly_arms_but_says_orders_stay_disabled() -> None:
    sm = TradingStateMachine()

    ok, reason = sm.arm("live_readonly", live_enabled=False, confirm="")

    assert ok is True
    assert "orders stay disabled" in reason


def test_an_unknown_mode_is_refused() -> None:
    ok, reason = TradingStateMachine().arm("yolo", live_enabled=True, confirm="live_trading")

    assert ok is False
    assert "yolo" in reason


def test_a_refused_arm_does_not_lift_a_halt() -> None:
    sm = armed()
    sm.halt("operator")

    sm.arm("live_trading", live_enabled=False, confirm="")

    assert sm.state == "halted"
    assert sm.halt_reason == "operator"


# -- halting ----------------------------------------------------------------------------

def test_halt_stops_orders_and_says_why() -> None:
    sm = armed()

    changed = sm.halt("daily loss -25.0 exceeds max -20.0")

    assert changed is True
    assert sm.orders_may_flow() is False
    assert sm.blocking_reason() == "halted: daily loss -25.0 exceeds max -20.0"


def test_a_second_halt_keeps_the_first_cause() -> None:
    sm = armed()
    sm.halt("first")

    changed = sm.halt("second")

    assert changed is False
    assert sm.halt_reason == "first"


def test_arming_lifts_a_halt() -> None:
    sm = armed()
    sm.halt("operator")

    ok, reason = sm.arm("paper", live_enabled=False, confirm="")

    assert ok is True
    assert "halt lifted" in reason
    assert sm.halt_reason == ""
    assert sm.orders_may_flow() is True


def test_disarm_does_not_lift_a_halt() -> None:
    sm = armed()
    sm.halt("operator")

    assert sm.disarm() is False
    assert sm.state == "halted"


# -- fail-closed overlay ---------------------------------------------------------------------

def test_a_fail_closed_condition_blocks_an_armed_machine() -> None:
    sm = armed()

    sm.raise_fail_closed("stale.upbit", "stale feed upbit BTC")

    assert sm.orders_may_flow() is False
    assert sm.blocking_reason() == "fail_closed: stale feed upbit BTC"


def test_orders_flow_again_once_every_condition_is_cleared() -> None:
    sm = armed()
    sm.raise_fail_closed("stale.upbit", "a")
    sm.raise_fail_closed("actor.executor", "b")

    sm.clear_fail_closed("stale.upbit")
    still_blocked = sm.orders_may_flow()
    sm.clear_fail_closed("actor.executor")

    assert still_blocked is False
    assert sm.orders_may_flow() is True


def test_reasons_are_ordered_by_key() -> None:
    sm = armed()
    sm.raise_fail_closed("stale.upbit", "upbit stale")
    sm.raise_fail_closed("actor.executor", "executor down")

    assert sm.reasons() == ("executor down", "upbit stale")
    assert sm.fail_closed_keys() == ("actor.executor", "stale.upbit")


def test_raising_reports_only_new_conditions_and_clearing_only_raised_ones() -> None:
    sm = TradingStateMachine()

    assert sm.raise_fail_closed("k", "r") is True
    assert sm.raise_fail_closed("k", "r2") is False
    assert sm.reasons() == ("r2",)
    assert sm.clear_fail_closed("k") is True
    assert sm.clear_fail_closed("k") is False


def test_halt_is_reported_before_fail_closed() -> None:
    sm = armed()
    sm.raise_fail_closed("k", "feed stale")
    sm.halt("operator")

    assert sm.blocking_reason() == "halted: operator"


# -- persistence ----------------------------------------------------------------------------

def test_a_halt_survives_a_round_trip_through_json() -> None:
    sm = armed()
    sm.halt("escalation: engine crashed")

    restored = TradingStateMachine.from_dict(json.loads(json.dumps(sm.to_dict())))

    assert restored.state == "halted"
    assert restored.halt_reason == "escalation: engine crashed"


def test_fail_closed_conditions_are_not_persisted() -> None:
    sm = armed()
    sm.raise_fail_closed("stale.upbit", "stale")

    restored = TradingStateMachine.from_dict(sm.to_dict(), mode="paper")

    assert "stale" not in json.dumps(sm.to_dict())
    assert restored.reasons() == ()
    assert restored.orders_may_flow() is True


def test_armed_survives_only_for_the_same_mode() -> None:
    saved = armed("paper").to_dict()

    same = TradingStateMachine.from_dict(saved, mode="paper")
    other = TradingStateMachine.from_dict(saved, mode="live_trading")

    assert same.state == "armed"
    assert other.state == "disarmed"


def test_a_halt_survives_a_change_of_mode() -> None:
    sm = armed("paper")
    sm.halt("operator")

    restored = TradingStateMachine.from_dict(sm.to_dict(), mode="live_trading")

    assert restored.state == "halted"


def test_the_supervisors_halt_file_is_understood() -> None:
    # supervisors.daemon.halt_without_guard writes these keys.
    data = {"state": "halted", "halt_reason": "escalation: x", "ts": 1.0}

    assert TradingStateMachine.from_dict(data).blocking_reason() == "halted: escalation: x"


def test_empty_data_restores_a_fresh_disarmed_machine() -> None:
    assert TradingStateMachine.from_dict({}).state == "disarmed"


@pytest.mark.parametrize("data", [{"state": "flying"}, ["halted"], "armed"])
def test_unreadable_data_restores_halted(data: object) -> None:
    restored = TradingStateMachine.from_dict(data)

    assert restored.state == "halted"
    assert "unreadable" in restored.halt_reason


# -- why it is halted (the arbd_halted{cause} label) ----------------------------------------

@pytest.mark.parametrize(("reason", "cause"), [
    (halt_reason(SESSION_STOP, "daily loss -25 exceeds max -20"), "session_stop"),
    (halt_reason(ESCALATION, "engine exceeded restart intensity (5 in 30.0s)"), "escalation"),
    ("operator halt", "operator"),
    ("maintenance: session_stop later", "operator"),  # only the head names a system cause
    ("session_stop", "operator"),  # the system always writes "<cause>: <detail>"
    ("halted before restart", "operator"),
    ("", "operator"),
])
def test_halt_cause_reads_back_the_cause_the_system_wrote_and_calls_the_rest_operator(
        reason: str, cause: str) -> None:
    assert halt_cause(reason) == cause
    assert halt_cause(reason) in HALT_CAUSES


def test_a_session_stop_halt_keeps_its_cause_when_the_operator_halts_again() -> None:
    sm = armed("live_trading")
    sm.halt(halt_reason(SESSION_STOP, "daily loss -25 exceeds max -20"))

    sm.halt("operator halt")

    assert halt_cause(sm.halt_reason) == SESSION_STOP
