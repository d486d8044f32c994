"""The seeded random fault schedule of the chaos suite.

Pure: ``make_schedule(seed, ...)`` returns the same list of :class:`Fault`
for the same arguments, so a failing run is replayed by its seed (printed by
the test). The schedule guarantees coverage and respects the supervisor's
restart budget:

- every role is ``kill -9``-ed at least once; the executor at least once
  *mid-send* (the kill follows the next ``sent`` order event, while the
  exchange holds its REST replies back, so orders are at the venue and the
  executor dies before it hears about them);
- each feed is ``SIGSTOP``-ped (stale, not dead) at least once; a stop
  longer than the heartbeat liveness makes the supervisor kill it;
- each venue gets at least one WebSocket drop, one 5xx window and one 429
  window on its REST API;
- no actor is killed (or stopped past liveness) more than ``max_kills``
  times within ``period_s``, so a schedule tests recovery, not escalation
  (escalation has its own test).

Kinds: ``kill`` (target: actor), ``kill_midsend`` (target: ``executor``),
``sigstop`` (target: feed actor, ``duration_s`` stopped), ``ws_drop``
(target: venue, ``duration_s`` of refused reconnects), ``http_5xx`` and
``http_429`` (target: venue, ``duration_s``, ``status``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

ROLES = ("feed.upbit", "feed.binance", "engine", "position", "guard", "executor", "watchdog")
FEEDS = ("feed.upbit", "feed.binance")
VENUES = ("upbit", "binance")
KINDS = ("kill", "kill_midsend", "sigstop", "ws_drop", "http_5xx", "http_429")
# Weights of the random filler once coverage is met.
_WEIGHTS = {"kill": 4, "kill_midsend": 2, "sigstop": 2, "ws_drop": 2, "http_5xx": 2, "http_429": 2}


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # offset from the start of the schedule
    kind: str
    target: str  # actor name (kill, kill_midsend, sigstop) or venue
    duration_s: float = 0.0
    status: int = 0  # HTTP status of http_5xx / http_429

    def describe(self) -> str:
        extra = f" {self.duration_s:.1f}s" if self.duration_s else ""
        code = f" {self.status}" if self.status else ""
        return f"t+{self.at_s:5.1f}s {self.kind:<12} {self.target}{code}{extra}"


def _coverage() -> list[tuple[str, str]]:
    items = [("kill", r) for r in ROLES if r != "executor"]
    items.append(("kill_midsend", "executor"))
    items += [("sigstop", f) for f in FEEDS]
    for kind in ("ws_drop", "http_5xx", "http_429"):
        items += [(kind, v) for v in VENUES]
    return items


def _random_item(rng: random.Random) -> tuple[str, str]:
    kinds = list(_WEIGHTS)
    kind = rng.choices(kinds, weights=[_WEIGHTS[k] for k in kinds])[0]
    if kind == "kill":
        return kind, rng.choice(ROLES)
    if kind == "kill_midsend":
        return kind, "executor"
    if kind == "sigstop":
        return kind, rng.choice(FEEDS)
    return kind, rng.choice(VENUES)


def _restarts_target(kind: str, target: str, duration_s: float, liveness_s: float) -> str | None:
    """The actor a fault costs a restart of (None: no restart expected)."""
    if kind in ("kill", "kill_midsend"):
        return target
    if kind == "sigstop" and duration_s >= liveness_s * 0.8:
        return target
    return None


def make_schedule(seed: int, duration_s: float, *, gap_s: float = 3.5, liveness_s: float = 3.0,
                  max_kills: int = 3, period_s: float = 30.0) -> list[Fault]:
    """A fault every ``gap_s`` (jittered) over ``duration_s``; coverage items
    first in shuffled order, random ones after. Raises ValueError if
    ``duration_s`` cannot hold the coverage."""
    rng = random.Random(seed)
    slots = int(duration_s // gap_s)
    cover = _coverage()
    if slots < len(cover):
        raise ValueError(f"{duration_s:g}s holds {slots} faults at {gap_s:g}s apart; "
                         f"coverage needs {len(cover)}")
    rng.shuffle(cover)
    out: list[Fault] = []
    kills: dict[str, list[float]] = {}
    pending = list(cover)
    for i in range(slots):
        at = round(i * gap_s + rng.uniform(0.0, gap_s * 0.4), 2)
        for _attempt in range(50):
            kind, target = pending[0] if pending else _random_item(rng)
            duration, status = _shape(rng, kind, liveness_s)
            victim = _restarts_target(kind, target, duration, liveness_s)
            recent = [t for t in kills.get(victim or "", []) if at - t < period_s]
            if victim is None or len(recent) < max_kills:
                break
            if pending:  # a coverage item that does not fit now: try it later
                pending.append(pending.pop(0))
        else:
            continue
        if pending and (kind, target) == pending[0]:
            pending.pop(0)
        if victim is not None:
            kills.setdefault(victim, []).append(at)
        out.append(Fault(at, kind, target, duration, status))
    if pending:
        raise ValueError(f"schedule could not place {pending} within the restart budget")
    return out


def _shape(rng: random.Random, kind: str, liveness_s: float) -> tuple[float, int]:
    if kind == "sigstop":
        # Half shorter than liveness (stale, then resumes), half longer (killed).
        short = rng.random() < 0.5
        return (round(rng.uniform(1.0, liveness_s * 0.6), 2) if short
                else round(rng.uniform(liveness_s * 1.2, liveness_s * 1.8), 2)), 0
    if kind == "ws_drop":
        return round(rng.choice([0.0, rng.uniform(0.5, 2.0)]), 2), 0
    if kind == "http_5xx":
        return round(rng.uniform(1.0, 4.0), 2), rng.choice([500, 502, 503])
    if kind == "http_429":
        return round(rng.uniform(0.5, 3.0), 2), 429
    return 0.0, 0


def restart_budget_ok(schedule: list[Fault], *, liveness_s: float = 3.0, max_kills: int = 3,
                      period_s: float = 30.0) -> bool:
    """True when no actor is made to restart more than ``max_kills`` times in ``period_s``."""
    times: dict[str, list[float]] = {}
    for f in schedule:
        victim = _restarts_target(f.kind, f.target, f.duration_s, liveness_s)
        if victim is None:
            continue
        recent = [t for t in times.get(victim, []) if f.at_s - t < period_s]
        if len(recent) >= max_kills:
            return False
        times.setdefault(victim, []).append(f.at_s)
    return True
