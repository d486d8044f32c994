"""A real Prometheus and a real Alertmanager on loopback deliver arbd's alerts to a person.

``scripts/alertmanager.sh install`` and ``scripts/prometheus.sh install`` run
first (apt-get on a clean machine); if either cannot be installed the tests
fail, they do not skip.

The delivery scenario (one setup for the module): arbd in live_trading on the
embedded exchange with ``live_trading.max_daily_loss`` at 0.3 USDT. Before
arming, the exchange's premium is lifted, so the first pair opens selling on
Upbit; then it is lifted again, so the pair, closed after ``max_hold_s``,
books a loss above the limit whatever its size, and the guard stops the session (a persisted halt,
cause ``session_stop``) on the next order it checks. Prometheus (1 s scrapes
and evaluations, configs/alerts.yml as shipped) fires ArbdDailyLossLimitBreached
and ArbdSessionStop, and ArbdHalted. Alertmanager runs configs/alertmanager.yml
as shipped with one change: the Telegram receiver is removed, so the only
address it can deliver to is a webhook receiver served by this test on
127.0.0.1 (its URL reaches the config through ``ARBD_ALERT_WEBHOOK_URL``, as
an operator's would). Every socket of Alertmanager, Prometheus and arbd's
processes is sampled throughout: none may touch an address off this machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_prometheus import Prometheus, prometheus_installed  # noqa: F401 - fixture
from tests.support.daemon import free_port, pid_gone, wait_until
from tests.support.run_daemon import LIVE_TRADING, SimDaemon, config, sim_runs, with_keys
from tests.unit.test_observability_files import (
    ALERTMANAGER_SH,
    ALERTMANAGER_YML,
    SECRET_ENV,
    seconds,
)

pytestmark = [pytest.mark.needs_alertmanager, pytest.mark.needs_prometheus, pytest.mark.timeout(300)]

JOB = "arbitrage-lite"
MAX_DAILY_LOSS_USDT = 0.3
# The first pair's close must breach the limit on its own: a smaller loss lets
# trading go on, the daily PnL wanders around the limit, and the breach alert
# fires, resolves and fires again, which moves Alertmanager's group wait. Its
# loss is the premium's rise times the pair's notional, at least Binance's
# minimum of 5 USDT: 8.5 points of rise is >= 0.42 USDT, fees on top.
SECOND_LIFT_PCT = 8.5
# On top of a group_wait: one rule evaluation (1 s), the notifier's hand-off and a loaded host.
DELIVERY_SLACK_S = 5.0
SCENARIO = config(LIVE_TRADING, {
    "venues": {"source": "sim", "symbols": ["BTC"]},
    "live_trading": {"allowed_symbols": ["BTC"], "max_daily_loss": MAX_DAILY_LOSS_USDT},
    # The pair is closed 10 s after it opened whatever the premium does (the test
    # lifts the premium again in between, polling for the open; 3 s was once too
    # short for a leg repaired by an unwind on a loaded host), and the next open
    # follows at once: that is the order the guard stops the session on.
    "strategy": {"cooldown_s": 1, "max_hold_s": 10},
})


# -- Alertmanager -----------------------------------------------------------------------------

def _script(*args: str, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ALERTMANAGER_SH), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def alertmanager_installed() -> str:
    """Install Alertmanager with the project's script; fail loudly when that is impossible."""
    try:
        r = _script("install", timeout=900)
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/alertmanager.sh install did not finish within 15 minutes", pytrace=False)
    if r.returncode != 0:
        pytest.fail("these tests need a real Alertmanager and `scripts/alertmanager.sh install` could not "
                    f"provide one (no apt-get, no network or no root?):\n{r.stdout}{r.stderr}", pytrace=False)
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary and shutil.which("amtool"), f"install reported success but a binary is missing:\n{r.stdout}"
    return binary


