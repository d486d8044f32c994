"""Exchange adapters: Upbit and Binance WebSocket parsers, the feed client,
ccxt REST builders, and (in ``venues.sim``) the embedded exchange.

This module holds the small shared vocabulary — the :class:`VenueAdapter`
protocol, the bad-frame reasons, and the venue exception family — and
re-exports the public names of the submodules lazily, so importing
``venues.sim`` does not drag in websockets or ccxt.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

try:  # a ccxt dependency, pinned in requirements.lock; ~2x faster than json
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    _orjson = None

if TYPE_CHECKING:
    from messages.market import BookTop

UPBIT = "upbit"
BINANCE = "binance"

# Why a frame was refused. Stable strings: they become metric labels and
# counter keys in FeedStats.bad_frames.
NOT_JSON = "not_json"  # undecodable bytes / invalid JSON
BAD_SHAPE = "bad_shape"  # JSON, but not the structure the venue sends
WRONG_TYPE = "wrong_type"  # a well-formed message of a kind we did not ask for
MISSING_FIELD = "missing_field"  # a required field is absent (or the book side is empty)
BAD_NUMBER = "bad_number"  # price/size unparseable, NaN/inf, or <= 0
UNSORTED = "unsorted"  # levels not best-first
CROSSED = "crossed"  # best bid >= best ask
STALE = "stale"  # exchange timestamp older than the configured limit
OUT_OF_ORDER = "out_of_order"  # update id went backwards
UNKNOWN_SYMBOL = "unknown_symbol"  # a market we did not subscribe to
VENUE_ERROR = "venue_error"  # the venue replied with an error object
PARSER_ERROR = "parser_error"  # a bug: the parser raised something unexpected

BAD_FRAME_REASONS: tuple[str, ...] = (
    NOT_JSON, BAD_SHAPE, WRONG_TYPE, MISSING_FIELD, BAD_NUMBER, UNSORTED, CROSSED,
    STALE, OUT_OF_ORDER, UNKNOWN_SYMBOL, VENUE_ERROR, PARSER_ERROR,
)


class VenueError(Exception):
    """Base of every exception raised by ``venues``. Never carries a key."""


class BadFrame(VenueError):
    """A frame the parser refused; ``reason`` is one of BAD_FRAME_REASONS."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@runtime_checkable
class VenueAdapter(Protocol):
    """What the feed client needs from one venue's market-data protocol.

    ``parse`` returns a BookTop for a data frame, ``None`` for a frame that is
    legitimately not data (a subscription ack, a status/keep-alive reply), and
    raises :class:`BadFrame` for anything else. It never raises anything but
    BadFrame on any input.
    """

    name: str

    def ws_url(self, base_ws_url: str, symbols: Sequence[str]) -> str: ...

    def subscribe_messages(self, symbols: Sequence[str]) -> list[str | bytes]: ...

    def parse(self, frame: bytes | str, recv_ts_ns: int) -> BookTop | None: ...

    def reset(self) -> None:
        """Forget per-connection state (called on every (re)connect)."""
        ...


# -- parsing helpers shared by the adapters ----------------------------------

_INF = math.inf


def decode_json(frame: bytes | str) -> Any:
    """JSON of one WebSocket frame (orjson when present, else stdlib json)."""
    try:
        if _orjson is not None:
            return _orjson.loads(frame)
        return json.loads(frame)
    except (ValueError, TypeError, RecursionError) as e:
        # orjson.JSONDecodeError and UnicodeDecodeError are ValueErrors.
        raise BadFrame(NOT_JSON, type(e).__name__) from None


def check_levels(bid_px: list[float], bid_sz: list[float],
                 ask_px: list[float], ask_sz: list[float]) -> None:
    """Refuse a book whose numbers are not usable; raise BadFrame with why.

    Every price and size must be finite and > 0 (NaN fails every comparison,
    so ``sum(...) < inf`` catches NaN and inf in one C-level pass), each side
    best first, and the book not crossed.
    """
    if not bid_px or not ask_px:
        raise BadFrame(MISSING_FIELD, "empty book side")
    for seq in (bid_px, bid_sz, ask_px, ask_sz):
        if not sum(seq) < _INF or min(seq) <= 0.0:
            raise BadFrame(BAD_NUMBER, "price/size not finite and positive")
    if len(bid_px) > 1 and bid_px != sorted(bid_px, reverse=True):
        raise BadFrame(UNSORTED, "bids not best first")
    if len(ask_px) > 1 and ask_px != sorted(ask_px):
        raise BadFrame(UNSORTED, "asks not best first")
    if bid_px[0] >= ask_px[0]:
        raise BadFrame(CROSSED, f"bid {bid_px[0]} >= ask {ask_px[0]}")


def parse_fast_then_slow(fast: Callable[[bytes | str, int], BookTop | None] | None,
                         slow: Callable[[bytes | str, int], BookTop | None],
                         frame: bytes | str, recv_ts_ns: int) -> BookTop | None:
    """An adapter's ``parse``: its fast path (if any) for clean frames, its
    plain parser for everything the fast path declines (None), which names
    what is wrong. Anything but BadFrame is a parser bug, never fatal."""
    try:
        if fast is not None:
            top = fast(frame, recv_ts_ns)
            if top is not None:
                return top
        return slow(frame, recv_ts_ns)
    except BadFrame:
        raise
    except Exception as e:
        raise BadFrame(PARSER_ERROR, type(e).__name__) from None


def check_age(exch_ts_ns: int, recv_ts_ns: int, max_age_ns: int) -> None:
    if recv_ts_ns - exch_ts_ns > max_age_ns:
        raise BadFrame(STALE, f"{(recv_ts_ns - exch_ts_ns) / 1e9:.3f}s old")


def make_adapter(venue: str, symbols: Sequence[str], **kwargs: Any) -> VenueAdapter:
    """The adapter for ``venue`` ("upbit" | "binance") watching ``symbols``."""
    if venue == UPBIT:
        from venues.upbit import UpbitAdapter

        return UpbitAdapter(symbols, **kwargs)
    if venue == BINANCE:
        from venues.binance import BinanceAdapter

        return BinanceAdapter(symbols, **kwargs)
    raise ValueError(f"unknown venue {venue!r} (expected 'upbit' or 'binance')")


_LAZY = {
    "UpbitAdapter": "venues.upbit",
    "BinanceAdapter": "venues.binance",
    "FeedClient": "venues.feed_client",
    "FeedStats": "venues.feed_client",
    "VenueRest": "venues.rest",
    "OrderResult": "venues.rest",
    "OrderStatusUnknown": "venues.rest",
    "build_upbit": "venues.rest",
    "build_binance": "venues.rest",
    "VenueUrls": "venues.urls",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'venues' has no attribute {name!r}")
    return getattr(importlib.import_module(mod), name)


__all__ = [
    "UPBIT", "BINANCE", "BAD_FRAME_REASONS", "VenueError", "BadFrame", "VenueAdapter",
    "make_adapter", "decode_json", "check_levels", "check_age", *_LAZY,
    "NOT_JSON", "BAD_SHAPE", "WRONG_TYPE", "MISSING_FIELD", "BAD_NUMBER", "UNSORTED", "CROSSED",
    "STALE", "OUT_OF_ORDER", "UNKNOWN_SYMBOL", "VENUE_ERROR", "PARSER_ERROR",
]
