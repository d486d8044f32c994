"""Config loading: typed sections, every problem at once with its key path,
did-you-mean hints, secrets refused, ``--set`` overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from supervisors.config import ArbdConfig, load_config
from supervisors.config_loader import ConfigError


def _problems(tmp_path: Path, text: str, overrides: tuple[str, ...] = (), mode: str | None = None) -> list[str]:
    path = tmp_path / "arbd.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides, mode)
    assert str(e.value) == "; ".join(e.value.problems)
    return e.value.problems


def _load(tmp_path: Path, text: str, overrides: tuple[str, ...] = (), mode: str | None = None) -> ArbdConfig:
    path = tmp_path / "arbd.yaml"
    path.write_text(text)
    return load_config(path, overrides, mode)


def _one(problems: list[str], path: str) -> str:
    hits = [p for p in problems if p.startswith(f"{path}:")]
    assert len(hits) == 1, (path, problems)
    return hits[0]


# -- valid input ------------------------------------------------------------------

def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert _load(tmp_path, "") == ArbdConfig()


def test_the_shipped_default_config_loads() -> None:
    cfg = load_config(None)

    assert cfg.mode == "paper"


def test_values_are_typed_and_sections_frozen(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "bus: {pub_hwm: 5000, ack_timeout_s: 2}\nvenues: {symbols: [BTC]}\n")

    assert cfg.bus.pub_hwm == 5000
    assert cfg.bus.ack_timeout_s == 2.0 and type(cfg.bus.ack_timeout_s) is float
    assert cfg.venues.symbols == ("BTC",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.bus.pub_hwm = 1  # type: ignore[misc]


def test_set_overrides_a_key_by_its_dotted_path_in_yaml_syntax(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "supervision: {intensity: 2}\n",
                ("supervision.intensity=7", "venues.symbols=[BTC, ETH]", "metrics.enabled=false",
                 "bus.transport=tcp"))

    assert cfg.supervision.intensity == 7
    assert cfg.venues.symbols == ("BTC", "ETH")
    assert cfg.metrics.enabled is False
    assert cfg.bus.transport == "tcp"


def test_set_creates_a_section_the_file_does_not_have(tmp_path: Path) -> None:
    assert _load(tmp_path, "mode: paper\n", ("bus.pub_hwm=77",)).bus.pub_hwm == 77


def test_mode_overrides_the_files_mode(tmp_path: Path) -> None:
    assert _load(tmp_path, "mode: paper\n", mode="live_readonly").mode == "live_readonly"


# -- every problem at once ------------------------------------------------------------

def test_every_problem_is_reported_at_once_with_its_key_path(tmp_path: Path) -> None:
    problems = _problems(tmp_path, """
