"""A real ``bin/arbd start`` on the embedded exchange, for the trading-core,
smoke, watchdog and soak tests.

Builds on :class:`tests.support.daemon.DaemonRun` (subprocess, run directory,
control client, cleanup of exactly that run's processes) and adds what those
tests need: the real roles instead of test roles, the embedded exchange's
admin API (orders, faults), the event log, the ledger, API keys in the
environment, and ``arm --confirm live_trading``.

:func:`sim_runs` is the fixture body: every daemon it makes is stopped at the
end, anything of its run left alive is killed by pid, and the test fails if
anything outlived the daemon. Every wait polls with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storage.ledger import UNRESOLVED, Ledger
from supervisors.control import ControlError
from tests.support.daemon import (
    ARBD,
    DaemonRun,
    Stillness,
    deep_merge,
    free_port,
    teardown_runs,
    wait_until,
)
from venues.sim.config import TEST_KEYS

KEY_VARS = ("UPBIT_ACCESS_KEY", "UPBIT_SECRET_KEY", "BINANCE_API_KEY", "BINANCE_API_SECRET")

# Fast supervision and watchdog timings so a test sees restarts and
# fail-closed transitions within seconds.
FAST: dict[str, Any] = {
    "supervision": {"heartbeat_interval_s": 0.2, "liveness_s": 1.5, "start_timeout_s": 30.0,
                    "shutdown_grace_s": 3.0},
    "watchdog": {"fail_closed_after_s": 1.5, "restart_after_s": 3.0, "clear_after_s": 1.0},
}
# A short baseline warm-up: opportunities (and so intents) within seconds.
QUICK_BASELINE: dict[str, Any] = {"baseline": {"time_constant_s": 120, "warmup_s": 5, "warmup_samples": 20}}

# live_trading against the embedded exchange: enabled, sized to the venues'
# minimums; orders flow once armed (``arm_live``).
LIVE_TRADING: dict[str, Any] = {
    "mode": "live_trading",
    "venues": {"source": "sim", "symbols": ["BTC", "ETH", "XRP"]},
    "live_trading": {"enabled": True, "dry_run_scale": 1.0, "allowed_symbols": ["BTC", "ETH", "XRP"],
                     "max_notional_per_trade": 500.0, "max_daily_loss": 1000.0},
    **QUICK_BASELINE,
    "strategy": {"cooldown_s": 3, "max_hold_s": 60},
}
PAPER: dict[str, Any] = {
    "mode": "paper",
    "trading": {"arm_on_start": True},
    "venues": {"source": "sim", "symbols": ["BTC", "ETH", "XRP"]},
    **QUICK_BASELINE,
    "strategy": {"cooldown_s": 3, "max_hold_s": 60},
}

# ipc:// paths must fit a unix socket address; deep pytest dirs get a short root.
_MAX_ROOT = 70


def sim_keys_env() -> dict[str, str]:
    """The embedded exchange's test keys under the four environment names."""
    return {"UPBIT_ACCESS_KEY": TEST_KEYS["upbit"]["apiKey"], "UPBIT_SECRET_KEY": TEST_KEYS["upbit"]["secret"],
            "BINANCE_API_KEY": TEST_KEYS["binance"]["apiKey"],
            "BINANCE_API_SECRET": TEST_KEYS["binance"]["secret"]}


def config(*parts: dict[str, Any], fast: bool = True) -> dict[str, Any]:
    """Merge config fragments over a free metrics port (and FAST timings)."""
    cfg: dict[str, Any] = {"metrics": {"port": free_port()}}
    if fast:
        cfg = deep_merge(cfg, FAST)
    for p in parts:
        cfg = deep_merge(cfg, p)
    return cfg


def http_json(url: str, method: str = "GET", body: Any = None, timeout: float = 5.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode())


