from datetime import datetime

import pytest

from supervisors.since import parse_since

NOW_NS = 1_796_000_000 * 10**9


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("30m", 1800), ("1h", 3600), ("2d", 172_800), ("1w", 604_800), ("1h30m", 5400),
    ("1.5h", 5400), (" 10m ", 600)])
def test_a_duration_counts_back_from_now(text: str, seconds: int) -> None:
    assert parse_since(text, NOW_NS) == NOW_NS - seconds * 10**9


def test_an_iso_time_with_an_offset_is_that_instant() -> None:
    midnight_utc = 1_795_996_800 * 10**9  # 2026-11-30T00:00:00Z
    assert parse_since("2026-11-30T00:00:00Z", NOW_NS) == midnight_utc
    assert parse_since("2026-11-30T09:00:00+09:00", NOW_NS) == midnight_utc


def test_an_iso_time_without_an_offset_is_local_time() -> None:
    local = datetime(2026, 11, 30, 9, 15).astimezone()
    assert parse_since("2026-11-30T09:15", NOW_NS) == int(local.timestamp()) * 10**9
    assert parse_since("2026-11-30 09:15:00", NOW_NS) == int(local.timestamp()) * 10**9


@pytest.mark.parametrize("text", ["", "yesterday", "5x", "-1h", "1h-", "h", "2026-13-01", "10"])
def test_anything_else_is_one_line_naming_both_forms(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_since(text, NOW_NS)
    msg = str(e.value)
    assert msg.startswith("--since: ") and "\n" not in msg
    assert "ISO time" in msg and "duration" in msg