mode: papr
bus: {pub_hwm: -1, transport: carrier-pigeon}
supervision: {intensity: two}
metrics: {port: 70000}
venues: {symbols: BTC}
watchdog: {rss_limit_mb: 0}
colour: blue
""", overrides=("supervision.period_s=-3",))

    assert "papr" in _one(problems, "mode")
    assert "> 0" in _one(problems, "bus.pub_hwm")
    assert "carrier-pigeon" in _one(problems, "bus.transport")
    assert "integer" in _one(problems, "supervision.intensity")
    assert "> 0" in _one(problems, "supervision.period_s")
    assert "70000" in _one(problems, "metrics.port")
    assert "list" in _one(problems, "venues.symbols")
    assert "> 0" in _one(problems, "watchdog.rss_limit_mb")
    assert "unknown key" in _one(problems, "colour")
    assert len(problems) == 9, problems


def test_two_bad_limits_in_one_section_are_both_reported(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "supervision: {heartbeat_interval_s: -1, shutdown_grace_s: 0}\n")

    _one(problems, "supervision.heartbeat_interval_s")
    _one(problems, "supervision.shutdown_grace_s")


# -- did you mean -----------------------------------------------------------------

@pytest.mark.parametrize("text,path,hint", [
    ("supervison: {}\n", "supervison", "supervision"),
    ("bus: {pub_hmw: 10}\n", "bus.pub_hmw", "pub_hwm"),
    ("supervision: {liveness: 3}\n", "supervision.liveness", "liveness_s"),
    ("venues: {symbol: [BTC]}\n", "venues.symbol", "symbols"),
])
def test_a_misspelled_key_gets_a_did_you_mean_hint(tmp_path: Path, text: str, path: str, hint: str) -> None:
    line = _one(_problems(tmp_path, text), path)

    assert "unknown key" in line and f"did you mean '{hint}'" in line


def test_a_key_like_nothing_known_gets_no_hint(tmp_path: Path) -> None:
    line = _one(_problems(tmp_path, "bus: {zzzzqqq: 1}\n"), "bus.zzzzqqq")

    assert line == "bus.zzzzqqq: unknown key"


def test_a_misspelled_key_in_set_gets_the_hint_too(tmp_path: Path) -> None:
    line = _one(_problems(tmp_path, "", ("bus.pub_hmw=5",)), "bus.pub_hmw")

    assert "did you mean 'pub_hwm'" in line


# -- secrets ----------------------------------------------------------------------

@pytest.mark.parametrize("text,path", [
    ("api_key: sk-9f8e7d6c5b4a\n", "api_key"),
    ("venues: {secret: sk-9f8e7d6c5b4a}\n", "venues.secret"),
    ("venues: {apiKey: sk-9f8e7d6c5b4a}\n", "venues.apiKey"),
    ("venues: {ACCESS_KEY: sk-9f8e7d6c5b4a}\n", "venues.ACCESS_KEY"),
    ("metrics: {password: sk-9f8e7d6c5b4a}\n", "metrics.password"),
    ("bus: {private_key: sk-9f8e7d6c5b4a}\n", "bus.private_key"),
])
def test_a_key_that_looks_like_a_secret_is_rejected_without_echoing_it(tmp_path: Path, text: str,
                                                                      path: str) -> None:
    problems = _problems(tmp_path, text)

    line = _one(problems, path)
    assert "environment" in line and "BINANCE_API_KEY" in line
    assert "sk-9f8e7d6c5b4a" not in "\n".join(problems)


def test_a_secret_given_with_set_is_rejected_too(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "", ("venues.secret_key=sk-9f8e7d6c5b4a",))

    assert "environment" in _one(problems, "venues.secret_key")
    assert "sk-9f8e7d6c5b4a" not in "\n".join(problems)


# -- limits and types ---------------------------------------------------------------

@pytest.mark.parametrize("text,path", [
    ("bus: {pub_hwm: -1}\n", "bus.pub_hwm"),
    ("bus: {sub_hwm: 0}\n", "bus.sub_hwm"),
    ("bus: {ack_timeout_s: -0.5}\n", "bus.ack_timeout_s"),
    ("supervision: {intensity: -2}\n", "supervision.intensity"),
    ("supervision: {period_s: 0}\n", "supervision.period_s"),
    ("supervision: {liveness_s: -3}\n", "supervision.liveness_s"),
    ("supervision: {backoff_max_s: -1}\n", "supervision.backoff_max_s"),
    ("supervision: {backoff_initial_s: -1}\n", "supervision.backoff_initial_s"),
    ("metrics: {port: -1}\n", "metrics.port"),
    ("feeds: {stale_after_s: 0}\n", "feeds.stale_after_s"),
    ("watchdog: {fail_closed_after_s: -1}\n", "watchdog.fail_closed_after_s"),
    ("position_adv: {max_exposure_krw: -100}\n", "position_adv.max_exposure_krw"),
    ("longrun: {interval_loops: 0}\n", "longrun.interval_loops"),
])
def test_a_negative_or_zero_limit_is_rejected_at_its_key(tmp_path: Path, text: str, path: str) -> None:
    problems = _problems(tmp_path, text)

    assert any(p.startswith(f"{path}: must be") for p in problems), problems


def test_liveness_must_exceed_the_heartbeat_interval(tmp_path: Path) -> None:
    line = _one(_problems(tmp_path, "supervision: {heartbeat_interval_s: 2, liveness_s: 1}\n"),
                "supervision.liveness_s")

    assert "heartbeat_interval_s" in line


@pytest.mark.parametrize("text,path,expected", [
    ("mode: 5\n", "mode", "must be one of"),
    ("log_level: LOUD\n", "log_level", "must be one of"),
    ("bus: {pub_hwm: many}\n", "bus.pub_hwm", "integer"),
    ("bus: {pub_hwm: 1.5}\n", "bus.pub_hwm", "integer"),
    ("supervision: {intensity: true}\n", "supervision.intensity", "integer"),
    ("supervision: {liveness_s: soon}\n", "supervision.liveness_s", "number"),
    ("metrics: {enabled: 'yes'}\n", "metrics.enabled", "true/false"),
    ("metrics: {host: 127}\n", "metrics.host", "string"),
    ("venues: {symbols: [BTC, 7]}\n", "venues.symbols[1]", "string"),
    ("bus: [1, 2]\n", "bus", "mapping"),
    ("paper: {coin_units: [BTC]}\n", "paper.coin_units", "mapping"),
    ("paper: {coin_units: {BTC: lots}}\n", "paper.coin_units.BTC", "number"),
])
def test_a_wrong_type_is_rejected_at_its_key(tmp_path: Path, text: str, path: str, expected: str) -> None:
    assert expected in _one(_problems(tmp_path, text), path)


# -- files and --set ------------------------------------------------------------------

def test_a_missing_file_is_one_problem_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError) as e:
        load_config(missing)

    assert e.value.problems == [f"{missing}: no such config file"]


def test_a_directory_instead_of_a_file_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path)

    assert len(e.value.problems) == 1 and str(tmp_path) in e.value.problems[0]


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "mode: paper\nbus: {pub_hwm: 5\nmetrics: {}\n")

    assert len(problems) == 1 and "not valid YAML" in problems[0] and "line" in problems[0]


def test_a_top_level_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "- mode\n- paper\n")

    assert problems == [f"{tmp_path / 'arbd.yaml'}: the top level must be a mapping"]


@pytest.mark.parametrize("assignment,fragment", [
    ("novalue", "KEY=VALUE"),
    ("=5", "KEY=VALUE"),
    ("bus..pub_hwm=5", "KEY=VALUE"),
    ("bus.pub_hwm=[unclosed", "not valid YAML"),
    ("mode.sub=1", "not a section"),
    ("bus.pub_hwm=-4", "> 0"),
    ("bus.pub_hwm=lots", "integer"),
])
def test_a_bad_set_is_reported(tmp_path: Path, assignment: str, fragment: str) -> None:
    problems = _problems(tmp_path, "mode: paper\n", (assignment,))

    assert any(fragment in p for p in problems), problems


def test_bad_sets_and_file_problems_are_reported_together(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "bus: {pub_hwm: -1}\n", ("novalue", "metrics.port=x"), mode="yolo")

    assert any("novalue" in p for p in problems)
    assert any(p.startswith("--mode") for p in problems)
    _one(problems, "bus.pub_hwm")
    _one(problems, "metrics.port")
