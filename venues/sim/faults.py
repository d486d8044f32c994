"""Injected faults (``POST /_sim/fault``), the REST rate windows and the venues' limits.

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
private_down        the private streams only (Binance ``/ws/<listenKey>``, Upbit
                    ``/websocket/v1/private``): their sockets are closed now and
                    their handshakes get 503 for ``seconds``; market data, REST
                    and the listenKey calls carry on. ``"graceful": true`` as for
                    drop. (``drop`` closes and refuses the private sockets too.)
=================== =============================================================

``http_error`` and ``delay`` also take ``"requests": N``: the fault ends after
it has hit N REST requests, or after ``seconds``, whichever comes first. A test
that needs exactly the next request to fail says so, instead of racing a short
window against its own client.

An injected ``http_error`` 429 is not a violation: ``LimitBoard`` counts only the
429s the simulator answers because a limit window (``LimitWindow``,
``UnfilledOrderWindow``) was full. Which windows exist and what they count is the
venue front ends' business (``upbit_rest.py``, ``binance_rest.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

VENUES = ("upbit", "binance")
KINDS = ("pause", "drop", "malformed", "http_error", "delay", "insufficient_funds", "private_down")
_EXTRA_KEYS = {
    "pause": set(),
    "drop": {"graceful"},
    "malformed": set(),
    "http_error": {"status", "requests"},
    "delay": {"delay_s", "requests"},
    "insufficient_funds": set(),
    "private_down": {"graceful"},
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
    requests_left: int | None = None  # a ``requests`` bound: REST requests it may still hit

    def view(self, now: float) -> dict[str, Any]:
        out = {"venue": self.venue, "kind": self.kind, "seconds": self.seconds,
               "remaining_s": round(max(0.0, self.until - now), 3), **self.params}
        if self.requests_left is not None:
            out["requests_left"] = self.requests_left
        return out


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
    if "requests" in body:
        n = body["requests"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
            raise FaultError("'requests' must be a whole number from 1 to 1000000")
        params["requests"] = n
    if kind in ("drop", "private_down"):
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
        fault = Fault(venue, kind, seconds, now + seconds, dict(params), params.get("requests"))
        self._faults[(venue, kind)] = fault
        return fault

    def take(self, venue: str, kind: str, now: float) -> Fault | None:
        """The active fault for one request it hits: a ``requests`` bound
        counts down, and the fault ends when it reaches zero."""
        fault = self.active(venue, kind, now)
        if fault is not None and fault.requests_left is not None:
            if fault.requests_left <= 1:
                del self._faults[(venue, kind)]
            else:
                self._faults[(venue, kind)] = replace(fault, requests_left=fault.requests_left - 1)
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


def _num_view(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


class LimitWindow:
    """One published limit: at most ``limit`` units (requests, or request weight) admitted
    in any sliding ``span_s`` seconds. A request that would cross it is refused, is not
    counted in the window (so the window frees on schedule and ``retry_after`` is exact)
    and is counted as a violation. ``limit`` 0 means this limit is off; ``enforce=False``
    counts and reports (headers, ``max_in_window``) but never refuses.
    """

    def __init__(self, limit: float, span_s: float, *, enforce: bool = True) -> None:
        self.limit = limit
        self.span = span_s
        self.enforce = enforce and limit > 0
        self._items: deque[tuple[float, int]] = deque()
        self._total = 0
        self.violations = 0
        self.max_in_window = 0

    def _trim(self, now: float) -> None:
        while self._items and self._items[0][0] <= now - self.span:
            self._total -= self._items.popleft()[1]

    def used(self, now: float) -> int:
        self._trim(now)
        return self._total

    def admit(self, now: float, amount: int = 1) -> bool:
        """Count ``amount`` if it fits; otherwise count a violation and return False."""
        self._trim(now)
        if self.enforce and self._total + amount > self.limit:
            self.violations += 1
            return False
        self._items.append((now, amount))
        self._total += amount
        self.max_in_window = max(self.max_in_window, self._total)
        return True

    def remaining(self, now: float) -> int:
        """Units left in the window now; 1000 when the limit is off (nothing to report)."""
        if self.limit <= 0:
            return 1_000
        return max(0, int(self.limit) - self.used(now))

    def retry_after(self, now: float, amount: int = 1) -> float:
        """Seconds until ``amount`` more would fit (0 if it fits now)."""
        self._trim(now)
        excess = self._total + amount - self.limit
        if excess <= 0 or self.limit <= 0:
            return 0.0
        for ts, units in self._items:
            excess -= units
            if excess <= 0:
                return max(0.0, ts + self.span - now)
        return self.span  # larger than the whole limit: it never fits; say "a window"

    def view(self) -> dict[str, Any]:
        return {"limit": _num_view(self.limit), "window_s": _num_view(self.span),
                "violations": self.violations, "max_in_window": self.max_in_window}

    def reset_counters(self) -> None:
        """Zero the statistics; what is in the window stays (it is the venue's state)."""
        self.violations = 0
        self.max_in_window = 0


class Traded(Protocol):
    @property
    def fills(self) -> list[Any]: ...


class UnfilledOrderWindow:
    """Binance's ORDERS limit, the "unfilled order count": successful new orders placed
    in the last ``span_s`` seconds that have not traded. An order leaves the count at its
    first (partial) fill, whenever that happens, because "orders which are partially or
    fully filled do not count against the rate limit" (Binance spot FAQ "Spot Unfilled
    Order Count Rules", developers.binance.com/docs/binance-spot-api-docs/faqs/
    order_count_decrement). Cancelled orders still count. Same counters as LimitWindow.
    """

    def __init__(self, limit: float, span_s: float, *, enforce: bool = True) -> None:
        self.limit = limit
        self.span = span_s
        self.enforce = enforce and limit > 0
        self._items: deque[tuple[float, Traded]] = deque()
        self.violations = 0
        self.max_in_window = 0

    def used(self, now: float) -> int:
        while self._items and self._items[0][0] <= now - self.span:
            self._items.popleft()
        if any(order.fills for _, order in self._items):  # only the unfilled ones are kept
            self._items = deque(item for item in self._items if not item[1].fills)
        return len(self._items)

    def full(self, now: float) -> bool:
        """True (and a violation counted) if one more order would cross the limit."""
        if self.enforce and self.used(now) + 1 > self.limit:
            self.violations += 1
            return True
        return False

    def add(self, now: float, order: Traded) -> int:
        """Count a successful new order; returns the count including it, as the
        ``X-MBX-ORDER-COUNT-*`` header of its reply shows (the decrement for an order
        that filled at once shows from the next request on)."""
        count = self.used(now) + 1
        self._items.append((now, order))
        self.max_in_window = max(self.max_in_window, count)
        return count

    def view(self) -> dict[str, Any]:
        return {"limit": _num_view(self.limit), "window_s": _num_view(self.span),
                "violations": self.violations, "max_in_window": self.max_in_window}

    def reset_counters(self) -> None:
        self.violations = 0
        self.max_in_window = 0


class LimitBoard:
    """Every venue's limit windows by (venue, limit name), for ``GET /_sim/limits``."""

    def __init__(self, windows: Mapping[str, Mapping[str, LimitWindow | UnfilledOrderWindow]]) -> None:
        self.windows = {venue: dict(by_name) for venue, by_name in windows.items()}

    def __getitem__(self, venue: str) -> dict[str, LimitWindow | UnfilledOrderWindow]:
        return self.windows[venue]

    def view(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {venue: {name: w.view() for name, w in by_name.items()} for venue, by_name in self.windows.items()}

    def reset(self) -> None:
        for by_name in self.windows.values():
            for window in by_name.values():
                window.reset_counters()
