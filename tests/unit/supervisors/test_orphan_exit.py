"""An actor process whose supervisor died exits on its own, even when its
main thread never gets to handle the death signal."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[3]

# The middle process starts a "child" that ignores SIGTERM and wedges its main
# thread, prints the child's pid, then waits to be killed. The child says
# "ready" on the same pipe once its watch runs: its imports may take seconds on
# a loaded machine, and a parent killed before then is not the one it watches.
MIDDLE = r"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", CHILD])
print(child.pid, flush=True)
child.wait()
"""
CHILD = r"""
import os, signal, threading, time
parent = os.getppid()
from supervisors.host import _exit_when_orphaned
signal.signal(signal.SIGTERM, signal.SIG_IGN)
threading.Thread(target=_exit_when_orphaned, args=(parent, 0.3), daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(3600)  # a main thread that never returns to handle anything
"""


def test_an_orphan_with_a_wedged_main_thread_exits_after_the_grace() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    middle = subprocess.Popen([sys.executable, "-c", f"CHILD = {CHILD!r}\n{MIDDLE}"],
                              stdout=subprocess.PIPE, text=True, env=env)
    child_pid = 0
    try:
        assert middle.stdout is not None
        child_pid = int(middle.stdout.readline())
        child = psutil.Process(child_pid)
        assert middle.stdout.readline().strip() == "ready"
        assert child.is_running() and child.status() != psutil.STATUS_ZOMBIE  # alive while its parent is
        middle.send_signal(signal.SIGKILL)
        middle.wait(5)
        t0 = time.monotonic()
        while _alive(child) and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        assert not _alive(child), "the orphan outlived its grace"
        assert time.monotonic() - t0 < 3.0
    finally:
        if middle.poll() is None:
            middle.kill()
            middle.wait(5)
        if child_pid:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(child_pid).kill()


def _alive(p: psutil.Process) -> bool:
    """Running, and not a zombie waiting for whoever adopted it to reap it."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
