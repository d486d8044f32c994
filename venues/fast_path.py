"""What the two venues' msgspec fast paths share (see venues.upbit and
venues.binance): the number type their structs accept, the int range both
parsers agree on, and the clean-book test that ends each fast path.

A fast path returns only what its adapter's plain parser would return for
the same frame; anything else it declines (None) and the plain parser
decides. Kept apart from ``venues`` so that importing the simulator does not
import msgspec."""

from __future__ import annotations

from typing import Annotated

import msgspec

from messages.market import BookTop

# A JSON number that is finite, > 0 and < 1e300: msgspec refuses the rest in
# C, and a sum of any realistic count of these is finite, so check_levels'
# sum/min tests can never fail on accepted levels.
FastNum = Annotated[float, msgspec.Meta(gt=0.0, lt=1e300)]
# orjson yields int for -2**63..2**64-1 only (a float beyond), which the plain
# parsers refuse; a range inside it keeps the two paths on the same int.
MAX_JSON_INT = (1 << 63) - 1

Level = tuple[float, float]


def clean_top(venue: str, symbol: str, bids: list[Level], asks: list[Level], exch_ts_ns: int,
              recv_ts_ns: int) -> BookTop | None:
    """The BookTop of levels made of FastNum, or None if the book is empty,
    unsorted or crossed (the plain parser then names what is wrong).

    FastNum already makes every number finite and > 0: what check_levels
    still tests is order and cross. Sorting (price, size) pairs also orders
    the sizes of equal prices, so such a book goes to the plain parser:
    stricter, never looser."""
    if not (bids and asks and bids[0][0] < asks[0][0]
            and bids == sorted(bids, reverse=True) and asks == sorted(asks)):
        return None
    return BookTop(
        venue=venue, symbol=symbol,
        bid=bids[0][0], ask=asks[0][0], bid_size=bids[0][1], ask_size=asks[0][1],
        bids=tuple(bids), asks=tuple(asks), exch_ts_ns=exch_ts_ns, recv_ts_ns=recv_ts_ns,
    )
