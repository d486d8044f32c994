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
- Restart: :meth:`PremiumBaseline.export` gives the warm symbols' state and
  :func:`dump_state` / :func:`load_state` turn it into a small versioned
  document (``{"version", "ts", "symbols": {sym: {"value", "n"}}}``) and
  back. :meth:`PremiumBaseline.restore` seeds a symbol from it *unverified*:
  no value is offered until the first ``restore_verify_samples`` live samples
  have come in and their median lies within ``restore_tolerance_pct``
  percentage points of the restored value. A restored value that disagrees
  is dropped and the symbol warms up cold from those very samples, so a
  stale or foreign state never prices a trade. A document older than
  ``restore_max_age_s`` (or corrupt, truncated, of another version) is
  refused by ``load_state`` with a one-line reason: cold start, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

STATE_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineConfig:
    time_constant_s: float = 3600.0
    warmup_samples: int = 60
    warmup_s: float = 30.0
    max_step_pct: float = 0.02
    # Warm restart (see the module docstring): a saved state older than this is
    # discarded (0 turns restoring off); a restored value is trusted only once
    # the median of its first ``restore_verify_samples`` live samples lies
    # within ``restore_tolerance_pct`` percentage points of it.
    restore_max_age_s: float = 300.0
    restore_verify_samples: int = 10
    restore_tolerance_pct: float = 1.0

    def __post_init__(self) -> None:
        errors = []
        if self.restore_max_age_s < 0:
            errors.append("restore_max_age_s must be >= 0")
        if self.restore_verify_samples < 1:
            errors.append("restore_verify_samples must be >= 1")
        if self.restore_tolerance_pct <= 0:
            errors.append("restore_tolerance_pct must be > 0")
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
    __slots__ = ("value", "n", "first_t", "last_t", "warm", "checking")

    def __init__(self, value: float, t: float) -> None:
        self.value = value
        self.n = 1
        self.first_t = t
        self.last_t = t
        self.warm = False
        # Restored and not yet trusted: the live samples seen so far (with their times).
        self.checking: list[tuple[float, float]] | None = None


