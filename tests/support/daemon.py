"""Run a real ``bin/arbd start`` for tests and benchmarks, and clean up after it.

Every process a run starts carries ``ARBD_TEST_RUN=<run dir>`` in its
environment (spawned children inherit it), so cleanup finds exactly the
processes of that run, orphans included, and never touches anything else.
Every wait polls with a deadline; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psutil
import yaml

from supervisors.control import ControlClient, ControlError
from supervisors.endpoints import Endpoints
from supervisors.ports import pick_port
from supervisors.runfiles import RunDir

ROOT = Path(__file__).resolve().parents[2]
ARBD = ROOT / "bin" / "arbd"
ARBCTL = ROOT / "bin" / "arbctl"
MARKER_ENV = "ARBD_TEST_RUN"

ACTORS = ("watchdog", "guard", "executor", "position", "engine", "feed.upbit", "feed.binance")
TEST_ROLES: dict[str, str] = {
    "watchdog": "tests.support.roles:IdleActor",
    "guard": "tests.support.roles:CommandActor",
    "executor": "tests.support.roles:InboxIdleActor",
    "position": "tests.support.roles:InboxIdleActor",
    "engine": "tests.support.roles:IdleActor",
    "feed.upbit": "tests.support.roles:IdleActor",
    "feed.binance": "tests.support.roles:IdleActor",
}
# Fast liveness for tests: a hung actor is found within 1.5 s (with margin for a busy CI host).
FAST_SUPERVISION: dict[str, Any] = {"heartbeat_interval_s": 0.1, "liveness_s": 1.5,
                                    "start_timeout_s": 20.0, "shutdown_grace_s": 3.0}

T = TypeVar("T")


def _lane() -> tuple[int, int]:
    """(this pytest-xdist worker's index, how many workers); (0, 1) without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return (int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0), max(1, count)


_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port for a server a test starts: below the kernel's
    ephemeral range (supervisors.ports), never handed out twice, and under
    pytest-xdist only from this worker's lane, so two workers never pick the
    same one between a probe and the daemon's bind."""
    lane, lanes = _lane()
    port = pick_port("127.0.0.1", lambda p: p % lanes == lane and p not in _handed_out)
    _handed_out.add(port)
    return port


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def runtime_config(overrides: dict[str, Any] | None = None, *, fast: bool = True) -> dict[str, Any]:
    """A config with no simulator and a test role for every actor."""
    cfg: dict[str, Any] = {
        "mode": "paper",
        "venues": {"source": "live"},
        "metrics": {"port": free_port()},
        "testing": {"role_overrides": dict(TEST_ROLES)},
    }
    if fast:
        cfg["supervision"] = dict(FAST_SUPERVISION)
    return deep_merge(cfg, overrides or {})


def wait_until(probe: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.02) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except (ControlError, OSError, ValueError, KeyError) as e:
            value, last_error = None, e
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_error})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)


class Stillness:
    """Says when one observation has stayed the same long enough after a halt:
    ``still_s``, or ``naked_still_s`` while a hedge is naked (its repair
    passes while halted and may take a moment). An observation of ``None``
    means "busy": not still, and the wait starts over."""

    def __init__(self, still_s: float = 1.0, naked_still_s: float = 5.0) -> None:
        self.still_s, self.naked_still_s = still_s, naked_still_s
        self._last: object = None
        self._since = time.monotonic()

    def still(self, look: object, naked: bool) -> bool:
        now = time.monotonic()
        if look is None or look != self._last:
            self._last, self._since = look, now
            return False
        return now - self._since >= (self.naked_still_s if naked else self.still_s)


