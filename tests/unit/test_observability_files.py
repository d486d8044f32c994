"""The observability files: configs/prometheus.yml, configs/alerts.yml,
configs/alertmanager.yml and configs/grafana/arbd.json.

Every metric name the dashboard and the alerts reference must be one the
exporter can emit. That set is derived from the source, not listed by hand:
the families ``supervisors/metrics.py`` builds with a literal name, the
names actors declare through ``supervisors.metricnames`` (``key("g"|"c"|"h",
NAME, ...)`` and ``Histogram(counters, NAME)``), and the gauges the position
actor forwards in ``PositionState.gauges`` (string constants of the actor
module that builds a ``PositionState`` and of the ``arbitrage`` modules it
imports). prometheus_client exposes a counter family as ``<name>_total`` and
a histogram as ``_bucket``/``_sum``/``_count``; the derivation does the same.
``tests/integration/test_prometheus.py`` checks it against a live scrape.

Until a position actor exists, the four D14 gauges only it can forward
(``D14_POSITION_GAUGES``) are accepted as pending; as soon as any actor
module builds a ``PositionState``, they must be found in its code.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_YML = ROOT / "configs" / "prometheus.yml"
ALERTS_YML = ROOT / "configs" / "alerts.yml"
ALERTMANAGER_YML = ROOT / "configs" / "alertmanager.yml"
ALERTMANAGER_SH = ROOT / "scripts" / "alertmanager.sh"
DASHBOARD_JSON = ROOT / "configs" / "grafana" / "arbd.json"
EXPORTER = ROOT / "supervisors" / "metrics.py"
ACTOR_DIRS = (ROOT / "actors", ROOT / "supervisors", ROOT / "venues")

# Forwarded by the position actor in PositionState.gauges (D14 seed table).
D14_POSITION_GAUGES = frozenset({"volatility_smoothed", "exposure_drift_rate", "trend_regime",
                                 "risk_mode_current"})
# Series Prometheus itself adds to every scrape.
PROMETHEUS_SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped",
                                  "scrape_samples_post_metric_relabeling", "scrape_series_added"})
# The seed's Grafana queries, adapted to the names the exporter really emits
# (prometheus_client appends _total to counters).
SEED_QUERIES = ("volatility_smoothed", "exposure_drift_rate", "trend_regime",
                "increase(live_event_count", "risk_mode_current",
                "increase(failclosed_events")
GRAFANA_VARIABLES = {"$job": "arbitrage-lite", "$actor": ".*", "$__rate_interval": "1m"}

# -- deriving what the exporter can emit ----------------------------------------------------

_FAMILY_SUFFIXES = {
    "GaugeMetricFamily": ("",),
    "CounterMetricFamily": ("_total",),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
}
_KIND_SUFFIXES = {"g": ("",), "c": ("_total",), "h": ("_bucket", "_sum", "_count")}


def _exposed(base: str, suffixes: tuple[str, ...]) -> set[str]:
    if suffixes == ("_total",):
        base = base.removesuffix("_total")  # prometheus_client strips it, then appends it
    return {base + s for s in suffixes}


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _source_files(dirs: tuple[Path, ...]) -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob("*.py"))


def exporter_family_names() -> set[str]:
    """Names ``supervisors/metrics.py`` builds literally, as exposed."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(EXPORTER.read_text())):
        if isinstance(node, ast.Call) and _call_name(node) in _FAMILY_SUFFIXES and node.args:
            lit = _literal(node.args[0])
            if lit is not None:
                names |= _exposed(lit, _FAMILY_SUFFIXES[_call_name(node)])
    return names


def declared_actor_names() -> set[str]:
    """Names declared through ``supervisors.metricnames`` anywhere in the runtime code."""
    names: set[str] = set()
    for path in _source_files(ACTOR_DIRS):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            if name == "key" and len(node.args) >= 2:
                kind, metric = _literal(node.args[0]), _literal(node.args[1])
                if kind in _KIND_SUFFIXES and metric:
                    names |= _exposed(metric, _KIND_SUFFIXES[kind])
            elif name == "Histogram" and len(node.args) >= 2:
                metric = _literal(node.args[1])
                if metric:
                    names |= _exposed(metric, _KIND_SUFFIXES["h"])
    return names


