"""The `arbctl status --json` contract and the exporter, on a real paper run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support.daemon import free_port

ROOT = Path(__file__).resolve().parents[2]
ACTOR_KEYS = {"name", "pid", "state", "uptime_s", "restarts", "heartbeat_age_s", "rss_mb"}
TOP_KEYS = {"mode", "trading_state", "fail_closed", "fail_closed_reasons", "actors", "feeds",
            "premium_pct", "guard", "orders", "pnl"}


def status(run: Path) -> dict:
    out = subprocess.run([str(ROOT / "bin/arbctl"), "--run-dir", str(run), "status", "--json"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_paper_run_reports_the_contracted_status_and_metrics(tmp_path: Path) -> None:
    run = tmp_path / "run"
    port = free_port()
    proc = subprocess.Popen([str(ROOT / "bin/arbd"), "start", "--run-dir", str(run),
                             "--max-runtime-seconds", "90", "--set", f"metrics.port={port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 75
        st: dict = {}
        while time.monotonic() < deadline:
            if (run / "endpoints.json").exists():
                try:
                    st = status(run)
                except (AssertionError, json.JSONDecodeError, subprocess.TimeoutExpired):
                    st = {}
                if st.get("trades", {}).get("closed", 0) >= 1 and st["orders"]["filled"] >= 4:
                    break
            time.sleep(0.5)
        assert set(st) >= TOP_KEYS, st
        assert st["mode"] == "paper" and st["trading_state"] == "armed"
        assert all(set(a) >= ACTOR_KEYS for a in st["actors"])
        assert {a["name"] for a in st["actors"]} >= {"feed.upbit", "feed.binance", "engine", "position",
                                                      "guard", "executor", "watchdog", "sim"}
        assert {(f["venue"], f["symbol"]) for f in st["feeds"]} >= {("upbit", "USDT"), ("upbit", "BTC"),
                                                                     ("binance", "BTC")}
        # Fills reach status: they come from a topic no actor subscribes to.
        assert st["orders"]["filled"] >= 4, st["orders"]
        assert set(st["guard"]) >= {"allowed", "blocked", "daily_pnl"}
        # The exporter serves a snapshot refreshed every 0.5 s (later under load): it may trail status.
        values: dict[str, float] = {}
        metrics_deadline = time.monotonic() + 20
        while values.get("live_event_count", 0) < 4 and time.monotonic() < metrics_deadline:
            time.sleep(0.2 if values else 0)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                      if line and not line.startswith("#")}
        assert values["live_event_count"] >= 4  # trade events reached the exporter
        for name in ("volatility_smoothed", "exposure_drift_rate", "trend_regime", "risk_mode_current",
                     "failclosed_events", "memory_drift_rate", "state_age_drift_rate"):
            assert name in values, name
        assert any(k.startswith("ws_freshness_seconds{") for k in values)
        # every conflating mailbox reports what it superseded (0 is fine at paper rates)
        for actor in ("engine", "position", "watchdog", "executor", "guard"):
            assert any(k.startswith("arbd_bus_conflated_total{") and f'actor="{actor}"' in k for k in values), actor
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "Trades Opened:" in out
    assert not (run / "arbd.pid").exists()
