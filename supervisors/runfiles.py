"""The run directory: its layout, the single-instance lock, durable small files.

Layout (relative to the run dir, default ``./run``)::

    arbd.lock / arbd.pid     single-instance lock and the daemon's pid
    endpoints.json           where the control socket and bus live
    sock/                    ipc:// endpoints (the dir is 0700)
    sim.json                 the embedded exchange's URL object
    state/                   ledger.sqlite, trading_state.json
    logs/supervisor.jsonl    restart log
    logs/events/             longrun_events_YYYYMMDD.jsonl
    logs/stability/          long-run snapshots
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from messages import clock


class AlreadyRunning(RuntimeError):
    def __init__(self, pid: int | None) -> None:
        super().__init__(f"already running (pid {pid if pid else '?'})")
        self.pid = pid


@dataclass(frozen=True, slots=True)
class RunDir:
    root: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> RunDir:
        return cls(Path(path).resolve())

    @property
    def lock_file(self) -> Path:
        return self.root / "arbd.lock"

    @property
    def pid_file(self) -> Path:
        return self.root / "arbd.pid"

    @property
    def endpoints_file(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def sock_dir(self) -> Path:
        return self.root / "sock"

    @property
    def sim_file(self) -> Path:
        return self.root / "sim.json"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite"

    @property
    def trading_state_file(self) -> Path:
        return self.state_dir / "trading_state.json"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def supervisor_log(self) -> Path:
        return self.logs_dir / "supervisor.jsonl"

    @property
    def events_dir(self) -> Path:
        return self.logs_dir / "events"

    @property
    def stability_dir(self) -> Path:
        return self.logs_dir / "stability"

    def create(self) -> None:
        # 0700: the ipc sockets inside accept orders; nobody else may reach them.
        for d in (self.root, self.sock_dir, self.state_dir, self.logs_dir,
                  self.events_dir, self.stability_dir):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.chmod(self.sock_dir, 0o700)

    def read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> int | None:
        """The pid of the daemon holding the lock, or None when none does."""
        try:
            fd = os.open(self.lock_file, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return self.read_pid() or -1
            raise
        finally:
            os.close(fd)
        return None


class InstanceLock:
    """flock on ``arbd.lock``: released by the kernel when the holder dies,
    so a kill -9'd daemon never leaves a stale lock behind."""

    def __init__(self, run: RunDir) -> None:
        self._run = run
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._run.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise AlreadyRunning(self._run.read_pid()) from None
        self._fd = fd
        atomic_write_text(self._run.pid_file, f"{os.getpid()}\n")

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self._run.pid_file.unlink()
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def atomic_write_text(path: Path, text: str) -> None:
    """Write-then-rename with fsync, so a reader never sees half a file and a
    crash never leaves one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, sort_keys=True, indent=1) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


class JsonlAppender:
    """Appends whole JSON lines: one ``write`` per line on an O_APPEND fd, so
    concurrent writers in other processes never interleave within a line and
    a kill loses at most the line being built."""

    def __init__(self, path: Path, fsync: bool = False) -> None:
        self._path = path
        self._fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
        os.write(self._fd, line)
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        # Once only: a second close could hit the same number reused by another owner.
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


class EventLog:
    """The seed's event log: ``logs/events/longrun_events_YYYYMMDD.jsonl``,
    rotated daily (UTC), one whole line per event, written by the event's owner."""

    def __init__(self, run: RunDir, actor: str) -> None:
        self._dir = run.events_dir
        self._actor = actor
        self._day = ""
        self._out: JsonlAppender | None = None

    def path_for(self, day: str) -> Path:
        return self._dir / f"longrun_events_{day}.jsonl"

    def record(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        now = clock.time()  # the market's: a backtest's events carry tape time, like its ledger
        day = time.strftime("%Y%m%d", time.gmtime(now))
        if day != self._day or self._out is None:
            if self._out is not None:
                self._out.close()
            self._out = JsonlAppender(self.path_for(day))
            self._day = day
        rec = {"ts": round(now, 6), "event_type": event_type, "actor": self._actor, **data}
        self._out.append(rec)
        return rec

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
