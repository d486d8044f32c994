"""Numbers as a person writes them, in a config file and in ``--set``: 1e12,
1_000_000, 50, 0.5. Anything else is one problem at its key path; a
negative value where the key must not be one names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisors.config import ArbdConfig, load_config
from supervisors.config_doc import rows
from supervisors.config_loader import ConfigError, parse_yaml


def _set(*assignments: str) -> ArbdConfig:
    return load_config(None, assignments)


def _problems(*assignments: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(None, assignments)
    return e.value.problems


# -- what a person writes -------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("1e12", 1e12),
    ("1E12", 1e12),
    ("1e+12", 1e12),
    ("2.5e-3", 0.0025),
    ("1_000_000", 1_000_000.0),
    ("1_000.5", 1000.5),
    ("50", 50.0),
    ("0.5", 0.5),
    (".5", 0.5),
    ("20.", 20.0),
    ("+7", 7.0),
])
def test_a_float_key_takes_every_way_of_writing_a_number(text: str, value: float) -> None:
    cfg = _set(f"live_trading.max_daily_loss={text}")

    assert cfg.live_trading.max_daily_loss == value
    assert type(cfg.live_trading.max_daily_loss) is float


def test_the_issue_s_own_command_line_value_is_accepted() -> None:
    assert _set("live_trading.max_daily_loss=1e12").live_trading.max_daily_loss == 1e12


@pytest.mark.parametrize("text,value", [("1e5", 100_000), ("1_000", 1000), ("2.0e3", 2000), ("050", 50)])
def test_an_integer_key_takes_a_whole_number_however_written(text: str, value: int) -> None:
    cfg = _set(f"bus.pub_hwm={text}")

    assert cfg.bus.pub_hwm == value and type(cfg.bus.pub_hwm) is int


def test_a_config_file_reads_numbers_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "arbd.yaml"
    path.write_text("live_trading: {max_daily_loss: 1e12, max_notional_per_trade: 1_000}\n"
                    "bus: {pub_hwm: 2e5}\n")

    cfg = load_config(path)

    assert cfg.live_trading.max_daily_loss == 1e12
    assert cfg.live_trading.max_notional_per_trade == 1000.0
    assert cfg.bus.pub_hwm == 200_000


def test_a_leading_zero_is_decimal_not_yaml_1_1_octal() -> None:
    assert _set("metrics.port=08000").metrics.port == 8000
    assert _set("metrics.port=0700").metrics.port == 700


def test_numbers_inside_lists_and_sim_settings_are_numbers_too() -> None:
    cfg = _set("sim.update_hz=1e1", "paper.coin_units={BTC: 1e-1, ETH: 2_0}")

    assert cfg.sim["update_hz"] == 10.0
    assert cfg.paper.coin_units == {"BTC": 0.1, "ETH": 20.0}


def test_words_and_booleans_keep_their_yaml_meaning() -> None:
    assert parse_yaml("[true, false, null, BTC, '1e3', 1INCH]") == [True, False, None, "BTC", "1e3", "1INCH"]


# -- what is not a number ---------------------------------------------------------------

@pytest.mark.parametrize("text", ["abc", "1__000", "1_", "1:30", "0x10", "1e", "e5", "12abc", "[1]"])
def test_something_that_is_not_a_number_is_one_problem_at_its_key(text: str) -> None:
    problems = _problems(f"live_trading.max_daily_loss={text}")

    assert len(problems) == 1, problems
    assert problems[0].startswith("live_trading.max_daily_loss: expected a number, got"), problems


@pytest.mark.parametrize("text", ["1.5", "2.5e0", "abc", "1e400"])
def test_an_integer_key_refuses_a_fraction_or_a_word(text: str) -> None:
    problems = _problems(f"bus.pub_hwm={text}")

    assert len(problems) == 1 and problems[0].startswith("bus.pub_hwm: expected an integer"), problems


def test_nan_is_refused_because_it_would_disable_a_limit() -> None:
    assert _problems("live_trading.max_daily_loss=.nan")[0].startswith(
        "live_trading.max_daily_loss: expected a number")


# -- negatives ----------------------------------------------------------------------------

def test_a_negative_daily_loss_limit_names_its_key() -> None:
    problems = _problems("live_trading.max_daily_loss=-5")

    assert len(problems) == 1
    assert problems[0].startswith("live_trading.max_daily_loss: must be"), problems


@pytest.mark.parametrize("path", [p for p, tp, _ in rows() if tp in ("int", "float")])
def test_every_numeric_key_refuses_minus_five_and_a_word_naming_the_key(path: str) -> None:
    for value in ("-5", "abc"):
        problems = _problems(f"{path}={value}")

        assert any(p.startswith(f"{path}:") for p in problems), (value, problems)


def test_a_section_s_own_class_name_is_not_put_before_the_key() -> None:
    problems = _problems("baseline.time_constant_s=-5", "strategy.cooldown_s=-1")

    assert "baseline.time_constant_s: must be > 0" in problems
    assert "strategy.cooldown_s: must be >= 0" in problems


def test_negative_paper_balances_are_refused_at_their_keys() -> None:
    problems = _problems("paper.upbit_krw=-1", "paper.coin_units={BTC: -2}")

    assert any(p.startswith("paper.upbit_krw: must be >= 0") for p in problems), problems
    assert any(p.startswith("paper.coin_units: ") and "BTC" in p for p in problems), problems