def _builds_position_state(tree: ast.AST) -> bool:
    return any(isinstance(n, ast.Call) and _call_name(n) == "PositionState" for n in ast.walk(tree))


def _arbitrage_imports(tree: ast.AST) -> list[Path]:
    mods = []
    for node in ast.walk(tree):
        names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                 else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            if name.startswith("arbitrage."):
                path = ROOT / Path(*name.split(".")).with_suffix(".py")
                if path.exists():
                    mods.append(path)
    return mods


def position_gauge_sources() -> list[Path]:
    """The actor modules that build a PositionState, and the arbitrage modules
    they import (transitively)."""
    found: list[Path] = []
    todo = [p for p in _source_files((ROOT / "actors",)) if _builds_position_state(ast.parse(p.read_text()))]
    while todo:
        path = todo.pop()
        if path in found:
            continue
        found.append(path)
        todo.extend(_arbitrage_imports(ast.parse(path.read_text())))
    return found


def position_gauge_names() -> tuple[set[str], set[str]]:
    """(names found in the position actor's code, names still pending because
    no actor builds a PositionState yet)."""
    sources = position_gauge_sources()
    if not sources:
        return set(), set(D14_POSITION_GAUGES)
    constants: set[str] = set()
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            lit = _literal(node)
            if lit is not None:
                constants.add(lit)
    return constants & D14_POSITION_GAUGES, set()


def emittable_names() -> tuple[set[str], set[str]]:
    """(every metric name the exporter can emit, D14 names pending a position actor)."""
    found, pending = position_gauge_names()
    return exporter_family_names() | declared_actor_names() | found | PROMETHEUS_SYNTHETIC, pending


# -- reading PromQL -----------------------------------------------------------------------------

_PROMQL_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                              "group_left", "group_right", "inf", "nan", "atan2"})
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels,
    durations, numbers and Grafana variables left out)."""
    s = _STRINGS.sub('""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = _GROUPING.sub(" ", s)
    s = re.sub(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*", " ", s)
    s = _NUMBER.sub(" ", s)
    names = set()
    for m in _IDENT.finditer(s):
        word = m.group(0)
        if word.lower() in _PROMQL_KEYWORDS or re.match(r"\s*\(", s[m.end():]):
            continue
        names.add(word)
    return names


# -- reading the files ----------------------------------------------------------------------------

def load_alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS_YML.read_text())
    return [r for g in data["groups"] for r in g["rules"] if "alert" in r]


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text())


def dashboard_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows hold their panels
    return out


def dashboard_queries(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard_panels(dash) for t in p.get("targets", []) if t.get("expr")]


def with_grafana_variables(expr: str) -> str:
    """The expression as Grafana would send it, with this dashboard's variables filled in."""
    for var in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(var, GRAFANA_VARIABLES[var])
    return expr


def alert_queries() -> list[str]:
    return [r["expr"] for r in load_alert_rules()]


# -- the PromQL reader itself -------------------------------------------------------------------

@pytest.mark.parametrize(("expr", "names"), [
    ("up", {"up"}),
    ('sum by (le) (rate(arbd_x_bucket{job="$job", a=~"b(c)"}[$__rate_interval]))', {"arbd_x_bucket"}),
    ("histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", {"h_bucket"}),
    ("arbd_actor_rss_bytes > 500e6 and on (actor) arbd_actor_up == 1", {"arbd_actor_rss_bytes", "arbd_actor_up"}),
    ("max by (venue, symbol) (ws_freshness_seconds) > 30", {"ws_freshness_seconds"}),
])
def test_promql_reader_finds_the_metric_names_an_expression_selects(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_derivation_finds_the_exporters_own_families_with_their_exposed_names() -> None:
    names = exporter_family_names()

    assert {"arbd_actor_up", "arbd_actor_restarts_total", "arbd_fail_closed",
            "live_event_count", "failclosed_events"} <= names
    assert "arbd_actor_restarts" not in names


def test_derivation_finds_names_actors_declare_through_metricnames() -> None:
    names = declared_actor_names()

    assert {"ws_freshness_seconds", "memory_drift_rate", "arbd_guard_decisions_total",
            "arbd_quote_to_decision_seconds_bucket", "arbd_decision_to_ack_seconds_count"} <= names


# -- prometheus.yml -----------------------------------------------------------------------------

def test_prometheus_config_scrapes_the_seed_job_at_the_default_metrics_port() -> None:
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text())

    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert list(jobs) == ["arbitrage-lite"]
    targets = [t for sc in jobs["arbitrage-lite"]["static_configs"] for t in sc["targets"]]
    assert targets == ["127.0.0.1:8000"]
    assert jobs["arbitrage-lite"].get("metrics_path", "/metrics") == "/metrics"