@dataclass
class Alertmanager:
    """One Alertmanager started by scripts/alertmanager.sh; the test owns it by pid."""

    port: int
    pid: int
    root: Path

    @classmethod
    def start(cls, root: Path, cfg: Path, env: dict[str, str]) -> Alertmanager:
        port = free_port()
        r = _script("start", str(port), str(cfg), str(root), timeout=60, env=env)
        assert r.returncode == 0, f"alertmanager.sh start failed:\n{r.stdout}{r.stderr}"
        return cls(port=port, pid=int(r.stdout.strip().splitlines()[-1]), root=root)

    def stop(self) -> None:
        if pid_gone(self.pid):
            return
        r = _script("stop", str(self.pid), timeout=30)
        if not pid_gone(self.pid):  # the script refused or failed: ours, so kill it by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: pid_gone(self.pid), 10, f"alertmanager pid {self.pid} to exit ({r.stdout}{r.stderr})")

    def log(self) -> str:
        path = self.root / "alertmanager.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            body = resp.read().decode()
        return json.loads(body) if path.startswith("/api/") else body

    def alerts(self, alertname: str) -> list[dict[str, Any]]:
        return [a for a in self.get("/api/v2/alerts") if a["labels"].get("alertname") == alertname]

    def metric(self, name: str) -> dict[str, float]:
        """``name``'s samples keyed by their ``integration`` label."""
        return {s.labels.get("integration", ""): s.value
                for fam in text_string_to_metric_families(self.get("/metrics"))
                for s in fam.samples if s.name == name}


def webhook_only_config(path: Path) -> Path:
    """configs/alertmanager.yml with its Telegram receiver removed and nothing else changed;
    the webhook's URL stays an ``# env:`` placeholder, filled in by the script."""
    cfg = yaml.safe_load(ALERTMANAGER_YML.read_text())
    for receiver in cfg["receivers"]:
        receiver.pop("telegram_configs", None)
    text = yaml.safe_dump(cfg, sort_keys=False)
    text, n = re.subn(r"(?m)^(\s*- url: .*)$", r"\1  # env: ARBD_ALERT_WEBHOOK_URL", text)
    assert n == 1, text
    path.write_text(text)
    return path


# -- the webhook receiver and the loopback watch -------------------------------------------------

