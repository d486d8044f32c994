"""Injected faults (``POST /_sim/fault``) and the REST rate windows.

Fault body: ``{"venue": "upbit"|"binance", "kind": K, "seconds": S, ...}``

=================== =============================================================
kind                effect while active (``seconds`` from now)
=================== =============================================================
pause               sockets stay open, no market data is sent
drop                every WS connection is closed now; new handshakes get 503
                    for ``seconds`` (0 = just the drop). ``"graceful": true``
                    sends a close frame (1001) instead of cutting the TCP stream
malformed           market-data frames are replaced by garbage (bad JSON,
                    truncated objects, invalid UTF-8, wrong types)
http_error          REST answers ``"status"`` (default 503; any 500-599, or 429
                    which looks like the venue's own rate-limit reply)
delay               REST responses are held ``"delay_s"`` seconds (the request
                    is processed first, so an order may exist without a reply)
insufficient_funds  new orders are rejected for insufficient funds
=================== =============================================================
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

VENUES = ("upbit", "binance")
KINDS = ("pause", "drop", "malformed", "http_error", "delay", "insufficient_funds")
_EXTRA_KEYS = {
    "pause": set(),
    "drop": {"graceful"},
    "malformed": set(),
    "http_error": {"status"},
    "delay": {"delay_s"},
    "insufficient_funds": set(),
}


class FaultError(ValueError):
    """A fault body is invalid (the admin answers 400 with this message)."""


@dataclass(frozen=True, slots=True)
class Fault:
    venue: str
    kind: str
    seconds: float
    until: float  # monotonic
    params: dict[str, Any] = field(default_factory=dict)

    def view(self, now: float) -> dict[str, Any]:
        return {"venue": self.venue, "kind": self.kind, "seconds": self.seconds,
                "remaining_s": round(max(0.0, self.until - now), 3), **self.params}


def _number(body: dict[str, Any], key: str, *, minimum: float, default: float | None = None) -> float:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultError(f"'{key}' must be a number")
    if value < minimum or value != value or value > 1e9:
        raise FaultError(f"'{key}' must be >= {minimum:g}")
    return float(value)


def parse_fault(body: Any) -> tuple[str, str, float, dict[str, Any]]:
    """Validate a fault body: (venue, kind, seconds, extra params)."""
    if not isinstance(body, dict):
        raise FaultError("body must be a JSON object")
    venue, kind = body.get("venue"), body.get("kind")
    if venue not in VENUES:
        raise FaultError(f"'venue' must be one of {', '.join(VENUES)}")
    if kind not in KINDS:
        raise FaultError(f"'kind' must be one of {', '.join(KINDS)}")
    allowed = {"venue", "kind", "seconds"} | _EXTRA_KEYS[kind]
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise FaultError(f"unknown field '{unknown[0]}' for kind {kind}")
    if kind != "drop" and "seconds" not in body:
        raise FaultError("'seconds' is required")
    seconds = _number(body, "seconds", minimum=0.0, default=0.0)
    params: dict[str, Any] = {}
    if kind == "http_error":
        status = body.get("status", 503)
        if isinstance(status, bool) or not isinstance(status, int) or not (status == 429 or 500 <= status <= 599):
            raise FaultError("'status' must be 429 or 500..599")
        params["status"] = status
    elif kind == "delay":
        if "delay_s" not in body:
            raise FaultError("'delay_s' is required for kind delay")
        params["delay_s"] = _number(body, "delay_s", minimum=0.0)
    elif kind == "drop":
        graceful = body.get("graceful", False)
        if not isinstance(graceful, bool):
            raise FaultError("'graceful' must be true or false")
        params["graceful"] = graceful
    return venue, kind, seconds, params


class FaultBoard:
    """Active faults by (venue, kind); the latest POST for a pair wins."""

    def __init__(self) -> None:
        self._faults: dict[tuple[str, str], Fault] = {}

    def set(self, venue: str, kind: str, seconds: float, params: dict[str, Any], now: float) -> Fault:
        fault = Fault(venue, kind, seconds, now + seconds, dict(params))
        self._faults[(venue, kind)] = fault
        return fault

    def active(self, venue: str, kind: str, now: float) -> Fault | None:
        fault = self._faults.get((venue, kind))
        if fault is None:
            return None
        if now >= fault.until:
            del self._faults[(venue, kind)]
            return None
        return fault

    def clear(self) -> int:
        n = len(self._faults)
        self._faults.clear()
        return n

    def view(self, now: float) -> list[dict[str, Any]]:
        return [f.view(now) for f in list(self._faults.values()) if now < f.until]


class RateWindow:
    """Requests in the last second (sliding), for a per-second limit."""

    def __init__(self, limit_per_s: float, span_s: float = 1.0) -> None:
        self.limit = limit_per_s
        self.span = span_s
        self._hits: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self.span:
            self._hits.popleft()

    def hit(self, now: float) -> bool:
        """Count one request; False if it is over the limit (then it is not counted)."""
        self._trim(now)
        if self.limit > 0 and len(self._hits) >= self.limit:
            return False
        self._hits.append(now)
        return True

    def remaining(self, now: float) -> int:
        self._trim(now)
        if self.limit <= 0:
            return 1_000
        return max(0, int(self.limit) - len(self._hits))

    def retry_after(self, now: float) -> float:
        self._trim(now)
        return max(0.0, self._hits[0] + self.span - now) if self._hits else 0.0


class WeightWindow:
    """Sum of request weights over the last minute (``X-MBX-USED-WEIGHT-1M``)."""

    def __init__(self, span_s: float = 60.0) -> None:
        self.span = span_s
        self._items: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, now: float, weight: int) -> int:
        while self._items and self._items[0][0] <= now - self.span:
            self.total -= self._items.popleft()[1]
        self._items.append((now, weight))
        self.total += weight
        return self.total