def test_prometheus_config_loads_the_alert_rules_next_to_it() -> None:
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text())

    assert cfg["rule_files"] == ["alerts.yml"]
    assert (PROMETHEUS_YML.parent / "alerts.yml") == ALERTS_YML


def test_prometheus_scrapes_often_enough_to_see_an_escalation_before_the_daemon_exits() -> None:
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text())

    # supervisors/daemon.py shuts down 3 s after an escalation (its exporter last).
    assert seconds(cfg["global"]["scrape_interval"]) < 3
    assert all("scrape_interval" not in job for job in cfg["scrape_configs"])


def test_prometheus_sends_its_alerts_to_an_alertmanager_on_loopback() -> None:
    cfg = yaml.safe_load(PROMETHEUS_YML.read_text())

    targets = [t for am in cfg["alerting"]["alertmanagers"] for sc in am["static_configs"] for t in sc["targets"]]
    assert targets == ["127.0.0.1:9093"]


# -- alerts.yml ---------------------------------------------------------------------------------

def test_every_alert_has_a_for_duration_a_severity_and_annotations() -> None:
    for rule in load_alert_rules():
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_the_alerts_cover_fail_closed_restarts_stale_feeds_daily_loss_and_memory_drift() -> None:
    by_metric: dict[str, list[str]] = {}
    for rule in load_alert_rules():
        for name in promql_metric_names(rule["expr"]):
            by_metric.setdefault(name, []).append(rule["alert"])

    for metric in ("arbd_fail_closed", "arbd_actor_restarts_total", "ws_freshness_seconds",
                   "arbd_daily_pnl_usdt", "memory_drift_rate"):
        assert metric in by_metric, f"no alert on {metric}"


# What issue 14 asks the alerts to cover: alert name -> (a metric it must read, its for: duration).
OPERATOR_ALERTS = {
    "ArbdHalted": ("arbd_halted", "0m"),
    "ArbdSessionStop": ("arbd_halted", "0m"),
    "ArbdDailyLossLimitBreached": ("arbd_max_daily_loss_usdt", "0m"),
    "ArbdSupervisorEscalated": ("arbd_supervisor_escalations_total", "0m"),
    "ArbdFailClosed": ("arbd_fail_closed", "1m"),
    "ArbdNakedExposure": ("arbd_naked_exposure_age_seconds", None),
    "ArbdVenueRejectingOrders": ("arbd_venue_rejects_total", None),
    "ArbdActorRestartStorm": ("arbd_actor_restarts_total", None),
    "ArbdDown": ("up", None),
    "ArbdMetricsAbsent": ("up", None),
}


@pytest.mark.parametrize("alertname", sorted(OPERATOR_ALERTS))
def test_the_alerts_cover_what_a_person_must_hear_about(alertname: str) -> None:
    rules = {r["alert"]: r for r in load_alert_rules()}
    metric, duration = OPERATOR_ALERTS[alertname]

    assert alertname in rules
    assert metric in promql_metric_names(rules[alertname]["expr"])
    if duration is not None:
        assert rules[alertname]["for"] == duration


def test_the_session_stop_alert_selects_the_session_stop_cause_only() -> None:
    rules = {r["alert"]: r for r in load_alert_rules()}

    assert 'cause="session_stop"' in rules["ArbdSessionStop"]["expr"]
    assert rules["ArbdSessionStop"]["labels"]["severity"] == "critical"


def test_every_metric_the_alerts_reference_is_one_the_exporter_can_emit() -> None:
    emittable, pending = emittable_names()

    used = {n for expr in alert_queries() for n in promql_metric_names(expr)}

    assert used - emittable - pending == set()


