"""D14: advanced position sizing — volatility, market regime, slippage decay, exposure.

    position_size = base x risk_multiplier x regime_multiplier x slippage_decay

capped by ``max_exposure_krw`` (and by the caller's headroom, if given).

* risk multiplier: ``normal`` 1.0, ``cautious`` 0.6, ``extreme`` 0.3 (the
  risk mode comes from volatility, see :mod:`arbitrage.rebalancer`).
* regime: ``RANGING`` (sideways, 박스권) x0.8, ``TRENDING`` x1.2, detected
  from the price path given to :meth:`~AdvancedPositionManager.update_market_data`
  by Kaufman's efficiency ratio: net move / path length over the last
  ``regime_window`` prices (1 = a straight line, ~0 = back and forth), with
  hysteresis. Until enough prices are seen the regime is ``RANGING``, the
  smaller multiplier.
* slippage decay: 1.0 while the smoothed slippage cost is within
  ``slippage_cost_threshold_pct``; past it, ``threshold / cost`` (twice the
  threshold halves the size), never below ``min_slippage_decay``.
* exposure: :meth:`~AdvancedPositionManager.get_adjusted_exposure_limit`
  lowers the limit while exposure is growing fast.

``volatility_smoothed`` is an EMA of the volatility estimates (0..1) passed to
:meth:`~AdvancedPositionManager.get_dynamic_position_size`. All amounts are KRW;
percentages are percent (0.2 = 0.2 %).
"""

from __future__ import annotations

import math
from collections import deque
from enum import StrEnum

from arbitrage.rebalancer import RebalancerConfig, RiskMode


