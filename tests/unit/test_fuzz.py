"""Property-based fuzzing of everything that parses untrusted bytes: the
codec (``messages.decode``, ``check_envelope``) and both venues' feed
parsers (``parse(frame, recv_ts_ns)``).

Properties:

- **codec** - any bytes decode to a well-typed message of a registered type
  or raise ``DecodeError``, never anything else; every message built from its
  type hints survives ``encode`` -> ``decode`` unchanged; a mutated frame
  (flipped, cut, padded, spliced) decodes validly or raises ``DecodeError``;
  ``check_envelope`` (the bus cache's cheap gate) never refuses a frame that
  ``decode`` accepts;
- **feed parsers** - any frame (random bytes, text, JSON of any shape,
  near-valid orderbook frames with fields replaced by anything) yields a
  sane ``BookTop`` (finite positive numbers, best-first levels, not crossed,
  a subscribed symbol), ``None`` (keep-alives, acks) or ``BadFrame`` with a
  known reason - never ``parser_error`` (that is reserved for parser bugs);
- **Binance fast path** - the msgspec fast path gives exactly what the slow
  ``float()`` path gives, on books whose price and size strings are drawn
  from an alphabet of digits, dots, exponents, signs, spaces and junk.

Bounded for CI: ``max_examples`` per property (``ARBD_FUZZ_EXAMPLES``,
default 200) and no per-example deadline (a loaded 2-core CI host would make
deadlines flaky); the whole module runs in a few seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from typing import Any

import msgpack  # crafting arbitrary envelopes on purpose: the codec is what is under test
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from messages import REGISTRY, BookTop, DecodeError, Message, decode, encode
from messages.codec import MAX_FRAME_BYTES, WIRE_VERSION, check_envelope
from venues import BAD_FRAME_REASONS, PARSER_ERROR, BadFrame
from venues.binance import BinanceAdapter
from venues.upbit import UpbitAdapter

EXAMPLES = int(os.environ.get("ARBD_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=os.environ.get("ARBD_FUZZ_RANDOM") is None)

NOW_NS = 1_700_000_000_000_000_000
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=20)
INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False)
SCALARS = st.none() | st.booleans() | INT64 | FLOATS | TEXT | st.binary(max_size=20)
# What msgpack can carry and hands back unchanged (lists, not tuples; string keys).
PLAIN = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(TEXT, inner, max_size=4), max_leaves=12)


def _strategy(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for a value of type ``tp`` as the codec sees it."""
    if tp is int:
        return INT64
    if tp is float:
        return FLOATS
    if tp is str:
        return TEXT
    if tp is bool:
        return st.booleans()
    if tp is bytes:
        return st.binary(max_size=20)
    if tp in (object, Any):
        return PLAIN
    if dataclasses.is_dataclass(tp):
        return _dataclass_strategy(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([_strategy(a) if a is not type(None) else st.none() for a in args])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(_strategy(args[0]), max_size=4).map(tuple)
        return st.tuples(*(_strategy(a) for a in args))
    if origin is dict:
        return st.dictionaries(_strategy(args[0]), _strategy(args[1]), max_size=4)
    raise TypeError(f"no strategy for {tp!r}")


def _dataclass_strategy(cls: type) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(hints[f.name]) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: _build(cls, kw))


def _build(cls: type, kw: dict[str, Any]) -> Any:
    try:
        return cls(**kw)
    except (TypeError, ValueError):
        return None  # a class that validates its fields refused these


MESSAGES = st.sampled_from(sorted(REGISTRY.values(), key=lambda c: c.TAG)).flatmap(_dataclass_strategy)


def _assert_well_typed(msg: Message) -> None:
    assert type(msg) in REGISTRY.values()
    hints = typing.get_type_hints(type(msg))
    for f in dataclasses.fields(msg):
        v = getattr(msg, f.name)
        tp = hints[f.name]
        if tp in (int, float, str, bool, bytes):
            assert type(v) is tp or (tp is float and type(v) is float), (f.name, v)


# -- codec -----------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=2048))
def test_any_bytes_decode_to_a_valid_message_or_a_decode_error(frame: bytes) -> None:
    try:
        env = decode(frame)
    except DecodeError:
        return
    _assert_well_typed(env.msg)


@FUZZ
@given(tag=st.sampled_from(sorted(REGISTRY)) | TEXT, sender=PLAIN, inc=PLAIN, seq=PLAIN,
       body=st.lists(PLAIN, max_size=14) | PLAIN, version=st.sampled_from([WIRE_VERSION, 0, 2, "1", None]))
def test_arbitrary_envelopes_decode_validly_or_raise_decode_error(tag: Any, sender: Any, inc: Any, seq: Any,
                                                                  body: Any, version: Any) -> None:
    frame = msgpack.packb([version, tag, sender, inc, seq, body], use_bin_type=True)
    try:
        env = decode(frame)
    except DecodeError:
        return
    _assert_well_typed(env.msg)
    assert check_envelope(frame)


