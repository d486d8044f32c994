"""report: the one config key the reports add (the engine's premium samples)."""

from __future__ import annotations

import pytest

from supervisors.config import load_config
from supervisors.config_loader import ConfigError


def test_premium_samples_default_to_every_five_seconds_and_zero_turns_them_off() -> None:
    assert load_config().report.premium_sample_s == 5.0
    assert load_config(None, ["report.premium_sample_s=0"]).report.premium_sample_s == 0.0


@pytest.mark.parametrize(("value", "problem"), [
    ("-1", "report.premium_sample_s: must be >= 0, got -1.0"),
    ("abc", "report.premium_sample_s: expected a number, got 'abc'")])
def test_a_bad_interval_is_refused_with_its_key_path(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"report.premium_sample_s={value}"])
    assert e.value.problems == [problem]