class MarketRegime(StrEnum):
    RANGING = "ranging"
    TRENDING = "trending"

    @property
    def multiplier(self) -> float:
        return 1.2 if self is MarketRegime.TRENDING else 0.8

    @property
    def level(self) -> int:
        """The ``trend_regime`` gauge: 0 range, 1 trend."""
        return 1 if self is MarketRegime.TRENDING else 0


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class AdvancedPositionManager:
    """Sizes positions from volatility, regime and slippage (see module docs)."""

    def __init__(self, base_position_size_krw: float = 100_000.0,
                 max_exposure_krw: float = 500_000.0,
                 slippage_cost_threshold_pct: float = 0.2, *,
                 risk_multiplier_cautious: float = 0.6, risk_multiplier_extreme: float = 0.3,
                 volatility_alpha: float = 0.1, slippage_alpha: float = 0.2,
                 min_slippage_decay: float = 0.2, regime_window: int = 30,
                 min_regime_samples: int = 10, trend_enter_er: float = 0.6,
                 trend_exit_er: float = 0.4, exposure_rate_sensitivity: float = 2.0,
                 min_exposure_fraction: float = 0.5) -> None:
        for name, v in (("base_position_size_krw", base_position_size_krw),
                        ("max_exposure_krw", max_exposure_krw),
                        ("slippage_cost_threshold_pct", slippage_cost_threshold_pct)):
            if not (_finite(v) and v > 0):
                raise ValueError(f"{name} must be > 0, got {v!r}")
        for name, v in (("risk_multiplier_cautious", risk_multiplier_cautious),
                        ("risk_multiplier_extreme", risk_multiplier_extreme),
                        ("volatility_alpha", volatility_alpha), ("slippage_alpha", slippage_alpha),
                        ("min_slippage_decay", min_slippage_decay),
                        ("min_exposure_fraction", min_exposure_fraction)):
            if not (_finite(v) and 0.0 < v <= 1.0):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        if not 0.0 <= trend_exit_er <= trend_enter_er <= 1.0:
            raise ValueError("trend_exit_er <= trend_enter_er must both be in [0, 1]")
        if regime_window < 2 or not 2 <= min_regime_samples <= regime_window + 1:
            raise ValueError("regime_window must be >= 2 and min_regime_samples in "
                             "[2, regime_window + 1]")
        if not (_finite(exposure_rate_sensitivity) and exposure_rate_sensitivity >= 0):
            raise ValueError(f"exposure_rate_sensitivity must be >= 0, got {exposure_rate_sensitivity!r}")
        self.base_position_size_krw = float(base_position_size_krw)
        self.max_exposure_krw = float(max_exposure_krw)
        self.slippage_cost_threshold_pct = float(slippage_cost_threshold_pct)
        self._risk_multipliers = {RiskMode.NORMAL: 1.0, RiskMode.CAUTIOUS: risk_multiplier_cautious,
                                  RiskMode.EXTREME: risk_multiplier_extreme}
        self._vol_alpha = volatility_alpha
        self._slip_alpha = slippage_alpha
        self._min_decay = min_slippage_decay
        self._min_regime = min_regime_samples
        self._enter_er, self._exit_er = trend_enter_er, trend_exit_er
        self._rate_sensitivity = exposure_rate_sensitivity
        self._min_exposure_fraction = min_exposure_fraction
        self._rebalancer_defaults = RebalancerConfig()

        self._prices: deque[float] = deque(maxlen=regime_window + 1)
        self.regime = MarketRegime.RANGING
        self.efficiency_ratio = 0.0
        self.last_spread_pct: float | None = None
        self.volatility_smoothed = 0.0
        self._vol_seen = False
        self.slippage_cost_pct: float | None = None  # EMA of per-trade slippage cost
        self.exposure_drift_rate = 0.0
        self.exposure_krw = 0.0
        self.exposure_limit_krw = self.max_exposure_krw
        self.last_position_size_krw = 0.0
        self.trades = 0
        self.traded_krw = 0.0

    # -- market data and regime --------------------------------------------------------
    def update_market_data(self, price: float, bid_ask_spread_pct: float) -> None:
        """One price observation (KRW) and the current bid-ask spread (percent).
        Non-finite or non-positive prices are ignored."""
        if _finite(bid_ask_spread_pct) and bid_ask_spread_pct >= 0:
            self.last_spread_pct = float(bid_ask_spread_pct)
        if not (_finite(price) and price > 0):
            return
        self._prices.append(float(price))
        if len(self._prices) < self._min_regime:
            return
        p = list(self._prices)
        path = sum(abs(b - a) for a, b in zip(p, p[1:], strict=False))
        self.efficiency_ratio = abs(p[-1] - p[0]) / path if path > 0 else 0.0
        if self.regime is MarketRegime.RANGING and self.efficiency_ratio >= self._enter_er:
            self.regime = MarketRegime.TRENDING
        elif self.regime is MarketRegime.TRENDING and self.efficiency_ratio <= self._exit_er:
            self.regime = MarketRegime.RANGING

    # -- sizing ---------------------------------------------------------------------------
    def get_dynamic_position_size(self, volatility_estimate: float,
                                  risk_mode: str | RiskMode | None = None,
                                  available_exposure_krw: float | None = None) -> float:
        """Position size in KRW for the next trade.

        ``volatility_estimate`` (0..1) feeds ``volatility_smoothed``.
        ``risk_mode`` is ``normal``/``cautious``/``extreme``; None derives it
        from ``volatility_smoothed`` with the rebalancer's default thresholds.
        ``available_exposure_krw`` (headroom under the exposure limit), if
        given, caps the size as well. Never negative.
        """
        self._observe_volatility(volatility_estimate)
        mode = self._risk_mode(risk_mode)
        size = (self.base_position_size_krw * self._risk_multipliers[mode]
                * self.regime.multiplier * self.slippage_decay())
        size = min(size, self.max_exposure_krw)
        if available_exposure_krw is not None and _finite(available_exposure_krw):
            size = min(size, max(0.0, available_exposure_krw))
        self.last_position_size_krw = size
        return size

    def _observe_volatility(self, v: float) -> None:
        if not _finite(v):
            return
        v = min(1.0, max(0.0, float(v)))
        if not self._vol_seen:
            self.volatility_smoothed, self._vol_seen = v, True
        else:
            self.volatility_smoothed += self._vol_alpha * (v - self.volatility_smoothed)

    def _risk_mode(self, risk_mode: str | RiskMode | None) -> RiskMode:
        if risk_mode is None:
            cfg = self._rebalancer_defaults
            v = self.volatility_smoothed
            if v >= cfg.extreme_volatility:
                return RiskMode.EXTREME
            return RiskMode.CAUTIOUS if v >= cfg.cautious_volatility else RiskMode.NORMAL
        try:
            return RiskMode(str(risk_mode).lower())
        except ValueError:
            raise ValueError(f"risk_mode must be one of {', '.join(m.value for m in RiskMode)}, "
                             f"got {risk_mode!r}") from None

    def slippage_decay(self) -> float:
        """1.0 within the threshold, ``threshold / cost`` past it (floored)."""
        cost = self.slippage_cost_pct
        if cost is None or cost <= self.slippage_cost_threshold_pct:
            return 1.0
        return max(self._min_decay, self.slippage_cost_threshold_pct / cost)

    # -- exposure --------------------------------------------------------------------------
    def get_adjusted_exposure_limit(self, current_exposure_krw: float,
                                    exposure_increase_rate: float) -> float:
        """The exposure limit (KRW) given how fast exposure grows.

        ``exposure_increase_rate`` is the rebalancer's ``exposure_drift_rate``
        (growth as a fraction of max exposure, -1..1). Growth shrinks the limit
        by ``exposure_rate_sensitivity x rate`` of ``max_exposure_krw``, never
        below ``min_exposure_fraction`` of it; shrinking exposure leaves it whole.
        The limit may be below ``current_exposure_krw``: then no new exposure.
        """
        rate = exposure_increase_rate if _finite(exposure_increase_rate) else 0.0
        self.exposure_drift_rate = max(-1.0, min(1.0, rate))
        if _finite(current_exposure_krw):
            self.exposure_krw = max(0.0, float(current_exposure_krw))
        cut = self._rate_sensitivity * max(0.0, self.exposure_drift_rate)
        fraction = max(self._min_exposure_fraction, 1.0 - cut)
        self.exposure_limit_krw = self.max_exposure_krw * fraction
        return self.exposure_limit_krw

    def record_trade(self, trade_size_krw: float, slippage_cost_pct: float | None = None) -> None:
        """Record one trade. ``slippage_cost_pct`` is its cost against the
        expected price, in percent; without it, half the last spread (what a
        taker pays against the mid) stands in, if a spread is known."""
        if _finite(trade_size_krw):
            self.trades += 1
            self.traded_krw += abs(float(trade_size_krw))
        cost = slippage_cost_pct
        if cost is None and self.last_spread_pct is not None:
            cost = self.last_spread_pct / 2.0
        if cost is None or not _finite(cost):
            return
        cost = max(0.0, float(cost))
        if self.slippage_cost_pct is None:
            self.slippage_cost_pct = cost
        else:
            self.slippage_cost_pct += self._slip_alpha * (cost - self.slippage_cost_pct)

    # -- metrics ----------------------------------------------------------------------------
    @property
    def trend_regime(self) -> int:
        return self.regime.level

    def get_metrics(self) -> dict[str, float]:
        """The seed's gauges (``volatility_smoothed``, ``trend_regime``,
        ``exposure_drift_rate``) and the sizing inputs behind them."""
        return {
            "volatility_smoothed": self.volatility_smoothed,
            "trend_regime": float(self.trend_regime),
            "exposure_drift_rate": self.exposure_drift_rate,
            "efficiency_ratio": self.efficiency_ratio,
            "slippage_cost_pct": self.slippage_cost_pct or 0.0,
            "slippage_decay": self.slippage_decay(),
            "position_size_krw": self.last_position_size_krw,
            "exposure_limit_krw": self.exposure_limit_krw,
            "trades_recorded": float(self.trades),
        }
