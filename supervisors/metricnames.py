"""How actors name what they want exported, inside their heartbeat counters.

Keys are ``<kind>.<metric>|<label>=<value>,...``:
``c.`` a counter (the exporter keeps it monotonic across restarts),
``g.`` a gauge (latest value), ``h.`` a histogram part (``le=<bound>``,
``sum``, ``count``). Keys without a prefix are internal counters.
"""

from __future__ import annotations

# Fine around the milliseconds the trade path aims for (decision -> ack p50 <= 5 ms, p99 <= 20 ms):
# a millisecond apart up to 10 ms, so histogram_quantile's straight line inside a bucket
# stays within a millisecond of the exact figure there.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.015,
                     0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def key(kind: str, metric: str, /, **labels: str) -> str:
    # Positional-only: a label may be called "kind" (arbd_venue_rejects_total{kind=...}).
    if not labels:
        return f"{kind}.{metric}"
    return f"{kind}.{metric}|" + ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def parse(k: str) -> tuple[str, str, dict[str, str]] | None:
    kind, dot, rest = k.partition(".")
    if not dot or kind not in ("c", "g", "h"):
        return None
    metric, _, lab = rest.partition("|")
    labels = {}
    if lab:
        for part in lab.split(","):
            name, _, value = part.partition("=")
            labels[name] = value
    return kind, metric, labels


class Histogram:
    """Cumulative buckets kept in an actor's counters dict (actor thread only)."""

    def __init__(self, counters: dict[str, float], metric: str) -> None:
        self._c = counters
        self._keys = [f"h.{metric}|le={b}" for b in LATENCY_BUCKETS_S] + [f"h.{metric}|le=+Inf"]
        self._sum = f"h.{metric}|sum"
        self._count = f"h.{metric}|count"

    def observe(self, seconds: float) -> None:
        c = self._c
        for bound, k in zip(LATENCY_BUCKETS_S, self._keys, strict=False):
            if seconds <= bound:
                c[k] = c.get(k, 0) + 1
        inf = self._keys[-1]
        c[inf] = c.get(inf, 0) + 1
        c[self._sum] = c.get(self._sum, 0.0) + seconds
        c[self._count] = c.get(self._count, 0) + 1
