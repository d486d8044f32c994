"""``run_standalone`` (``bin/arbd sim``): URL object as the first stdout line, exit 0 on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = "from venues.sim.server import run_standalone; raise SystemExit(run_standalone(0, 7))"


def _start() -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CODE], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_standalone_prints_the_url_object_first_and_exits_zero_on_sigterm() -> None:
    proc = _start()
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        assert set(urls) == {"binance", "upbit", "admin", "test_keys"}
        assert urls["binance"]["ws"].endswith("/ws") and urls["upbit"]["ws"].endswith("/websocket/v1")
        assert set(urls["test_keys"]["upbit"]) == {"apiKey", "secret"}
        with urllib.request.urlopen(urls["binance"]["rest"] + "/api/v3/time", timeout=5) as r:
            assert "serverTime" in json.loads(r.read())
        with urllib.request.urlopen(urls["admin"] + "/_sim/balances", timeout=5) as r:
            assert json.loads(r.read())["upbit"]["KRW"]["free"] == 100_000_000
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_standalone_on_a_taken_port_fails_with_one_line() -> None:
    first = _start()
    try:
        assert first.stdout is not None
        urls = json.loads(first.stdout.readline())
        port = int(urls["upbit"]["rest"].rsplit(":", 1)[1])
        code = f"from venues.sim.server import run_standalone; raise SystemExit(run_standalone({port}, 7))"
        second = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert second.stdout == "" and len(second.stderr.strip().splitlines()) == 1
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)
