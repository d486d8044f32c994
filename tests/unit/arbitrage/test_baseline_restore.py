"""Warm restart of the premium baseline: export, restore, check against live samples."""

from __future__ import annotations

import json

import pytest

from arbitrage.baseline import (
    STATE_VERSION,
    BaselineConfig,
    PremiumBaseline,
    dump_state,
    load_state,
)

CFG = BaselineConfig(time_constant_s=60.0, warmup_samples=5, warmup_s=2.0, restore_verify_samples=4,
                     restore_tolerance_pct=0.5, restore_max_age_s=120.0)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def warm(b: PremiumBaseline, c: Clock, sym: str = "BTC", value: float = 2.0) -> None:
    for _ in range(10):
        c.t += 0.5
        b.update(sym, value)
    assert b.is_warm(sym)


def test_a_warm_baseline_round_trips_through_its_document() -> None:
    c = Clock()
    b = PremiumBaseline(CFG, c)
    warm(b, c)
    b.update("ETH", 1.0)  # not warm: not exported
    doc = json.loads(json.dumps(dump_state(b, 1_000.0)))
    states, why = load_state(doc, 1_010.0, CFG.restore_max_age_s)
    assert why == "" and set(states) == {"BTC"}
    assert states["BTC"][0] == pytest.approx(2.0) and states["BTC"][1] == 10


def test_a_restored_baseline_is_offered_only_after_live_samples_agree() -> None:
    c = Clock()
    b = PremiumBaseline(CFG, c)
    assert b.restore("BTC", 2.0, 500)
    assert b.status("BTC") == "checking" and b.value("BTC") is None
    results = []
    for x in (2.1, 1.9, 2.2):
        c.t += 0.05
        results.append(b.update("BTC", x))
    assert results == [None, None, None]  # no opportunity may be priced off an unchecked value
    c.t += 0.05
    assert b.update("BTC", 2.0) == pytest.approx(2.0, abs=0.05)
    assert b.status("BTC") == "warm"
    assert [o[:2] for o in b.take_outcomes()] == [("BTC", "verified")]
    # far quicker than the cold warm-up (2 s and 5 samples here; 30 s by default)
    assert c.t - 100.0 < CFG.warmup_s


def test_a_restored_baseline_that_disagrees_is_dropped_and_warms_up_cold_from_those_samples() -> None:
    c = Clock()
    b = PremiumBaseline(CFG, c)
    b.restore("BTC", 2.0, 500)
    for _ in range(4):
        c.t += 0.1
        assert b.update("BTC", -1.0) is None
    assert [o[:2] for o in b.take_outcomes()] == [("BTC", "disagreed")]
    assert b.status("BTC") == "warming" and b.samples("BTC") == 4
    assert b.estimate("BTC") == pytest.approx(-1.0)
    c.t += 2.0
    assert b.update("BTC", -1.0) == pytest.approx(-1.0)  # warm after its own cold warm-up


def test_one_outlier_among_the_check_samples_does_not_reject_an_agreeing_state() -> None:
    c = Clock()
    b = PremiumBaseline(CFG, c)
    b.restore("BTC", 2.0, 500)
    for x in (2.0, 9.0, 2.1, 1.9):
        c.t += 0.05
        b.update("BTC", x)
    assert b.is_warm("BTC")


def test_restore_is_refused_for_a_symbol_with_live_samples_or_a_bad_value() -> None:
    c = Clock()
    b = PremiumBaseline(CFG, c)
    b.update("BTC", 2.0)
    assert not b.restore("BTC", 2.0, 10)
    assert not b.restore("ETH", float("nan"), 10)


@pytest.mark.parametrize(("doc", "expect"), [
    ({"version": STATE_VERSION + 1, "ts": 1000.0, "symbols": {}}, "version"),
    ({"version": STATE_VERSION, "ts": 800.0, "symbols": {"BTC": {"value": 2.0, "n": 5}}}, "old"),
    ({"version": STATE_VERSION, "symbols": {}}, "lacks"),
    ({"version": STATE_VERSION, "ts": 1000.0, "symbols": {"BTC": {"value": "x", "n": 5}}}, "bad entry"),
    ({"version": STATE_VERSION, "ts": 1000.0, "symbols": {"BTC": {"value": float("inf"), "n": 5}}}, "bad entry"),
    ({"version": STATE_VERSION, "ts": 1000.0, "symbols": {"BTC": [2.0, 5]}}, "bad entry"),
    ([1, 2, 3], "not a state document"),
    (None, "not a state document"),
])
def test_unusable_documents_are_refused_with_a_reason(doc: object, expect: str) -> None:
    states, why = load_state(doc, 1000.0, 120.0)
    assert states == {} and expect in why


def test_restoring_can_be_turned_off() -> None:
    doc = {"version": STATE_VERSION, "ts": 1000.0, "symbols": {"BTC": {"value": 2.0, "n": 5}}}
    assert load_state(doc, 1000.0, 0.0) == ({}, "restoring is off (baseline.restore_max_age_s = 0)")


def test_bad_restore_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="restore_verify_samples"):
        BaselineConfig(restore_verify_samples=0)
    with pytest.raises(ValueError, match="restore_tolerance_pct"):
        BaselineConfig(restore_tolerance_pct=0.0)