class PremiumBaseline:
    """EMA of the mid premium per symbol. ``now`` returns seconds."""

    def __init__(self, config: BaselineConfig, now: Callable[[], float]) -> None:
        self.config = config
        self.now = now
        self._states: dict[str, _State] = {}
        # (symbol, "verified" | "disagreed", detail) for the actor to log; see take_outcomes().
        self._outcomes: list[tuple[str, str, str]] = []

    def update(self, symbol: str, premium_pct: float) -> float | None:
        """Add one mid-premium sample; the baseline once warm, else ``None``."""
        if not math.isfinite(premium_pct):
            return self.value(symbol)
        t = self.now()
        st = self._states.get(symbol)
        if st is not None and st.checking is not None:
            return self._check(symbol, st, premium_pct, t)
        return self._add(symbol, premium_pct, t)

    def _add(self, symbol: str, premium_pct: float, t: float) -> float | None:
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

    # -- warm restart ------------------------------------------------------------
    def export(self) -> dict[str, tuple[float, int]]:
        """The trusted (warm) symbols: ``{symbol: (value, samples)}``."""
        return {s: (st.value, st.n) for s, st in self._states.items() if st.warm}

    def restore(self, symbol: str, value: float, samples: int) -> bool:
        """Seed ``symbol`` from a saved state, to be checked against the next
        live samples before it is offered. Refused (False) for a bad value or
        a symbol that already has live samples."""
        if not math.isfinite(value) or symbol in self._states:
            return False
        t = self.now()
        st = _State(value, t)
        st.n = max(1, int(samples))
        st.first_t = t - self.config.warmup_s  # its warm-up is behind it
        st.checking = []
        self._states[symbol] = st
        return True

    def status(self, symbol: str) -> str:
        """``warm``, ``checking`` (restored, not yet trusted), ``warming`` or ``none``."""
        st = self._states.get(symbol)
        if st is None:
            return "none"
        if st.checking is not None:
            return "checking"
        return "warm" if st.warm else "warming"

    def progress(self, symbol: str) -> str:
        """What ``symbol`` still waits for, in words ("" when warm)."""
        st = self._states.get(symbol)
        cfg = self.config
        if st is None:
            return f"{symbol}: no sample yet"
        if st.checking is not None:
            return f"{symbol}: checking restored baseline ({len(st.checking)}/{cfg.restore_verify_samples} samples)"
        if st.warm:
            return ""
        return (f"{symbol}: baseline warm-up ({min(st.n, cfg.warmup_samples)}/{cfg.warmup_samples} samples, "
                f"{min(self.now() - st.first_t, cfg.warmup_s):.1f}/{cfg.warmup_s:g}s)")

    def take_outcomes(self) -> list[tuple[str, str, str]]:
        """Restored symbols that were verified or dropped since the last call."""
        out, self._outcomes = self._outcomes, []
        return out

    def _check(self, symbol: str, st: _State, sample: float, t: float) -> float | None:
        cfg = self.config
        assert st.checking is not None
        st.checking.append((sample, t))
        if len(st.checking) < cfg.restore_verify_samples:
            return None
        samples = sorted(x for x, _ in st.checking)
        k = len(samples)
        median = samples[k // 2] if k % 2 else (samples[k // 2 - 1] + samples[k // 2]) / 2.0
        gap = median - st.value
        if abs(gap) <= cfg.restore_tolerance_pct:
            self._outcomes.append((symbol, "verified", f"restored {st.value:.4f}%, live median {median:.4f}%"))
            checked, st.checking = st.checking, None
            st.warm = True
            st.last_t = checked[0][1]
            for x, tx in checked:  # the checked samples count, as any warm sample would
                alpha = 1.0 - math.exp(-(tx - st.last_t) / cfg.time_constant_s) if tx > st.last_t else 0.0
                step = max(-cfg.max_step_pct, min(cfg.max_step_pct, (x - st.value) * alpha))
                st.value += step
                st.n += 1
                st.last_t = max(st.last_t, tx)
            return st.value
        self._outcomes.append((symbol, "disagreed", f"restored {st.value:.4f}% vs live median {median:.4f}% "
                                                    f"(tolerance {cfg.restore_tolerance_pct:g} pp)"))
        checked = st.checking
        del self._states[symbol]
        for x, tx in checked:  # a cold warm-up from the samples already seen, at their own times
            self._add(symbol, x, tx)
        return self.value(symbol)


def dump_state(baseline: PremiumBaseline, wall_ts: float) -> dict[str, Any]:
    """The document a warm restart reads back (see :func:`load_state`)."""
    return {"version": STATE_VERSION, "ts": round(wall_ts, 3),
            "symbols": {s: {"value": v, "n": n} for s, (v, n) in sorted(baseline.export().items())}}


def load_state(data: Any, wall_now: float, max_age_s: float) -> tuple[dict[str, tuple[float, int]], str]:
    """``({symbol: (value, samples)}, "")`` from a saved document, or ``({}, why)``
    when it cannot be used (so the caller logs ``why`` and starts cold)."""
    if max_age_s <= 0:
        return {}, "restoring is off (baseline.restore_max_age_s = 0)"
    if not isinstance(data, dict):
        return {}, f"not a state document ({type(data).__name__})"
    if data.get("version") != STATE_VERSION:
        return {}, f"state version {data.get('version')!r}, expected {STATE_VERSION}"
    ts, symbols = data.get("ts"), data.get("symbols")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not isinstance(symbols, dict):
        return {}, "state document lacks ts or symbols"
    age = wall_now - float(ts)
    if not math.isfinite(age) or age > max_age_s or age < -5.0:
        return {}, f"state is {age:.1f}s old (limit {max_age_s:g}s)"
    out: dict[str, tuple[float, int]] = {}
    for sym, v in symbols.items():
        if not isinstance(v, dict):
            return {}, f"bad entry for {sym!r}"
        value, n = v.get("value"), v.get("n")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or isinstance(n, bool) or not isinstance(n, int) or n < 1:
            return {}, f"bad entry for {sym!r}"
        out[str(sym)] = (float(value), n)
    return out, ""


__all__ = ["STATE_VERSION", "BaselineConfig", "PremiumBaseline", "dump_state", "load_state"]
