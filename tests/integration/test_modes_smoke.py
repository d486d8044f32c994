"""The seed's three smoke runs, each a real daemon on the embedded exchange.

- ``paper`` trades.
- ``live_readonly`` with no API keys runs, says once on stderr that balances
  are unavailable without keys, never crashes, and the exchange sees no order.
  With ``--venue sim`` the daemon uses the embedded exchange's published test
  keys whenever the environment names none (ARCHITECTURE section 5), so "no
  keys" cannot be had that way: this run points ``venues.source: live`` URLs
  at a standalone embedded exchange (``bin/arbd sim``) instead, which is the
  same exchange with no key fallback.
- ``live_trading`` with ``enabled: false`` generates intents that the guard
  blocks (``risk_block`` lines in the event log) and the exchange sees no order.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ARBD, MARKER_ENV, ROOT, free_port
from tests.support.run_daemon import (
    FAST,
    PAPER,
    SimDaemon,
    SimRuns,
    config,
    http_json,
    sim_runs,
    with_keys,
    without_keys,
)

CONFIGS = ROOT / "configs"
NO_KEYS_LINE = "balances are unavailable without API keys"
QUICK = ("--set", "baseline.warmup_s=5", "--set", "baseline.warmup_samples=20",
         "--set", "strategy.cooldown_s=3")
FAST_SETS = tuple(a for k, v in FAST["supervision"].items() for a in ("--set", f"supervision.{k}={v}"))

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[SimRuns]:
    with sim_runs(tmp_path) as r:
        yield r


@pytest.fixture
def standalone_sim(tmp_path: Path) -> Iterator[dict]:
    """``bin/arbd sim`` alone; its first stdout line is its URL object."""
    env = {**os.environ, MARKER_ENV: str(tmp_path / "standalone-sim")}
    proc = subprocess.Popen([str(ARBD), "sim", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, env=env, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by the test timeout
        assert line, f"arbd sim printed nothing (exit {proc.poll()})"
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def stop_cleanly(run: SimDaemon) -> str:
    """SIGTERM; the daemon must exit 0 and print its summary."""
    assert run.stop() == 0, run.stderr()[-3000:]
    assert "=== arbd run summary ===" in run.stdout()
    return run.stdout()


def unplanned_exits(run: SimDaemon) -> list[dict]:
    return [r for r in run.restart_log() if r["event"] in ("exit", "restart", "kill", "escalate")
            and r["reason"] not in ("shutdown",)]


def test_paper_mode_trades(runs: SimRuns) -> None:
    run = runs.make(config(PAPER))

    trades = run.wait_events("trade", 2, timeout=60)
    out = stop_cleanly(run)

    assert {t["venue"] for t in trades} <= {"upbit", "binance"}
    assert all(t["quantity"] > 0 and t["price"] > 0 for t in trades)
    assert int(re.search(r"Trades Opened:\s+(\d+)", out).group(1)) >= 1, out
    assert not unplanned_exits(run)


def test_live_readonly_without_keys_says_so_once_never_crashes_and_sends_nothing(
        runs: SimRuns, standalone_sim: dict) -> None:
    s = standalone_sim
    urls = ("--set", f"venues.upbit_rest={s['upbit']['rest']}", "--set", f"venues.upbit_ws={s['upbit']['ws']}",
            "--set", f"venues.binance_rest={s['binance']['rest']}",
            "--set", f"venues.binance_ws={s['binance']['ws']}")
    run = runs.make(None, env=without_keys(), start=False)
    run.start("--config", str(CONFIGS / "live_readonly.yaml"), "--set", f"metrics.port={free_port()}", *urls, *QUICK,
              *FAST_SETS)
    assert run.status()["mode"] == "live_readonly" and not any(run.env.get(k) for k in without_keys())
    run.arbctl("arm")  # live_readonly arms, and still refuses every order itself

    blocks = run.wait_events("risk_block", 3, timeout=60)
    orders = http_json(s["admin"] + "/_sim/orders")
    stop_cleanly(run)

    assert orders == []
    assert all(b["reason"].startswith(("live_readonly", "disarmed")) for b in blocks), blocks
    said = [line for line in run.stderr().splitlines() if NO_KEYS_LINE in line]
    assert len(said) == 1, said
    assert json.loads(said[0])["level"] == "warning"
    assert not unplanned_exits(run), unplanned_exits(run)


def test_live_trading_disabled_generates_intents_the_guard_blocks_and_sends_nothing(runs: SimRuns) -> None:
    run = runs.make(None, env=with_keys(), start=False)
    run.start("--config", str(CONFIGS / "live_trading.yaml"), "--venue", "sim", "--set", f"metrics.port={free_port()}",
              *QUICK, *FAST_SETS)
    assert run.status()["mode"] == "live_trading"
    arm = run.arbctl("arm", "--confirm", "live_trading")
    assert arm.returncode != 0 and "refused" in arm.stderr, arm

    blocks = run.wait_events("risk_block", 3, timeout=60)
    orders = run.sim_orders()
    stop_cleanly(run)

    assert orders == []
    assert all(b["actor"] == "guard" and b["intent_id"] and b["reason"] == "disarmed" for b in blocks), blocks
    assert not run.events("trade")
    assert not unplanned_exits(run), unplanned_exits(run)
