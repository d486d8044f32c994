"""Binance spot market data: partial-depth frames -> BookTop.

Connection choice: the **combined stream URL**
(``/stream?streams=btcusdt@depth20@100ms/ethusdt@depth20@100ms``), not a raw
``/ws`` socket plus SUBSCRIBE, because

- a partial-depth payload (``{"lastUpdateId","bids","asks"}``) names no
  symbol; only the combined wrapper ``{"stream": ..., "data": ...}`` says
  which book it is, so one socket can carry every coin;
- the subscription lives in the URL: every reconnect resubscribes by itself,
  with no ack to wait for and none of the 5-messages/s inbound budget spent.

Raw frames are still understood (a ``bookTicker`` carries ``s``; a raw
partial-depth frame is accepted when exactly one symbol is watched), and
``{"result": null, "id": N}`` acks are ignorable, not bad.

Spot partial depth carries no exchange timestamp: ``exch_ts_ns`` is 0 unless
the frame has ``E``/``T`` (then it is age-checked). Ordering is checked on
``lastUpdateId`` (``u`` for bookTicker) per symbol and stream kind instead.

Speed: ``parse`` first tries ``_parse_fast``, a msgspec decoder into typed
structs (``_Combined``) that turns the decimal strings into floats in C (lax
mode: the same value as ``float()`` for every string it takes) and refuses
NaN, inf and <= 0; the Python left is the level order, the update id and the
BookTop. A frame it does not take in full (raw depth, bookTicker, a bad
number, a field it does not know) goes to ``_parse``, the orjson + ``float()``
walk, which stays the authority on what is wrong: both give the same BookTop,
``None`` or BadFrame reason (tests/unit/venues/test_parser_fast_path.py). Per
frame, bench.feed.binance_templates(64), 20 levels: 16.9 µs before (an orjson
round trip of the levels), 9.4 µs now, of which msgspec decoding is 3.8 and
building the BookTop 2.2. ``_parse`` alone takes ~29 µs on such a frame, so
declare any field Binance adds to ``_Depth``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from messages.market import BookTop
from venues import (
    BAD_NUMBER,
    BAD_SHAPE,
    BINANCE,
    MISSING_FIELD,
    OUT_OF_ORDER,
    UNKNOWN_SYMBOL,
    VENUE_ERROR,
    WRONG_TYPE,
    BadFrame,
    check_age,
    check_levels,
    decode_json,
    parse_fast_then_slow,
)
from venues.fast_path import MAX_JSON_INT, FastNum, clean_top

QUOTE = "USDT"
DEPTHS = (5, 10, 20)

# -- fast path: the combined partial-depth frame as typed structs ---------------
_Levels = list[tuple[FastNum, FastNum]]  # lax decoding turns the decimal strings into these


class _Depth(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    # Any, not int: the decoder is lax (for the decimal strings), and a lax int
    # takes "160" and 160.0, which _parse refuses; the parser checks the type.
    lastUpdateId: Any
    bids: _Levels
    asks: _Levels
    E: Any = msgspec.UNSET
    T: Any = msgspec.UNSET


class _Combined(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """``{"stream": ..., "data": {"lastUpdateId", "bids", "asks"}}``.

    Unknown fields are forbidden because msgspec only syntax-checks a value it
    skips: orjson refuses a number that overflows to inf (``1e999``) anywhere
    in the frame, so a skipped one would make the fast path accept what
    ``_parse`` calls ``not_json``. (An ``"e"`` field is thus refused too: a
    diff-depth event is ``_parse``'s ``wrong_type``.)
    """

    stream: str
    data: _Depth


_decode_combined = msgspec.json.Decoder(_Combined, strict=False).decode
_UNSET = msgspec.UNSET
_TEXT_MARKS = {bytes: (b'"', b":"), str: ('"', ":")}


def _plain_int(v: Any) -> bool:
    """An int (not bool) that orjson decodes to the same int."""
    return type(v) is int and 0 <= v <= MAX_JSON_INT


def _ms_to_ns(v: Any) -> int:
    if type(v) is not int:
        raise BadFrame(BAD_NUMBER, "timestamp is not an integer")
    return v * 1_000_000


def _levels_slow(side: Any, name: str) -> tuple[list[float], list[float]]:
    """float() each level, naming exactly what is wrong with a bad one."""
    if type(side) is not list:
        raise BadFrame(BAD_SHAPE if side is not None else MISSING_FIELD, f"{name} is not a list")
    px: list[float] = []
    sz: list[float] = []
    for lvl in side:
        if type(lvl) is not list or len(lvl) < 2:
            raise BadFrame(BAD_SHAPE, f"{name} level is not [price, qty]")
        p, q = lvl[0], lvl[1]
        if type(p) is not str or type(q) is not str:
            raise BadFrame(BAD_NUMBER, f"{name} price/qty is not a decimal string")
        try:
            px.append(float(p))
            sz.append(float(q))
        except ValueError:
            raise BadFrame(BAD_NUMBER, f"{name} price/qty unparseable") from None
    return px, sz


class BinanceAdapter:
    """Parses Binance spot partial-depth (and bookTicker) frames for ``symbols``."""

    name = BINANCE

    def __init__(self, symbols: Sequence[str], *, depth: int = 20, speed_ms: int = 100,
                 max_exchange_age_s: float = 30.0, max_levels: int = 20) -> None:
        if depth not in DEPTHS:
            raise ValueError(f"depth must be one of {DEPTHS}")
        if speed_ms not in (100, 1000):
            raise ValueError("speed_ms must be 100 or 1000")
        coins = tuple(dict.fromkeys(s.upper() for s in symbols if s.upper() != QUOTE))
        if not coins:
            raise ValueError("no Binance symbols to watch")
        self.symbols = coins
        self.depth = depth
        self.speed_ms = speed_ms
        self.max_age_ns = int(max_exchange_age_s * 1e9)
        self.max_levels = max_levels
        self._by_stream_sym = {f"{c.lower()}{QUOTE.lower()}": c for c in coins}
        self._by_symbol = {f"{c}{QUOTE}": c for c in coins}
        self._last_id: dict[tuple[str, str], int] = {}
        self._fast = True  # False: every frame through _parse (tests compare the two)
        # Partial-depth stream names -> coin. None holds '"' or ':' (the fast
        # path's counting argument relies on that).
        self._depth_streams = {
            f"{pair}@depth{d}{speed}": coin
            for pair, coin in self._by_stream_sym.items()
            for d in DEPTHS for speed in ("", "@100ms", "@1000ms")
            if '"' not in pair and ":" not in pair
        }

    # -- connection ------------------------------------------------------------
    def stream_names(self, symbols: Sequence[str]) -> list[str]:
        suffix = f"@depth{self.depth}" + ("@100ms" if self.speed_ms == 100 else "")
        return [f"{s.lower()}{QUOTE.lower()}{suffix}" for s in symbols if s.upper() != QUOTE]

    def ws_url(self, base_ws_url: str, symbols: Sequence[str]) -> str:
        """``base_ws_url`` is the raw-stream base (ends in ``/ws``, as in
        ccxt's ``urls['api']['ws']['spot']`` and the sim's ``binance.ws``)."""
        root = base_ws_url.rstrip("/")
        if root.endswith("/ws"):
            root = root[: -len("/ws")]
        return f"{root}/stream?streams={'/'.join(self.stream_names(symbols))}"

    def subscribe_messages(self, symbols: Sequence[str]) -> list[str | bytes]:
        return []  # the combined URL subscribes

    def reset(self) -> None:
        self._last_id.clear()

    # -- parsing ---------------------------------------------------------------
    def parse(self, frame: bytes | str, recv_ts_ns: int) -> BookTop | None:
        return parse_fast_then_slow(self._parse_fast if self._fast else None, self._parse, frame, recv_ts_ns)

    def _parse_fast(self, frame: bytes | str, recv_ts_ns: int) -> BookTop | None:
        """The BookTop of a clean combined partial-depth frame, else None:
        ``_parse`` decides (and names what is wrong).

        Returns only what ``_parse`` would return for the frame: its checks are
        here or in the struct types. Raw depth and bookTicker frames always
        take ``_parse``.
        """
        marks = _TEXT_MARKS.get(type(frame))
        # Non-ASCII: msgspec does not validate UTF-8 where orjson does (in a
        # str frame, a lone surrogate); Binance frames are ASCII.
        if marks is None or not frame.isascii():
            return None
        try:
            msg = _decode_combined(frame)
            coin = self._depth_streams.get(msg.stream)
            data = msg.data
            uid, e_ms, t_ms = data.lastUpdateId, data.E, data.T
            has_e, has_t = e_ms is not _UNSET, t_ms is not _UNSET
            # An unused T is checked too: a 400-digit int there is not_json to orjson.
            if (coin is None or not _plain_int(uid) or (has_e and not _plain_int(e_ms))
                    or (has_t and not _plain_int(t_ms))):
                return None
            bids, asks = data.bids, data.asks
            # Lax mode also takes a bare JSON number as a level price/size,
            # which _parse refuses. Every '"' in the frame delimits a key, the
            # stream or a level string (no other strings fit the types; none of
            # those holds a '"' or ':'), and every ':' ends a key. So one ':'
            # per key means no key repeats (a repeat's quotes could offset a
            # bare number's missing ones), and then the '"' count is exact iff
            # every level element is a string.
            keys = 5 + has_e + has_t  # stream, data, lastUpdateId, bids, asks, E, T
            quote, colon = marks
            if (frame.count(colon) != keys
                    or frame.count(quote) != 2 * (keys + 1) + 4 * (len(bids) + len(asks))):
                return None
            exch_ns = 0
            if has_e or has_t:  # as data.get("E", data.get("T"))
                exch_ns = (e_ms if has_e else t_ms) * 1_000_000
                check_age(exch_ns, recv_ts_ns, self.max_age_ns)
            n = self.max_levels
            top = clean_top(BINANCE, coin, bids[:n], asks[:n], exch_ns, recv_ts_ns)
            if top is not None:
                self._check_order(coin, "depth", uid)  # last: it records uid
        except (msgspec.MsgspecError, RecursionError, BadFrame):
            return None
        return top

    def _parse(self, frame: bytes | str, recv_ts_ns: int) -> BookTop | None:
        msg = decode_json(frame)
        if type(msg) is not dict:
            raise BadFrame(BAD_SHAPE, "frame is not a JSON object")
        stream = msg.get("stream")
        if stream is not None:
            data = msg.get("data")
            if type(stream) is not str or type(data) is not dict:
                raise BadFrame(BAD_SHAPE, "combined frame without stream/data")
            pair, _, kind = stream.partition("@")
            coin = self._by_stream_sym.get(pair)
            if coin is None:
                raise BadFrame(UNKNOWN_SYMBOL, pair[:32])
            if kind.startswith("depth"):
                if "e" in data:
                    raise BadFrame(WRONG_TYPE, f"event {str(data['e'])[:32]}")
                return self._depth(coin, data, recv_ts_ns)
            if kind == "bookTicker":
                return self._book_ticker(coin, data, recv_ts_ns)
            raise BadFrame(WRONG_TYPE, f"stream kind {kind[:32]}")
        # Raw (non-combined) frames.
        if "result" in msg and "id" in msg:
            return None  # SUBSCRIBE / SET_PROPERTY acknowledgement
        if "code" in msg and "msg" in msg:
            raise BadFrame(VENUE_ERROR, str(msg.get("msg"))[:120])
        if "lastUpdateId" in msg:
            if len(self.symbols) != 1:
                raise BadFrame(UNKNOWN_SYMBOL, "raw depth frame names no symbol")
            return self._depth(self.symbols[0], msg, recv_ts_ns)
        if "e" in msg:
            raise BadFrame(WRONG_TYPE, f"event {str(msg['e'])[:32]}")
        if "s" in msg and "b" in msg and "a" in msg:
            sym = msg["s"]
            if type(sym) is not str:
                raise BadFrame(MISSING_FIELD if sym is None else BAD_SHAPE, "s")
            coin = self._by_symbol.get(sym.upper())
            if coin is None:
                raise BadFrame(UNKNOWN_SYMBOL, str(sym)[:32])
            return self._book_ticker(coin, msg, recv_ts_ns)
        raise BadFrame(BAD_SHAPE, "unrecognised object")

    def _exch_ts(self, data: dict, recv_ts_ns: int) -> int:
        ts = data.get("E", data.get("T"))
        if ts is None:
            return 0
        ns = _ms_to_ns(ts)
        check_age(ns, recv_ts_ns, self.max_age_ns)
        return ns

    def _check_order(self, coin: str, kind: str, uid: Any) -> None:
        if type(uid) is not int:
            raise BadFrame(BAD_NUMBER if uid is not None else MISSING_FIELD, "update id")
        key = (coin, kind)
        last = self._last_id.get(key)
        if last is not None and uid < last:
            raise BadFrame(OUT_OF_ORDER, f"update id {uid} < {last}")
        self._last_id[key] = uid

    def _depth(self, coin: str, data: dict, recv_ts_ns: int) -> BookTop:
        bids = data.get("bids")
        asks = data.get("asks")
        if bids is None or asks is None:
            raise BadFrame(MISSING_FIELD, "bids/asks")
        if type(bids) is not list or type(asks) is not list:
            raise BadFrame(BAD_SHAPE, "bids/asks not lists")
        uid = data.get("lastUpdateId")
        exch_ns = self._exch_ts(data, recv_ts_ns)
        n = self.max_levels
        bid_px, bid_sz = _levels_slow(bids[:n], "bids")
        ask_px, ask_sz = _levels_slow(asks[:n], "asks")
        check_levels(bid_px, bid_sz, ask_px, ask_sz)
        self._check_order(coin, "depth", uid)
        return BookTop(
            venue=BINANCE, symbol=coin,
            bid=bid_px[0], ask=ask_px[0], bid_size=bid_sz[0], ask_size=ask_sz[0],
            bids=tuple(zip(bid_px, bid_sz, strict=True)), asks=tuple(zip(ask_px, ask_sz, strict=True)),
            exch_ts_ns=exch_ns, recv_ts_ns=recv_ts_ns,
        )

    def _book_ticker(self, coin: str, data: dict, recv_ts_ns: int) -> BookTop:
        vals = []
        for k in ("b", "B", "a", "A"):
            v = data.get(k)
            if v is None:
                raise BadFrame(MISSING_FIELD, k)
            if type(v) is not str:
                raise BadFrame(BAD_NUMBER, f"{k} is not a decimal string")
            try:
                vals.append(float(v))
            except ValueError:
                raise BadFrame(BAD_NUMBER, f"{k} unparseable") from None
        bp, bs, ap, as_ = vals
        check_levels([bp], [bs], [ap], [as_])
        exch_ns = self._exch_ts(data, recv_ts_ns)
        self._check_order(coin, "bookTicker", data.get("u"))
        return BookTop(
            venue=BINANCE, symbol=coin, bid=bp, ask=ap, bid_size=bs, ask_size=as_,
            bids=((bp, bs),), asks=((ap, as_),), exch_ts_ns=exch_ns, recv_ts_ns=recv_ts_ns,
        )

