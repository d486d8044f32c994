"""Premium math: what each direction of the kimchi-premium trade can do right now.

Premiums and thresholds are in percent (``2.0`` is 2 %); prices in each
venue's quote currency (KRW on Upbit, USDT on Binance); quantities in coin
units. The bridge rate ``fx`` is the mid of Upbit's ``KRW-USDT`` book.

- ``SELL_UPBIT`` (Upbit rich): sell on Upbit at its bids, buy on Binance at
  its asks; premium = upbit_bid / (binance_ask * fx) - 1, and the trade is
  good when that premium sits *above* the baseline.
- ``BUY_UPBIT`` (Upbit cheap): buy on Upbit at its asks, sell on Binance at
  its bids; premium = upbit_ask / (binance_bid * fx) - 1, good when it sits
  *below* the baseline.

``edge_pct`` is the deviation from the baseline in the direction's favour
minus both venues' taker fees (0.15 % together): the fees of the opening
pair. The closing pair pays them again, so ``entry_threshold_pct`` should
cover at least those (the default does) plus the profit wanted.

Measured on this machine (``pytest -s tests/unit/arbitrage/test_premium.py -k fast``,
10 levels per side, all walked): 11-14 µs per ``evaluate`` call, plain Python,
Opportunity construction included (each walk ~1.5 µs; the rest is tick/lot
rounding and building the three frozen messages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from arbitrage.venue_rules import (
    BINANCE,
    BINANCE_FILTERS,
    BINANCE_TAKER_FEE,
    UPBIT,
    UPBIT_MIN_ORDER_KRW,
    UPBIT_TAKER_FEE,
    common_qty,
    round_binance_price,
    round_upbit_price,
)
from messages.market import BookTop, Level
from messages.trading import BUY_UPBIT, SELL_UPBIT, DirectionQuote, Opportunity

FX_SYMBOL = "USDT"  # Upbit's KRW-USDT book is the bridge rate
FEES_PCT = (UPBIT_TAKER_FEE + BINANCE_TAKER_FEE) * 100.0  # both taker fees of one pair, percent

PremiumResult = tuple[Opportunity | None, str]  # (opportunity, "") or (None, reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class PremiumConfig:
    """Thresholds in percent beyond the baseline (entry after fees); ages in seconds."""

    entry_threshold_pct: float = 0.2
    exit_threshold_pct: float = 0.05
    max_levels: int = 10
    max_quote_age_s: float = 2.0
    opportunity_ttl_s: float = 1.0

    def __post_init__(self) -> None:
        errors = []
        if self.entry_threshold_pct < 0:
            errors.append("entry_threshold_pct must be >= 0")
        if self.exit_threshold_pct < 0:
            errors.append("exit_threshold_pct must be >= 0")
        if self.max_levels < 1:
            errors.append("max_levels must be >= 1")
        if self.max_quote_age_s <= 0:
            errors.append("max_quote_age_s must be > 0")
        if self.opportunity_ttl_s <= 0:
            errors.append("opportunity_ttl_s must be > 0")
        if errors:
            raise ValueError("PremiumConfig: " + "; ".join(errors))


def premium_pct(upbit_krw: float, binance_usdt: float, fx: float) -> float:
    """Upbit's price over Binance's (bridged to KRW), minus one, in percent."""
    return (upbit_krw / (binance_usdt * fx) - 1.0) * 100.0


def mid_premium_pct(upbit: BookTop, binance: BookTop, fx_book: BookTop) -> float:
    """The premium at the three books' mids: what the baseline tracks."""
    return premium_pct(upbit.mid, binance.mid, fx_book.mid)


def meets_minimums(symbol: str, qty: float, upbit_price: float, binance_price: float) -> bool:
    """Both legs of ``qty`` clear Upbit's 5,000 KRW and Binance's lot/NOTIONAL minimums."""
    return (meets_venue_minimum(UPBIT, symbol, qty, upbit_price)
            and meets_venue_minimum(BINANCE, symbol, qty, binance_price))


