"""The moving baseline of the kimchi premium, per symbol.

The premium rarely sits at zero: it mean-reverts around a level (~2 %) that
itself drifts. Trades are taken on departures from this baseline, not from
zero. The baseline is an exponential moving average of the *mid* premium
(percent) with a time constant in seconds, so irregular quote arrival does
not change its meaning: a sample ``dt`` seconds after the previous one moves
the average by ``1 - exp(-dt / tau)`` of the gap.

- Warm-up: no value is offered until ``warmup_samples`` samples *and*
  ``warmup_s`` seconds have gone by. Meanwhile the average is the plain mean
  of the samples so far (the weight is at least ``1 / n``), so the first
  sample does not dominate.
- Jumps: once warm, each sample moves the baseline by at most
  ``max_step_pct`` percentage points, so a bad print or a spike does not drag
  the reference that the spike itself is measured against.
- Non-finite samples are ignored; a clock that goes backwards counts as no
  time passing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineConfig:
    time_constant_s: float = 3600.0
    warmup_samples: int = 60
    warmup_s: float = 30.0
    max_step_pct: float = 0.02

    def __post_init__(self) -> None:
        errors = []
        if self.time_constant_s <= 0:
            errors.append("time_constant_s must be > 0")
        if self.warmup_samples < 1:
            errors.append("warmup_samples must be >= 1")
        if self.warmup_s < 0:
            errors.append("warmup_s must be >= 0")
        if self.max_step_pct <= 0:
            errors.append("max_step_pct must be > 0")
        if errors:
            raise ValueError("BaselineConfig: " + "; ".join(errors))


class _State:
    __slots__ = ("value", "n", "first_t", "last_t", "warm")

    def __init__(self, value: float, t: float) -> None:
        self.value = value
        self.n = 1
        self.first_t = t
        self.last_t = t
        self.warm = False


class PremiumBaseline:
    """EMA of the mid premium per symbol. ``now`` returns seconds."""

    def __init__(self, config: BaselineConfig, now: Callable[[], float]) -> None:
        self.config = config
        self.now = now
        self._states: dict[str, _State] = {}

    def update(self, symbol: str, premium_pct: float) -> float | None:
        """Add one mid-premium sample; the baseline once warm, else ``None``."""
        if not math.isfinite(premium_pct):
            return self.value(symbol)
        t = self.now()
        cfg = self.config
        st = self._states.get(symbol)
        if st is None:
            st = self._states[symbol] = _State(premium_pct, t)
        else:
            dt = t - st.last_t
            alpha = 1.0 - math.exp(-dt / cfg.time_constant_s) if dt > 0 else 0.0
            step = premium_pct - st.value
            if st.warm:
                step *= alpha
                limit = cfg.max_step_pct
                step = limit if step > limit else (-limit if step < -limit else step)
            else:
                step *= max(alpha, 1.0 / (st.n + 1))
            st.value += step
            st.n += 1
            st.last_t = max(st.last_t, t)
        if not st.warm and st.n >= cfg.warmup_samples and t - st.first_t >= cfg.warmup_s:
            st.warm = True
        return st.value if st.warm else None

    def value(self, symbol: str) -> float | None:
        """The baseline in percent, or ``None`` while the symbol is warming up."""
        st = self._states.get(symbol)
        return st.value if st is not None and st.warm else None

    def estimate(self, symbol: str) -> float | None:
        """The current average even during warm-up (for display); ``None`` before any sample."""
        st = self._states.get(symbol)
        return st.value if st is not None else None

    def is_warm(self, symbol: str) -> bool:
        st = self._states.get(symbol)
        return st is not None and st.warm

    def samples(self, symbol: str) -> int:
        st = self._states.get(symbol)
        return st.n if st is not None else 0

    def reset(self, symbol: str) -> None:
        """Forget a symbol: it warms up again from its next sample."""
        self._states.pop(symbol, None)


__all__ = ["BaselineConfig", "PremiumBaseline"]
