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

Speed: Binance sends prices and sizes as decimal *strings*; ``float(str)``
costs ~175 ns here, so 80 of them dominate a 20-level frame. The fast path
re-serialises both sides with orjson, strips the quotes and parses them back
as one numeric array (~10x cheaper). It is used only when its result is
provably the same as float() on every string (shape and character checks);
anything else goes through the slow path, which also names the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from messages.market import BookTop
from venues import (
    BAD_NUMBER,
    BAD_SHAPE,
    BINANCE,
    MISSING_FIELD,
    OUT_OF_ORDER,
    PARSER_ERROR,
    UNKNOWN_SYMBOL,
    VENUE_ERROR,
    WRONG_TYPE,
    BadFrame,
    check_age,
    check_levels,
    decode_json,
)

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None

QUOTE = "USDT"
DEPTHS = (5, 10, 20)


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


def _levels_fast(bids: list, asks: list) -> tuple[list, list, list, list] | None:
    """(bid prices, bid sizes, ask prices, ask sizes) through one orjson round
    trip, or None to defer to the slow path.

    The two sides are dumped, quotes and brackets deleted, and the rest parsed
    as one flat numeric array. A result is returned only when it is provably
    float() of every string, by counting (n = number of levels):
    every level has len 2 (a level that is a 2-char string cannot hold a
    one-dot number; a 2-key object does not survive quote deletion);
    exactly n+3 '[' and n+3 ']' (no nested list, no bracket inside a string);
    exactly 4n quotes (every element is a string: a bare number would need
    another element with extra quotes, i.e. an escaped quote or an object
    key, and both leave unparseable text); exactly 2n parsed values (no ','
    inside a string) and 2n '.' (each value is one JSON number with a '.',
    hence a float; ``true``/``null``/``{}`` have none). Strings that are not
    JSON numbers ("NaN", "1.", " 1", "1e999") fail the parse and take the
    slow path, which is the authority on what is wrong.
    """
    n_b, n_a = len(bids), len(asks)
    if not n_b or not n_a:
        return None
    try:
        if set(map(len, bids)) != {2} or set(map(len, asks)) != {2}:
            return None
        raw = _orjson.dumps((bids, asks))  # type: ignore[union-attr]
    except TypeError:
        return None
    n = n_b + n_a
    quotes = raw.count(b'"')
    opens = raw.count(b"[")
    numbers = raw.translate(None, b'"[]')
    if (quotes != 4 * n or opens != n + 3 or len(raw) - len(numbers) - quotes - opens != n + 3
            or numbers.count(b".") != 2 * n):
        return None
    try:
        flat = _orjson.loads(b"[" + numbers + b"]")  # type: ignore[union-attr]
    except ValueError:
        return None
    if len(flat) != 2 * n:
        return None
    k = 2 * n_b
    return flat[0:k:2], flat[1:k:2], flat[k::2], flat[k + 1::2]


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
        self._fast = _orjson is not None

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
        try:
            return self._parse(frame, recv_ts_ns)
        except BadFrame:
            raise
        except Exception as e:  # a parser bug must not kill the feed
            raise BadFrame(PARSER_ERROR, type(e).__name__) from None

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
        bids, asks = bids[:n], asks[:n]
        fast = _levels_fast(bids, asks) if self._fast else None
        # The fast path only accepts a clean book (its floats are finite; bids
        # sorted down to a positive last price and asks starting above the
        # best bid make every price positive); anything doubtful is redone by
        # the slow path, so a bad frame is classified in one place only.
        if fast is not None:
            bid_px, bid_sz, ask_px, ask_sz = fast
            if not (bid_px == sorted(bid_px, reverse=True) and ask_px == sorted(ask_px)
                    and bid_px[-1] > 0.0 and ask_px[0] > bid_px[0]
                    and min(bid_sz) > 0.0 and min(ask_sz) > 0.0):
                fast = None
        if fast is None:
            bid_px, bid_sz = _levels_slow(bids, "bids")
            ask_px, ask_sz = _levels_slow(asks, "asks")
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

