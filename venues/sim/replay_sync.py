"""When the daemon has finished with what the replay gave it: read from the
backtest board (``supervisors.progress``).

Quiet means, for every actor process on the board (the replay's own, ``sim``,
excepted): it has handled every message it received (or superseded it in a
latest-value mailbox), sent everything it queued, had every trade-path send
acknowledged, has no tick due at the current tape time, and has received on
its direct streams every message its sources sent there and on the bus every
message sent to it since bus counting settled; each feed has fully handled
every frame queued for it; and the legs the executor has at a venue are
exactly the orders parked at the exchange until their latency has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from supervisors.progress import (
    ATTACHED,
    BUS_RECV,
    BUS_SENT,
    DIRECT_MASK,
    DIRECT_RECV,
    DONE,
    FRAMES,
    NEXT_TICK,
    OUT_PUT,
    OUT_SENT,
    PENDING,
    RECV,
    STREAM_SENT,
    UNACKED,
)

DRIVER = "sim"


def busy(slots: Sequence[tuple[int, ...]], names: Sequence[str], clock_ns: int, parked: int,
         frames_queued: Mapping[str, int], bus_base: Sequence[tuple[int, ...]] | None = None) -> str:
    """"" when the daemon is quiet, else the first reason it is not. With
    ``bus_base`` (the slots when bus counting settled), every bus message sent
    since must have been received by each subscriber it was sent to."""
    pending = 0
    for i, s in enumerate(slots):
        name = names[i]
        if name == DRIVER or not s[ATTACHED]:
            continue
        if s[RECV] != s[DONE]:
            return f"{name}: {s[RECV] - s[DONE]} message(s) to handle"
        if s[OUT_PUT] != s[OUT_SENT]:
            return f"{name}: {s[OUT_PUT] - s[OUT_SENT]} item(s) to send"
        if s[UNACKED]:
            return f"{name}: {s[UNACKED]} send(s) unacknowledged"
        if s[NEXT_TICK] <= clock_ns:
            return f"{name}: tick due"
        mask = s[DIRECT_MASK]
        if mask:
            sent = sum(slots[j][STREAM_SENT] for j in range(len(slots)) if mask >> j & 1)
            if s[DIRECT_RECV] != sent:
                return f"{name}: {sent - s[DIRECT_RECV]} stream message(s) on the way"
        pending += s[PENDING]
    for venue, n in frames_queued.items():
        name = f"feed.{venue}"
        if name in names:
            got = slots[names.index(name)][FRAMES]
            if got != n:
                return f"{name}: {n - got} frame(s) on the way"
    if pending != parked:
        return f"{pending} leg(s) in flight, {parked} parked at the exchange"
    if bus_base is not None:
        n = len(slots)
        for q in range(n):
            sent_row, base_row = slots[q], bus_base[q]
            for t in range(n):
                sent = sent_row[BUS_SENT + t] - base_row[BUS_SENT + t]
                got = slots[t][BUS_RECV + q] - bus_base[t][BUS_RECV + q]
                if sent != got:
                    return f"{names[t]}: {sent - got} bus message(s) from {names[q]} on the way"
    return ""


def next_tick(slots: Sequence[tuple[int, ...]], names: Sequence[str], never: int) -> int:
    """The earliest tick due on the board (tape ns)."""
    due = [s[NEXT_TICK] for i, s in enumerate(slots) if names[i] != DRIVER and s[ATTACHED]]
    return min(due, default=never)


def unattached(slots: Sequence[tuple[int, ...]], names: Sequence[str]) -> list[str]:
    """Actors not yet on the board."""
    return [names[i] for i, s in enumerate(slots) if names[i] != DRIVER and not s[ATTACHED]]
