"""The backtest board: the tape clock plus every actor's work counters, in one
shared file, so the replay exchange can tell when the daemon has finished with
what it was last given.

The file (``<run>/clock.shm``) is an array of int64 words. Word 0 is the
tape clock (``messages.clock`` reads it); the daemon creates the file and
names one slot per child; each actor process (:class:`Progress`) writes its
own slot; the replay exchange (:class:`Board`) writes the clock and reads
every slot. A slot is written whole under a sequence word (odd while
writing), and a reader retries until it reads it even and unchanged.

A slot says, for its process: messages received for the actor and handled
(or superseded in a latest-value mailbox), items put in the outbox and sent,
trade-path messages still unacknowledged, messages sent on its direct
stream and received from its direct sources, when its next tick is due (tape
time), work in flight outside messages (the executor's legs) and, for a
feed, frames fully handled. The daemon is quiet when every slot has handled
all it received, sent all it put, has every send acknowledged and no tick
due, and every direct consumer has received every message its sources sent
(see ``venues.sim.replay_driver``). The bus (via the proxy) is not counted:
its fan-out is unknown at the sender; what trades on it in a replay is
listed in the README's limits.

Wake-ups: every slot write pokes a named pipe (``clock.wake``) that the
replay exchange's loop reads, so it looks again at once instead of polling.
Ticks: the replay exchange publishes a byte on ``ipc://<run>/sock/clock``
whenever it moves the clock onto a tick boundary; hosts wake on it and run
the ticks due in tape time.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from messages.clock import CLOCK_WORD

MAGIC = 0x41524244424F4431  # "ARBDBOD1"
HEADER_WORDS = 8  # clock, magic, slots, started, ...
SLOT_WORDS = 16
MAX_SLOTS = 32
NAME_BYTES = 32
NEVER = (1 << 63) - 1  # next_tick of a role without ticks

# Slot word offsets.
SEQ, PID, RECV, DONE, OUT_PUT, OUT_SENT, UNACKED, STREAM_SENT, DIRECT_RECV, DIRECT_MASK, NEXT_TICK, \
    PENDING, FRAMES, ATTACHED = range(14)
FIELDS = ("seq", "pid", "recv", "done", "out_put", "out_sent", "unacked", "stream_sent", "direct_recv",
          "direct_mask", "next_tick", "pending", "frames", "attached")

_NAMES_AT = (HEADER_WORDS + MAX_SLOTS * SLOT_WORDS) * 8
SIZE = _NAMES_AT + MAX_SLOTS * NAME_BYTES


def board_path(run_root: Path) -> Path:
    return run_root / "clock.shm"


def wake_path(run_root: Path) -> Path:
    return run_root / "clock.wake"


def tick_endpoint(run_root: Path) -> str:
    return f"ipc://{run_root / 'sock' / 'clock'}"


def _map(path: Path) -> tuple[mmap.mmap, memoryview]:
    fd = os.open(path, os.O_RDWR)
    try:
        mm = mmap.mmap(fd, SIZE)
    finally:
        os.close(fd)
    return mm, memoryview(mm).cast("q")


def _names(mm: mmap.mmap, n: int) -> list[str]:
    return [bytes(mm[_NAMES_AT + i * NAME_BYTES:_NAMES_AT + (i + 1) * NAME_BYTES]).rstrip(b"\0").decode()
            for i in range(n)]


class Board:
    """The whole file: the clock, the slot names, and consistent reads of every slot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mm, self.words = _map(path)
        if self.words[1] != MAGIC:
            raise ValueError(f"{path} is not a backtest board")
        self.names = _names(self._mm, self.words[2])

    @classmethod
    def create(cls, path: Path, names: Sequence[str], clock_ns: int) -> Board:
        if len(names) > MAX_SLOTS:
            raise ValueError(f"at most {MAX_SLOTS} actors on a board")
        with path.open("wb") as f:
            f.write(b"\0" * SIZE)
        mm, words = _map(path)
        words[CLOCK_WORD] = clock_ns
        words[2] = len(names)
        for i, name in enumerate(names):
            raw = name.encode()[:NAME_BYTES]
            mm[_NAMES_AT + i * NAME_BYTES:_NAMES_AT + i * NAME_BYTES + len(raw)] = raw
            words[HEADER_WORDS + i * SLOT_WORDS + NEXT_TICK] = NEVER
        words[1] = MAGIC
        words.release()
        mm.close()
        with contextlib.suppress(FileNotFoundError):
            wake_path(path.parent).unlink()
        os.mkfifo(wake_path(path.parent), 0o600)
        return cls(path)

    @property
    def clock_ns(self) -> int:
        return self.words[CLOCK_WORD]

    @clock_ns.setter
    def clock_ns(self, value: int) -> None:
        self.words[CLOCK_WORD] = value

    def slot(self, i: int) -> tuple[int, ...]:
        """Slot ``i`` as written by one whole write (retried while a write is under way)."""
        base = HEADER_WORDS + i * SLOT_WORDS
        words = self.words
        while True:
            seq = words[base + SEQ]
            if seq & 1:
                continue
            vals = tuple(words[base:base + SLOT_WORDS])
            if words[base + SEQ] == seq:
                return vals

    def snapshot(self) -> list[tuple[int, ...]]:
        """Every slot at one moment: read all twice until nothing changed between the reads."""
        n = len(self.names)
        first = [self.slot(i) for i in range(n)]
        while True:
            again = [self.slot(i) for i in range(n)]
            if all(a[SEQ] == b[SEQ] for a, b in zip(first, again, strict=True)):
                return again
            first = again

    def close(self) -> None:
        self.words.release()
        self._mm.close()


