"""Metric keys as actors write them into their heartbeat counters."""

from supervisors.metricnames import key, parse


def test_a_label_may_be_called_kind() -> None:
    k = key("c", "arbd_venue_rejects_total", venue="binance", kind="funds")

    assert parse(k) == ("c", "arbd_venue_rejects_total", {"kind": "funds", "venue": "binance"})


def test_a_key_without_labels_has_no_separator() -> None:
    assert key("g", "risk_mode_current") == "g.risk_mode_current"
    assert parse("loops") is None
