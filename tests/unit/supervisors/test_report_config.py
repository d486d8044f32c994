"""report: the one config key the reports add (the engine's premium samples)."""

from __future__ import annotations

import pytest

from supervisors.config import load_config
from supervisors.config_loader import ConfigError


def test_premium_samples_default_to_every_five_seconds_and_zero_turns_them_off() -> None:
    assert load_config().report.premium_sample_s == 5.0
    assert load_config(None, ["report.premium_sample_s=0"]).report.premium_sample_s == 0.0


@pytest.mark.parametrize(("value", "why"), [("-1", "must be >= 0"), ("abc", "'abc'")])
def test_a_bad_interval_is_refused_with_its_key_path(value: str, why: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"report.premium_sample_s={value}"])
    (problem,) = e.value.problems
    assert problem.startswith("report.premium_sample_s: ") and why in problem