def meets_venue_minimum(venue: str, symbol: str, qty: float, price: float) -> bool:
    """One order of ``qty`` at ``price`` (the venue's quote currency) is big enough to send."""
    if venue == UPBIT:
        return qty > 0 and qty * price >= UPBIT_MIN_ORDER_KRW
    f = BINANCE_FILTERS[symbol]
    return qty >= f.min_qty and qty * price >= f.min_notional


def round_limit(venue: str, side: str, price: float, symbol: str) -> float:
    """Round a limit price to the venue's tick, conservatively: sells down, buys up.

    Down for a sell and up for a buy keeps a taker order crossing the level it
    was priced from and never overstates the edge.
    """
    mode = "down" if side == "sell" else "up"
    if venue == UPBIT:
        return round_upbit_price(price, symbol, mode)
    return round_binance_price(price, symbol, mode)


def _received_ns(book: BookTop) -> int:
    return book.recv_ts_ns or book.ts_ns


def _walk(sells: tuple[Level, ...], sell_factor: float, buys: tuple[Level, ...],
          buy_factor: float) -> tuple[float, float, float]:
    """Walk a sell book (bids) against a buy book (asks), best levels first.

    Takes quantity while the marginal pair still clears
    ``sell_price * sell_factor >= buy_price * buy_factor``. Returns the total
    quantity and the worst sell and buy prices used (0, 0, 0 when even the top
    pair fails).
    """
    n_s, n_b = len(sells), len(buys)
    i = j = 0
    s_px, s_left = sells[0]
    b_px, b_left = buys[0]
    total = 0.0
    last_s = last_b = 0.0
    while s_px * sell_factor >= b_px * buy_factor:
        take = s_left if s_left < b_left else b_left
        total += take
        last_s, last_b = s_px, b_px
        s_left -= take
        b_left -= take
        if s_left <= 0.0:
            i += 1
            if i >= n_s:
                break
            s_px, s_left = sells[i]
        if b_left <= 0.0:
            j += 1
            if j >= n_b:
                break
            b_px, b_left = buys[j]
    return total, last_s, last_b


