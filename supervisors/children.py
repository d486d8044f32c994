"""Handles on a running child: a spawned process, or a thread (inproc mode)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from typing import Protocol

import zmq

from supervisors.actor_context import HostSpec
from supervisors.host import ActorHost, host_main


class ChildHandle(Protocol):
    pid: int

    def is_alive(self) -> bool: ...
    def exit_status(self) -> tuple[int | None, int | None]: ...  # (exit_code, signal)
    def sentinel(self) -> int | None: ...
    def kill(self) -> None: ...
    def terminate(self) -> None: ...
    def reap(self, timeout: float) -> bool: ...


class ProcessChild:
    """An actor process started with 'spawn' (ZeroMQ contexts don't survive fork)."""

    _mp = multiprocessing.get_context("spawn")

    def __init__(self, spec: HostSpec) -> None:
        self._p = self._mp.Process(target=host_main, args=(spec,), name=f"arbd:{spec.name}")
        self._p.start()
        self.pid = self._p.pid or 0

    def is_alive(self) -> bool:
        return self._p.is_alive()

    def exit_status(self) -> tuple[int | None, int | None]:
        code = self._p.exitcode
        if code is None:
            return None, None
        if code < 0:
            return None, -code
        return code, None

    def sentinel(self) -> int | None:
        return self._p.sentinel

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def terminate(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def reap(self, timeout: float) -> bool:
        self._p.join(timeout)
        return self._p.exitcode is not None


class ThreadChild:
    """inproc mode: the actor's host runs as a thread of the supervisor. A
    thread cannot be killed, so a hung one is asked to stop and abandoned."""

    def __init__(self, spec: HostSpec, zctx: zmq.Context) -> None:
        self._host = ActorHost(spec, zctx)
        self._code: int | None = None
        self._t = threading.Thread(target=self._run, name=f"arbd:{spec.name}", daemon=True)
        self._t.start()
        self.pid = os.getpid()

    def _run(self) -> None:
        try:
            self._code = self._host.run()
        except Exception:
            self._code = 1

    def is_alive(self) -> bool:
        return self._t.is_alive()

    def exit_status(self) -> tuple[int | None, int | None]:
        return (self._code, None) if not self._t.is_alive() else (None, None)

    def sentinel(self) -> int | None:
        return None

    def kill(self) -> None:
        self._host.request_stop()

    def terminate(self) -> None:
        self._host.request_stop()

    def reap(self, timeout: float) -> bool:
        self._t.join(timeout)
        return not self._t.is_alive()
