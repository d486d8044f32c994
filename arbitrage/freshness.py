"""Quote freshness per venue/symbol -> fail-closed, feed restarts, clearing.

A required quote older than ``fail_closed_after_s`` fails trading closed at
once; after ``restart_after_s`` the feed is asked to restart (again every
``restart_after_s`` while it stays stale). A condition clears once every
quote of that venue has been fresh again (younger than ``fresh_age_s``, not
merely younger than the fail-closed age) for the venue's hysteresis and each
of them has delivered ``clear_after_samples`` quotes since it came back.

The hysteresis is short - ``clear_after_s`` (a few hundred ms) - for a venue
that fails once: a restarted feed trades again within a second of its first
books. A venue that trips again within ``flap_window_s`` of an earlier trip
doubles it for every such trip (capped at ``clear_max_s``), so a flapping
feed stays closed instead of clearing and tripping on every flap; a quiet
``flap_window_s`` resets it.

A monitor that starts (a restarted watchdog) knows nothing of what its
predecessor raised: it announces ``fresh_at_start`` for each venue the first time
all of that venue's quotes have been seen fresh, so a condition the old one
left raised does not outlive it. (The guard ignores a clear of a condition
it does not hold.)

Evaluate on a timer and, while a venue is failed, on every quote (see
:attr:`FreshnessMonitor.any_failed`), so clearing is not quantised by the timer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FreshnessAction:
    kind: str  # "fail_closed" | "clear" | "restart_feed" | "fresh_at_start"
    venue: str
    key: str
    reason: str


@dataclass
class _VenueState:
    stale_since: float | None = None
    failed: bool = False
    last_restart: float = -1e18
    fresh_since: float | None = None
    announced: bool = False  # a first "clear" was sent (see the module docstring)
    trips: list[float] = field(default_factory=list)  # when it failed, within flap_window_s
    counts_at_fresh: dict[str, int] = field(default_factory=dict)  # quote counts when it came back


class FreshnessMonitor:
    def __init__(self, required: dict[str, tuple[str, ...]], fail_closed_after_s: float,
                 restart_after_s: float, clear_after_s: float, now: Callable[[], float], *,
                 clear_after_samples: int = 1, flap_window_s: float = 30.0,
                 clear_max_s: float = 10.0, fresh_age_s: float = 1.0) -> None:
        self.required = required  # venue -> symbols
        self.fail_after = fail_closed_after_s
        self.restart_after = restart_after_s
        self.clear_after = clear_after_s
        self.clear_after_samples = clear_after_samples
        self.flap_window = flap_window_s
        self.clear_max = max(clear_max_s, clear_after_s)
        # For clearing, "fresh" is stricter than "not stale": every quote of the
        # venue younger than this (a quote a second is the slowest book here).
        self.fresh_age = min(fresh_age_s, fail_closed_after_s)
        self.now = now
        self.counts: dict[tuple[str, str], int] = {}
        self.any_failed = False
        t0 = now()
        # Until a first quote arrives, count from start-up: a feed that never
        # delivers is as stale as one that stopped.
        self.last_seen: dict[tuple[str, str], float] = {
            (v, s): t0 for v, syms in required.items() for s in syms}
        self.ever_seen: set[tuple[str, str]] = set()
        self.venues = {v: _VenueState() for v in required}

    def on_quote(self, venue: str, symbol: str, at: float | None = None) -> None:
        key = (venue, symbol)
        if key in self.last_seen:
            self.last_seen[key] = self.now() if at is None else at
            self.ever_seen.add(key)
            self.counts[key] = self.counts.get(key, 0) + 1

    def hysteresis_s(self, venue: str) -> float:
        """How long ``venue``'s quotes must be fresh again before it clears."""
        n = len(self.venues[venue].trips)
        return min(self.clear_max, self.clear_after * 2.0 ** max(0, n - 1))

    def ages(self) -> dict[tuple[str, str], float]:
        t = self.now()
        return {k: t - v for k, v in self.last_seen.items()}

    def evaluate(self) -> list[FreshnessAction]:
        t = self.now()
        out: list[FreshnessAction] = []
        for venue, syms in self.required.items():
            st = self.venues[venue]
            stale = [(s, t - self.last_seen[(venue, s)]) for s in syms
                     if t - self.last_seen[(venue, s)] > self.fail_after]
            key = f"stale.{venue}"
            if stale:
                st.fresh_since = None
                if st.stale_since is None:
                    st.stale_since = t - max(a for _, a in stale) + self.fail_after
                if not st.failed:
                    st.failed = True
                    st.announced = True
                    st.trips = [x for x in st.trips if t - x < self.flap_window] + [t]
                    worst = max(stale, key=lambda x: x[1])
                    out.append(FreshnessAction("fail_closed", venue, key,
                                               f"stale feed {venue} {worst[0]}: no quote for {worst[1]:.1f}s"))
                if t - st.stale_since >= self.restart_after - self.fail_after and \
                        t - st.last_restart >= self.restart_after:
                    st.last_restart = t
                    out.append(FreshnessAction("restart_feed", venue, key,
                                               f"stale for {t - st.stale_since + self.fail_after:.1f}s"))
            else:
                st.stale_since = None
                if st.failed and any(t - self.last_seen[(venue, s)] > self.fresh_age for s in syms):
                    st.fresh_since = None  # not stale, but not fresh either: a silence restarts the count
                elif st.failed:
                    if st.fresh_since is None:
                        st.fresh_since = t
                        st.counts_at_fresh = {s: self.counts.get((venue, s), 0) for s in syms}
                    hold = self.hysteresis_s(venue)
                    enough = all(self.counts.get((venue, s), 0) - st.counts_at_fresh.get(s, 0)
                                 >= self.clear_after_samples for s in syms)
                    if t - st.fresh_since >= hold and enough:
                        st.failed = False
                        st.fresh_since = None
                        out.append(FreshnessAction("clear", venue, key,
                                                   f"{venue} fresh again (hysteresis {hold:.2f}s)"))
                elif not st.announced and all((venue, s) in self.ever_seen for s in syms):
                    st.announced = True
                    out.append(FreshnessAction("fresh_at_start", venue, key, f"{venue} fresh at start"))
            if st.trips and not st.failed and t - st.trips[-1] >= self.flap_window:
                st.trips = []  # quiet for a whole window: back to the short hysteresis
        self.any_failed = any(v.failed for v in self.venues.values())
        return out