class PremiumCalculator:
    """Turns the three latest books and a baseline into an :class:`Opportunity`.

    ``now`` returns wall-clock seconds (like ``time.time``); it is read once per
    call for staleness and the opportunity's timestamps.
    """

    def __init__(self, config: PremiumConfig, now: Callable[[], float]) -> None:
        self.config = config
        self.now = now
        self._max_age_ns = int(config.max_quote_age_s * 1e9)
        self._ttl_ns = int(config.opportunity_ttl_s * 1e9)

    def evaluate(self, upbit: BookTop | None, binance: BookTop | None, fx_book: BookTop | None,
                 baseline_pct: float | None) -> PremiumResult:
        """Both directions' quotes, or ``(None, reason)`` if the inputs cannot be trusted.

        Rejects a missing book or FX rate, an unknown symbol, a book older than
        ``max_quote_age_s``, a crossed, locked or empty book, and a baseline that
        is not warm yet (``None``).
        """
        if fx_book is None:
            return None, "no fx rate (upbit KRW-USDT book missing)"
        if upbit is None or binance is None:
            return None, f"no {'upbit' if upbit is None else 'binance'} quote"
        symbol = upbit.symbol
        if binance.symbol != symbol:
            return None, f"symbol mismatch: upbit {symbol} vs binance {binance.symbol}"
        if symbol not in BINANCE_FILTERS:
            return None, f"unknown symbol {symbol} (no binance filters)"
        now_ns = int(self.now() * 1e9)
        for book in (upbit, binance, fx_book):
            age_ns = now_ns - _received_ns(book)
            if age_ns > self._max_age_ns:
                return None, f"stale {book.venue} {book.symbol} quote ({age_ns / 1e9:.1f}s old)"
            if not (0.0 < book.bid < book.ask):
                return None, f"crossed or empty {book.venue} {book.symbol} book ({book.bid} / {book.ask})"
        if baseline_pct is None:
            return None, "baseline warming up"
        fx = fx_book.mid
        cfg = self.config
        n = cfg.max_levels
        up_bids = upbit.bids[:n] or ((upbit.bid, upbit.bid_size),)
        up_asks = upbit.asks[:n] or ((upbit.ask, upbit.ask_size),)
        bn_bids = binance.bids[:n] or ((binance.bid, binance.bid_size),)
        bn_asks = binance.asks[:n] or ((binance.ask, binance.ask_size),)

        # SELL_UPBIT clears while up_bid / (bn_ask * fx) - 1 >= baseline + fees + entry.
        k_sell = 1.0 + (baseline_pct + FEES_PCT + cfg.entry_threshold_pct) / 100.0
        qty, up_px, bn_px = _walk(up_bids, 1.0, bn_asks, fx * k_sell)
        sell_q = self._quote(SELL_UPBIT, symbol, qty, up_px, bn_px, upbit.bid, binance.ask, fx,
                             baseline_pct)
        # BUY_UPBIT clears while up_ask / (bn_bid * fx) - 1 <= baseline - fees - entry.
        k_buy = 1.0 + (baseline_pct - FEES_PCT - cfg.entry_threshold_pct) / 100.0
        qty, bn_px, up_px = _walk(bn_bids, fx * k_buy, up_asks, 1.0)
        buy_q = self._quote(BUY_UPBIT, symbol, qty, up_px, bn_px, upbit.ask, binance.bid, fx,
                            baseline_pct)

        return Opportunity(
            ts_ns=now_ns, symbol=symbol, premium_pct=premium_pct(upbit.mid, binance.mid, fx),
            baseline_pct=baseline_pct, fx=fx, sell_upbit=sell_q, buy_upbit=buy_q,
            expires_ns=now_ns + self._ttl_ns,
            origin_ts_ns=max(_received_ns(upbit), _received_ns(binance), _received_ns(fx_book)),
        ), ""

    @staticmethod
    def _quote(direction: str, symbol: str, walked_qty: float, up_px: float, bn_px: float,
               up_top: float, bn_top: float, fx: float, baseline_pct: float) -> DirectionQuote:
        up_side, bn_side = ("sell", "buy") if direction == SELL_UPBIT else ("buy", "sell")
        qty = common_qty(walked_qty, symbol) if walked_qty > 0 else 0.0
        if qty > 0:
            up_px = round_limit(UPBIT, up_side, up_px, symbol)
            bn_px = round_limit(BINANCE, bn_side, bn_px, symbol)
            if not meets_minimums(symbol, qty, up_px, bn_px):
                qty = 0.0
        if qty <= 0:
            up_px, bn_px = up_top, bn_top
        prem = premium_pct(up_px, bn_px, fx)
        deviation = prem - baseline_pct if direction == SELL_UPBIT else baseline_pct - prem
        return DirectionQuote(direction=direction, premium_pct=prem, edge_pct=deviation - FEES_PCT,
                              qty=qty, upbit_price=up_px, binance_price=bn_px)


def opposite(direction: str) -> str:
    """The direction that unwinds ``direction``'s pair."""
    return BUY_UPBIT if direction == SELL_UPBIT else SELL_UPBIT


def quote_for(opp: Opportunity, direction: str) -> DirectionQuote:
    return opp.sell_upbit if direction == SELL_UPBIT else opp.buy_upbit


__all__ = [
    "FEES_PCT", "FX_SYMBOL", "PremiumCalculator", "PremiumConfig", "PremiumResult",
    "meets_minimums", "meets_venue_minimum", "mid_premium_pct", "opposite", "premium_pct",
    "quote_for", "round_limit",
]
