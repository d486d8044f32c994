"""Upbit market data: orderbook frames -> BookTop.

One connection to ``/websocket/v1`` carries every KRW market plus
``KRW-USDT`` (the FX bridge, published as symbol ``USDT``). The server sends
binary frames of UTF-8 JSON; each orderbook message is a full top-N snapshot
(``stream_type`` SNAPSHOT or REALTIME alike), never a delta, so every frame
stands alone. ``{"status": "UP"}`` (the reply to a text ``PING``) is
ignorable; ``{"error": {...}}`` is counted as a venue error.

Speed: ``parse`` first tries ``_parse_fast``, a msgspec decoder into typed
structs (``_Orderbook``) that builds the floats in C and refuses anything but
a finite positive JSON number; the Python left is the level tuples and the
order/cross test. A frame it does not take in full goes to ``_parse``, the
orjson + dict walk, which stays the authority on what is wrong: both give the
same BookTop, ``None`` or BadFrame reason (tests/unit/venues/
test_parser_fast_path.py). Per frame, bench.feed.upbit_frames(64), 15 levels:
13.5 µs before, 7.9 µs now, of which msgspec decoding is 2.5 and building the
BookTop 2.2. A frame the fast path refuses costs its failed decode on top of
``_parse``: up to ~6 µs for a field ``_Orderbook`` does not declare (declare
any field Upbit adds there).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec

from messages.market import BookTop
from venues import (
    BAD_NUMBER,
    BAD_SHAPE,
    MISSING_FIELD,
    UNKNOWN_SYMBOL,
    UPBIT,
    VENUE_ERROR,
    WRONG_TYPE,
    BadFrame,
    check_age,
    check_levels,
    decode_json,
    parse_fast_then_slow,
)
from venues.fast_path import MAX_JSON_INT, FastNum, clean_top

QUOTE = "KRW"
FX = "USDT"  # KRW-USDT: always subscribed, the USDT->KRW bridge
DEPTHS = (1, 5, 15, 30)
_TEXT = (bytes, str)  # frame types the fast path takes (websockets hands over these)

# -- fast path: the frame as typed structs -------------------------------------
_Ms = Annotated[int, msgspec.Meta(ge=0, le=MAX_JSON_INT)]


class _Unit(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    ask_price: FastNum  # a JSON int too, as float() would take it
    bid_price: FastNum
    ask_size: FastNum
    bid_size: FastNum


class _Orderbook(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """An orderbook message, every field Upbit sends.

    Unknown fields are forbidden, and the fields the parser does not read are
    still typed, because msgspec only syntax-checks a value it skips: orjson
    refuses a number that overflows to inf (``1e999``) anywhere in the frame,
    so a skipped one would make the fast path accept what ``_parse`` calls
    ``not_json``. A frame with a field added by Upbit takes the slow path.
    """

    type: str
    code: str
    timestamp: _Ms
    orderbook_units: list[_Unit]
    total_ask_size: float = 0.0
    total_bid_size: float = 0.0
    stream_type: str = ""
    level: float = 0.0


_decode_orderbook = msgspec.json.Decoder(_Orderbook).decode


def _side(units: list, price_key: str, size_key: str) -> tuple[list[float], list[float]]:
    try:
        px = [float(u[price_key]) for u in units]
        sz = [float(u[size_key]) for u in units]
    except KeyError as e:
        raise BadFrame(MISSING_FIELD, f"orderbook unit lacks {e.args[0]}") from None
    except (TypeError, ValueError, IndexError, OverflowError):
        if any(type(u) is not dict for u in units):
            raise BadFrame(BAD_SHAPE, "orderbook unit is not an object") from None
        raise BadFrame(BAD_NUMBER, f"{price_key}/{size_key} is not a number") from None
    return px, sz


class UpbitAdapter:
    """Parses Upbit orderbook frames for ``symbols`` (coins, KRW market) + USDT."""

    name = UPBIT

    def __init__(self, symbols: Sequence[str], *, depth: int = 15,
                 max_exchange_age_s: float = 30.0, max_levels: int = 30,
                 ticket_prefix: str = "arbd") -> None:
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}")
        coins = tuple(dict.fromkeys([*(s.upper() for s in symbols), FX]))
        self.symbols = coins
        self.depth = depth
        self.max_age_ns = int(max_exchange_age_s * 1e9)
        self.max_levels = max_levels
        self.ticket_prefix = ticket_prefix
        self._fast = True  # False: every frame through _parse (tests compare the two)
        self._by_code: dict[str, str] = {}
        for c in coins:
            self._by_code[f"{QUOTE}-{c}"] = c
            self._by_code[f"{QUOTE}-{c}.{depth}"] = c  # tolerate an echoed depth suffix

    # -- connection ------------------------------------------------------------
    def codes(self, symbols: Sequence[str]) -> list[str]:
        coins = dict.fromkeys([*(s.upper() for s in symbols), FX])
        return [f"{QUOTE}-{c}.{self.depth}" for c in coins]

    def ws_url(self, base_ws_url: str, symbols: Sequence[str]) -> str:
        """``base_ws_url`` is the full ``.../websocket/v1`` URL."""
        return base_ws_url

    def subscribe_messages(self, symbols: Sequence[str]) -> list[str | bytes]:
        """One request: a fresh ticket and one orderbook type with every code.

        A new request replaces the connection's subscription set, so a
        reconnect simply sends this again.
        """
        req = [{"ticket": f"{self.ticket_prefix}-{uuid.uuid4()}"},
               {"type": "orderbook", "codes": self.codes(symbols)}]
        return [json.dumps(req, separators=(",", ":"))]  # a text frame, as Upbit expects

    def reset(self) -> None:
        pass  # every frame is a full snapshot: no per-connection state

    # -- parsing ---------------------------------------------------------------
    def parse(self, frame: bytes | str, recv_ts_ns: int) -> BookTop | None:
        return parse_fast_then_slow(self._parse_fast if self._fast else None, self._parse, frame, recv_ts_ns)

    def _parse_fast(self, frame: bytes | str, recv_ts_ns: int) -> BookTop | None:
        """The BookTop of a clean orderbook frame, else None: ``_parse``
        decides (and names what is wrong).

        Returns only what ``_parse`` would return for the frame: its checks are
        here or in the struct types.
        """
        # Non-ASCII: msgspec does not validate UTF-8 where orjson does (in a
        # str frame, a lone surrogate); Upbit frames are ASCII.
        if type(frame) not in _TEXT or not frame.isascii():
            return None
        try:
            msg = _decode_orderbook(frame)
            coin = self._by_code.get(msg.code)
            if msg.type != "orderbook" or coin is None:
                return None
            exch_ns = msg.timestamp * 1_000_000
            check_age(exch_ns, recv_ts_ns, self.max_age_ns)
        except (msgspec.MsgspecError, RecursionError, BadFrame):
            return None
        units = msg.orderbook_units[: self.max_levels]
        return clean_top(UPBIT, coin, [(u.bid_price, u.bid_size) for u in units],
                         [(u.ask_price, u.ask_size) for u in units], exch_ns, recv_ts_ns)

    def _parse(self, frame: bytes | str, recv_ts_ns: int) -> BookTop | None:
        msg = decode_json(frame)
        if type(msg) is not dict:
            raise BadFrame(BAD_SHAPE, "frame is not a JSON object")
        typ = msg.get("type")
        if typ != "orderbook":
            return self._not_orderbook(msg, typ)
        code = msg.get("code")
        if code is None:
            raise BadFrame(MISSING_FIELD, "code")
        coin = self._by_code.get(code) if type(code) is str else None
        if coin is None:
            raise BadFrame(UNKNOWN_SYMBOL, str(code)[:32])
        ts = msg.get("timestamp")
        if ts is None:
            raise BadFrame(MISSING_FIELD, "timestamp")
        if type(ts) is not int:
            raise BadFrame(BAD_NUMBER, "timestamp is not an integer")
        exch_ns = ts * 1_000_000
        check_age(exch_ns, recv_ts_ns, self.max_age_ns)
        units = msg.get("orderbook_units")
        if units is None:
            raise BadFrame(MISSING_FIELD, "orderbook_units")
        if type(units) is not list:
            raise BadFrame(BAD_SHAPE, "orderbook_units is not a list")
        units = units[: self.max_levels]
        bid_px, bid_sz = _side(units, "bid_price", "bid_size")
        ask_px, ask_sz = _side(units, "ask_price", "ask_size")
        check_levels(bid_px, bid_sz, ask_px, ask_sz)
        return BookTop(
            venue=UPBIT, symbol=coin,
            bid=bid_px[0], ask=ask_px[0], bid_size=bid_sz[0], ask_size=ask_sz[0],
            bids=tuple(zip(bid_px, bid_sz, strict=True)), asks=tuple(zip(ask_px, ask_sz, strict=True)),
            exch_ts_ns=exch_ns, recv_ts_ns=recv_ts_ns,
        )

    @staticmethod
    def _not_orderbook(msg: dict[str, Any], typ: Any) -> None:
        if typ is None:
            if "status" in msg and len(msg) == 1:
                return None  # {"status": "UP"}: keep-alive reply
            if "error" in msg:
                err = msg["error"]
                name = err.get("name") if type(err) is dict else err
                raise BadFrame(VENUE_ERROR, str(name)[:120])
            if msg.get("method") == "LIST_SUBSCRIPTIONS":
                return None
            raise BadFrame(MISSING_FIELD, "type")
        if type(typ) is str:
            raise BadFrame(WRONG_TYPE, typ[:32])
        raise BadFrame(BAD_SHAPE, "type is not a string")
