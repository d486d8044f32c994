"""D14: the long-run (72 h) tester — event records, drift tracking, latency degradation.

Pure: it builds records and numbers and hands them to sinks; the actor that
owns it does the file I/O (the event log, ``logs/stability/`` snapshots).

Drift. Each kind (``memory``, ``ws_lag``, ``state_age``, ``loop_latency``)
keeps a window of recent samples. :meth:`LongRunTester.get_drift_rate` fits a
least-squares line through them and reports the fitted change across the
window relative to the window's mean, clamped to [-1, 1]: ``0.1`` means the
level grew by 10 % across the window (the seed's "``memory_drift_rate > 0.1``"
symptom). It is per sample, so it needs no clock; the per-hour rate uses the
clock. ``state_age`` stands where the seed had Redis: this system keeps no
Redis, the age of the freshest required quote is the state it relies on, so
``redis_age_drift_rate`` reports it.

Latency degradation. The first ``latency_baseline_samples`` loop latencies
set a baseline (their median). Latency is degraded while the median of the
last ``latency_recent_samples`` exceeds ``latency_factor`` x baseline (and
the baseline by at least ``latency_min_increase_ms``); a median ignores one
spike; it ends only once that median is back within half of the margin.
:meth:`check_latency_degradation` is true once that has lasted
``latency_sustain_s`` (the seed's two hours). The baseline does not follow
the latency: a slow creep is exactly what this must catch.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

# Input key -> (drift kind, factor into the kind's unit).
_INPUTS: dict[str, tuple[str, float]] = {
    "rss_mb": ("memory", 1.0),
    "ws_lag_ms": ("ws_lag", 1.0),
    "ws_lag_s": ("ws_lag", 1000.0),  # one unit (ms) per series, whichever arrives
    "state_age_s": ("state_age", 1.0),
    "redis_age_s": ("state_age", 1.0),
    "loop_latency_ms": ("loop_latency", 1.0),
}
KINDS = ("memory", "ws_lag", "state_age", "loop_latency")
_ALIASES = {"redis_age": "state_age", "redis": "state_age", "rss": "memory", "latency": "loop_latency"}
MIN_DRIFT_SAMPLES = 8  # fewer than this is noise, not a trend
SEED_DEGRADATION_SUSTAIN_S = 2 * 3600.0  # "루프 지연 2시간 악화"


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float] | None:
    """(slope, mean of ys) of the least-squares line, or None if undefined."""
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx <= 0.0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx, my


class _Series:
    """A window of (t, value) samples, each the mean of ``stride`` inputs."""

    def __init__(self, window: int, stride: int) -> None:
        self.samples: deque[tuple[float, float]] = deque(maxlen=window)
        self.stride = stride
        self._acc = 0.0
        self._n = 0
        self.last = 0.0

    def add(self, t: float, value: float) -> None:
        self.last = value
        self._acc += value
        self._n += 1
        if self._n >= self.stride:
            self.samples.append((t, self._acc / self._n))
            self._acc, self._n = 0.0, 0


class LongRunTester:
    """Long-run bookkeeping for one daemon run (see module docs).

    ``now`` is a monotonic clock in seconds (drift per hour, degradation
    duration); ``wall`` an epoch clock in seconds (``ts`` of records).
    ``interval_loops``: :meth:`tick_loop` says a snapshot is due every this
    many loops (when ``enabled``). ``window``: samples per drift kind;
    ``stride``: inputs averaged into one sample (a window then spans
    ``window * stride`` inputs).
    """

    def __init__(self, enabled: bool = True, interval_loops: int = 360,
                 now: Callable[[], float] = time.monotonic, window: int = 360,
                 event_sink: Callable[[dict[str, Any]], None] | None = None,
                 snapshot_sink: Callable[[dict[str, Any]], None] | None = None, *,
                 stride: int = 1, wall: Callable[[], float] = time.time,
                 latency_baseline_samples: int = 120, latency_recent_samples: int = 20,
                 latency_factor: float = 1.5, latency_min_increase_ms: float = 0.5,
                 latency_sustain_s: float = SEED_DEGRADATION_SUSTAIN_S) -> None:
        if interval_loops <= 0:
            raise ValueError(f"interval_loops must be > 0, got {interval_loops}")
        if window < 2 or stride < 1:
            raise ValueError(f"window must be >= 2 and stride >= 1, got {window}, {stride}")
        if latency_factor <= 1.0:
            raise ValueError(f"latency_factor must be > 1, got {latency_factor}")
        if latency_baseline_samples < 1 or latency_recent_samples < 1 or latency_sustain_s < 0:
            raise ValueError("latency sample counts must be >= 1 and latency_sustain_s >= 0")
        self.enabled = enabled
        self.interval_loops = interval_loops
        self.now = now
        self.wall = wall
        self.event_sink = event_sink
        self.snapshot_sink = snapshot_sink
        self.started = now()
        self.loops = 0
        self.event_counts: Counter[str] = Counter()
        self._series = {k: _Series(window, stride) for k in KINDS}
        # Latency degradation state.
        self._lat_warmup: list[float] = []
        self._lat_warmup_n = latency_baseline_samples
        self._lat_recent: deque[float] = deque(maxlen=latency_recent_samples)
        self._lat_factor = latency_factor
        self._lat_min_increase = latency_min_increase_ms
        self._lat_sustain = latency_sustain_s
        self.latency_baseline_ms: float | None = None
        self._degraded_since: float | None = None

    # -- events ------------------------------------------------------------------------
    def record_event(self, event_type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """Count an event and return its JSONL-ready record
        ``{"ts", "event_type", **data}``, also handed to ``event_sink``."""
        data = data or {}
        clash = {"ts", "event_type"} & data.keys()
        if clash:
            raise ValueError(f"event data may not set {sorted(clash)}")
        record: dict[str, Any] = {"ts": round(self.wall(), 6), "event_type": event_type, **data}
        self.event_counts[event_type] += 1
        if self.event_sink is not None:
            self.event_sink(record)
        return record

    @property
    def live_event_count(self) -> int:
        return sum(self.event_counts.values())

    # -- drift ---------------------------------------------------------------------------
    def update_drift_metrics(self, metrics: dict[str, float]) -> None:
        """Take one sample of each known key (``rss_mb``, ``ws_lag_ms`` or
        ``ws_lag_s``, ``state_age_s``, ``loop_latency_ms``); others are ignored,
        as are values that are not finite numbers."""
        t = self.now()
        for name, value in metrics.items():
            spec = _INPUTS.get(name)
            if spec is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if value != value or value in (float("inf"), float("-inf")):
                continue
            kind, factor = spec
            v = float(value) * factor
            self._series[kind].add(t, v)
            if kind == "loop_latency":
                self._observe_latency(t, v)

    def _kind(self, kind: str) -> str:
        k = _ALIASES.get(kind, kind)
        if k not in self._series:
            raise ValueError(f"unknown drift kind {kind!r} (expected one of {', '.join(KINDS)})")
        return k

    def get_drift_rate(self, kind: str) -> float:
        """Fitted change across the window relative to its mean, in [-1, 1];
        0.0 until ``MIN_DRIFT_SAMPLES`` samples or when the mean is 0."""
        s = self._series[self._kind(kind)].samples
        if len(s) < MIN_DRIFT_SAMPLES:
            return 0.0
        fit = _fit([float(i) for i in range(len(s))], [v for _, v in s])
        if fit is None or fit[1] == 0.0:
            return 0.0
        slope, mean = fit
        return max(-1.0, min(1.0, slope * (len(s) - 1) / abs(mean)))

    def get_drift_rate_per_hour(self, kind: str) -> float:
        """Fitted change per hour (by the clock) relative to the window's mean;
        not clamped. 0.0 until enough samples spread over time."""
        s = self._series[self._kind(kind)].samples
        if len(s) < MIN_DRIFT_SAMPLES:
            return 0.0
        fit = _fit([t for t, _ in s], [v for _, v in s])
        if fit is None or fit[1] == 0.0:
            return 0.0
        slope, mean = fit
        return slope * 3600.0 / abs(mean)

    # -- latency degradation -------------------------------------------------------------
    def _observe_latency(self, t: float, ms: float) -> None:
        self._lat_recent.append(ms)
        if self.latency_baseline_ms is None:
            self._lat_warmup.append(ms)
            if len(self._lat_warmup) >= self._lat_warmup_n:
                self.latency_baseline_ms = statistics.median(self._lat_warmup)
                self._lat_warmup = []
            return
        recent = statistics.median(self._lat_recent)
        base = self.latency_baseline_ms
        if self._degraded_since is None:
            if recent > base * self._lat_factor and recent - base >= self._lat_min_increase:
                self._degraded_since = t
        # Hysteresis: clear only halfway back to the baseline, so a latency
        # hovering at the threshold does not restart the two-hour count.
        elif recent <= base * (1.0 + (self._lat_factor - 1.0) / 2.0):
            self._degraded_since = None

    def check_latency_degradation(self) -> bool:
        """True once loop latency has stayed degraded for ``latency_sustain_s``."""
        since = self._degraded_since
        return since is not None and self.now() - since >= self._lat_sustain

    def latency_degraded_for_s(self) -> float:
        """How long the current degradation has lasted (0.0 when none)."""
        return 0.0 if self._degraded_since is None else self.now() - self._degraded_since

    def reset_latency_baseline(self) -> None:
        """Learn a new baseline from the next samples (after a deliberate change)."""
        self.latency_baseline_ms = None
        self._lat_warmup = []
        self._lat_recent.clear()
        self._degraded_since = None

    # -- loops and snapshots -----------------------------------------------------------------
    def tick_loop(self) -> bool:
        """Count one loop; True when a snapshot is due (every ``interval_loops``
        loops, and only when ``enabled``)."""
        self.loops += 1
        return self.enabled and self.loops % self.interval_loops == 0

    def get_metrics(self) -> dict[str, float]:
        """The D14 gauges this tester owns, by their seed names."""
        recent = statistics.median(self._lat_recent) if self._lat_recent else 0.0
        return {
            "live_event_count": float(self.live_event_count),
            "failclosed_events": float(self.event_counts.get("fail_closed", 0)),
            "memory_drift_rate": self.get_drift_rate("memory"),
            "ws_lag_drift_rate": self.get_drift_rate("ws_lag"),
            "state_age_drift_rate": self.get_drift_rate("state_age"),
            "redis_age_drift_rate": self.get_drift_rate("state_age"),
            "loop_latency_drift_rate": self.get_drift_rate("loop_latency"),
            "loop_latency_baseline_ms": self.latency_baseline_ms or 0.0,
            "loop_latency_recent_ms": recent,
            "latency_degraded": 1.0 if self.check_latency_degradation() else 0.0,
        }

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready picture of the run so far, also handed to ``snapshot_sink``."""
        drift = {}
        for kind, series in self._series.items():
            drift[kind] = {
                "rate": round(self.get_drift_rate(kind), 6),
                "rate_per_hour": round(self.get_drift_rate_per_hour(kind), 6),
                "last": series.last,
                "samples": len(series.samples),
            }
        snap: dict[str, Any] = {
            "ts": round(self.wall(), 6),
            "uptime_s": round(self.now() - self.started, 3),
            "loops": self.loops,
            "live_event_count": self.live_event_count,
            "event_counts": dict(self.event_counts),
            "drift": drift,
            "latency": {
                "baseline_ms": self.latency_baseline_ms,
                "degraded": self.check_latency_degradation(),
                "degraded_for_s": round(self.latency_degraded_for_s(), 3),
            },
            "metrics": self.get_metrics(),
        }
        if self.snapshot_sink is not None:
            self.snapshot_sink(snap)
        return snap
