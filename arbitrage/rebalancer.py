"""D14: the risk-mode rebalancer — volatility -> risk mode -> rebalancing.

Risk mode comes from volatility (0..1) with hysteresis, so a value hovering
at a threshold does not flap the mode: ``normal`` below
``cautious_volatility``, ``extreme`` from ``extreme_volatility``, ``cautious``
between; stepping down needs ``volatility_hysteresis`` below the threshold.

``exposure_drift_rate`` is the speed of exposure increase (the seed's metric,
in [-1, 1]): the growth of exposure over the last ``drift_window_s`` as a
fraction of ``exposure_scale_krw`` (by default the seed's max exposure).

A rebalance is due when

* ``exposure_drift_rate`` rises past ``exposure_drift_threshold`` (once per
  crossing: it re-arms when the rate falls back below the threshold);
* the risk mode escalates, if ``risk_mode_rebalance_trigger`` (stepping down
  reduces nothing: new sizes simply recover);
* someone asks: :meth:`RiskModeRebalancer.request` (the watchdog's
  loop-latency degradation) or :meth:`RiskModeRebalancer.rebalance`.

Automatic triggers are at least ``min_interval_s`` apart (one that comes
too soon waits, if it still holds); requests are not throttled. The decision's intensity follows the risk mode: the fraction of
current exposure to unwind is ``intensity x max_reduce_fraction``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum


class RiskMode(StrEnum):
    NORMAL = "normal"
    CAUTIOUS = "cautious"
    EXTREME = "extreme"

    @property
    def level(self) -> int:
        """The ``risk_mode_current`` gauge: 0 normal, 1 cautious, 2 extreme."""
        return _LEVELS.index(self)


_LEVELS = (RiskMode.NORMAL, RiskMode.CAUTIOUS, RiskMode.EXTREME)


@dataclass(frozen=True, kw_only=True)
class RebalancerConfig:
    """The ``rebalancer:`` config section; the first three keys are the seed's."""

    enabled: bool = True
    risk_mode_rebalance_trigger: bool = True
    exposure_drift_threshold: float = 0.1
    cautious_volatility: float = 0.4
    extreme_volatility: float = 0.7
    volatility_hysteresis: float = 0.05
    exposure_scale_krw: float = 500_000.0  # the seed's max_exposure_krw
    drift_window_s: float = 600.0
    min_interval_s: float = 60.0
    intensity_normal: float = 0.25
    intensity_cautious: float = 0.5
    intensity_extreme: float = 1.0
    max_reduce_fraction: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{f.name} must be a finite number, got {v!r}")
        for name in ("exposure_drift_threshold", "exposure_scale_krw", "drift_window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 < self.extreme_volatility <= 1.0:  # named on its own, so the error names its key
            raise ValueError(f"extreme_volatility must be in (0, 1], got {self.extreme_volatility}")
        if not 0.0 < self.cautious_volatility < self.extreme_volatility <= 1.0:
            raise ValueError("cautious_volatility must be > 0 and below extreme_volatility (<= 1), "
                             f"got {self.cautious_volatility}, {self.extreme_volatility}")
        if not 0.0 <= self.volatility_hysteresis < self.cautious_volatility:
            raise ValueError("volatility_hysteresis must be >= 0 and below cautious_volatility, "
                             f"got {self.volatility_hysteresis}")
        if self.min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {self.min_interval_s}")
        for name in ("intensity_normal", "intensity_cautious", "intensity_extreme",
                     "max_reduce_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    def intensity(self, mode: RiskMode) -> float:
        return {RiskMode.NORMAL: self.intensity_normal, RiskMode.CAUTIOUS: self.intensity_cautious,
                RiskMode.EXTREME: self.intensity_extreme}[mode]


@dataclass(frozen=True, kw_only=True)
class RebalanceDecision:
    """Reduce exposure: unwind ``reduce_fraction`` of it (``target_exposure_krw``
    is what should remain) and size new positions by ``size_multiplier``."""

    reason: str
    risk_mode: str
    intensity: float
    reduce_fraction: float
    exposure_krw: float = 0.0
    target_exposure_krw: float = 0.0

    @property
    def size_multiplier(self) -> float:
        return 1.0 - self.reduce_fraction


def _level_for(volatility: float, cautious: float, extreme: float) -> int:
    return 2 if volatility >= extreme else 1 if volatility >= cautious else 0


class RiskModeRebalancer:
    """Decides when and how hard to rebalance (see module docs).

    ``now`` is a monotonic clock in seconds.
    """

    def __init__(self, config: RebalancerConfig | None = None,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.config = config if config is not None else RebalancerConfig()
        self.now = now
        self.risk_mode = RiskMode.NORMAL
        self.volatility = 0.0
        self.exposure_krw = 0.0
        self.exposure_drift_rate = 0.0
        self.rebalance_count = 0
        self._exposure: deque[tuple[float, float]] = deque()
        self._drift_armed = True
        self._ack_level = 0  # the risk level the last rebalance answered
        self._last_auto = -math.inf
        self._requests: list[str] = []

    # -- inputs -------------------------------------------------------------------------
    def request(self, reason: str) -> None:
        """Ask for a rebalance at the next :meth:`update` (not throttled)."""
        text = reason.strip() or "requested"
        if text not in self._requests:
            self._requests.append(text)

    def update(self, exposure_krw: float, volatility: float) -> RebalanceDecision | None:
        """Feed the current exposure (KRW) and volatility (0..1); returns a
        decision when a rebalance is due. Non-finite inputs are ignored."""
        t = self.now()
        if math.isfinite(volatility):
            self.volatility = min(1.0, max(0.0, volatility))
            self.risk_mode = _LEVELS[self._next_level(self.volatility)]
        if math.isfinite(exposure_krw):
            self._observe_exposure(t, max(0.0, exposure_krw))
        cfg = self.config
        if not cfg.enabled:
            self._requests.clear()
            return None
        level = self.risk_mode.level
        reasons = []
        if cfg.risk_mode_rebalance_trigger and level > self._ack_level:
            reasons.append(f"risk mode {_LEVELS[self._ack_level]} -> {self.risk_mode}")
        self._ack_level = min(self._ack_level, level)  # stepping down re-arms the lower steps
        drift_over = self.exposure_drift_rate > cfg.exposure_drift_threshold
        if not drift_over:
            self._drift_armed = True
        elif self._drift_armed:
            reasons.append(f"exposure drift {self.exposure_drift_rate:.3f} > "
                           f"{cfg.exposure_drift_threshold}")
        if reasons and t - self._last_auto < cfg.min_interval_s:
            reasons = []  # throttled: the triggers stay pending until the interval has passed
        if reasons:
            self._last_auto = t
            self._ack_level = level
            self._drift_armed = not drift_over
        requested = [f"requested: {r}" for r in self._requests]
        self._requests.clear()
        if not reasons and not requested:
            return None
        return self._decide("; ".join(reasons + requested))

    def rebalance(self, reason: str = "requested") -> RebalanceDecision | None:
        """A rebalance now, at the current risk mode's intensity (the seed's
        ``rebalancer.rebalance()``); None when the rebalancer is disabled."""
        if not self.config.enabled:
            return None
        return self._decide(reason)

    # -- internals --------------------------------------------------------------------------
    def _next_level(self, v: float) -> int:
        cfg = self.config
        up = _level_for(v, cfg.cautious_volatility, cfg.extreme_volatility)
        current = self.risk_mode.level
        if up >= current:
            return up
        h = cfg.volatility_hysteresis
        down = _level_for(v, cfg.cautious_volatility - h, cfg.extreme_volatility - h)
        return min(current, down)

    def _observe_exposure(self, t: float, exposure: float) -> None:
        self.exposure_krw = exposure
        window = self._exposure
        window.append((t, exposure))
        # Keep one sample at or before the window's start as the reference.
        start = t - self.config.drift_window_s
        while len(window) >= 2 and window[1][0] <= start:
            window.popleft()
        growth = exposure - window[0][1]
        self.exposure_drift_rate = max(-1.0, min(1.0, growth / self.config.exposure_scale_krw))

    def _decide(self, reason: str) -> RebalanceDecision:
        intensity = self.config.intensity(self.risk_mode)
        reduce = intensity * self.config.max_reduce_fraction
        self.rebalance_count += 1
        return RebalanceDecision(reason=reason, risk_mode=str(self.risk_mode), intensity=intensity,
                                 reduce_fraction=reduce, exposure_krw=self.exposure_krw,
                                 target_exposure_krw=self.exposure_krw * (1.0 - reduce))

    def get_metrics(self) -> dict[str, float]:
        """The seed's gauges: ``risk_mode_current`` (0/1/2), ``exposure_drift_rate``."""
        return {
            "risk_mode_current": float(self.risk_mode.level),
            "exposure_drift_rate": self.exposure_drift_rate,
            "rebalance_count": float(self.rebalance_count),
        }
