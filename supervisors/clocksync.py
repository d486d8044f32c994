"""Clock offsets between hosts, and reading other hosts' timestamps in ours.

Pure logic, no I/O. Every message keeps its sender's clock; a receiver
corrects the timestamps of a message from another host into its own clock
before it judges freshness or latency with them.

Offsets come from the main daemon's pings and the nodes' reports (see
``messages.cluster``): with t0 (ping sent) and t3 (report received) on
main's clock and t1 (ping received) and t2 (report sent) on the node's,

    offset = ((t1 - t0) + (t2 - t3)) / 2      the node's clock minus main's
    rtt    = (t3 - t0) - (t2 - t1)            the link's round trip

exact when the two directions take equally long, otherwise off by at most
half the round trip. As NTP's clock filter does, the estimate is the offset
of the recent sample with the smallest round trip: the one least delayed
by queues, so the least asymmetric.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from typing import Any

from messages import clock

# Sender-clock fields: every int field named *_ns, except the exchange's own
# stamp (exch_ts_ns is the venue's clock, not the sender's).
_NOT_SENDER_CLOCK = frozenset({"exch_ts_ns"})
_FIELDS: dict[type, tuple[str, ...]] = {}


def ntp_sample(t0: int, t1: int, t2: int, t3: int) -> tuple[int, int]:
    """(offset_ns, rtt_ns) of one ping/report exchange (see module docs)."""
    return ((t1 - t0) + (t2 - t3)) // 2, (t3 - t0) - (t2 - t1)


class OffsetEstimator:
    """One peer's clock offset: the offset of the lowest-rtt sample among the
    last ``window``; ``error_ns`` bounds how wrong it can be (half that rtt)."""

    def __init__(self, window: int = 8) -> None:
        self.samples: deque[tuple[int, int]] = deque(maxlen=window)  # (offset, rtt)
        self.last_rtt_ns: int | None = None

    def add(self, t0: int, t1: int, t2: int, t3: int) -> bool:
        """Add one exchange; False (and ignored) when it is not plausible."""
        offset, rtt = ntp_sample(t0, t1, t2, t3)
        if rtt < 0 or t3 < t0:
            return False
        self.samples.append((offset, rtt))
        self.last_rtt_ns = rtt
        return True

    @property
    def offset_ns(self) -> int | None:
        if not self.samples:
            return None
        return min(self.samples, key=lambda s: s[1])[0]

    @property
    def error_ns(self) -> int | None:
        if not self.samples:
            return None
        return min(s[1] for s in self.samples) // 2

    def reset(self) -> None:
        """Forget the samples (the peer restarted: its clock may be another one)."""
        self.samples.clear()
        self.last_rtt_ns = None


def clock_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls)
            if f.name.endswith("_ns") and f.name not in _NOT_SENDER_CLOCK)
    return names


def shift(msg: Any, delta_ns: int) -> Any:
    """``msg`` with each sender-clock stamp moved by ``delta_ns`` (unset, zero stamps stay zero)."""
    if not delta_ns:
        return msg
    changes = {n: v + delta_ns for n in clock_fields(type(msg)) if (v := getattr(msg, n))}
    return dataclasses.replace(msg, **changes) if changes else msg


class ClockTable:
    """What one host knows of the others' clocks: offsets from main's clock
    (main is 0) and which host each sender runs on."""

    def __init__(self, here: str, placement: dict[str, str], main: str = "main") -> None:
        self.here = here
        self.main = main
        self.placement = dict(placement)  # actor -> host, for actors not on main
        self.offsets_ns: dict[str, int] = {main: 0}

    def update(self, offsets_ns: dict[str, int]) -> None:
        self.offsets_ns = {**offsets_ns, self.main: 0}

    def host_of(self, sender: str) -> str:
        return self.placement.get(sender, self.main)

    def is_remote(self, sender: str) -> bool:
        return self.host_of(sender) != self.here

    def delta_ns(self, sender: str) -> int | None:
        """Add this to a stamp of ``sender``'s to read it on this host's clock;
        None while either offset is unknown."""
        there = self.offsets_ns.get(self.host_of(sender))
        here = self.offsets_ns.get(self.here)
        if there is None or here is None:
            return None
        return here - there

    def correct(self, msg: Any, sender: str) -> Any:
        """``msg`` with its sender-clock stamps on this host's clock (as is
        while the offsets are unknown: the main daemon fails trading closed
        until they are known)."""
        if not self.is_remote(sender):
            return msg
        delta = self.delta_ns(sender)
        return msg if delta is None else shift(msg, delta)


def skew_process_clock(seconds: float) -> None:
    """Test-only (``testing.clock_skew_s``): make this process's wall clock
    run ``seconds`` off, as on a host whose clock is wrong. Monotonic time is
    left alone, as a wrong wall clock leaves it."""
    if not seconds:
        return
    real_ns, real_s = time.time_ns, time.time
    skew_ns = int(seconds * 1e9)
    time.time_ns = lambda: real_ns() + skew_ns  # type: ignore[assignment]
    time.time = lambda: real_s() + seconds  # type: ignore[assignment]
    # The market clock bound the time module's functions at import: it follows.
    if not clock.virtual:
        clock.time_ns, clock.time = time.time_ns, time.time
