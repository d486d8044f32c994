"""The open/close pair strategy: when to open a hedged pair and when to close it.

Both venues are pre-funded (coin and KRW on Upbit, coin and USDT on Binance),
so no coin moves between exchanges. A pair *opens* — sell where the coin is
rich, buy where it is cheap, same quantity — when the executable premium
departs from its moving baseline by more than both venues' fees plus the
entry threshold (the quote's ``edge_pct >= entry_threshold_pct`` and the books
hold a tradable ``qty``). It *closes* with the opposite pair when the premium
is back within ``exit_threshold_pct`` of the baseline, measured at the prices
the close would trade at, or when the pair has been held ``max_hold_s``. A pair
whose legs filled unequally is repaired first (see ``Portfolio.needs_unwind``):
unwound on the venue holding the excess, or completed on the venue that
missed when that is cheaper and trading is active (:mod:`arbitrage.leg_repair`).

The pairs themselves live in :class:`arbitrage.accounting.Portfolio`, built
from order events, so a restarted strategy sees exactly what the ledger says.
The strategy adds only what happens before the first event: a signal it has
emitted and nobody has acted on yet. A pair never has two actions in flight:
while its orders are live (or reserved by the planner), or a signal for it is
outstanding (at most ``signal_timeout_s``), it gets no new signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from arbitrage.accounting import OPEN, Pair, Portfolio, Unwind
from arbitrage.leg_repair import COMPLETE, Naked, Repair, choose_repair
from arbitrage.premium import PremiumConfig, opposite, quote_for
from arbitrage.venue_rules import UPBIT
from messages.base import new_id
from messages.trading import SELL_UPBIT, DirectionQuote, Opportunity


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyConfig:
    premium: PremiumConfig = field(default_factory=PremiumConfig)  # entry/exit thresholds
    max_open_pairs_per_symbol: int = 1
    cooldown_s: float = 30.0  # between opens of one symbol
    max_hold_s: float = 4 * 3600.0
    signal_timeout_s: float = 5.0  # a signal nobody acted on stops blocking its pair
    # A pair whose order was refused before it left (rate budget, breaker,
    # inventory) or came back unfilled is left alone this long: retried on every
    # quote it would be refused hundreds of times a second.
    refusal_backoff_s: float = 0.5

    def __post_init__(self) -> None:
        errors = []
        if self.refusal_backoff_s < 0:
            errors.append("refusal_backoff_s must be >= 0")
        if self.max_open_pairs_per_symbol < 1:
            errors.append("max_open_pairs_per_symbol must be >= 1")
        if self.cooldown_s < 0:
            errors.append("cooldown_s must be >= 0")
        if self.max_hold_s <= 0:
            errors.append("max_hold_s must be > 0")
        if self.signal_timeout_s <= 0:
            errors.append("signal_timeout_s must be > 0")
        if errors:
            raise ValueError("StrategyConfig: " + "; ".join(errors))


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """A decision for the planner. ``direction`` is the trade to make now (a close
    runs opposite to its pair); ``qty`` is an upper bound for an open (what the
    books hold) and the exact quantity for a close or an unwind."""

    action: str  # "open" | "close" | "unwind"
    pair_id: str
    symbol: str
    direction: str
    qty: float
    opportunity: Opportunity
    quote: DirectionQuote | None  # the quote for ``direction``; None for an unwind
    reason: str
    venue: str = ""  # unwind only: where to trade
    side: str = ""  # unwind only


@dataclass(slots=True)
class _Pending:
    at: float
    symbol: str
    action: str
    orders: int  # orders the pair had when signalled: more means the planner took it over


RepairContext = Callable[[], tuple[bool, frozenset[str]]]  # (trading active, venues with an open breaker)


def _always_active() -> tuple[bool, frozenset[str]]:
    return True, frozenset()


class PairStrategy:
    """Decides opens, closes and unwinds from opportunities. ``now`` returns seconds.

    ``repair_context`` says whether trading is active (else only reducing
    orders may go) and which venues' breakers are open, for the choice
    between unwinding and completing a broken hedge.
    """

    def __init__(self, config: StrategyConfig, now: Callable[[], float], portfolio: Portfolio,
                 ids: Callable[[], str] = new_id, repair_context: RepairContext = _always_active) -> None:
        self.config = config
        self.now = now
        self.portfolio = portfolio
        self.ids = ids
        self.repair_context = repair_context
        self._pending: dict[str, _Pending] = {}
        self._last_open: dict[str, float] = {}
        self._repairs: dict[str, Repair] = {}  # pair_id -> the repair last signalled
        self._completion_refused: set[str] = set()
        self._held: dict[str, float] = {}  # pair_id -> not acted on before this time

    def on_opportunity(self, opp: Opportunity) -> list[Signal]:
        """Signals for one opportunity: unwinds and closes first; an open only if none."""
        t = self.now()
        if opp.expires_ns and int(t * 1e9) > opp.expires_ns:
            return []
        self._forget_taken_over(t)
        pairs = self.portfolio.pairs(opp.symbol)
        by_id = {p.pair_id: p for p in pairs}
        out = self.repairs(opp, by_id, t)
        for pair in pairs:
            if pair.state == OPEN and pair.balanced and pair.qty > 0 and not self._busy(pair):
                sig = self._close(t, pair, opp)
                if sig is not None:
                    out.append(self._emit(t, pair, sig))
        if not out:
            sig = self._open(t, pairs, opp)
            if sig is not None:
                out.append(self._emit(t, None, sig))
        return out

    def repairs(self, opp: Opportunity, by_id: dict[str, Pair] | None = None,
                t: float | None = None) -> list[Signal]:
        """Repair signals for the pairs of ``opp.symbol`` whose legs filled unequally.

        Also called on a timer with the symbol's last opportunity, expired or
        not: a naked leg is repaired even when no fresh quote arrives (the
        repair is an IOC limit order, so a stale price can make it miss, never
        overpay)."""
        t = self.now() if t is None else t
        if by_id is None:
            self._forget_taken_over(t)
            by_id = {p.pair_id: p for p in self.portfolio.pairs(opp.symbol)}
        active, broken = self.repair_context()
        out: list[Signal] = []
        for u in self.portfolio.needs_unwind(opp.symbol):
            pair = by_id.get(u.pair_id)
            if pair is None or self._busy(pair):
                continue
            rep = choose_repair(self._naked(u, pair), opp, active=active, breaker_open=broken,
                                completion_refused=u.pair_id in self._completion_refused)
            if rep is None:
                continue
            self._repairs[u.pair_id] = rep
            out.append(self._emit(t, pair, Signal(
                action="unwind", pair_id=u.pair_id, symbol=u.symbol, direction=pair.direction,
                qty=u.qty, opportunity=opp, quote=None, reason=f"{u.reason}; {rep.reason}",
                venue=rep.venue, side=rep.side)))
        return out

    def on_repair_failed(self, pair_id: str, venue: str) -> None:
        """A repair order of ``pair_id`` on ``venue`` filled nothing: a completion
        there is not tried again (an unwind is, since it is the way out)."""
        rep = self._repairs.get(pair_id)
        if rep is not None and rep.how == COMPLETE and rep.venue == venue:
            self._completion_refused.add(pair_id)

    @staticmethod
    def _naked(u: Unwind, pair: Pair) -> Naked:
        entry = pair.upbit_entry_price if u.venue == UPBIT else pair.binance_entry_price
        return Naked(pair_id=u.pair_id, symbol=u.symbol, direction=pair.direction, held_venue=u.venue,
                     side=u.side, qty=u.qty, entry_price=entry)

    def on_signal_dropped(self, pair_id: str) -> None:
        """The planner made nothing of a signal: its pair may be acted on again at once."""
        self._pending.pop(pair_id, None)

    def on_refused(self, pair_id: str) -> None:
        """An order of ``pair_id`` was refused before it left, or filled nothing:
        the pair is acted on again after ``refusal_backoff_s``, not on the next quote."""
        self._pending.pop(pair_id, None)
        self._held[pair_id] = self.now() + self.config.refusal_backoff_s

    def pending(self) -> dict[str, str]:
        """Outstanding signals: pair_id -> action."""
        return {pid: p.action for pid, p in self._pending.items()}

    # -- decisions --------------------------------------------------------------------
    def _close(self, t: float, pair: Pair, opp: Opportunity) -> Signal | None:
        direction = opposite(pair.direction)
        q = quote_for(opp, direction)
        # How far the premium still sits on the side the pair was opened for.
        deviation = (q.premium_pct - opp.baseline_pct if pair.direction == SELL_UPBIT
                     else opp.baseline_pct - q.premium_pct)
        exit_pct = self.config.premium.exit_threshold_pct
        held = t - pair.opened_at
        if deviation <= exit_pct:
            reason = f"premium back within {exit_pct}% of baseline (deviation {deviation:.3f}%)"
        elif held >= self.config.max_hold_s:
            reason = f"held {held:.0f}s, limit {self.config.max_hold_s:.0f}s"
        else:
            return None
        return Signal(action="close", pair_id=pair.pair_id, symbol=pair.symbol, direction=direction,
                      qty=pair.qty, opportunity=opp, quote=q, reason=reason)

    def _open(self, t: float, pairs: list[Pair], opp: Opportunity) -> Signal | None:
        cfg = self.config
        symbol = opp.symbol
        pending_opens = sum(1 for p in self._pending.values()
                            if p.action == "open" and p.symbol == symbol)
        if len(pairs) + pending_opens >= cfg.max_open_pairs_per_symbol:
            return None
        last = max([self._last_open.get(symbol, float("-inf"))] + [p.opened_at for p in pairs])
        if t - last < cfg.cooldown_s:
            return None
        entry = cfg.premium.entry_threshold_pct
        ready = [q for q in (opp.sell_upbit, opp.buy_upbit) if q.qty > 0 and q.edge_pct >= entry]
        if not ready:
            return None
        q = max(ready, key=lambda x: x.edge_pct)
        self._last_open[symbol] = t
        return Signal(action="open", pair_id="p" + self.ids(), symbol=symbol, direction=q.direction,
                      qty=q.qty, opportunity=opp, quote=q,
                      reason=f"edge {q.edge_pct:.3f}% >= entry {entry}% (premium {q.premium_pct:.3f}%,"
                             f" baseline {opp.baseline_pct:.3f}%)")

    # -- one action per pair ----------------------------------------------------------
    def _emit(self, t: float, pair: Pair | None, sig: Signal) -> Signal:
        self._pending[sig.pair_id] = _Pending(t, sig.symbol, sig.action, pair.orders if pair else 0)
        return sig

    def _busy(self, pair: Pair) -> bool:
        if pair.in_flight or pair.pair_id in self._pending:
            return True
        until = self._held.get(pair.pair_id)
        if until is None:
            return False
        if self.now() < until:
            return True
        del self._held[pair.pair_id]
        return False

    def _forget_taken_over(self, t: float) -> None:
        """Drop signals the portfolio now reflects (new orders) or that timed out."""
        limit = self.config.signal_timeout_s
        for pid, p in list(self._pending.items()):
            pair = self.portfolio.pair(pid)
            if t - p.at >= limit or (pair is not None and pair.orders > p.orders):
                del self._pending[pid]


__all__ = ["Pair", "PairStrategy", "Signal", "StrategyConfig"]
