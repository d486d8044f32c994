"""Restart policy, OTP style: intensity within a period, exponential backoff."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class RestartIntensity:
    """More than ``max_restarts`` within ``period_s`` means give up (escalate)."""

    max_restarts: int
    period_s: float

    def __post_init__(self) -> None:
        self._times: deque[float] = deque()

    def record(self, now: float) -> bool:
        """Record a restart at ``now``; True when intensity is exceeded."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.period_s:
            self._times.popleft()
        return len(self._times) > self.max_restarts

    @property
    def recent(self) -> int:
        return len(self._times)


@dataclass
class Backoff:
    """Doubles per consecutive failure, capped; resets after a stable run."""

    initial_s: float
    max_s: float
    stable_after_s: float = 10.0

    def __post_init__(self) -> None:
        self._failures = 0

    def next_delay(self, ran_for_s: float) -> float:
        if ran_for_s >= self.stable_after_s:
            self._failures = 0
        # Cap the exponent: 2 ** 1100 overflows a float, and a child that keeps
        # failing just short of a stable run would crash the supervisor after
        # ~1000 restarts (hours into a long run).
        delay = min(self.max_s, self.initial_s * 2.0 ** min(self._failures, 60))
        self._failures += 1
        return delay
