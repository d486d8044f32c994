"""Quote freshness per venue/symbol -> fail-closed, feed restarts, clearing.

A required quote older than ``fail_closed_after_s`` fails trading closed at
once; after ``restart_after_s`` the feed is asked to restart (again every
``restart_after_s`` while it stays stale). A condition clears only after
every quote of that venue has been fresh for ``clear_after_s`` (hysteresis,
so a flapping feed does not flap trading).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FreshnessAction:
    kind: str  # "fail_closed" | "clear" | "restart_feed"
    venue: str
    key: str
    reason: str


@dataclass
class _VenueState:
    stale_since: float | None = None
    failed: bool = False
    last_restart: float = -1e18
    fresh_since: float | None = None


class FreshnessMonitor:
    def __init__(self, required: dict[str, tuple[str, ...]], fail_closed_after_s: float,
                 restart_after_s: float, clear_after_s: float, now: Callable[[], float]) -> None:
        self.required = required  # venue -> symbols
        self.fail_after = fail_closed_after_s
        self.restart_after = restart_after_s
        self.clear_after = clear_after_s
        self.now = now
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
                if st.failed:
                    if st.fresh_since is None:
                        st.fresh_since = t
                    if t - st.fresh_since >= self.clear_after:
                        st.failed = False
                        st.fresh_since = None
                        out.append(FreshnessAction("clear", venue, key, f"{venue} fresh again"))
        return out