class SimDaemon(DaemonRun):
    """``arbd start`` with its real roles; ``config=None`` runs the default
    config (no ``--config``: ``configs/paper.yaml``)."""

    def __init__(self, root: Path, cfg: dict[str, Any] | None, env: dict[str, str | None] | None = None
                 ) -> None:
        super().__init__(root, cfg or {})
        self.default_config = cfg is None
        for k, v in (env or {}).items():
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = v
        self._sim: dict[str, Any] | None = None

    def command(self, *extra: str, max_runtime_s: float = 300.0) -> list[str]:
        cmd = [str(ARBD), "start"]
        if not self.default_config:
            cmd += ["--config", str(self.config_path)]
        return [*cmd, "--run-dir", str(self.run_dir), "--max-runtime-seconds", f"{max_runtime_s:g}", *extra]

    def start(self, *extra: str, wait_running: bool = True, timeout: float = 40.0,
              max_runtime_s: float = 300.0) -> SimDaemon:
        assert self.proc is None or self.proc.poll() is not None, "already started"
        self.started_at = time.time()
        self._sim = None
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(self.command(*extra, max_runtime_s=max_runtime_s), stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL, env=self.env, cwd=str(self.root))
        if wait_running:
            self.wait_all_running(timeout)
        return self

    # -- the embedded exchange -------------------------------------------------
    def sim(self) -> dict[str, Any]:
        if self._sim is None:
            self._sim = wait_until(lambda: json.loads(self.run.sim_file.read_text()), 20, "sim.json")
        return self._sim

    def admin(self, path: str, method: str = "GET", body: Any = None) -> Any:
        return http_json(self.sim()["admin"] + path, method, body)

    def sim_orders(self) -> list[dict[str, Any]]:
        """Every order the exchange ever received (the sim dies with the daemon:
        fetch before stopping)."""
        return self.admin("/_sim/orders")

    def fault(self, venue: str, kind: str, seconds: float, **params: Any) -> Any:
        return self.admin("/_sim/fault", "POST", {"venue": venue, "kind": kind, "seconds": seconds, **params})

    def clear_faults(self) -> None:
        with contextlib.suppress(OSError, urllib.error.URLError):
            self.admin("/_sim/fault", "DELETE")

    # -- trading state -----------------------------------------------------------
    def arm_live(self, timeout: float = 20.0) -> None:
        """``arbctl arm --confirm live_trading``, retried until the guard takes it."""
        def probe() -> bool:
            out = self.arbctl("arm", "--confirm", "live_trading", timeout=15)
            if out.returncode != 0 and "refused" in out.stderr and "not running" not in out.stderr \
                    and "did not answer" not in out.stderr:
                raise AssertionError(f"arm refused: {out.stderr.strip()}")
            return out.returncode == 0

        wait_until(probe, timeout, "the guard to accept arm --confirm live_trading", interval=0.2)
        wait_until(lambda: self.status()["trading_state"] == "armed", 10, "status to say armed")

    def halt(self, reason: str = "test") -> None:
        out = self.arbctl("halt", "--reason", reason)
        assert out.returncode == 0, out.stderr

    def status_cli(self) -> dict[str, Any]:
        """``arbctl status --json``, the operator's contract."""
        out = self.arbctl("status", "--json", timeout=20)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def actor(self, name: str) -> dict[str, Any]:
        return self.actors()[name]

    # -- files ---------------------------------------------------------------------
    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """The event log (``logs/events/longrun_events_*.jsonl``), in file order."""
        out = []
        for path in sorted(self.run.events_dir.glob("longrun_events_*.jsonl")):
            for line in path.read_text().splitlines():
                if not line.strip():
                    continue
                rec = json.loads(line)
                if event_type is None or rec.get("event_type") == event_type:
                    out.append(rec)
        return out

    def ledger(self) -> Ledger:
        return Ledger(self.run.ledger_path, readonly=True)

    def ledger_rows(self, where: str = "", args: tuple[object, ...] = ()) -> list[Any]:
        """Rows of the ledger's orders table, read-only (no write lock taken)."""
        if not self.run.ledger_path.exists():
            return []
        db = sqlite3.connect(f"file:{self.run.ledger_path}?mode=ro", uri=True, timeout=5.0)
        try:
            db.row_factory = sqlite3.Row
            sql = "SELECT * FROM orders" + (f" WHERE {where}" if where else "") + " ORDER BY created_ns"
            return [dict(r) for r in db.execute(sql, args)]
        except sqlite3.OperationalError:
            return []  # the executor has not created its tables yet
        finally:
            db.close()

    def quiesce(self, timeout: float = 20.0, still_s: float = 1.0, naked_still_s: float = 5.0) -> None:
        """Halt, then wait until trading is still: every ledger order resolved,
        nothing open, and neither the ledger nor the exchange's orders moving
        for ``still_s`` (``naked_still_s`` while a hedge is naked: its repair
        passes while halted). Resolved alone is not still: an intent approved
        just before the halt may not be in the ledger yet, and an ``unwind``
        may follow a leg that expires after it. The caller reads the exchange
        after this, so the exchange holds every order the ledger does."""
        self.halt("test: quiesce")
        stillness = Stillness(still_s, naked_still_s)

        def still() -> bool:
            st = self.safe_status()
            try:
                seen = tuple(sorted((o.get("client_order_id"), o["status"]) for o in self.sim_orders()))
            except (OSError, ValueError, KeyError):
                seen = None
            rows = tuple((r["client_order_id"], r["status"]) for r in self.ledger_rows())
            busy = (st is None or seen is None or int(st["orders"]["open"]) > 0
                    or any(status in UNRESOLVED for _, status in rows))
            naked = st is not None and float(st.get("naked_exposure_krw") or 0.0) > 0
            return stillness.still(None if busy else (rows, seen), naked)

        wait_until(still, timeout, "trading to go still after the halt (ledger resolved, nothing moving)",
                   interval=0.1)

    def wait_events(self, event_type: str, n: int, timeout: float) -> list[dict[str, Any]]:
        def probe() -> list[dict[str, Any]] | None:
            if not self.alive():
                raise AssertionError(f"arbd exited ({self.proc.returncode if self.proc else None}):\n"
                                     f"{self.stderr()[-3000:]}")
            ev = self.events(event_type)
            return ev if len(ev) >= n else None

        return wait_until(probe, timeout, f"{n} {event_type!r} event(s)", interval=0.2)

    def safe_status(self) -> dict[str, Any] | None:
        try:
            return self.status()
        except (ControlError, OSError, ValueError):
            return None


