"""Which actor to recycle for memory: an RSS limit, or sustained drift.

Process isolation is how memory drift is contained: a leaking actor is
restarted gracefully (between messages) before it passes its limit.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecycleDecision:
    actor: str
    reason: str


class MemoryGuard:
    def __init__(self, rss_limit_mb: float, drift_threshold: float, window: int,
                 min_interval_s: float, now: Callable[[], float],
                 early_fraction: float = 0.9) -> None:
        self.limit = rss_limit_mb
        self.drift_threshold = drift_threshold
        self.window = max(4, window)
        self.min_interval = min_interval_s
        self.now = now
        self.early = early_fraction  # act before the limit, not after
        self.samples: dict[str, deque[float]] = {}
        self.pids: dict[str, int] = {}
        self.last_recycle: dict[str, float] = {}
        self.recycled_pids: set[int] = set()

    def drift_rate(self, actor: str) -> float:
        """Relative RSS growth across the window, clamped to [-1, 1]."""
        s = self.samples.get(actor)
        if not s or len(s) < 4:
            return 0.0
        half = len(s) // 2
        old = sum(list(s)[:half]) / half
        new = sum(list(s)[half:]) / (len(s) - half)
        if old <= 0:
            return 0.0
        return max(-1.0, min(1.0, (new - old) / old))

    def observe(self, actor: str, pid: int, rss_mb: float) -> RecycleDecision | None:
        if self.pids.get(actor) != pid:  # a new process: its history starts over
            self.pids[actor] = pid
            self.samples[actor] = deque(maxlen=self.window)
        s = self.samples[actor]
        s.append(rss_mb)
        if pid in self.recycled_pids:
            return None  # already asked to recycle this process; wait for its successor
        t = self.now()
        reason = ""
        # The hard limit is never rate-limited: a leak that comes straight back
        # after a recycle must be recycled again before it passes the limit.
        if rss_mb >= self.limit * self.early:
            reason = f"rss {rss_mb:.0f}MB near limit {self.limit:.0f}MB"
        elif (len(s) == self.window and self.drift_rate(actor) > self.drift_threshold
              and t - self.last_recycle.get(actor, -1e18) >= self.min_interval):
            reason = f"memory drift {self.drift_rate(actor):.2f} > {self.drift_threshold}"
        if not reason:
            return None
        self.last_recycle[actor] = t
        self.recycled_pids.add(pid)
        return RecycleDecision(actor, reason)
