"""Each venue's published REST limits as token buckets, orders first.

A limit of ``L`` requests (or weight) in any window of ``W`` seconds is one
bucket of capacity ``C`` refilled at ``r`` per second with
``C + r·W <= L·(1 - margin)``: the most a bucket can pass in any ``W``-long
window is ``C + r·W``, so it never crosses the venue's limit, whether the
venue counts in sliding or fixed windows. ``C`` is the burst: half of the
window's allowance, so the two legs of a pair (and a repair behind them) go
out at once.

The figures (README "Execution" names each source):

=========  =====================  =========================  ======================
venue      bucket                 published limit            counted per request
=========  =====================  =========================  ======================
upbit      ``order``              8 / s (group ``order``)    POST /v1/orders
upbit      ``exchange``           30 / s (group ``default``) every other private call
binance    ``weight``             6,000 weight / min         each call's weight
binance    ``orders_10s``         100 orders / 10 s          each order
binance    ``orders_1d``          200,000 orders / day       each order
=========  =====================  =========================  ======================

Orders first: a poll (balances, lookups, markets) may only take tokens
while its bucket stays above ``poll_reserve`` of its capacity, so polls back
off as the budget runs low and an order never waits behind them. On Upbit
orders and polls are different groups anyway; on Binance they share the
weight.

The venues' answers correct the model: Binance's ``X-MBX-USED-WEIGHT-1M`` /
``X-MBX-ORDER-COUNT-10S`` / ``-1D`` and Upbit's ``Remaining-Req`` lower a
bucket to what the venue says is left (never raise it: another client on
the same key only ever uses more), and a 429 / 418 blocks every bucket of
the venue for its ``Retry-After`` (or ``blocked_default_s``).

Pure: the caller passes ``now`` (monotonic seconds).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

UPBIT, BINANCE = "upbit", "binance"

ORDER, POLL = "order", "poll"


@dataclass(frozen=True, kw_only=True)
class BudgetConfig:
    """``execution.budgets``: the published limits and how much of them arbd uses."""

    margin: float = 0.1  # kept below every published limit
    burst_share: float = 0.5  # of a window's allowance available at once
    poll_reserve: float = 0.5  # polls leave this share of each bucket to orders
    blocked_default_s: float = 1.0  # a 429 without Retry-After blocks the venue this long
    upbit_order_per_s: float = 8.0
    upbit_exchange_per_s: float = 30.0
    binance_weight_per_min: float = 6000.0
    binance_orders_per_10s: float = 100.0
    binance_orders_per_day: float = 200_000.0

    def __post_init__(self) -> None:
        errors = []
        if not 0 <= self.margin < 1:
            errors.append(f"margin must be in [0, 1), got {self.margin}")
        if not 0 < self.burst_share < 1:
            errors.append(f"burst_share must be in (0, 1), got {self.burst_share}")
        if not 0 <= self.poll_reserve < 1:
            errors.append(f"poll_reserve must be in [0, 1), got {self.poll_reserve}")
        for name in ("blocked_default_s", "upbit_order_per_s", "upbit_exchange_per_s",
                     "binance_weight_per_min", "binance_orders_per_10s", "binance_orders_per_day"):
            if not getattr(self, name) > 0:
                errors.append(f"{name} must be > 0, got {getattr(self, name)}")
        if not errors:
            for venue in (UPBIT, BINANCE):
                for name, (limit, window) in self.limits(venue).items():
                    if limit * (1.0 - self.margin) < 1.0:
                        errors.append(f"{venue} {name}: {limit:g} per {window:g}s less the margin leaves "
                                      "no whole request")
        if errors:
            raise ValueError("; ".join(errors))

    def limits(self, venue: str) -> dict[str, tuple[float, float]]:
        """bucket -> (limit, window seconds)."""
        if venue == UPBIT:
            return {"order": (self.upbit_order_per_s, 1.0), "exchange": (self.upbit_exchange_per_s, 1.0)}
        if venue == BINANCE:
            return {"weight": (self.binance_weight_per_min, 60.0),
                    "orders_10s": (self.binance_orders_per_10s, 10.0),
                    "orders_1d": (self.binance_orders_per_day, 86_400.0)}
        raise ValueError(f"unknown venue {venue!r}")


# What each call costs, per bucket (the weights are Binance's published
# REQUEST_WEIGHT lines, the same table the embedded exchange enforces).
COSTS: Mapping[str, Mapping[str, Mapping[str, float]]] = {
    UPBIT: {
        "order": {"order": 1.0},
        "lookup": {"exchange": 1.0},
        "balance": {"exchange": 1.0},
        "open_orders": {"exchange": 1.0},
        "cancel": {"exchange": 1.0},
        "markets": {},  # quotation group, not the exchange API
    },
    BINANCE: {
        "order": {"weight": 1.0, "orders_10s": 1.0, "orders_1d": 1.0},
        "lookup": {"weight": 4.0},
        "balance": {"weight": 20.0},
        "open_orders": {"weight": 80.0},
        "cancel": {"weight": 1.0},
        "markets": {"weight": 20.0},
        "listen_key": {"weight": 2.0},
    },
}


@dataclass(slots=True)
class Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float
    at: float  # when ``tokens`` was last brought up to date

    def level(self, now: float) -> float:
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return self.tokens

    def peek(self, now: float) -> float:
        """``level(now)`` without bringing the bucket up to date (a read from another thread)."""
        tokens, at = self.tokens, self.at
        return min(self.capacity, tokens + max(0.0, now - at) * self.rate)


def make_bucket(limit: float, window_s: float, cfg: BudgetConfig, now: float) -> Bucket:
    allowance = limit * (1.0 - cfg.margin)
    capacity = max(1.0, math.floor(allowance * cfg.burst_share))
    rate = max(0.0, allowance - capacity) / window_s
    return Bucket(capacity=capacity, rate=rate, tokens=capacity, at=now)


_REMAINING_RE = re.compile(r"group=([\w-]+);.*?sec=(\d+)")
_UPBIT_GROUP_BUCKET = {"order": "order", "default": "exchange"}
_BINANCE_HEADERS = {"x-mbx-used-weight-1m": "weight", "x-mbx-order-count-10s": "orders_10s",
                    "x-mbx-order-count-1d": "orders_1d"}


@dataclass(slots=True)
class VenueBudget:
    """The buckets of one venue (see the module docs)."""

    venue: str
    cfg: BudgetConfig = field(default_factory=BudgetConfig)
    now: float = 0.0
    buckets: dict[str, Bucket] = field(init=False)
    limits: dict[str, tuple[float, float]] = field(init=False)
    blocked_until: float = field(init=False, default=0.0)
    refusals: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.limits = self.cfg.limits(self.venue)
        self.buckets = {name: make_bucket(lim, w, self.cfg, self.now) for name, (lim, w) in self.limits.items()}
        self.refusals = {ORDER: 0, POLL: 0}

    @staticmethod
    def cost_of(venue: str, what: str) -> dict[str, float]:
        return dict(COSTS[venue][what])

    def _floor(self, kind: str, bucket: Bucket) -> float:
        return bucket.capacity * self.cfg.poll_reserve if kind == POLL else 0.0

    def wait_s(self, kind: str, cost: Mapping[str, float], now: float) -> float:
        """Seconds until ``cost`` could be taken (0: now; inf: never at this rate)."""
        return self._wait_s(kind, cost, now, Bucket.level)

    def peek_wait_s(self, kind: str, cost: Mapping[str, float], now: float) -> float:
        """``wait_s`` read without changing anything: for a pre-trade check on a
        thread that does not own the budget (its owner still takes the tokens)."""
        return self._wait_s(kind, cost, now, Bucket.peek)

    def _wait_s(self, kind: str, cost: Mapping[str, float], now: float,
                level: Callable[[Bucket, float], float]) -> float:
        wait = max(0.0, self.blocked_until - now)
        for name, amount in cost.items():
            b = self.buckets[name]
            need = amount + self._floor(kind, b) - level(b, now)
            if need > 0:
                if amount + self._floor(kind, b) > b.capacity or b.rate <= 0:
                    return math.inf
                wait = max(wait, need / b.rate)
        return wait

    def try_acquire(self, kind: str, cost: Mapping[str, float], now: float) -> bool:
        """Take ``cost`` from every bucket it names, all or nothing."""
        if kind not in (ORDER, POLL):
            raise ValueError(f"kind must be {ORDER!r} or {POLL!r}, got {kind!r}")
        if now < self.blocked_until or any(
                self.buckets[n].level(now) - a < self._floor(kind, self.buckets[n]) for n, a in cost.items()):
            self.refusals[kind] += 1
            return False
        for name, amount in cost.items():
            self.buckets[name].tokens -= amount
        return True

    def refund(self, cost: Mapping[str, float], now: float) -> None:
        """Give back what a request that never left took (e.g. it was cancelled before the send)."""
        for name, amount in cost.items():
            b = self.buckets[name]
            b.level(now)
            b.tokens = min(b.capacity, b.tokens + amount)

    def on_headers(self, headers: Mapping[str, str], now: float) -> None:
        """Lower the buckets to what the venue says is left."""
        lower = {k.lower(): v for k, v in headers.items()} if headers else {}
        if self.venue == BINANCE:
            for header, name in _BINANCE_HEADERS.items():
                raw = lower.get(header)
                if raw is None:
                    continue
                try:
                    used = float(raw)
                except ValueError:
                    continue
                if not math.isfinite(used) or used < 0:
                    continue  # garbage, not a venue's count
                limit, _ = self.limits[name]
                self._lower(name, limit * (1.0 - self.cfg.margin) - used, now)
        elif self.venue == UPBIT:
            m = _REMAINING_RE.search(lower.get("remaining-req", ""))
            if m is not None and m.group(1) in _UPBIT_GROUP_BUCKET:
                self._lower(_UPBIT_GROUP_BUCKET[m.group(1)], float(m.group(2)) * (1.0 - self.cfg.margin), now)

    def _lower(self, name: str, left: float, now: float) -> None:
        b = self.buckets[name]
        if b.level(now) > left:
            b.tokens = max(min(left, b.capacity), -b.capacity)

    def on_rate_limited(self, retry_after_s: float | None, now: float) -> None:
        """A 429 / 418: nothing goes to this venue until it said we may."""
        wait = retry_after_s if retry_after_s is not None and retry_after_s > 0 else self.cfg.blocked_default_s
        self.blocked_until = max(self.blocked_until, now + wait)
        for b in self.buckets.values():
            b.level(now)
            b.tokens = min(b.tokens, 0.0)

    def fractions(self, now: float) -> dict[str, float]:
        """bucket -> share of its capacity left (0 while blocked)."""
        if now < self.blocked_until:
            return {name: 0.0 for name in self.buckets}
        return {name: max(0.0, b.level(now)) / b.capacity for name, b in self.buckets.items()}

    def max_in_window(self, name: str) -> float:
        """The most this bucket can ever pass in one of its windows (C + r·W)."""
        b = self.buckets[name]
        return b.capacity + b.rate * self.limits[name][1]
