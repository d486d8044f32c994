"""The replay exchange's books: the tape's, less what the backtest took.

Each recorded orderbook frame replaces a book's levels. Two things are taken
off what the tape shows, so that an order is filled against the liquidity it
would really have found:

- **its own impact**: what the backtest's orders took at a price stays gone
  from the later recorded books (which cannot know of it) while that price is
  in them, for at most ``impact_decay_s`` (the time others take to refill a
  level); a price that leaves the recorded book forgets it;
- **the queue at the touch** (``queue``): a public trade recorded after the
  latest book took its size off the level it hit, so a taker arriving then
  finds only what the takers before it left (the next recorded book shows
  the level as it really was, and replaces this).

Frames are parsed here from the venues' own JSON: Upbit orderbook and trade
messages, Binance combined partial-depth and trade events.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from arbitrage.venue_rules import UPBIT
from venues.sim.books import Book

_EPS = 1e-12
_PARTIAL_DEPTH = re.compile(r"^depth(5|10|20)(@\d+ms)?$")
Levels = list[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Route:
    """What a recorded stream is to the replay: a coin's book or trades, or nothing."""

    kind: str  # "book" | "trade" | ""
    coin: str


NOWHERE = Route("", "")


def route_of(venue: str, stream: str) -> Route:
    """``orderbook:KRW-BTC`` / ``trade:KRW-BTC`` (Upbit), ``btcusdt@depth20@100ms`` /
    ``btcusdt@trade`` (Binance)."""
    if venue == UPBIT:
        kind, _, code = stream.partition(":")
        if code.startswith("KRW-") and kind in ("orderbook", "trade"):
            return Route("book" if kind == "orderbook" else "trade", code[4:])
        return NOWHERE
    pair, _, what = stream.partition("@")
    if not pair.endswith("usdt") or len(pair) <= 4:
        return NOWHERE
    coin = pair[:-4].upper()
    if _PARTIAL_DEPTH.match(what):  # a whole top-N book (diff depth is not one)
        return Route("book", coin)
    if what == "trade":
        return Route("trade", coin)
    return NOWHERE


def parse_book(venue: str, data: bytes) -> tuple[Levels, Levels] | None:
    """(bids, asks) of a recorded book frame; None if it is not one."""
    try:
        msg = orjson.loads(data)
        if venue == UPBIT:
            units = msg["orderbook_units"]
            return ([(float(u["bid_price"]), float(u["bid_size"])) for u in units],
                    [(float(u["ask_price"]), float(u["ask_size"])) for u in units])
        d = msg["data"]
        return ([(float(p), float(q)) for p, q in d["bids"]], [(float(p), float(q)) for p, q in d["asks"]])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def parse_trade(venue: str, data: bytes) -> tuple[str, float, float] | None:
    """(side of the book it took from, price, qty) of a recorded public trade."""
    try:
        msg = orjson.loads(data)
        if venue == UPBIT:
            taker_buy = msg["ask_bid"] == "BID"
            return ("asks" if taker_buy else "bids", float(msg["trade_price"]), float(msg["trade_volume"]))
        d = msg["data"]
        # m: the buyer is the maker, so the seller took the bid
        return ("bids" if d["m"] else "asks", float(d["p"]), float(d["q"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class ReplayBook(Book):
    """A :class:`Book` whose levels come from the tape (see the module docs)."""

    def __init__(self, venue: str, coin: str, levels: int, seed: int, usd_per_unit: float,
                 now_ns: Callable[[], int], impact_decay_s: float) -> None:
        super().__init__(venue, coin, levels, seed, usd_per_unit)
        self.now_ns = now_ns
        self.decay_ns = int(impact_decay_s * 1e9)
        self.impact: dict[tuple[str, float], tuple[float, int]] = {}  # (side, price) -> (qty, since)
        self.loaded = False

    # Prices are the floats the venue's own text parses to: the same price in a
    # book and in a trade is the same float, so they key the levels as they are.
    def take(self, side: str, price: float, qty: float) -> None:
        """A backtest's fill (the matching engine calls this): remembered as impact."""
        super().take(side, price, qty)
        k = (side, price)
        had, _ = self.impact.get(k, (0.0, 0))
        self.impact[k] = (had + qty, self.now_ns())

    def take_public(self, side: str, price: float, qty: float) -> None:
        """A recorded public trade: off the level it hit, until the next recorded book."""
        levels = self.bids if side == "bids" else self.asks
        if price in levels:
            Book.take(self, side, price, min(qty, levels[price]))

    def load(self, bids: Levels, asks: Levels) -> None:
        """Replace the levels with a recorded book, less the impact still in force."""
        new = {"bids": {p: q for p, q in bids if q > _EPS}, "asks": {p: q for p, q in asks if q > _EPS}}
        if self.impact:
            now = self.now_ns()
            for k, (qty, since) in list(self.impact.items()):
                side, price = k
                level = new[side].get(price)
                if level is None or now - since > self.decay_ns:
                    del self.impact[k]
                    continue
                left = level - qty
                if left <= _EPS:
                    del new[side][price]
                else:
                    new[side][price] = left
        # A whole new book is one update (no diff stream is served from a replay).
        self._clean = False
        self.bids, self.asks = new["bids"], new["asks"]
        self.update_id += 1
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None:
            self.mid = (bid[0] + ask[0]) / 2
        elif bid is not None or ask is not None:
            self.mid = (bid or ask)[0]  # type: ignore[index]
        self.loaded = True

    def regenerate(self, mid: float, usd_per_unit: float, dt: float = 0.0) -> bool:
        return False  # the tape, not the model, moves a replayed book
