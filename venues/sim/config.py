"""Configuration of the embedded exchange: one frozen, keyword-only dataclass.

Defaults are chosen so that, at 10 updates/s, the kimchi premium leaves its
moving baseline by more than 0.5 % (both venues' round-trip taker fees are
about 0.3 %) several times a minute: an Ornstein-Uhlenbeck premium around a
regime-switching baseline (std ~0.35 %, half-life ~1.4 s) plus jumps.

REST rate limits default to the venues' published ones (exchange_protocols.md D.5):
Upbit per group and per second, order 8 (POST /v1/orders; POST /v1/orders/test is
its own ``order-test`` group, also 8), every other exchange call 30, each quotation
group 10 (https://docs.upbit.com/kr/docs/rate-limits, .../kr/reference/order-test);
Binance REQUEST_WEIGHT 6000 per minute, RAW_REQUESTS 61000 per 5 minutes, ORDERS 100
per 10 s and 200000 per day (binance-spot-api-docs rest-api.md "LIMITS"; ccxt's
sample exchangeInfo). ``venue_rate_limits=False`` still counts and reports them
(headers, ``/_sim/limits``) but refuses nothing; a limit set to 0 is off.
``rest_rate_limit_per_s`` is an extra flat per-venue cap on top (0 = off).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from arbitrage.venue_rules import BINANCE_FILTERS

# Fixed key pairs of the simulated accounts. They open nothing outside the sim.
TEST_KEYS: dict[str, dict[str, str]] = {
    "binance": {
        "apiKey": "simBinanceTestKey00000000000000000000000000000000000000000000001",
        "secret": "simBinanceTestSecret000000000000000000000000000000000000000000001",
    },
    "upbit": {
        "apiKey": "simUpbitTestAccessKey0000000000000000001",
        "secret": "simUpbitTestSecretKey0000000000000000000000000000001",
    },
}

# Global reference prices in USD at t=0 (Binance COINUSDT mid).
DEFAULT_USD_PRICES: tuple[tuple[str, float], ...] = (
    ("BTC", 68_000.0),
    ("ETH", 3_500.0),
    ("XRP", 0.6),
    ("SOL", 150.0),
)

DEFAULT_UPBIT_BALANCES: tuple[tuple[str, float], ...] = (
    ("KRW", 100_000_000.0),
    ("BTC", 1.0),
    ("ETH", 20.0),
    ("XRP", 50_000.0),
)

DEFAULT_BINANCE_BALANCES: tuple[tuple[str, float], ...] = (
    ("USDT", 70_000.0),
    ("BTC", 1.0),
    ("ETH", 20.0),
    ("XRP", 50_000.0),
)


class SimConfigError(ValueError):
    """A SimConfig value or key is invalid; the message names every problem."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimConfig:
    """Everything the simulator can be told. Rates are per second of wall time."""

    seed: int = 1
    host: str = "127.0.0.1"
    upbit_port: int = 0  # 0 = ephemeral
    binance_port: int = 0
    admin_port: int = 0
    # Bind with SO_REUSEPORT: set by a daemon that holds the ports reserved
    # for its life (supervisors.sim_ports), so a restarted sim gets them back.
    reuse_port: bool = False
    symbols: tuple[str, ...] = ("BTC", "ETH", "XRP")
    update_hz: float = 10.0  # book updates per second per symbol (1 .. thousands)
    # USDT/KRW (Upbit KRW-USDT mid): mean-reverting noise around this level.
    fx_krw_per_usdt: float = 1400.0
    fx_noise_krw: float = 1.0  # stationary std, KRW
    fx_reversion: float = 0.05
    usd_prices: tuple[tuple[str, float], ...] = DEFAULT_USD_PRICES
    usd_vol_pct: float = 0.01  # % per sqrt(second), geometric random walk
    # Kimchi premium (percent): OU around a baseline that switches regime.
    premium_mean_pct: float = 2.0
    premium_vol_pct: float = 0.35  # % per sqrt(second)
    premium_reversion: float = 0.5  # per second, towards the baseline
    coin_premium_noise_pct: float = 0.05  # per-coin stationary std around the common premium
    regime_to_trending_prob: float = 0.01  # per second, while ranging
    regime_to_ranging_prob: float = 0.05  # per second, while trending
    trend_drift_pct_per_s: float = 0.03  # baseline drift while trending
    trend_max_offset_pct: float = 1.5  # baseline stays within mean +/- this
    jump_prob: float = 0.05  # per second
    jump_pct: float = 0.8  # jump size (sign random, size x U(0.75, 1.25))
    trade_prob: float = 0.3  # synthetic public trade per update per symbol
    rest_rate_limit_per_s: float = 0.0  # extra flat cap per venue, past it: 429; 0 = off
    venue_rate_limits: bool = True  # enforce the venues' own published limits below
    upbit_order_limit_per_s: float = 8.0  # groups order and order-test
    upbit_exchange_limit_per_s: float = 30.0  # group default: every other private call
    upbit_quotation_limit_per_s: float = 10.0  # each of market, ticker, orderbook, candles, trades
    binance_weight_per_min: int = 6000  # REQUEST_WEIGHT, per IP
    binance_raw_requests_per_5min: int = 61000  # RAW_REQUESTS, per IP
    binance_orders_per_10s: int = 100  # ORDERS (unfilled), per account
    binance_orders_per_day: int = 200_000
    upbit_levels: int = 15
    binance_levels: int = 20
    upbit_balances: tuple[tuple[str, float], ...] = DEFAULT_UPBIT_BALANCES
    binance_balances: tuple[tuple[str, float], ...] = DEFAULT_BINANCE_BALANCES
    upbit_idle_timeout_s: float = 120.0
    upbit_status_interval_s: float = 10.0  # {"status":"UP"} period after a text PING
    binance_ping_interval_s: float = 20.0
    binance_pong_timeout_s: float = 60.0
    binance_ws_msg_limit_per_s: float = 5.0  # incoming messages per connection; 0 = off
    binance_ws_lifetime_s: float = 86_400.0

    def __post_init__(self) -> None:
        errors: list[str] = []
        usd = dict(self.usd_prices)
        for coin in self.symbols:
            if coin not in BINANCE_FILTERS:
                errors.append(f"symbols: {coin!r} has no Binance filters in venue_rules")
            if coin not in usd:
                errors.append(f"symbols: {coin!r} has no entry in usd_prices")
        if not self.symbols:
            errors.append("symbols: must name at least one coin")
        if not 0.01 <= self.update_hz <= 100_000:
            errors.append("update_hz: must be within 0.01 .. 100000")
        for name in ("fx_krw_per_usdt", "upbit_idle_timeout_s", "upbit_status_interval_s",
                     "binance_ping_interval_s", "binance_pong_timeout_s", "binance_ws_lifetime_s"):
            if getattr(self, name) <= 0:
                errors.append(f"{name}: must be > 0")
        for name in ("premium_vol_pct", "premium_reversion", "fx_noise_krw", "fx_reversion",
                     "usd_vol_pct", "coin_premium_noise_pct", "trend_drift_pct_per_s",
                     "trend_max_offset_pct", "jump_pct", "rest_rate_limit_per_s",
                     "binance_ws_msg_limit_per_s"):
            if getattr(self, name) < 0:
                errors.append(f"{name}: must be >= 0")
        for name in ("upbit_order_limit_per_s", "upbit_exchange_limit_per_s", "upbit_quotation_limit_per_s",
                     "binance_weight_per_min", "binance_raw_requests_per_5min", "binance_orders_per_10s",
                     "binance_orders_per_day"):
            value = getattr(self, name)
            # bool is an int: "true" in YAML must not become a limit of 1
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1e9:
                errors.append(f"{name}: must be a number >= 0 (0 = off)")
        for name in ("venue_rate_limits", "reuse_port"):
            if not isinstance(getattr(self, name), bool):
                errors.append(f"{name}: must be true or false")
        for name in ("regime_to_trending_prob", "regime_to_ranging_prob", "jump_prob", "trade_prob"):
            if not 0 <= getattr(self, name) <= 1_000:
                errors.append(f"{name}: must be >= 0")
        if not 1 <= self.upbit_levels <= 30:
            errors.append("upbit_levels: must be within 1 .. 30")
        if not 1 <= self.binance_levels <= 5000:
            errors.append("binance_levels: must be within 1 .. 5000")
        for name in ("upbit_port", "binance_port", "admin_port"):
            if not 0 <= getattr(self, name) <= 65535:
                errors.append(f"{name}: must be a port number (0 = ephemeral)")
        if errors:
            raise SimConfigError("; ".join(errors))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SimConfig:
        """Build from a plain mapping (e.g. the ``sim:`` section of a YAML config).

        Unknown keys are reported all at once, with a "did you mean" hint.
        Lists become tuples; mappings of balances/prices become pair tuples.
        """
        known = {f.name for f in fields(cls)}
        errors = []
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                errors.append(f"sim.{key}: unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
                continue
            if isinstance(value, Mapping):
                value = tuple((str(k), float(v)) for k, v in value.items())
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[key] = value
        if errors:
            raise SimConfigError("; ".join(errors))
        return cls(**kwargs)

    def usd_price(self, coin: str) -> float:
        return dict(self.usd_prices)[coin]