@dataclass
class Notification:
    received_at: float  # time.time()
    body: dict[str, Any]


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that keeps every POST Alertmanager makes."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []
        lock = threading.Lock()
        received = self.notifications

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append(Notification(time.time(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)
        self.thread.start()

    def firing(self, alertname: str) -> list[tuple[Notification, dict[str, Any]]]:
        """Every (notification, alert) in which ``alertname`` was delivered firing."""
        return [(n, a) for n in list(self.notifications) for a in n.body["alerts"]
                if a["labels"].get("alertname") == alertname and a["status"] == "firing"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _off_machine(addr: Any) -> bool:
    if not addr:
        return False
    ip = ipaddress.ip_address(addr.ip)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_loopback


class LoopbackWatch:
    """Samples every inet socket of the given processes until stopped; keeps any
    whose local or remote address is not loopback (a listener on 0.0.0.0 included)."""

    def __init__(self, pids: Callable[[], list[int]], interval_s: float = 0.2) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.offenders: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loopback-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in self.pids():
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(pid)
                    for c in proc.net_connections(kind="inet"):
                        if _off_machine(c.laddr) or _off_machine(c.raddr):
                            self.offenders.append(f"{proc.name()}[{pid}] {c.laddr} -> {c.raddr} {c.status}")
            self.samples += 1
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- the setup ----------------------------------------------------------------------------------

def prometheus_time(stamp: str) -> float:
    """Prometheus's RFC 3339 timestamps carry nanoseconds; datetime takes microseconds."""
    stamp = re.sub(r"(\.\d{6})\d+", r"\1", stamp).replace("Z", "+00:00")
    return datetime.fromisoformat(stamp).timestamp()


@dataclass
class Stack:
    run: SimDaemon
    prom: Prometheus
    am: Alertmanager
    webhook: WebhookReceiver
    watch: LoopbackWatch
    fired: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.run.config['metrics']['port']}"

    def prometheus_alert(self, alertname: str, timeout: float = 30.0) -> dict[str, Any]:
        """The alert as Prometheus fires it (labels, activeAt), once it is firing."""
        if alertname not in self.fired:
            def probe() -> dict[str, Any] | None:
                return next((a for a in self.prom.api("alerts")["alerts"]
                             if a["labels"]["alertname"] == alertname and a["state"] == "firing"), None)

            try:
                self.fired[alertname] = wait_until(probe, timeout, f"Prometheus to fire {alertname}",
                                                   interval=0.25)
            except AssertionError as e:
                raise AssertionError(f"{e}\nprometheus log:\n{self.prom.log()}") from None
        return self.fired[alertname]

    def delivered(self, alertname: str, timeout: float) -> tuple[Notification, dict[str, Any]]:
        """The first notification that delivered ``alertname`` firing to the webhook."""
        try:
            return wait_until(lambda: next(iter(self.webhook.firing(alertname)), None), timeout,
                              f"the webhook to receive {alertname}", interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}\nalertmanager log:\n{self.am.log()}") from None


def critical_group_wait_s() -> float:
    (critical,) = yaml.safe_load(ALERTMANAGER_YML.read_text())["route"]["routes"]
    assert critical["matchers"] == ['severity="critical"']
    return float(seconds(critical["group_wait"]))


def lose_the_daily_limit(run: SimDaemon) -> None:
    """Open a pair at a lifted premium, lift it further so its forced close loses,
    and wait for the guard's session stop."""
    wait_until(lambda: all(a.get("warm", True) for a in run.status()["actors"]), 60,
               "every actor warm (books in, baselines trusted)", interval=0.2)
    premium = run.admin("/_sim/market")["premium_pct"]
    # The premium and the exchange's own baseline move together: it stays there.
    run.admin("/_sim/market", "POST", {"premium_pct": premium + 1.5, "baseline_pct": premium + 1.5})
    run.arm_live()
    # A leg that missed is completed by the leg repair (an "unwind" on the
    # venue that missed): either way the first pair becomes the same hedge.
    def first_pair() -> list[dict] | None:
        ev = run.wait_events("trade", 1, timeout=30)
        legs = [e for e in ev if e["pair_id"] == ev[0]["pair_id"]]
        return legs if {e["venue"] for e in legs} == {"upbit", "binance"} else None

    opened = wait_until(first_pair, 30, "both legs of the first pair filled", interval=0.2)
    assert {(e["venue"], e["side"]) for e in opened} == {("upbit", "sell"), ("binance", "buy")}, opened
    assert {e["action"] for e in opened} <= {"open", "unwind"} and "open" in {e["action"] for e in opened}
    lifted = premium + 1.5 + SECOND_LIFT_PCT
    lifted_at = time.time()  # the lift takes effect while the POST is handled
    run.admin("/_sim/market", "POST", {"premium_pct": lifted, "baseline_pct": lifted})
    closed = run.wait_events("trade_closed", 1, timeout=30)[0]
    assert closed["ts"] >= lifted_at, f"the first pair closed before the premium was lifted: {closed}"
    assert closed["realized_pnl_krw"] < 0, closed
    halts = run.wait_events("halt", 1, timeout=30)
    assert halts[0]["by"] == "live_guard" and "daily loss" in halts[0]["reason"], halts
    # The first close breached on its own (a pair already on its way may still
    # open and close: the guard stops the session on the order after it knows).
    loss_usdt = -closed["realized_pnl_krw"] / run.admin("/_sim/market")["fx"]
    assert loss_usdt > MAX_DAILY_LOSS_USDT, f"the first close lost {loss_usdt:.3f} USDT: {closed}"


@pytest.fixture(scope="module")
def stack(alertmanager_installed: str, prometheus_installed: str,  # noqa: F811 - the imported fixture
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("alerting")
    webhook = WebhookReceiver()
    am = Alertmanager.start(base / "am", webhook_only_config(base / "alertmanager.yml"),
                            {"ARBD_ALERT_WEBHOOK_URL": webhook.url})
    try:
        with sim_runs(base / "arbd") as runs:
            run = runs.make(SCENARIO, env=with_keys())
            prom = Prometheus.start(base / "prom", int(run.config["metrics"]["port"]), am.port)
            watch = LoopbackWatch(lambda: [am.pid, prom.pid] + [p.pid for p in run.processes()])
            try:
                prom.wait_query(f'up{{job="{JOB}"}}', lambda r: bool(r) and r[0]["value"][1] == "1", 30,
                                "Prometheus to scrape arbd")
                lose_the_daily_limit(run)
                yield Stack(run, prom, am, webhook, watch)
            finally:
                watch.stop()
                prom.stop()
    finally:
        am.stop()
        webhook.close()


# -- delivery -------------------------------------------------------------------------------------

def test_prometheus_fires_the_session_stop_and_the_breached_daily_loss_with_their_labels(stack: Stack) -> None:
    stop = stack.prometheus_alert("ArbdSessionStop")
    loss = stack.prometheus_alert("ArbdDailyLossLimitBreached")
    halted = stack.prometheus_alert("ArbdHalted")

    target = {"job": JOB, "instance": stack.instance, "app": "arbd"}  # the scrape target's labels
    assert stop["labels"] == {"alertname": "ArbdSessionStop", **target, "cause": "session_stop",
                              "severity": "critical"}
    assert loss["labels"] == {"alertname": "ArbdDailyLossLimitBreached", **target, "severity": "critical"}
    assert float(loss["value"]) < -MAX_DAILY_LOSS_USDT
    assert halted["labels"]["cause"] == "session_stop"


def test_the_webhook_gets_both_critical_alerts_with_their_labels_within_the_group_wait(stack: Stack) -> None:
    group_wait = critical_group_wait_s()
    expected = ("ArbdSessionStop", "ArbdDailyLossLimitBreached")
    active_at = {name: prometheus_time(stack.prometheus_alert(name)["activeAt"]) for name in expected}

    got = {name: stack.delivered(name, timeout=group_wait + 30) for name in expected}

    first = min(n.received_at for n, _ in got.values())
    print(f"\ngroup_wait {group_wait:g}s; delivered after firing: "
          + ", ".join(f"{name} {n.received_at - active_at[name]:.2f}s" for name, (n, _) in got.items()))
    # Held back for the group wait (grouping works), then delivered without delay.
    assert first - min(active_at.values()) >= group_wait - 1.0, (first, active_at)
    for name, (note, alert) in got.items():
        assert note.received_at - active_at[name] <= group_wait + DELIVERY_SLACK_S, (name, note.received_at,
                                                                                    active_at[name])
        assert note.body["receiver"] == "arbd-operators"
        assert note.body["groupLabels"] == {"job": JOB, "instance": stack.instance}
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["job"] == JOB and alert["labels"]["instance"] == stack.instance
        assert alert["labels"]["service"] == "arbd"  # Prometheus's external label, as configured
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    assert got["ArbdSessionStop"][1]["labels"]["cause"] == "session_stop"
    assert "USDT" in got["ArbdDailyLossLimitBreached"][1]["annotations"]["summary"]
    # Grouped: the two arrived together, in one notification.
    assert got["ArbdSessionStop"][0] is got["ArbdDailyLossLimitBreached"][0]


def test_the_halt_is_told_once_with_its_cause_arbdhalted_is_inhibited(stack: Stack) -> None:
    stack.delivered("ArbdSessionStop", timeout=critical_group_wait_s() + 30)

    halted = wait_until(lambda: stack.am.alerts("ArbdHalted"), 30, "ArbdHalted in Alertmanager", interval=0.25)
    (stop,) = stack.am.alerts("ArbdSessionStop")

    assert [a["labels"]["cause"] for a in halted] == ["session_stop"]
    assert halted[0]["status"]["state"] == "suppressed"
    assert halted[0]["status"]["inhibitedBy"] == [stop["fingerprint"]]
    assert stack.webhook.firing("ArbdHalted") == []


def test_nothing_went_to_an_address_off_this_machine(stack: Stack) -> None:
    stack.delivered("ArbdSessionStop", timeout=critical_group_wait_s() + 30)

    notifications = stack.am.metric("alertmanager_notifications_total")
    failed = stack.am.metric("alertmanager_notifications_failed_total")
    receivers = stack.am.get("/api/v2/status")["config"]["original"]
    stack.watch.stop()

    assert notifications["webhook"] >= 1
    assert notifications.get("telegram", 0.0) == 0.0
    assert set(failed.values()) <= {0.0}
    assert "telegram_configs" not in receivers and stack.webhook.url in receivers
    print(f"\nloopback watch: {stack.watch.samples} samples of {len(stack.watch.pids())} processes' sockets; "
          f"notifications {notifications}")
    assert stack.watch.samples > 10
    assert stack.watch.offenders == []


def test_a_supervisor_escalation_reaches_the_webhook_although_the_daemon_exits(
        alertmanager_installed: str, prometheus_installed: str, daemon, tmp_path: Path) -> None:  # noqa: F811
    """The exporter lives only seconds past an escalation; one scrape must be enough."""
    group_wait = critical_group_wait_s()
    webhook = WebhookReceiver()
    am = Alertmanager.start(tmp_path / "am", webhook_only_config(tmp_path / "am.yml"),
                            {"ARBD_ALERT_WEBHOOK_URL": webhook.url})
    run = daemon({"supervision": {"intensity": 2, "period_s": 30.0, "backoff_initial_s": 0.05},
                  "testing": {"role_overrides": {"engine": "tests.support.roles:CrashAtStartActor"}}},
                 start=False)
    prom = Prometheus.start(tmp_path / "prom", int(run.config["metrics"]["port"]), am.port)
    try:
        # Prometheus applies new targets a few seconds after it starts; the
        # daemon lives only seconds, so it starts once its target is scraped.
        prom.wait_query(f'up{{job="{JOB}"}}', bool, 30, "Prometheus to scrape the (not yet started) target")
        run.start(wait_running=False)
        code = run.wait_exit(45)
        alert = wait_until(lambda: next((a for a in prom.api("alerts")["alerts"]
                                         if a["labels"]["alertname"] == "ArbdSupervisorEscalated"), None),
                           30, "Prometheus to fire ArbdSupervisorEscalated", interval=0.25)
        note, delivered = wait_until(lambda: next(iter(webhook.firing("ArbdSupervisorEscalated")), None),
                                     group_wait + 30, "the webhook to receive ArbdSupervisorEscalated",
                                     interval=0.1)
    finally:
        prom.stop()
        am.stop()
        webhook.close()

    assert code == 2  # EXIT_ESCALATED
    assert alert["state"] == "firing"
    assert delivered["labels"]["actor"] == "engine" and delivered["labels"]["severity"] == "critical"
    assert group_wait - 1.0 <= note.received_at - prometheus_time(alert["activeAt"]) <= group_wait + DELIVERY_SLACK_S


class FakeTelegram:
    """Telegram's Bot API as far as Alertmanager uses it (sendMessage), on 127.0.0.1."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                body = (json.loads(raw) if self.headers.get("Content-Type", "").startswith("application/json")
                        else dict(urllib.parse.parse_qsl(raw)))
                received.append((self.path, body))
                reply = json.dumps({"ok": True, "result": {"message_id": len(received), "date": int(time.time()),
                                                           "chat": {"id": int(body.get("chat_id", 0)),
                                                                    "type": "group"},
                                                           "text": body.get("text", "")}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, name="fake-telegram", daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_shipped_telegram_receiver_sends_a_readable_message_with_the_token_and_chat_from_the_environment(
        alertmanager_installed: str, tmp_path: Path) -> None:
    """The shipped config, its Bot API address alone pointed at a fake on loopback:
    the message template renders and the secrets from the environment are the ones used."""
    telegram, webhook = FakeTelegram(), WebhookReceiver()
    text = ALERTMANAGER_YML.read_text()
    text, n = re.subn(r"(?m)^(\s*)(chat_id: .*)$", rf"\1\2\n\1api_url: '{telegram.url}'", text)
    assert n == 1
    (tmp_path / "am.yml").write_text(text)
    am = Alertmanager.start(tmp_path / "am", tmp_path / "am.yml",
                            {**SECRET_ENV, "ARBD_ALERT_WEBHOOK_URL": webhook.url})
    labels = {"alertname": "ArbdSessionStop", "severity": "critical", "job": JOB, "instance": "127.0.0.1:8000",
              "cause": "session_stop"}
    summary = "arbd stopped the trading session: daily loss limit reached"
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{am.port}/api/v2/alerts", method="POST",
                                     data=json.dumps([{"labels": labels, "annotations": {"summary": summary}}]).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()
        wait_until(lambda: telegram.requests, critical_group_wait_s() + 30, "a message to the fake Telegram",
                   interval=0.1)
        wait_until(lambda: webhook.firing("ArbdSessionStop"), 10, "the webhook to get the same alert")
    finally:
        am.stop()
        telegram.close()
        webhook.close()

    ((path, body),) = telegram.requests
    assert path == f"/bot{SECRET_ENV['ARBD_TELEGRAM_BOT_TOKEN']}/sendMessage"
    assert str(body["chat_id"]) == SECRET_ENV["ARBD_TELEGRAM_CHAT_ID"]
    assert body["text"].splitlines() == ["arbd FIRING (1) 127.0.0.1:8000", f"- [critical] {summary}"]


# -- the script and the shipped config ---------------------------------------------------------------

def test_amtool_check_config_passes_on_the_shipped_config(alertmanager_installed: str) -> None:
    r = _script("check", timeout=60)

    assert r.returncode == 0, r.stdout + r.stderr


def test_the_shipped_config_runs_with_its_secrets_kept_out_of_files_processes_and_the_api(
        alertmanager_installed: str, tmp_path: Path) -> None:
    token = SECRET_ENV["ARBD_TELEGRAM_BOT_TOKEN"]
    am = Alertmanager.start(tmp_path / "am", ALERTMANAGER_YML, SECRET_ENV)
    try:
        status = am.get("/api/v2/status")
        cmdline = " ".join(psutil.Process(am.pid).cmdline())
        listening = [c.laddr for c in psutil.Process(am.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
    finally:
        am.stop()
    rendered = tmp_path / "am" / "alertmanager.yml"

    assert status["cluster"]["status"] == "disabled"
    assert "bot_token: <secret>" in status["config"]["original"]
    assert token not in status["config"]["original"] and token not in cmdline
    assert token not in am.log()
    assert (tmp_path / "am").stat().st_mode & 0o777 == 0o700
    assert rendered.stat().st_mode & 0o777 == 0o600 and token in rendered.read_text()
    assert [(a.ip, a.port) for a in listening] == [("127.0.0.1", am.port)]


def test_start_refuses_without_the_telegram_token_in_one_line_and_starts_nothing(
        alertmanager_installed: str, tmp_path: Path) -> None:
    env = {**os.environ, **SECRET_ENV}
    del env["ARBD_TELEGRAM_BOT_TOKEN"]
    port = free_port()

    r = subprocess.run([str(ALERTMANAGER_SH), "start", str(port), str(ALERTMANAGER_YML), str(tmp_path / "am")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env)

    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "ARBD_TELEGRAM_BOT_TOKEN is not set" in r.stderr
    assert not (tmp_path / "am" / "alertmanager.yml").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2)


def test_the_script_stops_its_alertmanager_by_pid(alertmanager_installed: str, tmp_path: Path) -> None:
    am = Alertmanager.start(tmp_path / "am", webhook_only_config(tmp_path / "am.yml"),
                            {"ARBD_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/unused"})

    r = _script("stop", str(am.pid), timeout=30)

    assert r.returncode == 0, r.stderr
    assert pid_gone(am.pid)


def test_the_script_refuses_to_stop_a_pid_that_is_not_alertmanager() -> None:
    other = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    try:
        r = _script("stop", str(other.pid), timeout=30)

        assert r.returncode != 0
        assert "not an alertmanager process" in r.stderr
        assert other.poll() is None
    finally:
        other.kill()
        other.wait(5)