def test_alert_names_are_unique() -> None:
    names = [r["alert"] for r in load_alert_rules()]

    assert len(names) == len(set(names))


# -- alertmanager.yml ---------------------------------------------------------------------------

SECRET_ENV = {"ARBD_TELEGRAM_BOT_TOKEN": "123456789:AAF-test_token-not-real",
              "ARBD_TELEGRAM_CHAT_ID": "-1001234567890",
              "ARBD_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/arbd-alerts"}
_DURATION = re.compile(r"^(\d+)([smh])$")


def load_alertmanager() -> dict[str, Any]:
    return yaml.safe_load(ALERTMANAGER_YML.read_text())


def seconds(duration: str) -> int:
    m = _DURATION.match(duration)
    assert m, f"unexpected duration {duration!r}"
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)]


def routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    """``route`` and every route under it."""
    return [route] + [r for child in route.get("routes", []) for r in routes(child)]


def matcher_alertnames(matchers: list[str]) -> set[str]:
    names: set[str] = set()
    for m in matchers:
        label, op, value = re.fullmatch(r'(\w+)\s*(=~|=)\s*"([^"]*)"', m).groups()  # type: ignore[union-attr]
        if label == "alertname":
            names |= set(value.split("|")) if op == "=~" else {value}
    return names


def render_alertmanager(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ALERTMANAGER_SH), "render", str(ALERTMANAGER_YML), str(out)],
                          capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)


def test_every_route_delivers_to_a_webhook_and_to_telegram() -> None:
    cfg = load_alertmanager()
    receivers = {r["name"]: r for r in cfg["receivers"]}

    for route in routes(cfg["route"]):
        receiver = receivers[route.get("receiver", cfg["route"]["receiver"])]
        assert len(receiver["webhook_configs"]) == 1 and len(receiver["telegram_configs"]) == 1
        assert receiver["webhook_configs"][0]["send_resolved"] is True


def test_alerts_are_grouped_per_daemon_and_rate_limited() -> None:
    root = load_alertmanager()["route"]
    (critical,) = root["routes"]

    assert set(root["group_by"]) == {"job", "instance"}
    assert critical["matchers"] == ['severity="critical"']
    for route in (root, critical):
        assert seconds(route["group_wait"]) <= 60
        assert seconds(route["group_interval"]) >= 60
        assert seconds(route["repeat_interval"]) >= 3600
    assert seconds(critical["group_wait"]) < seconds(root["group_wait"])
    assert {r["labels"]["severity"] for r in load_alert_rules()} == {"warning", "critical"}


def test_inhibit_rules_name_only_alerts_that_exist() -> None:
    alerts = {r["alert"] for r in load_alert_rules()}

    for rule in load_alertmanager()["inhibit_rules"]:
        named = matcher_alertnames(rule["source_matchers"]) | matcher_alertnames(rule["target_matchers"])
        assert named and named <= alerts, named - alerts
        assert rule["equal"] == ["job", "instance"]


def test_the_shipped_alertmanager_config_holds_no_secret_only_env_placeholders() -> None:
    text = ALERTMANAGER_YML.read_text()

    for key, env in (("bot_token", "ARBD_TELEGRAM_BOT_TOKEN"), ("chat_id", "ARBD_TELEGRAM_CHAT_ID"),
                     ("url", "ARBD_ALERT_WEBHOOK_URL")):
        lines = [ln for ln in text.splitlines() if re.match(rf"\s*(- )?{key}:", ln)]
        assert lines and all(ln.rstrip().endswith(f"# env: {env}") for ln in lines), lines
    assert not re.search(r"\d{6,}:[A-Za-z0-9_-]{20,}", text)  # nothing shaped like a real bot token


