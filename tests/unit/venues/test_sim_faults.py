"""Fault bodies are validated; faults expire; rate windows slide."""

from __future__ import annotations

import pytest

from venues.sim.faults import FaultBoard, FaultError, RateWindow, WeightWindow, parse_fault


@pytest.mark.parametrize("body", [
    {"venue": "upbit", "kind": "pause", "seconds": 2},
    {"venue": "binance", "kind": "drop"},
    {"venue": "binance", "kind": "drop", "seconds": 1, "graceful": True},
    {"venue": "upbit", "kind": "malformed", "seconds": 0.5},
    {"venue": "binance", "kind": "http_error", "seconds": 3, "status": 429},
    {"venue": "upbit", "kind": "http_error", "seconds": 3},
    {"venue": "binance", "kind": "delay", "seconds": 3, "delay_s": 0.2},
    {"venue": "upbit", "kind": "insufficient_funds", "seconds": 10},
    {"venue": "upbit", "kind": "http_error", "seconds": 10, "status": 503, "requests": 1},
    {"venue": "binance", "kind": "delay", "seconds": 10, "delay_s": 1.5, "requests": 3},
])
def test_valid_fault_bodies_parse(body: dict[str, object]) -> None:
    venue, kind, seconds, params = parse_fault(body)
    assert (venue, kind) == (body["venue"], body["kind"]) and seconds >= 0


@pytest.mark.parametrize(("body", "message"), [
    ([], "JSON object"),
    ({"venue": "kraken", "kind": "pause", "seconds": 1}, "'venue'"),
    ({"venue": "upbit", "kind": "explode", "seconds": 1}, "'kind'"),
    ({"venue": "upbit", "kind": "pause"}, "'seconds' is required"),
    ({"venue": "upbit", "kind": "pause", "seconds": -1}, "'seconds'"),
    ({"venue": "upbit", "kind": "pause", "seconds": "2"}, "'seconds'"),
    ({"venue": "upbit", "kind": "pause", "seconds": 1, "delay_s": 1}, "unknown field 'delay_s'"),
    ({"venue": "upbit", "kind": "http_error", "seconds": 1, "status": 404}, "'status'"),
    ({"venue": "upbit", "kind": "delay", "seconds": 1}, "'delay_s' is required"),
    ({"venue": "upbit", "kind": "http_error", "seconds": 1, "requests": 0}, "'requests' must be a whole number"),
    ({"venue": "upbit", "kind": "http_error", "seconds": 1, "requests": 1.5}, "'requests' must be a whole number"),
    ({"venue": "upbit", "kind": "delay", "seconds": 1, "delay_s": 1, "requests": True}, "'requests'"),
    ({"venue": "upbit", "kind": "pause", "seconds": 1, "requests": 2}, "unknown field 'requests'"),
])
def test_invalid_fault_bodies_say_why(body: object, message: str) -> None:
    with pytest.raises(FaultError, match=message):
        parse_fault(body)


def test_faults_expire_and_clear() -> None:
    board = FaultBoard()
    board.set("upbit", "pause", 2.0, {}, now=100.0)
    assert board.active("upbit", "pause", 101.0) is not None
    assert board.active("binance", "pause", 101.0) is None
    assert board.active("upbit", "pause", 102.0) is None
    board.set("upbit", "delay", 5.0, {"delay_s": 1.0}, now=0.0)
    assert board.clear() == 1 and board.view(0.0) == []


def test_a_request_bounded_fault_hits_that_many_requests_then_ends() -> None:
    board = FaultBoard()
    board.set("upbit", "http_error", 10.0, {"status": 503, "requests": 2}, now=0.0)
    assert board.view(0.0)[0]["requests_left"] == 2
    assert board.active("upbit", "http_error", 1.0) is not None  # a look does not count
    assert board.take("upbit", "http_error", 1.0) is not None
    assert board.take("upbit", "http_error", 1.1) is not None
    assert board.take("upbit", "http_error", 1.2) is None and board.view(1.2) == []
    board.set("upbit", "delay", 1.0, {"delay_s": 1.0, "requests": 5}, now=0.0)
    assert board.take("upbit", "delay", 2.0) is None  # the time bound still holds
    board.set("binance", "delay", 1.0, {"delay_s": 1.0}, now=0.0)
    assert all(board.take("binance", "delay", 0.5) is not None for _ in range(10))  # unbounded: time only


def test_rate_window_allows_the_limit_per_second() -> None:
    window = RateWindow(3)
    assert [window.hit(10.0), window.hit(10.1), window.hit(10.2), window.hit(10.3)] == [True, True, True, False]
    assert window.remaining(10.3) == 0
    assert window.retry_after(10.3) == pytest.approx(0.7)
    assert window.hit(11.05)


def test_weight_window_sums_the_last_minute() -> None:
    weights = WeightWindow()
    assert weights.add(0.0, 20) == 20
    assert weights.add(30.0, 5) == 25
    assert weights.add(61.0, 1) == 6
