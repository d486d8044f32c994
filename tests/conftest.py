"""Shared fixtures.

``daemon`` is a factory: ``daemon(overrides)`` writes a runtime test config
(no simulator, a test role for every actor, fast heartbeats, a free metrics
port) into ``tmp_path``, starts ``bin/arbd start`` as a subprocess with its
own run directory, and waits until every actor is ``running``. On teardown
it stops every daemon it started, kills (by pid, only that run's processes)
anything left, and fails the test if any process outlived the daemon.
``daemon_module`` is the same with one run directory per test module, for
tests that share a daemon to keep the suite fast.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonRun, runtime_config, teardown_runs

DaemonFactory = Callable[..., DaemonRun]

# ipc:// paths must fit a unix socket address (~107 bytes) with room for
# "/run/sock/in-executor"; deep pytest temp dirs get a short one instead.
_MAX_ROOT = 70


class _Runs:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.runs: list[DaemonRun] = []
        self._short: list[Path] = []

    def make(self, overrides: dict[str, Any] | None = None, *, start: bool = True,
             wait_running: bool = True, fast: bool = True, args: tuple[str, ...] = (),
             timeout: float = 30.0) -> DaemonRun:
        root = self.base / f"d{len(self.runs)}"
        if len(str(root)) > _MAX_ROOT:
            short = Path(tempfile.mkdtemp(prefix="arbd-t-", dir="/tmp"))
            self._short.append(short)
            root = short / f"d{len(self.runs)}"
        run = DaemonRun(root, runtime_config(overrides, fast=fast))
        self.runs.append(run)
        if start:
            run.start(*args, wait_running=wait_running, timeout=timeout)
        return run

    def teardown(self) -> None:
        teardown_runs(self.runs, self._short)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonFactory]:
    runs = _Runs(tmp_path)
    try:
        yield runs.make
    finally:
        runs.teardown()


@pytest.fixture(scope="module")
def daemon_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    runs = _Runs(tmp_path_factory.mktemp("mod"))
    try:
        yield runs.make
    finally:
        runs.teardown()
