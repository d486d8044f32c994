"""How a tape is cut into steps: the frames the replay hands the daemon at one
clock value before it waits for the daemon to finish with them.

A step is as large as it can be while the daemon's work on it cannot depend on
timing: frames of one venue only (one feed, one connection, so their order is
the tape's), no book twice (a latest-value mailbox would keep only the newer),
the FX book (Upbit KRW-USDT, which re-prices every coin) alone, and no more
than ``step_ns`` of tape time (the clock's granularity: every frame of a step
is received at the step's time, its last frame's). Public trades ride along
with whatever step they fall in (no feed reads them; the exchange's books
do). Frames that route nowhere (keep-alive replies, errors) are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from storage.tape import Frame
from venues.sim.replay_books import Route, route_of

FX_BOOK = ("upbit", "USDT")


@dataclass(frozen=True, slots=True)
class Step:
    t_ns: int
    frames: tuple[tuple[Frame, Route], ...]

    @property
    def books(self) -> int:
        return sum(1 for _, r in self.frames if r.kind == "book")


def plan_steps(frames: Iterable[Frame], step_ns: int) -> Iterator[Step]:
    cur: list[tuple[Frame, Route]] = []
    venue = ""
    books: set[tuple[str, str]] = set()
    first = last = 0
    for f in frames:
        r = route_of(f.venue, f.stream)
        if not r.kind:
            continue
        t = max(f.recv_ns, last)  # a wall clock stepped back while recording: keep the order
        if cur:
            split = t - first > step_ns
            if r.kind == "book" and not split:
                topic = (f.venue, r.coin)
                split = (bool(books) and venue != f.venue) or topic in books or FX_BOOK in books \
                    or (topic == FX_BOOK and bool(books))
            if split:
                yield Step(last, tuple(cur))
                cur, books = [], set()
        if not cur:
            first = t
        cur.append((f, r))
        if r.kind == "book":
            venue = f.venue
            books.add((f.venue, r.coin))
        last = t
    if cur:
        yield Step(last, tuple(cur))
