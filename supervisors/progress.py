"""The backtest board: the tape clock plus every actor's work counters, in one
shared file, so the replay exchange can tell when the daemon has finished with
what it was last given.

The file (``<run>/clock.shm``) is an array of int64 words. Word 0 is the
tape clock (``messages.clock`` reads it); the daemon creates the file and
names one slot per child; each actor process (:class:`Progress`) writes its
own slot; the replay exchange (:class:`Board`) writes the clock and reads
every slot. A slot is written whole under a sequence word (odd while
writing); a reader copies the slot area twice until both copies are equal
and no sequence word is odd.

A slot says, for its process: messages received for the actor and handled
(or superseded in a latest-value mailbox), items put in the outbox and sent,
trade-path messages still unacknowledged, messages sent on its direct stream
and received from its direct sources, when its next tick is due (tape time),
work in flight outside messages (the executor's legs), for a feed the frames
fully handled, and two rows for the bus: per other slot, the bus messages it
sent that slot (the topics that slot subscribes to, as it wrote them here)
and the bus messages it received from it. Bus counting starts when the
replay sets the header's ``bus_gen`` (every actor subscribed by then); the
replay compares the rows from a baseline taken once the daemon has settled.
``venues.sim.replay_sync`` says when all of it adds up to quiet.

Wake-ups: a slot write that leaves its process with nothing to do pokes a
named pipe (``clock.wake``) that the replay exchange's loop reads, so it looks
again at once instead of polling.
Ticks: the replay exchange publishes a byte on ``ipc://<run>/sock/clock``
whenever it moves the clock onto a tick boundary; hosts wake on it and run
the ticks due in tape time.
"""

from __future__ import annotations

import array
import contextlib
import errno
import mmap
import os
import struct
import threading
from collections.abc import Sequence
from pathlib import Path

from messages.clock import CLOCK_WORD

MAGIC = 0x41524244424F4432  # "ARBDBOD2"
HEADER_WORDS = 8  # clock, magic, slots, bus_gen, ...
BUS_GEN = 3
MAX_SLOTS = 16
SLOT_WORDS = 16 + 2 * MAX_SLOTS  # fields, then bus sent to each slot, then bus received from each
NAME_BYTES = 32
PREFIX_BYTES = 256
NEVER = (1 << 63) - 1  # next_tick of a role without ticks

# Slot word offsets.
SEQ, PID, RECV, DONE, OUT_PUT, OUT_SENT, UNACKED, STREAM_SENT, DIRECT_RECV, DIRECT_MASK, NEXT_TICK, \
    PENDING, FRAMES, ATTACHED = range(14)
BUS_SENT, BUS_RECV = 16, 16 + MAX_SLOTS
FIELDS = ("seq", "pid", "recv", "done", "out_put", "out_sent", "unacked", "stream_sent", "direct_recv",
          "direct_mask", "next_tick", "pending", "frames", "attached")

_NAMES_AT = (HEADER_WORDS + MAX_SLOTS * SLOT_WORDS) * 8
_PREFIXES_AT = _NAMES_AT + MAX_SLOTS * NAME_BYTES
SIZE = _PREFIXES_AT + MAX_SLOTS * PREFIX_BYTES


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


def _text(mm: mmap.mmap, at: int, size: int) -> str:
    return bytes(mm[at:at + size]).rstrip(b"\0").decode()


def _names(mm: mmap.mmap, n: int) -> list[str]:
    return [_text(mm, _NAMES_AT + i * NAME_BYTES, NAME_BYTES) for i in range(n)]