class SimRuns:
    """Makes daemons under ``base``; :meth:`teardown` stops them all and fails
    if any process of theirs outlived its daemon."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.runs: list[SimDaemon] = []
        self._short: list[Path] = []

    def make(self, cfg: dict[str, Any] | None, *, env: dict[str, str | None] | None = None,
             start: bool = True, wait_running: bool = True, args: tuple[str, ...] = (),
             timeout: float = 40.0, max_runtime_s: float = 300.0) -> SimDaemon:
        root = self.base / f"d{len(self.runs)}"
        if len(str(root)) > _MAX_ROOT:
            short = Path(tempfile.mkdtemp(prefix="arbd-t-", dir="/tmp"))
            self._short.append(short)
            root = short / f"d{len(self.runs)}"
        run = SimDaemon(root, cfg, env)
        self.runs.append(run)
        if start:
            run.start(*args, wait_running=wait_running, timeout=timeout, max_runtime_s=max_runtime_s)
        return run

    def teardown(self) -> None:
        teardown_runs(self.runs, self._short)


@contextlib.contextmanager
def sim_runs(base: Path) -> Iterator[SimRuns]:
    runs = SimRuns(base)
    try:
        yield runs
    finally:
        runs.teardown()


def without_keys() -> dict[str, str | None]:
    return dict.fromkeys(KEY_VARS)


def with_keys() -> dict[str, str | None]:
    return dict(sim_keys_env())


__all__ = ["FAST", "KEY_VARS", "LIVE_TRADING", "PAPER", "QUICK_BASELINE", "SimDaemon", "SimRuns", "config",
           "http_json", "sim_keys_env", "sim_runs", "wait_until", "with_keys", "without_keys"]
