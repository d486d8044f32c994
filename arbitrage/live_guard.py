"""D47: the LiveSafetyGuard — the last check before a real order is sent.

Five checks, in the seed's order; the first that fails decides:

1. ``enabled``                — ``live_trading.enabled`` must be true.
2. ``allowed_symbols``        — the coin must be whitelisted (empty blocks all).
3. ``min_account_balance``    — the balance must be at least this much.
4. ``max_daily_loss``         — the day's PnL must not be below ``-max_daily_loss``;
                                failing this one also asks for ``session_stop``.
5. ``max_notional_per_trade`` — the order's notional must not exceed this.

Every amount here is in **USDT**, the bridge currency between the two venues
(Upbit's KRW amounts are converted by the caller at the KRW-USDT rate). The
guard is pure: it keeps counters but does no I/O; the actor logs decisions.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# Quote currencies that may appear around a coin in a market name.
_QUOTES = ("KRW", "USDT", "USDC", "BUSD")

# Names of the checks, in order; also the keys of ``blocked_by_check``.
CHECKS = (
    "enabled",
    "allowed_symbols",
    "min_account_balance",
    "max_daily_loss",
    "max_notional_per_trade",
)


def normalize_symbol(symbol: str) -> str:
    """The coin a market name refers to: ``KRW-BTC``, ``BTC/KRW``, ``btc``,
    ``BTC/USDT:USDT`` and ``BTCUSDT`` all mean ``BTC``.

    Upbit writes ``QUOTE-BASE``, ccxt ``BASE/QUOTE``, Binance ``BASEQUOTE``;
    the whitelist may be written in any of them, so both sides of the
    comparison are reduced to the coin.
    """
    s = symbol.strip().upper().split(":", 1)[0]
    if "/" in s:
        return s.split("/", 1)[0].strip()
    if "-" in s:
        first, _, second = s.partition("-")
        # Upbit's order is QUOTE-BASE; tolerate BASE-QUOTE as well.
        if first in _QUOTES:
            return second.strip()
        if second in _QUOTES:
            return first.strip()
        return second.strip()
    for quote in _QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)]
    return s


def _num(x: float) -> str:
    """A number as it reads in a reason: ``-25.0``, ``50.0``, ``12.345``."""
    return repr(round(float(x), 6))


@dataclass(frozen=True, kw_only=True)
class LiveTradingConfig:
    """The ``live_trading:`` config section (D47), defaults exactly as the seed.

    ``min_account_balance``, ``max_daily_loss`` and ``max_notional_per_trade``
    are USDT amounts. ``allowed_symbols`` is a tuple (the seed's ``[]``): an
    empty whitelist blocks every symbol. ``dry_run_scale`` multiplies every
    computed quantity (0.01 sends 1 %).
    """

    enabled: bool = False
    dry_run_scale: float = 0.01
    allowed_symbols: tuple[str, ...] = ()
    min_account_balance: float = 50.0
    max_daily_loss: float = 20.0
    max_notional_per_trade: float = 50.0

    def __post_init__(self) -> None:
        # A YAML list or a bare string may arrive here; store a tuple so the
        # config stays immutable and hashable.
        symbols = self.allowed_symbols
        if isinstance(symbols, str):
            symbols = (symbols,)
        if not isinstance(symbols, tuple):
            symbols = tuple(symbols)
        object.__setattr__(self, "allowed_symbols", symbols)
        for s in symbols:
            if not isinstance(s, str) or not normalize_symbol(s):
                raise ValueError(f"allowed_symbols entries must be non-empty symbols, got {s!r}")
        scale = self.dry_run_scale
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0.0 < scale <= 1.0):
            raise ValueError(f"dry_run_scale must be in (0, 1], got {scale!r}")
        for name in ("min_account_balance", "max_daily_loss", "max_notional_per_trade"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0.0):
                raise ValueError(f"{name} must be a number >= 0 (USDT), got {v!r}")

    @property
    def allowed_coins(self) -> frozenset[str]:
        """The whitelist reduced to coins (``KRW-BTC`` -> ``BTC``)."""
        return frozenset(normalize_symbol(s) for s in self.allowed_symbols)


@dataclass(frozen=True, kw_only=True)
class LiveGuardDecision:
    """The outcome of one check.

    ``reason`` is empty when allowed. ``session_stop`` asks the caller to end
    the trading session (a persisted halt). ``check`` names the check that
    failed (one of :data:`CHECKS`, or ``invalid_input``), empty when allowed.
    """

    allowed: bool
    reason: str
    session_stop: bool = False
    check: str = ""


@dataclass(kw_only=True)
class _Stats:
    total_checks: int = 0
    allowed: int = 0
    blocked: int = 0
    session_stops: int = 0
    blocked_by_check: Counter[str] = field(default_factory=Counter)
    last_block_reason: str = ""


class LiveSafetyGuard:
    """Runs the five D47 checks before every real order (see module docs)."""

    def __init__(self, config: LiveTradingConfig | None = None) -> None:
        self.config = config if config is not None else LiveTradingConfig()
        self._coins = self.config.allowed_coins
        self._stats = _Stats()

    def check_before_send_order(self, symbol: str, notional: float, balance: float,
                                daily_loss: float) -> LiveGuardDecision:
        """Decide whether one order may be sent.

        ``notional`` is the order's size, ``balance`` the account balance and
        ``daily_loss`` the day's PnL (negative when losing), all in USDT.
        Never raises: bad inputs are a blocked order, not an exception.
        """
        decision = self._check(symbol, notional, balance, daily_loss)
        st = self._stats
        st.total_checks += 1
        if decision.allowed:
            st.allowed += 1
        else:
            st.blocked += 1
            st.blocked_by_check[decision.check] += 1
            st.last_block_reason = decision.reason
            if decision.session_stop:
                st.session_stops += 1
        return decision

    def _check(self, symbol: str, notional: float, balance: float,
               daily_loss: float) -> LiveGuardDecision:
        cfg = self.config
        # 1. enabled
        if not cfg.enabled:
            return _block("enabled", "live_trading.enabled=False")
        # 2. allowed_symbols
        coin = normalize_symbol(symbol) if isinstance(symbol, str) else ""
        if not self._coins:
            return _block("allowed_symbols",
                          f"symbol {symbol} not allowed: live_trading.allowed_symbols is empty")
        if coin not in self._coins:
            return _block("allowed_symbols",
                          f"symbol {symbol} not in allowed_symbols {list(cfg.allowed_symbols)}")
        # 3. min_account_balance. NaN compares false both ways, so every
        # numeric check tests finiteness first: an unknown number must block.
        if not _finite(balance):
            return _block("invalid_input", f"balance {balance!r} is not a number")
        if balance < cfg.min_account_balance:
            return _block("min_account_balance",
                          f"balance {_num(balance)} below min_account_balance "
                          f"{_num(cfg.min_account_balance)}")
        # 4. max_daily_loss: daily_loss is the day's PnL, negative when losing.
        if not _finite(daily_loss):
            return _block("invalid_input", f"daily loss {daily_loss!r} is not a number")
        if daily_loss < -cfg.max_daily_loss:
            return _block("max_daily_loss",
                          f"daily loss {_num(daily_loss)} exceeds max {_num(-cfg.max_daily_loss)}",
                          session_stop=True)
        # 5. max_notional_per_trade
        if not _finite(notional) or notional <= 0.0:
            return _block("invalid_input", f"notional {notional!r} must be a positive number")
        if notional > cfg.max_notional_per_trade:
            return _block("max_notional_per_trade",
                          f"notional {_num(notional)} exceeds max_notional_per_trade "
                          f"{_num(cfg.max_notional_per_trade)}")
        return LiveGuardDecision(allowed=True, reason="", session_stop=False)

    def apply_dry_run_scale(self, qty: float) -> float:
        """``qty`` × ``dry_run_scale`` (1.0 leaves it unchanged). The caller
        rounds to the venue's lot size afterwards."""
        return qty * self.config.dry_run_scale

    def get_summary(self) -> dict[str, Any]:
        """Counters since start plus the config (amounts in USDT)."""
        st = self._stats
        cfg = asdict(self.config)
        cfg["allowed_symbols"] = list(self.config.allowed_symbols)
        return {
            "total_checks": st.total_checks,
            "allowed": st.allowed,
            "blocked": st.blocked,
            "session_stops": st.session_stops,
            "blocked_by_check": dict(st.blocked_by_check),
            "last_block_reason": st.last_block_reason,
            "config": cfg,
        }


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _block(check: str, reason: str, session_stop: bool = False) -> LiveGuardDecision:
    return LiveGuardDecision(allowed=False, reason=reason, session_stop=session_stop, check=check)