class Board:
    """The whole file: the clock, the slot names, and consistent reads of every slot."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mm, self.words = _map(path)
        if self.words[1] != MAGIC:
            raise ValueError(f"{path} is not a backtest board")
        self.names = _names(self._mm, self.words[2])
        self._unpack = struct.Struct(f"<{len(self.names) * SLOT_WORDS}q").unpack

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

    def count_bus(self) -> None:
        """From now on publishers count what they send each subscriber on the bus."""
        self.words[BUS_GEN] = 1

    def slot(self, i: int) -> tuple[int, ...]:
        return self.snapshot()[i]

    def snapshot(self) -> list[tuple[int, ...]]:
        """Every slot at one moment: the slot area copied twice, until the two copies
        are equal and no slot was being written (a sequence word is odd meanwhile)."""
        n = len(self.names)
        lo, hi = HEADER_WORDS * 8, (HEADER_WORDS + n * SLOT_WORDS) * 8
        mm, unpack = self._mm, self._unpack
        first = mm[lo:hi]
        while True:
            again = mm[lo:hi]
            if again == first:
                vals = unpack(again)
                slots = [vals[k * SLOT_WORDS:(k + 1) * SLOT_WORDS] for k in range(n)]
                if not any(slot[SEQ] & 1 for slot in slots):
                    return slots
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
        self._slot_of = {n: i for i, n in enumerate(names)}
        self._base = HEADER_WORDS + self.index * SLOT_WORDS
        self._vals = array.array("q", self._words[self._base:self._base + SLOT_WORDS])
        self._vals[PID] = os.getpid()
        self._body = memoryview(self._vals)[1:]  # everything but the sequence word
        self._lock = threading.Lock()
        self._wake_path = wake_path(run_root)
        self._wake_fd = -1
        self._masks: dict[str, tuple[int, ...]] = {}  # bus topic -> subscriber slots
        self._masks_gen = 0
        self._write()

    def mask_of(self, names: Sequence[str]) -> int:
        return sum(1 << self.names.index(n) for n in names if n in self.names)

    def subscribe(self, prefixes: Sequence[str]) -> None:
        """Say which bus topics this process reads (before the replay counts the bus)."""
        raw = ",".join(prefixes).encode()
        if len(raw) > PREFIX_BYTES:
            raise ValueError("bus subscriptions too long for the board")
        at = _PREFIXES_AT + self.index * PREFIX_BYTES
        self._mm[at:at + PREFIX_BYTES] = raw.ljust(PREFIX_BYTES, b"\0")

    # -- the bus -----------------------------------------------------------------------
    def _subscribers(self, topic: str) -> tuple[int, ...]:
        gen = self._words[BUS_GEN]
        if gen != self._masks_gen:
            self._masks, self._masks_gen = {}, gen
        got = self._masks.get(topic)
        if got is None:
            got = []
            for i in range(len(self.names)):
                text = _text(self._mm, _PREFIXES_AT + i * PREFIX_BYTES, PREFIX_BYTES)
                if text and any(topic.startswith(p) for p in text.split(",")):
                    got.append(i)
            got = self._masks[topic] = tuple(got)
        return got

    def bus_sent(self, topic: str) -> None:
        """One bus message on ``topic`` went out (written with the next slot write)."""
        if not self._words[BUS_GEN]:
            return
        with self._lock:
            vals = self._vals
            for s in self._subscribers(topic):
                vals[BUS_SENT + s] += 1

    def bus_received(self, sender: str, conflated: int) -> None:
        """One bus message from ``sender`` came in; ``conflated`` messages were superseded."""
        q = self._slot_of.get(sender)
        with self._lock:
            vals = self._vals
            vals[RECV] += 1
            vals[DONE] += conflated
            if q is not None and self._words[BUS_GEN]:
                vals[BUS_RECV + q] += 1
            self._write()

    # -- writing -------------------------------------------------------------------------
    def _write(self) -> None:
        words, base, vals = self._words, self._base, self._vals
        seq = words[base + SEQ] + 1
        words[base + SEQ] = seq  # odd: a write is under way
        words[base + 1:base + SLOT_WORDS] = self._body
        words[base + SEQ] = seq + 1
        # Only a process with nothing left to do can complete the daemon's quiet:
        # a busy one will write (and poke) again once it is done.
        if vals[RECV] == vals[DONE] and vals[OUT_PUT] == vals[OUT_SENT] and not vals[UNACKED]:
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