class Progress:
    """One process's slot (thread-safe). Counters are kept here and the whole
    slot is written at every change, then the replay exchange is poked."""

    def __init__(self, run_root: Path, name: str) -> None:
        path = board_path(run_root)
        self._mm, self._words = _map(path)
        names = _names(self._mm, self._words[2])
        if name not in names:
            raise ValueError(f"no slot for {name!r} on the board")
        self.index = names.index(name)
        self.names = names
        self._base = HEADER_WORDS + self.index * SLOT_WORDS
        self._vals = list(self._words[self._base:self._base + SLOT_WORDS])
        self._vals[PID] = os.getpid()
        self._lock = threading.Lock()
        self._wake_path = wake_path(run_root)
        self._wake_fd = -1
        self._write()

    def mask_of(self, names: Sequence[str]) -> int:
        return sum(1 << self.names.index(n) for n in names if n in self.names)

    def _write(self) -> None:
        words, base, vals = self._words, self._base, self._vals
        seq = words[base + SEQ] + 1
        words[base + SEQ] = seq  # odd: a write is under way
        for k in range(1, SLOT_WORDS):
            words[base + k] = vals[k]
        words[base + SEQ] = seq + 1
        self._wake()

    def _wake(self) -> None:
        if self._wake_fd < 0:
            try:
                self._wake_fd = os.open(self._wake_path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return  # nobody reads yet (ENXIO): the replay has not started
        try:
            os.write(self._wake_fd, b"\0")
        except OSError as e:
            if e.errno != errno.EAGAIN:  # a full pipe already says "look"
                with contextlib.suppress(OSError):
                    os.close(self._wake_fd)
                self._wake_fd = -1

    def add(self, **deltas: int) -> None:
        """Add to counters by field name (``recv=1``, ``done=2``, ...)."""
        with self._lock:
            vals = self._vals
            for k, d in deltas.items():
                vals[_INDEX[k]] += d
            self._write()

    def set(self, **values: int) -> None:
        with self._lock:
            vals = self._vals
            for k, v in values.items():
                vals[_INDEX[k]] = v
            self._write()

    def update(self, add: dict[str, int], values: dict[str, int]) -> None:
        with self._lock:
            vals = self._vals
            for k, d in add.items():
                vals[_INDEX[k]] += d
            for k, v in values.items():
                vals[_INDEX[k]] = v
            self._write()

    def close(self) -> None:
        if self._wake_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._wake_fd)
            self._wake_fd = -1


_INDEX = {name: i for i, name in enumerate(FIELDS)}