def _is_gone(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def marked_processes(marker: str) -> list[psutil.Process]:
    """Every live process (this one aside) whose environment carries ``marker``
    under MARKER_ENV: what a test started, and everything that spawned."""
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(MARKER_ENV) == marker and not _is_gone(p):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def pid_gone(pid: int) -> bool:
    try:
        return _is_gone(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return True


class DaemonRun:
    """One ``arbd start`` in its own run directory under ``root``."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = root / "arbd.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.run_dir = root / "run"
        self.run = RunDir.at(self.run_dir)
        self.stdout_path = root / "arbd.stdout"
        self.stderr_path = root / "arbd.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.env = {**os.environ, MARKER_ENV: str(self.run.root), "PYTHONUNBUFFERED": "1"}
        self._clients: dict[float, ControlClient] = {}

    # -- process -----------------------------------------------------------
    def start(self, *extra: str, wait_running: bool = True, timeout: float = 30.0,
              max_runtime_s: float = 300.0) -> DaemonRun:
        """Start in the background; by default wait until every actor is running."""
        assert self.proc is None or self.proc.poll() is not None, "already started"
        self.started_at = time.time()
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                [str(ARBD), "start", "--config", str(self.config_path), "--run-dir", str(self.run_dir),
                 "--max-runtime-seconds", f"{max_runtime_s:g}", *extra],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=self.env, cwd=str(self.root))
        if wait_running:
            self.wait_all_running(timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"arbd (pid {self.pid}) still running after {timeout:g}s") from None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def why_it_stopped(self, errors: int = 3) -> str:
        """What a failure message needs: the restart log's events (starts and
        the orderly shutdown left out), the first errors (the cause, before the
        shutdown noise) with the last line of their traceback, and the end of
        stderr."""
        events = [json.dumps(r, separators=(",", ":")) for r in self.restart_log()
                  if r.get("event") != "start" and r.get("reason") != "shutdown"]
        err = self.stderr()
        first = []
        for line in err.splitlines():
            if '"level":"error"' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                first.append(line[:300])
            else:
                cause = (rec.get("exc") or "").strip().splitlines()[-1:]
                first.append(f"{rec.get('actor')}: {rec.get('msg')} {' '.join(cause)}"[:400])
            if len(first) == errors:
                break
        return "\n".join(["restart log (starts and shutdown left out):", *events[-12:], "first errors:", *first,
                          "end of stderr:", err[-1500:]])

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    # -- control -----------------------------------------------------------
    def endpoints(self) -> Endpoints:
        return Endpoints.from_json(self.run.endpoints_file.read_text())

    def call(self, command: str, timeout: float = 3.0, **args: Any) -> Any:
        """One control request; returns the result or raises ControlError."""
        client = self._clients.get(timeout)
        if client is None:
            client = self._clients[timeout] = ControlClient(self.endpoints().control, timeout)
        reply = client.call(command, **args)
        if not reply.ok:
            raise ControlError(reply.error_code, reply.error_reason)
        return reply.result

    def status(self, timeout: float = 3.0) -> dict[str, Any]:
        return self.call("status", timeout=timeout)

    def actors(self) -> dict[str, dict[str, Any]]:
        return {a["name"]: a for a in self.status()["actors"]}

    def wait_all_running(self, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        def probe() -> dict[str, dict[str, Any]] | None:
            if not self.alive():
                raise AssertionError(f"arbd exited with {self.proc.returncode if self.proc else None}"
                                     f" while starting:\n{self.why_it_stopped()}")
            actors = self.actors()
            return actors if actors and all(a["state"] == "running" for a in actors.values()) else None

        return wait_until(probe, timeout, "every actor to be running", interval=0.05)

    def wait_replaced(self, name: str, old_pid: int, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until ``name`` runs (heartbeats) under a pid other than ``old_pid``."""
        def probe() -> dict[str, Any] | None:
            a = self.actors()[name]
            return a if a["state"] == "running" and a["pid"] not in (None, old_pid) else None

        return wait_until(probe, timeout, f"{name} to run again under a new pid", interval=0.02)

    # -- files ---------------------------------------------------------------
    def restart_log(self) -> list[dict[str, Any]]:
        path = self.run.supervisor_log
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log_events(self, actor: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.restart_log()
                if (actor is None or r["actor"] == actor) and (event is None or r["event"] == event)]

    # -- CLIs ----------------------------------------------------------------
    def arbd(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return run_cli(ARBD, *args, env=self.env, timeout=timeout, cwd=self.root)

    def arbctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return run_cli(ARBCTL, "--run-dir", str(self.run_dir), *args, env=self.env,
                       timeout=timeout, cwd=self.root)

    # -- cleanup -------------------------------------------------------------
    def processes(self) -> list[psutil.Process]:
        """Every live process of this run: the daemon and everything it spawned."""
        return marked_processes(str(self.run.root))

    def wait_no_processes(self, timeout: float) -> list[psutil.Process]:
        """Wait for every process of this run to end; return those still alive."""
        deadline = time.monotonic() + timeout
        left = self.processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = [p for p in left if not _is_gone(p)]
        return left

    def stop(self, timeout: float = 20.0) -> int | None:
        """Orderly stop (SIGTERM to the daemon we started); SIGKILL at the deadline."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def cleanup(self) -> list[str]:
        """Stop, kill what is left (only this run's processes), and return a
        description of every process that had to be killed."""
        for p in self.processes():  # a test may have left one stopped
            with contextlib.suppress(psutil.Error):
                p.send_signal(signal.SIGCONT)
        self.stop()
        leaked = self.wait_no_processes(5.0)
        described = []
        for p in leaked:
            with contextlib.suppress(psutil.Error):
                described.append(f"pid {p.pid} {' '.join(p.cmdline())[:120]}")
                p.kill()
        if leaked:
            psutil.wait_procs(leaked, timeout=5)
        return described


def teardown_runs(runs: list[DaemonRun], short_dirs: list[Path]) -> None:
    """Stop every run, kill (by pid) whatever outlived its daemon, remove the
    short socket dirs, and fail the test if anything had to be killed."""
    problems = []
    for run in runs:
        leaked = run.cleanup()
        if leaked:
            problems.append(f"{run.run_dir}: processes outlived the daemon and were killed: {leaked}")
        left = run.processes()
        if left:
            problems.append(f"{run.run_dir}: processes still alive after cleanup: {[p.pid for p in left]}")
    for d in short_dirs:
        shutil.rmtree(d, ignore_errors=True)
    assert not problems, "\n".join(problems)


def run_cli(exe: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 30.0,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else dict(os.environ), cwd=str(cwd) if cwd else None,
                          stdin=subprocess.DEVNULL)