def test_render_fills_in_the_secrets_from_the_environment_into_a_private_file(tmp_path: Path) -> None:
    out = tmp_path / "alertmanager.yml"

    r = render_alertmanager(out, {"PATH": "/usr/bin:/bin", **SECRET_ENV})

    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    cfg, shipped = yaml.safe_load(out.read_text()), load_alertmanager()
    (receiver,) = cfg["receivers"]
    assert receiver["telegram_configs"][0]["bot_token"] == SECRET_ENV["ARBD_TELEGRAM_BOT_TOKEN"]
    assert receiver["telegram_configs"][0]["chat_id"] == int(SECRET_ENV["ARBD_TELEGRAM_CHAT_ID"])
    assert receiver["webhook_configs"][0]["url"] == SECRET_ENV["ARBD_ALERT_WEBHOOK_URL"]
    for placeholder in ("bot_token", "chat_id"):
        receiver["telegram_configs"][0].pop(placeholder)
        shipped["receivers"][0]["telegram_configs"][0].pop(placeholder)
    receiver["webhook_configs"][0].pop("url")
    shipped["receivers"][0]["webhook_configs"][0].pop("url")
    assert cfg == shipped  # nothing else changed
    assert SECRET_ENV["ARBD_TELEGRAM_BOT_TOKEN"] not in r.stdout + r.stderr


@pytest.mark.parametrize(("unset", "bad", "names"), [
    ("ARBD_TELEGRAM_BOT_TOKEN", None, "ARBD_TELEGRAM_BOT_TOKEN is not set"),
    (None, ("ARBD_TELEGRAM_BOT_TOKEN", "123456:secret with space"), "ARBD_TELEGRAM_BOT_TOKEN does not look like"),
    (None, ("ARBD_TELEGRAM_CHAT_ID", "@mychannel-secret"), "ARBD_TELEGRAM_CHAT_ID must be"),
    (None, ("ARBD_ALERT_WEBHOOK_URL", "http://127.0.0.1/a'secret"), "ARBD_ALERT_WEBHOOK_URL must be"),
])
def test_render_refuses_a_missing_or_malformed_secret_in_one_line_without_echoing_it(
        tmp_path: Path, unset: str | None, bad: tuple[str, str] | None, names: str) -> None:
    env = {"PATH": "/usr/bin:/bin", **SECRET_ENV}
    if unset:
        del env[unset]
    if bad:
        env[bad[0]] = bad[1]
    out = tmp_path / "alertmanager.yml"

    r = render_alertmanager(out, env)

    assert r.returncode != 0
    assert names in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "secret" not in r.stderr
    assert list(tmp_path.iterdir()) == []


# -- the dashboard ------------------------------------------------------------------------------

