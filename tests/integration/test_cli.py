"""The two commands as an operator uses them: errors are one line and a
non-zero exit, never a traceback; state that must persist does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import ACTORS, ARBCTL, ARBD, DaemonRun, run_cli


def _one_line_error(res: subprocess.CompletedProcess[str], prog: str) -> str:
    assert res.returncode != 0, res
    assert "Traceback" not in res.stderr + res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"{prog}:") or lines[0].startswith(f"{prog} "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def shared(daemon_module) -> DaemonRun:
    return daemon_module()


# -- no daemon ------------------------------------------------------------------

@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["halt"], ["arm"], ["restart", "engine"]])
def test_arbctl_without_a_daemon_fails_in_one_line(tmp_path: Path, args: list[str]) -> None:
    res = run_cli(ARBCTL, "--run-dir", str(tmp_path / "run"), *args)

    line = _one_line_error(res, "arbctl")
    assert "not running" in line
    assert res.stdout == ""


def test_arbctl_with_a_dead_daemons_run_dir_fails_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "sock").mkdir(parents=True)
    (run / "arbd.lock").write_text("")
    (run / "arbd.pid").write_text("999999\n")
    (run / "endpoints.json").write_text(json.dumps({
        "bus_in": "ipc:///nowhere/a", "bus_out": "ipc:///nowhere/b", "sup": "ipc:///nowhere/c",
        "control": f"ipc://{run}/sock/control", "inboxes": {}}))

    res = run_cli(ARBCTL, "--run-dir", str(run), "status")

    assert "not running" in _one_line_error(res, "arbctl")


def test_arbd_stop_without_a_daemon_fails_in_one_line(tmp_path: Path) -> None:
    res = run_cli(ARBD, "stop", "--run-dir", str(tmp_path / "run"))

    assert "not running" in _one_line_error(res, "arbd")


# -- wrong usage ------------------------------------------------------------------

@pytest.mark.parametrize("prog,args", [
    ("arbd", []),
    ("arbd", ["frobnicate"]),
    ("arbd", ["start", "--bogus"]),
    ("arbd", ["start", "--mode", "yolo"]),
    ("arbd", ["start", "--venue", "moon"]),
    ("arbd", ["start", "--max-runtime-seconds", "soon"]),
    ("arbd", ["start", "--max-runtime-seconds", "-1"]),
    ("arbd", ["start", "--longrun", "3 fortnights"]),
    ("arbd", ["start", "--log-level", "LOUD"]),
    ("arbctl", []),
    ("arbctl", ["frobnicate"]),
    ("arbctl", ["restart"]),
    ("arbctl", ["status", "--watch", "often"]),
    ("arbctl", ["--timeout", "x", "status"]),
])
def test_wrong_usage_is_one_line_and_a_non_zero_exit(tmp_path: Path, prog: str, args: list[str]) -> None:
    exe = ARBD if prog == "arbd" else ARBCTL
    run_dir = ["--run-dir", str(tmp_path / "run")]
    # keep any accidental start inside tmp_path (and give it a way to stop)
    if prog == "arbd" and args[:1] == ["start"]:
        args = [*args, *run_dir]

    res = run_cli(exe, *args, cwd=tmp_path, timeout=20)

    _one_line_error(res, prog)
    assert not (tmp_path / "run" / "arbd.pid").exists()


@pytest.mark.parametrize("prog,args", [("arbd", ["--help"]), ("arbd", ["start", "--help"]),
                                       ("arbctl", ["--help"]), ("arbctl", ["status", "--help"])])
def test_help_explains_itself(prog: str, args: list[str]) -> None:
    res = run_cli(ARBD if prog == "arbd" else ARBCTL, *args)

    assert res.returncode == 0
    assert res.stdout.startswith("usage:") and res.stderr == ""


def test_config_problems_are_one_line_each_and_the_daemon_does_not_start(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("mode: paper\nbus: {pub_hwm: -5}\nsupervison: {}\nmetrics: {port: high}\n"
                   "venues: {api_key: abc123}\n")

    res = run_cli(ARBD, "start", "--config", str(cfg), "--run-dir", str(tmp_path / "run"),
                  "--set", "nodot", cwd=tmp_path)

    assert res.returncode != 0 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert all(line.startswith("arbd: config: ") for line in lines), lines
    text = "\n".join(lines)
    for fragment in ("bus.pub_hwm", "supervison", "did you mean 'supervision'", "metrics.port",
                     "venues.api_key", "nodot"):
        assert fragment in text, fragment
    assert "abc123" not in text
    assert not (tmp_path / "run" / "arbd.pid").exists()


def test_a_missing_config_file_is_one_line(tmp_path: Path) -> None:
    res = run_cli(ARBD, "start", "--config", str(tmp_path / "nope.yaml"), "--run-dir", str(tmp_path / "run"))

    assert "no such config file" in _one_line_error(res, "arbd")


# -- against a running daemon -------------------------------------------------------

def test_status_json_has_the_contract_fields(shared: DaemonRun) -> None:
    res = shared.arbctl("status", "--json")

    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    for key in ("mode", "trading_state", "fail_closed", "fail_closed_reasons", "actors", "feeds",
                "premium_pct", "guard", "orders", "pnl"):
        assert key in st, key
    assert st["mode"] == "paper" and st["trading_state"] in ("disarmed", "armed", "halted")
    assert isinstance(st["fail_closed"], bool) and isinstance(st["fail_closed_reasons"], list)
    assert [a["name"] for a in st["actors"]] == list(ACTORS)
    for a in st["actors"]:
        assert {"name", "pid", "state", "uptime_s", "restarts", "heartbeat_age_s", "rss_mb"} <= set(a)
        assert a["state"] == "running" and a["pid"] > 0
    assert {"allowed", "blocked", "daily_pnl"} <= set(st["guard"])
    assert {"open", "filled", "cancelled"} <= set(st["orders"])


def test_status_table_names_every_actor(shared: DaemonRun) -> None:
    res = shared.arbctl("status")

    assert res.returncode == 0, res.stderr
    for name in ACTORS:
        assert name in res.stdout


def test_a_second_start_on_a_live_run_dir_says_already_running(shared: DaemonRun) -> None:
    res = shared.arbd("start", "--config", str(shared.config_path), "--run-dir", str(shared.run_dir),
                      "--max-runtime-seconds", "30", timeout=30)

    assert f"already running (pid {shared.pid})" in _one_line_error(res, "arbd")
    assert shared.status()["pid"] == shared.pid
    assert shared.alive()


def test_arbctl_restart_replaces_the_actor_without_counting_as_a_failure(shared: DaemonRun) -> None:
    before = shared.wait_all_running()["executor"]

    res = shared.arbctl("restart", "executor")
    after = shared.wait_replaced("executor", before["pid"])

    assert res.returncode == 0 and res.stdout.strip() == "restarting executor"
    assert after["restarts"] == before["restarts"] + 1
    lines = shared.log_events("executor")
    assert any(r["event"] == "kill" and r["reason"] == "operator request" for r in lines)
    assert any(r["event"] == "restart" and r["reason"] == "restart requested" for r in lines)


def test_arbctl_restart_of_an_unknown_actor_fails_in_one_line(shared: DaemonRun) -> None:
    res = shared.arbctl("restart", "nobody")

    assert "nobody" in _one_line_error(res, "arbctl")


def test_a_halt_persists_across_arbd_stop_and_start(daemon) -> None:
    run = daemon()
    halt = run.arbctl("halt", "--reason", "test halt")
    assert halt.returncode == 0, halt.stderr
    assert run.status()["trading_state"] == "halted"

    stop = run.arbd("stop", "--run-dir", str(run.run_dir))
    assert stop.returncode == 0, stop.stderr
    assert run.wait_exit(20) == 0
    run.start()
    res = run.arbctl("status", "--json")

    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert st["trading_state"] == "halted"
    assert st["halt_reason"] == "test halt"