@FUZZ
@given(MESSAGES, TEXT, INT64, INT64)
def test_every_message_survives_encode_and_decode_unchanged(msg: Any, sender: str, inc: int, seq: int) -> None:
    assume(msg is not None)
    frame = encode(msg, sender, inc, seq)
    assume(len(frame) <= MAX_FRAME_BYTES)

    env = decode(frame)

    assert env.msg == msg and (env.sender, env.incarnation, env.seq) == (sender, inc, seq)
    assert check_envelope(frame)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    msg = draw(MESSAGES)
    assume(msg is not None)
    frame = bytearray(encode(msg, "fuzz", 1, 1))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "pad", "splice", "dup"]))
        i = draw(st.integers(0, max(0, len(frame) - 1)))
        if op == "flip" and frame:
            frame[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del frame[i:]
        elif op == "pad":
            frame[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "splice" and frame:
            j = draw(st.integers(i, len(frame)))
            frame[i:j] = draw(st.binary(max_size=8))
        elif op == "dup":
            frame += frame[i:]
    return bytes(frame)


@FUZZ
@given(_mutated())
def test_a_mutated_frame_decodes_validly_or_raises_decode_error(frame: bytes) -> None:
    try:
        env = decode(frame)
    except DecodeError:
        return
    _assert_well_typed(env.msg)
    assert check_envelope(frame), "check_envelope refused a frame decode accepts"


@FUZZ
@given(st.binary(max_size=512) | _mutated())
def test_check_envelope_never_raises(frame: bytes) -> None:
    assert check_envelope(frame) in (True, False)


def test_an_oversized_frame_is_refused_without_unpacking() -> None:
    with pytest.raises(DecodeError, match="exceeds"):
        decode(b"\x00" * (MAX_FRAME_BYTES + 1))
    assert not check_envelope(b"\x00" * (MAX_FRAME_BYTES + 1))


# -- feed parsers ------------------------------------------------------------------------------

SYMBOLS = ("BTC", "ETH")
JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | TEXT,
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
                    max_leaves=25)


def _sane(top: BookTop, venue: str, symbols: tuple[str, ...]) -> None:
    assert top.venue == venue and top.symbol in symbols
    for px, sz in top.bids + top.asks:
        assert math.isfinite(px) and math.isfinite(sz) and px > 0 and sz > 0
    bids = [p for p, _ in top.bids]
    asks = [p for p, _ in top.asks]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert (top.bid, top.bid_size) == top.bids[0] and (top.ask, top.ask_size) == top.asks[0]
    assert top.bid < top.ask
    assert top.recv_ts_ns == NOW_NS


def _parse(adapter: Any, frame: bytes | str) -> BookTop | None:
    try:
        top = adapter.parse(frame, NOW_NS)
    except BadFrame as e:
        assert e.reason in BAD_FRAME_REASONS
        assert e.reason != PARSER_ERROR, f"parser bug on {frame!r}: {e}"
        return None
    if top is not None:
        _sane(top, adapter.name, (*SYMBOLS, "USDT"))
    return top


def _upbit_unit(draw: st.DrawFn, price: float) -> dict[str, Any]:
    return {"ask_price": price + draw(st.floats(0.5, 50)), "bid_price": price,
            "ask_size": draw(st.floats(0.001, 10)), "bid_size": draw(st.floats(0.001, 10))}


@st.composite
def _upbit_frame(draw: st.DrawFn) -> Any:
    """A valid Upbit orderbook message, then up to three fields replaced by anything."""
    base = draw(st.floats(100, 1e8))
    units = [_upbit_unit(draw, base - 10 * i) for i in range(draw(st.integers(1, 5)))]
    msg: dict[str, Any] = {"type": "orderbook", "code": draw(st.sampled_from(["KRW-BTC", "KRW-ETH", "KRW-USDT",
                                                                               "KRW-XRP", "BTC-ETH"])),
                           "timestamp": NOW_NS // 1_000_000 - draw(st.integers(0, 60_000)),
                           "total_ask_size": 1.0, "total_bid_size": 1.0, "orderbook_units": units,
                           "stream_type": "REALTIME"}
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["top", "unit"]))
        if where == "top":
            msg[draw(st.sampled_from(sorted(msg)) | TEXT)] = draw(JSON)
        elif units:
            u = draw(st.sampled_from(units))
            u[draw(st.sampled_from(sorted(u)))] = draw(JSON)
    return msg


def _encode(draw: st.DrawFn, obj: Any) -> bytes | str:
    text = json.dumps(obj, allow_nan=True)
    return draw(st.sampled_from([text, text.encode()]))


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_upbit_parser_survives_any_bytes(frame: bytes | str) -> None:
    _parse(UpbitAdapter(SYMBOLS), frame)


@FUZZ
@given(st.data())
def test_upbit_parser_survives_any_json_and_near_valid_frames(data: st.DataObject) -> None:
    obj = data.draw(JSON | _upbit_frame())
    _parse(UpbitAdapter(SYMBOLS), _encode(data.draw, obj))


