"""Per-venue circuit breakers: a venue that keeps refusing orders gets no new opens.

A venue that answers "insufficient funds", a filter failure, 5xx or 429 to
one order will almost always answer the same to the next one; hammering it
gets API keys banned (Binance's 418 auto-ban, Upbit's 418 block) and, worse
for an arbitrageur, every refused leg of a pair leaves the other leg naked.
So each venue has a breaker in the classic three states:

- ``closed``: orders flow. ``trip_after`` consecutive refusals of a
  breaker-worthy kind trip it (one by default: the first refusal already
  means a naked leg somewhere).
- ``open``: no open that needs this venue is sent. After ``backoff_s`` (it
  doubles with every failed probe, up to ``backoff_max_s``) it becomes
- ``half_open``: exactly one open may go as a *probe*. The executor sends the
  probe's leg on this venue first and the other leg only once it is accepted,
  so a failed probe costs one refused order and no naked leg. An accepted
  probe closes the breaker; a refused one opens it again with a longer
  backoff. So at most one order per probe reaches a refusing venue. (While
  open, a late acceptance of an order sent before the trip changes nothing.)

Reducing orders (unwinds) are not blocked by a breaker: they are how a naked
leg is repaired, and the repair chooses a venue whose breaker is closed when
it has the choice (:mod:`arbitrage.leg_repair`).

A refusal whose kind says nothing about the venue's health (``duplicate``,
``budget`` — our own limiter said no, nothing was sent) does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# Refusal kinds that say the venue will refuse the next order too.
TRIPPING_KINDS = frozenset({"funds", "filter", "rate_limit", "server", "auth", "unavailable", "other"})


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    trip_after: int = 1  # consecutive refusals that open the breaker
    backoff_s: float = 1.0  # first wait before a probe
    backoff_max_s: float = 30.0
    # An order a venue has not answered for this long makes it suspect: no
    # open that needs it is sent until it answers (its reply timeout, which
    # trips the breaker, comes seconds later; normal answers take milliseconds).
    slow_after_s: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        if self.slow_after_s <= 0:
            problems.append(f"slow_after_s must be > 0, got {self.slow_after_s}")
        if self.trip_after < 1:
            problems.append(f"trip_after must be >= 1, got {self.trip_after}")
        if self.backoff_s <= 0:
            problems.append(f"backoff_s must be > 0, got {self.backoff_s}")
        if self.backoff_max_s < self.backoff_s:
            problems.append("backoff_max_s must be >= backoff_s")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    """A change of one venue's breaker, for the event log and metrics."""

    venue: str
    state: str
    reason: str
    backoff_s: float
    trips: int


@dataclass(slots=True)
class _Venue:
    state: str = CLOSED
    failures: int = 0
    backoff_s: float = 0.0
    retry_at: float = 0.0
    probe_out: bool = False
    reason: str = ""
    trips: int = 0
    refused_while_open: int = 0


class CircuitBreakers:
    """One breaker per venue; ``now`` values are monotonic seconds."""

    def __init__(self, config: BreakerConfig, venues: tuple[str, ...]) -> None:
        self.config = config
        self._v = {v: _Venue() for v in venues}

    # -- questions ----------------------------------------------------------------
    def state(self, venue: str, now: float) -> str:
        b = self._v[venue]
        if b.state == OPEN and now >= b.retry_at:
            return HALF_OPEN
        return b.state

    def admit_open(self, venues: tuple[str, ...], now: float) -> tuple[bool, str, tuple[str, ...]]:
        """May an open that trades on ``venues`` be sent now?

        Returns ``(allowed, reason, probes)``: ``probes`` names the venues
        this open probes (their legs go first, one at a time). Admitting a
        probe reserves it: a second open is refused until the probe's result
        is in (:meth:`on_result`).
        """
        probes = []
        for venue in venues:
            b = self._v[venue]
            st = self.state(venue, now)
            if st == CLOSED:
                continue
            if st == OPEN or b.probe_out:
                b.refused_while_open += 1
                wait = max(0.0, b.retry_at - now)
                why = "probe in flight" if b.probe_out else f"next probe in {wait:.1f}s"
                return False, f"breaker open for {venue} ({b.reason}; {why})", ()
            probes.append(venue)
        for venue in probes:
            self._v[venue].probe_out = True
            self._v[venue].state = HALF_OPEN
        return True, "", tuple(probes)

    # -- outcomes -------------------------------------------------------------------
    def on_result(self, venue: str, accepted: bool, kind: str, reason: str,
                  now: float) -> Transition | None:
        """Record one order outcome at ``venue``; the transition it caused, if any.

        ``accepted``: the venue took the order (filled, partly filled, or an
        IOC that found nothing at its limit: all healthy answers). ``kind``
        classifies a refusal (:data:`TRIPPING_KINDS` count).
        """
        b = self._v[venue]
        if accepted:
            if b.state == OPEN and not b.probe_out:
                return None  # a late answer to an order sent before the trip proves nothing
            b.failures = 0
            b.probe_out = False
            if b.state != CLOSED:
                b.state, b.backoff_s, b.reason = CLOSED, 0.0, ""
                return Transition(venue=venue, state=CLOSED, reason="venue accepts orders again",
                                  backoff_s=0.0, trips=b.trips)
            return None
        if kind not in TRIPPING_KINDS:
            if b.probe_out:  # the probe said nothing about the venue: let another one go
                b.probe_out = False
            return None
        b.failures += 1
        was_probe = b.probe_out
        b.probe_out = False
        if b.state == CLOSED and b.failures < self.config.trip_after:
            return None
        if b.state == CLOSED or was_probe or b.state == HALF_OPEN:
            cfg = self.config
            b.backoff_s = cfg.backoff_s if b.state == CLOSED else min(cfg.backoff_max_s, b.backoff_s * 2)
            b.trips += b.state == CLOSED
            b.state = OPEN
            b.retry_at = now + b.backoff_s
            b.reason = f"{kind}: {reason}"[:160]
            return Transition(venue=venue, state=OPEN, reason=b.reason, backoff_s=b.backoff_s,
                              trips=b.trips)
        return None  # a late refusal of an order sent before the trip

    def snapshot(self, now: float) -> dict[str, dict[str, object]]:
        """Per venue: state, reason, seconds to the next probe, trips, opens refused."""
        return {v: {"state": self.state(v, now), "reason": b.reason,
                    "retry_in_s": round(max(0.0, b.retry_at - now), 3) if b.state != CLOSED else 0.0,
                    "trips": b.trips, "refused_opens": b.refused_while_open}
                for v, b in self._v.items()}


__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "TRIPPING_KINDS", "BreakerConfig", "CircuitBreakers", "Transition"]
