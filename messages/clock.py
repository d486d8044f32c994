"""The market's clock: what every actor reads for the time of quotes, decisions
and orders.

In a normal run ``time``, ``time_ns``, ``monotonic`` and ``monotonic_ns`` are
the ``time`` module's own functions (the same objects: nothing is added to
any call). In a backtest each actor process calls :func:`attach` before its
actor starts, and from then on all four read one 64-bit word of a shared
file that the replay exchange writes: the tape time it has delivered, in
epoch nanoseconds. Every actor then sees the same instant while the daemon
works on a step of the tape, whatever the replay speed, which is what makes
a replay at ``--speed max`` trade like one at real speed.

Read through the module (``clock.time()``), or pass ``clock.time`` to a
constructor after ``attach``: a name imported before it keeps the wall clock.
What is about the process rather than the market (heartbeats, liveness,
socket timeouts, restart backoff) stays on the ``time`` module.
"""

from __future__ import annotations

import mmap
import os
import time as _time
from collections.abc import Callable

CLOCK_WORD = 0  # index of the clock in the shared file's array of int64 words

time: Callable[[], float] = _time.time
time_ns: Callable[[], int] = _time.time_ns
monotonic: Callable[[], float] = _time.monotonic
monotonic_ns: Callable[[], int] = _time.monotonic_ns
virtual = False

_keep: list[object] = []  # the mapping must outlive every reader


def attach(path: str | os.PathLike[str]) -> None:
    """Follow the clock word of the shared file at ``path`` from now on."""
    global time, time_ns, monotonic, monotonic_ns, virtual
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, 0)
    finally:
        os.close(fd)
    words = memoryview(mm).cast("q")  # an aligned 8-byte load: never torn on x86-64
    _keep.extend((mm, words))

    def now_ns() -> int:
        return words[CLOCK_WORD]

    def now_s() -> float:
        return words[CLOCK_WORD] / 1e9

    # Tape time serves as the monotonic clock too: it never goes back, and only
    # differences of monotonic readings mean anything.
    time, time_ns, monotonic, monotonic_ns = now_s, now_ns, now_s, now_ns
    virtual = True