def test_dashboard_is_importable_with_a_prometheus_datasource_input() -> None:
    dash = load_dashboard()

    inputs = {i["name"]: i for i in dash["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    assert dash["id"] is None and dash["uid"] and dash["title"]
    for p in dashboard_panels(dash):
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]


def test_dashboard_panels_have_unique_ids_and_fit_the_24_column_grid() -> None:
    panels = dashboard_panels(load_dashboard())

    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for p in panels:
        gp = p["gridPos"]
        assert gp["x"] >= 0 and gp["w"] > 0 and gp["x"] + gp["w"] <= 24, p["title"]


def test_dashboard_has_the_seeds_grafana_queries() -> None:
    queries = dashboard_queries(load_dashboard())

    for seed_query in SEED_QUERIES:
        assert any(seed_query in q for q in queries), f"no panel queries {seed_query}"
    assert any("increase(live_event_count" in q and "[1h])" in q for q in queries)
    assert any("increase(failclosed_events" in q and "[1h])" in q for q in queries)


def test_dashboard_shows_actor_health_feeds_latency_pnl_exposure_and_trading_state() -> None:
    used = {n for q in dashboard_queries(load_dashboard()) for n in promql_metric_names(q)}

    assert {"arbd_actor_up", "arbd_actor_restarts_total", "arbd_actor_heartbeat_age_seconds",
            "arbd_actor_rss_bytes", "arbd_bus_sequence_gaps_total", "arbd_decode_errors_total",
            "ws_freshness_seconds", "arbd_quote_to_decision_seconds_bucket",
            "arbd_decision_to_ack_seconds_bucket", "arbd_pnl_krw", "arbd_daily_pnl_krw",
            "arbd_exposure_krw", "arbd_trading_state", "arbd_fail_closed"} <= used


def test_dashboard_latency_panels_take_quantiles_of_histogram_buckets_by_le() -> None:
    queries = [q for q in dashboard_queries(load_dashboard()) if "histogram_quantile" in q]

    assert len(queries) >= 4
    for q in queries:
        assert "_bucket" in q and "by (le)" in q and "rate(" in q, q


def test_every_metric_the_dashboard_references_is_one_the_exporter_can_emit() -> None:
    emittable, pending = emittable_names()

    used = {n for q in dashboard_queries(load_dashboard()) for n in promql_metric_names(q)}

    assert used - emittable - pending == set()


def test_d14_position_gauges_are_pending_only_while_no_actor_builds_a_position_state() -> None:
    found, pending = position_gauge_names()

    if position_gauge_sources():
        assert pending == set()
        assert found == D14_POSITION_GAUGES, f"position actor does not forward {D14_POSITION_GAUGES - found}"
    else:
        assert pending == D14_POSITION_GAUGES


def test_dashboard_variables_are_only_the_ones_the_query_checker_fills_in() -> None:
    for q in dashboard_queries(load_dashboard()):
        left = with_grafana_variables(q)
        assert "$" not in left, q


# -- promtool ---------------------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (scripts/prometheus.sh install)")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


needs_amtool = pytest.mark.skipif(shutil.which("amtool") is None,
                                  reason="amtool not installed (scripts/alertmanager.sh install)")


@needs_amtool
def test_amtool_check_config_passes_on_the_alertmanager_config() -> None:
    r = subprocess.run(["amtool", "check-config", str(ALERTMANAGER_YML)], capture_output=True, text=True,
                       timeout=60)

    assert r.returncode == 0, r.stdout + r.stderr


@needs_amtool
def test_amtool_check_config_passes_on_the_rendered_alertmanager_config(tmp_path: Path) -> None:
    out = tmp_path / "alertmanager.yml"
    assert render_alertmanager(out, {"PATH": "/usr/bin:/bin", **SECRET_ENV}).returncode == 0

    r = subprocess.run(["amtool", "check-config", str(out)], capture_output=True, text=True, timeout=60)

    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_promtool_check_rules_passes_on_the_alerts() -> None:
    r = _promtool("check", "rules", str(ALERTS_YML))

    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_promtool_check_config_passes_on_the_scrape_config() -> None:
    r = _promtool("check", "config", str(PROMETHEUS_YML))

    assert r.returncode == 0, r.stdout + r.stderr


_INSTANCE = {"job": "arbitrage-lite", "instance": "127.0.0.1:8000"}


def _series(metric: str, values: str, **labels: str) -> dict[str, str]:
    lab = ", ".join(f'{k}="{v}"' for k, v in {**_INSTANCE, **labels}.items())
    return {"series": f"{metric}{{{lab}}}", "values": values}


def _expect(alertname: str, at: str, *labelsets: dict[str, str], severity: str = "warning") -> dict[str, Any]:
    return {"eval_time": at, "alertname": alertname,
            "exp_alerts": [{"exp_labels": {**_INSTANCE, "severity": severity, **ls}} for ls in labelsets]}


ALERT_CASES: list[dict[str, Any]] = [
    {  # fail-closed from 1m: pending at once, firing once it has lasted a minute
        "input_series": [_series("arbd_fail_closed", "0 1 1 1 1 1")],
        "alert_rule_test": [_expect("ArbdFailClosed", "1m"),
                            _expect("ArbdFailClosed", "2m", {}, severity="critical")],
    },
    {  # an operator halt fires at once, with its cause; nothing says session stop
        "input_series": [_series("arbd_halted", "0 0 1 1", cause="operator"),
                         _series("arbd_halted", "0x3", cause="session_stop"),
                         _series("arbd_halted", "0x3", cause="escalation")],
        "alert_rule_test": [_expect("ArbdHalted", "1m"),
                            _expect("ArbdHalted", "2m", {"cause": "operator"}),
                            _expect("ArbdSessionStop", "3m")],
    },
    {  # a session stop: its own critical alert (Alertmanager inhibits the plain ArbdHalted)
        "input_series": [_series("arbd_halted", "0 1 1", cause="session_stop"),
                         _series("arbd_halted", "0x2", cause="operator")],
        "alert_rule_test": [_expect("ArbdSessionStop", "0m"),
                            _expect("ArbdSessionStop", "1m", {"cause": "session_stop"}, severity="critical"),
                            _expect("ArbdHalted", "1m", {"cause": "session_stop"})],
    },
    {  # one scrape of an escalation, then the daemon is gone: fires for 15 minutes
        "input_series": [_series("arbd_supervisor_escalations_total", "0 1 stale", actor="engine"),
                         _series("arbd_supervisor_escalations_total", "0 0 stale", actor="guard")],
        "alert_rule_test": [_expect("ArbdSupervisorEscalated", "0m"),
                            _expect("ArbdSupervisorEscalated", "1m", {"actor": "engine"}, severity="critical"),
                            _expect("ArbdSupervisorEscalated", "10m", {"actor": "engine"}, severity="critical"),
                            _expect("ArbdSupervisorEscalated", "20m")],
    },
    {  # the day's loss goes past the configured limit (both in USDT, from the guard)
        "input_series": [_series("arbd_daily_pnl_usdt", "0 -10 -17 -17 -25 -25"),
                         _series("arbd_max_daily_loss_usdt", "20x5")],
        "alert_rule_test": [_expect("ArbdDailyLossLimitBreached", "3m"),
                            _expect("ArbdDailyLossNearLimit", "2m"),
                            _expect("ArbdDailyLossNearLimit", "3m", {}),
                            _expect("ArbdDailyLossLimitBreached", "4m", {}, severity="critical"),
                            _expect("ArbdDailyLossNearLimit", "5m")],
    },
    {  # no arbd target at all
        "input_series": [{"series": 'up{job="other", instance="127.0.0.1:1"}', "values": "1x4"}],
        "alert_rule_test": [_expect("ArbdMetricsAbsent", "1m"),
                            {"eval_time": "3m", "alertname": "ArbdMetricsAbsent",
                             "exp_alerts": [{"exp_labels": {"job": "arbitrage-lite", "severity": "critical"}}]}],
    },
    {  # one restart a minute: over 3 in 10 min from 4m, firing 2 min later; one restart is not a storm
        "input_series": [_series("arbd_actor_restarts_total", "0+1x15", actor="executor"),
                         _series("arbd_actor_restarts_total", "0 1x15", actor="watchdog")],
        "alert_rule_test": [_expect("ArbdActorRestartStorm", "5m"),
                            _expect("ArbdActorRestartStorm", "6m", {"actor": "executor"}),
                            _expect("ArbdActorRestartStorm", "15m", {"actor": "executor"})],
    },
    {  # a feed goes stale and stays stale; the other one is fresh
        "input_series": [_series("ws_freshness_seconds", "0.1 0.1 45 105 165 225 285", venue="upbit", symbol="BTC"),
                         _series("ws_freshness_seconds", "0.1x7", venue="binance", symbol="BTC")],
        "alert_rule_test": [_expect("ArbdStaleFeed", "2m"),
                            _expect("ArbdStaleFeed", "4m", {"venue": "upbit", "symbol": "BTC"}),
                            _expect("ArbdFeedStaleTenMinutes", "6m")],
    },
    {  # memory drift must persist for 30 minutes
        "input_series": [_series("memory_drift_rate", "0.05x10 0.2x40")],
        "alert_rule_test": [_expect("ArbdMemoryDrift", "35m"),
                            _expect("ArbdMemoryDrift", "45m", {})],
    },
    {  # an actor that stays down, and one that comes back at once
        "input_series": [_series("arbd_actor_up", "1 0 0 0 0", actor="position"),
                         _series("arbd_actor_up", "1 0 1 1 1", actor="engine")],
        "alert_rule_test": [_expect("ArbdActorDown", "3m", {"actor": "position"})],
    },
    {  # the scrape target is gone
        "input_series": [_series("up", "1 0 0 0")],
        "alert_rule_test": [_expect("ArbdDown", "3m", {}, severity="critical")],
    },
]


@needs_promtool
def test_alerts_fire_after_their_for_duration_and_not_before(tmp_path: Path) -> None:
    # promtool compares annotations too; these cases are about expressions,
    # durations and labels (check rules already validates the templates).
    rules = yaml.safe_load(ALERTS_YML.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    tests = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m",
             "tests": [{"interval": "1m", **case} for case in ALERT_CASES]}
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))

    r = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)

    assert r.returncode == 0, r.stdout + r.stderr