def test_upbit_parser_accepts_the_unmutated_frame_shape() -> None:
    frame = {"type": "orderbook", "code": "KRW-BTC", "timestamp": NOW_NS // 1_000_000,
             "orderbook_units": [{"ask_price": 101.0, "bid_price": 100.0, "ask_size": 1.0, "bid_size": 2.0}]}
    top = _parse(UpbitAdapter(SYMBOLS), json.dumps(frame).encode())
    assert top is not None and (top.bid, top.ask) == (100.0, 101.0)


DECIMALS = st.text(alphabet="0123456789.eE+- _xn", min_size=0, max_size=10)
NUMERIC = st.decimals(min_value=0, max_value=10**9, allow_nan=False, places=8).map(lambda d: format(d, "f"))
LEVEL_STR = NUMERIC | DECIMALS


@st.composite
def _binance_frame(draw: st.DrawFn, *, junk: bool) -> dict[str, Any]:
    """A combined partial-depth frame; prices/sizes as strings (valid-looking
    or from a junk alphabet), levels sometimes of the wrong shape."""
    def side() -> list[Any]:
        lvl = st.lists(LEVEL_STR, min_size=2, max_size=2)
        if junk:
            lvl = lvl | st.lists(LEVEL_STR | JSON, max_size=3) | JSON
        return draw(st.lists(lvl, max_size=6))

    data: dict[str, Any] = {"lastUpdateId": draw(st.integers(0, 2**40)), "bids": side(), "asks": side()}
    if junk and draw(st.booleans()):
        data[draw(st.sampled_from(["lastUpdateId", "bids", "asks", "E", "e"]))] = draw(JSON)
    coin = draw(st.sampled_from(["btc", "eth", "xrp", "BTC"]))
    return {"stream": f"{coin}usdt@depth20@100ms", "data": data}


@st.composite
def _sorted_book(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed book (best first, not crossed) whose strings still vary in form."""
    n = draw(st.integers(1, 6))
    mid = draw(st.floats(1, 1e6))
    step = mid * 1e-4
    fmt = draw(st.sampled_from(["{:.8f}", "{:.2f}", "{}", "{:.3e}", "{:.0f}"]))
    bids = [[fmt.format(mid - step * (i + 1)), fmt.format(draw(st.floats(1e-6, 1e3)))] for i in range(n)]
    asks = [[fmt.format(mid + step * (i + 1)), fmt.format(draw(st.floats(1e-6, 1e3)))] for i in range(n)]
    bp, ap = [float(p) for p, _ in bids], [float(p) for p, _ in asks]
    # The format may round neighbours together or to zero: then it is not well formed.
    assume(bp == sorted(set(bp), reverse=True) and ap == sorted(set(ap)) and 0 < bp[0] < ap[0] and bp[-1] > 0)
    assume(all(float(q) > 0 for _, q in bids + asks))
    return {"stream": "btcusdt@depth20@100ms",
            "data": {"lastUpdateId": draw(st.integers(0, 2**40)), "bids": bids, "asks": asks}}


def _fast_and_slow(frame: bytes | str) -> tuple[Any, Any]:
    """Parse with the msgspec fast path and with the slow path alone."""
    out = []
    for fast in (True, False):
        a = BinanceAdapter(SYMBOLS)
        a._fast = fast
        try:
            top = a.parse(frame, NOW_NS)
            # ids and creation stamps differ between two parses by design
            out.append(("top", None if top is None else dataclasses.replace(top, id="", ts_ns=0)))
        except BadFrame as e:
            assert e.reason != PARSER_ERROR, f"parser bug on {frame!r}: {e}"
            out.append(("bad", e.reason))
    return out[0], out[1]


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_binance_parser_survives_any_bytes(frame: bytes | str) -> None:
    _parse(BinanceAdapter(SYMBOLS), frame)


@FUZZ
@given(st.data())
def test_binance_parser_survives_any_json_and_near_valid_frames(data: st.DataObject) -> None:
    obj = data.draw(JSON | _binance_frame(junk=True))
    _parse(BinanceAdapter(SYMBOLS), _encode(data.draw, obj))


@FUZZ
@given(st.data())
def test_binance_fast_path_agrees_with_the_slow_path(data: st.DataObject) -> None:
    obj = data.draw(_binance_frame(junk=False) | _binance_frame(junk=True) | _sorted_book())
    frame = _encode(data.draw, obj)

    fast, slow = _fast_and_slow(frame)

    assert fast == slow, f"fast {fast} != slow {slow} on {frame!r}"
    if fast[0] == "top" and fast[1] is not None:
        _sane(fast[1], "binance", SYMBOLS)


@FUZZ
@given(_sorted_book())
def test_binance_accepts_every_well_formed_book(obj: dict[str, Any]) -> None:
    fast, slow = _fast_and_slow(json.dumps(obj))
    assert fast == slow
    assert fast[0] == "top" and fast[1] is not None, f"refused a well-formed book: {fast} {obj}"
