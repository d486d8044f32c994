"""Running ``arbd record`` / ``arbd backtest`` for tests and the replay bench.

Each command runs with a marker in its environment (inherited by every actor
process a backtest spawns), in a session of its own: at the deadline the
session is killed by the id of the process started here, and afterwards
:func:`leftovers` finds anything of that run still alive.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

from storage.tape import TapeReader, TapeWriter
from tests.support.daemon import ARBD, MARKER_ENV, ROOT, marked_processes

TAPE = ROOT / "tests" / "data" / "sim-3coins-25s.arbt"
# A short warm-up and quick re-entries: trades within seconds of tape.
QUICK = ("--set", "baseline.warmup_s=3", "--set", "baseline.warmup_samples=10", "--set", "strategy.cooldown_s=2")


def arbd(*args: str, timeout: float = 120.0) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``bin/arbd ARGS``; returns the result and the marker its processes carry."""
    marker = f"arbd-test-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen([str(ARBD), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, env={**os.environ, MARKER_ENV: marker},
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the session of the process started here
        out, err = proc.communicate()
        raise AssertionError(f"arbd {' '.join(args[:2])} still running after {timeout:g}s:\n{err[-3000:]}") \
            from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), marker


def leftovers(marker: str) -> list[int]:
    """Pids of processes that carry ``marker`` (nothing should outlive its command)."""
    return [p.pid for p in marked_processes(marker)]


def backtest(tape: Path, *args: str, timeout: float = 120.0) -> dict[str, Any]:
    """``arbd backtest TAPE --json ARGS``: the result object (the command must succeed)."""
    out, marker = arbd("backtest", str(tape), "--json", *args, timeout=timeout)
    assert out.returncode == 0, f"backtest failed ({out.returncode}):\n{out.stderr[-3000:]}"
    assert not leftovers(marker), "processes outlived the backtest"
    return json.loads(out.stdout)


def cut(src: Path, dst: Path, seconds: float) -> None:
    """A new tape with the first ``seconds`` of ``src``."""
    reader = TapeReader(src)
    with TapeWriter(dst, reader.meta, chunk_bytes=64 << 10) as w:
        start = None
        for f in reader.frames():
            start = f.recv_ns if start is None else start
            if f.recv_ns - start > seconds * 1e9:
                break
            w.add(f)
