"""Deterministic market model: USD prices, USDT/KRW and the kimchi premium.

Pure: no I/O, no clock. ``step(dt)`` advances the state by ``dt`` seconds and
draws a fixed number of random numbers from one numpy Generator seeded by
``config.seed``, so the same seed and the same sequence of ``dt`` give the
same path. The order books (``books.py``) draw from their own generators, so
trading against them never changes this path.

- USD price per coin (Binance COINUSDT mid): geometric random walk.
- USDT/KRW (Upbit KRW-USDT mid): Ornstein-Uhlenbeck around ``fx_krw_per_usdt``.
- Premium (percent): OU towards a baseline; the baseline itself switches
  between a *ranging* regime (relaxes to ``premium_mean_pct``) and a
  *trending* one (drifts up or down, bounded); jumps arrive as a Poisson
  process and decay with the OU reversion. Each coin adds a small OU term.

Upbit KRW-COIN mid = usd * fx * (1 + premium/100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from venues.sim.config import SimConfig

RANGING = "ranging"
TRENDING = "trending"

# Baseline relaxation towards the long-run mean while ranging, per second.
_BASELINE_RELAX = 0.05


def _ou_coeffs(theta: float, sigma: float, dt: float) -> tuple[float, float]:
    """Exact OU discretisation: x += (mu - x) * a + b * N(0, 1)."""
    if theta <= 0:
        return 0.0, sigma * math.sqrt(dt)
    a = 1.0 - math.exp(-theta * dt)
    b = sigma * math.sqrt((1.0 - math.exp(-2.0 * theta * dt)) / (2.0 * theta))
    return a, b


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    t: float
    fx: float
    premium_pct: float  # common premium
    baseline_pct: float  # the regime's current centre
    regime: str
    usd: dict[str, float]
    coin_premium_pct: dict[str, float]  # common + coin term


class MarketModel:
    """The price paths. ``coins`` are the simulated symbols (not USDT)."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.coins: tuple[str, ...] = tuple(config.symbols)
        self._rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([config.seed, 0])))
        self.t = 0.0
        self.steps = 0
        self.fx = config.fx_krw_per_usdt
        self.premium = config.premium_mean_pct
        self.baseline = config.premium_mean_pct
        self.regime = RANGING
        self.trend_dir = 1.0
        self.usd = {c: config.usd_price(c) for c in self.coins}
        self.coin_term = {c: 0.0 for c in self.coins}
        self.jumps = 0

    # -- evolution -----------------------------------------------------------------

    def step(self, dt: float) -> None:
        cfg = self.config
        n = len(self.coins)
        normals = self._rng.standard_normal(2 + 2 * n)
        uniforms = self._rng.random(5)
        self.t += dt
        self.steps += 1

        # Regime switch (Poisson with the per-second probabilities as rates).
        if self.regime == RANGING:
            if uniforms[0] < 1.0 - math.exp(-cfg.regime_to_trending_prob * dt):
                self.regime = TRENDING
                self.trend_dir = 1.0 if uniforms[1] < 0.5 else -1.0
        elif uniforms[0] < 1.0 - math.exp(-cfg.regime_to_ranging_prob * dt):
            self.regime = RANGING
        if self.regime == TRENDING:
            self.baseline += self.trend_dir * cfg.trend_drift_pct_per_s * dt
            lo = cfg.premium_mean_pct - cfg.trend_max_offset_pct
            hi = cfg.premium_mean_pct + cfg.trend_max_offset_pct
            if not lo <= self.baseline <= hi:
                self.baseline = min(hi, max(lo, self.baseline))
                self.trend_dir = -self.trend_dir
        else:
            self.baseline += (cfg.premium_mean_pct - self.baseline) * (1.0 - math.exp(-_BASELINE_RELAX * dt))

        a, b = _ou_coeffs(cfg.premium_reversion, cfg.premium_vol_pct, dt)
        self.premium += (self.baseline - self.premium) * a + b * normals[0]
        if uniforms[2] < 1.0 - math.exp(-cfg.jump_prob * dt):
            sign = 1.0 if uniforms[3] < 0.5 else -1.0
            self.premium += sign * cfg.jump_pct * (0.75 + 0.5 * uniforms[4])
            self.jumps += 1

        sigma_fx = cfg.fx_noise_krw * math.sqrt(2.0 * cfg.fx_reversion) if cfg.fx_reversion > 0 else cfg.fx_noise_krw
        a, b = _ou_coeffs(cfg.fx_reversion, sigma_fx, dt)
        self.fx += (cfg.fx_krw_per_usdt - self.fx) * a + b * normals[1]

        vol = cfg.usd_vol_pct / 100.0
        theta_c = 1.0
        sigma_c = cfg.coin_premium_noise_pct * math.sqrt(2.0 * theta_c)
        ac, bc = _ou_coeffs(theta_c, sigma_c, dt)
        for i, coin in enumerate(self.coins):
            self.usd[coin] *= math.exp(vol * math.sqrt(dt) * normals[2 + i] - 0.5 * vol * vol * dt)
            self.coin_term[coin] += -self.coin_term[coin] * ac + bc * normals[2 + n + i]

    # -- operator nudges (admin endpoint) -----------------------------------------

    def nudge(self, *, premium_pct: float | None = None, baseline_pct: float | None = None,
              fx: float | None = None, usd: dict[str, float] | None = None,
              usd_move_pct: float | None = None) -> None:
        """Move the state now (for tests and demos); no random numbers are drawn."""
        if baseline_pct is not None:
            self.baseline = float(baseline_pct)
        if premium_pct is not None:
            self.premium = float(premium_pct)
            for coin in self.coins:
                self.coin_term[coin] = 0.0
        if fx is not None:
            self.fx = float(fx)
        for coin, price in (usd or {}).items():
            self.usd[coin] = float(price)
        if usd_move_pct is not None:
            for coin in self.coins:
                self.usd[coin] *= 1.0 + usd_move_pct / 100.0

    # -- views ----------------------------------------------------------------------

    def premium_pct(self, coin: str) -> float:
        return self.premium + self.coin_term[coin]

    def binance_mid(self, coin: str) -> float:
        return self.usd[coin]

    def upbit_mid(self, coin: str) -> float:
        """KRW mid of KRW-<coin>; ``USDT`` gives the USDT/KRW rate."""
        if coin == "USDT":
            return self.fx
        return self.usd[coin] * self.fx * (1.0 + self.premium_pct(coin) / 100.0)

    def snapshot(self) -> MarketSnapshot:
        return MarketSnapshot(
            t=self.t, fx=self.fx, premium_pct=self.premium, baseline_pct=self.baseline,
            regime=self.regime, usd=dict(self.usd),
            coin_premium_pct={c: self.premium_pct(c) for c in self.coins},
        )
