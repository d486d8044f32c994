"""The msgspec fast paths of ``UpbitAdapter.parse`` and ``BinanceAdapter.parse``
against the slow paths (``_parse``, orjson + ``float()``): on valid, corrupted
and crafted frames both give the same BookTop, the same BadFrame reason or the
same None, and the fast path really takes the frames the venues send.

Frames are written by :func:`dumps`, which can also write what ``json.dumps``
cannot: raw literals (``1e999``, a 400-digit int, a bare number where a string
belongs), repeated keys, spaces and raw non-ASCII text.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import venues
from venues import BadFrame
from venues.binance import BinanceAdapter
from venues.upbit import UpbitAdapter

NOW_NS = 1_730_000_000_000_000_000
NOW_MS = NOW_NS // 1_000_000
SYMBOLS = ("BTC", "ETH", "XRP")
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- writing frames ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Lit:
    """Raw JSON text, written as is."""

    text: str


class Obj(list):
    """A JSON object as (key, value) pairs, so a key may repeat."""


def dumps(v: Any, sep: str = ",", colon: str = ":", ascii_only: bool = True) -> str:
    def w(x: Any) -> str:
        if isinstance(x, Lit):
            return x.text
        if isinstance(x, dict):
            x = Obj(x.items())
        if isinstance(x, Obj):
            return "{" + sep.join(json.dumps(k, ensure_ascii=ascii_only) + colon + w(y) for k, y in x) + "}"
        if isinstance(x, list | tuple):
            return "[" + sep.join(w(y) for y in x) + "]"
        return json.dumps(x, ensure_ascii=ascii_only)
    return w(v)


# -- running both paths ------------------------------------------------------------------------


def outcome(adapter: Any, frame: bytes | str) -> tuple[str, str]:
    """What ``parse`` made of ``frame``; a BookTop as its repr (so 840 is not
    840.0 and -0.0 is not 0.0) without the per-message id and stamp."""
    try:
        top = adapter.parse(frame, NOW_NS)
    except BadFrame as e:
        assert e.reason != venues.PARSER_ERROR, f"parser bug on {frame!r}: {e}"
        return ("bad", e.reason)
    if top is None:
        return ("none", "")
    return ("top", repr(dataclasses.replace(top, id="", ts_ns=0)))


def agree(make: Callable[[], Any], frames: Sequence[bytes | str]) -> list[tuple[str, str]]:
    """Parse ``frames`` in order with the fast path on and off (fresh adapters,
    so per-connection state evolves alike); assert the outcomes are equal."""
    fast, slow = make(), make()
    slow._fast = False
    got = [outcome(fast, f) for f in frames]
    want = [outcome(slow, f) for f in frames]
    assert got == want, f"fast {got} != slow {want} on {frames!r}"
    return got


def fast_takes(adapter: Any, frame: bytes | str) -> bool:
    return adapter._parse_fast(frame, NOW_NS) is not None


def upbit() -> UpbitAdapter:
    return UpbitAdapter(SYMBOLS)


def binance() -> BinanceAdapter:
    return BinanceAdapter(SYMBOLS)


# -- Upbit -------------------------------------------------------------------------------------


def upbit_msg(units: list[dict[str, Any]] | None = None, **over: Any) -> Obj:
    if units is None:
        units = [{"ask_price": 101.0 + i, "bid_price": 100.0 - i, "ask_size": 1.5, "bid_size": 2}
                 for i in range(3)]
    msg = {"type": "orderbook", "code": "KRW-BTC", "timestamp": NOW_MS, "total_ask_size": 4.5,
           "total_bid_size": 6, "orderbook_units": units, "stream_type": "REALTIME", "level": 0}
    msg.update(over)
    return Obj((k, v) for k, v in msg.items() if v is not ...)


def upbit_unit(**over: Any) -> dict[str, Any]:
    u = {"ask_price": 101.0, "bid_price": 100.0, "ask_size": 1.0, "bid_size": 1.0}
    u.update(over)
    return {k: v for k, v in u.items() if v is not ...}


# Strange values for any field: the types Upbit never sends there, literals
# json.dumps cannot write, numbers at the edges of what orjson and msgspec take.
ODD = st.sampled_from([
    None, True, False, "840", "", "x", [], {}, [1, 2], {"a": 1}, 0, -1, 840, 840.5, -0.0,
    "ü", 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 1, 10**30, 1.5e300, 1e299, 5e-324,
    Lit("1e999"), Lit("-1e999"), Lit("1" + "0" * 400), Lit("NaN"), Lit("Infinity"), Lit("-0"),
    Lit("1E2"), Lit("1e-400"), Lit("1.7976931348623157e308"), Lit("[" * 1500 + "]" * 1500),
])
NUMBER = st.one_of(
    st.integers(1, 10**6), st.floats(1e-8, 1e9), st.integers(-5, 0), st.floats(allow_nan=False), ODD)


@st.composite
def upbit_frames(draw: st.DrawFn) -> bytes | str:
    """A valid orderbook frame (levels as JSON ints or floats), then up to
    three changes: a value replaced, a field dropped or added, a key repeated."""
    n = draw(st.integers(1, 20))
    mid = draw(st.one_of(st.integers(10, 10**8), st.floats(1.0, 1e8)))
    step = draw(st.sampled_from([1, 0.5, 1000, 0.001]))
    units = [{"ask_price": mid + step * (i + 1), "bid_price": mid - step * i,
              "ask_size": draw(st.floats(1e-8, 1e4) | st.integers(1, 99)),
              "bid_size": draw(st.floats(1e-8, 1e4) | st.integers(1, 99))} for i in range(n)]
    msg = upbit_msg(units, code=draw(st.sampled_from(["KRW-BTC", "KRW-USDT", "KRW-ETH.15", "KRW-DOGE",
                                                        "BTC-ETH"])),
                    timestamp=NOW_MS - draw(st.integers(-1_000, 40_000)))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["top", "unit", "drop", "add", "repeat", "swap"]))
        if where == "top":
            i = draw(st.integers(0, len(msg) - 1))
            msg[i] = (msg[i][0], draw(ODD))
        elif where == "unit" and units:
            u = draw(st.sampled_from(units))
            u[draw(st.sampled_from(sorted(u)))] = draw(NUMBER)
        elif where == "drop":
            if draw(st.booleans()) and units:
                u = draw(st.sampled_from(units))
                u.pop(draw(st.sampled_from(sorted(u))), None)
            elif msg:
                msg.pop(draw(st.integers(0, len(msg) - 1)))
        elif where == "add":
            target = draw(st.sampled_from(units)) if units and draw(st.booleans()) else None
            key, val = draw(st.sampled_from(["x", "level", "status", "error"])), draw(ODD)
            if target is None:
                msg.append((key, val))
            else:
                target[key] = val
        elif where == "repeat" and msg:
            k, _ = msg[draw(st.integers(0, len(msg) - 1))]
            msg.insert(draw(st.integers(0, len(msg))), (k, draw(ODD | st.just("KRW-BTC"))))
        elif where == "swap" and len(units) > 1:
            i, j = draw(st.integers(0, len(units) - 1)), draw(st.integers(0, len(units) - 1))
            units[i], units[j] = units[j], units[i]
    text = dumps(msg, sep=draw(st.sampled_from([",", ", "])), colon=draw(st.sampled_from([":", ": "])),
                 ascii_only=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text


@PROPERTY
@given(upbit_frames(), st.sampled_from([1, 3, 15, 30]))
def test_upbit_fast_path_agrees_with_the_slow_path(frame: bytes | str, max_levels: int) -> None:
    agree(lambda: UpbitAdapter(SYMBOLS, max_levels=max_levels), [frame])


@PROPERTY
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_upbit_fast_path_agrees_on_any_bytes(frame: bytes | str) -> None:
    agree(upbit, [frame])


@pytest.mark.parametrize(("literal", "fast"), [
    ("840", True),  # an int becomes 840.0, as float(840)
    ("840.0", True), ("1E2", True), ("1e-5", True), ("0.00000001", True),
    ("18446744073709551617", True),  # past u64: orjson reads it as a float too
    ("1e299", True),
    ('"840"', False),  # _parse: float("840"), a top
    ('" 1"', False), ('"1_000"', False),  # _parse takes these as well
    ("true", False),  # _parse: float(True) == 1.0, a top
    ("false", False), ("null", False), ('"x"', False), ("[]", False), ("{}", False),  # bad_number / bad_shape
    ("0", False), ("-0", False), ("-1.5", False), ("1e-400", False),  # bad_number
    ("1e300", False), ("1.7976931348623157e308", False),  # fine for _parse; past the fast bound
    ("1e999", False), ("1" + "0" * 400, False), ("NaN", False), ("Infinity", False),  # not_json
])
def test_upbit_number_literals(literal: str, fast: bool) -> None:
    frame = dumps(upbit_msg([upbit_unit(bid_size=Lit(literal))]))
    agree(upbit, [frame])
    assert fast_takes(upbit(), frame) is fast


def test_upbit_int_levels_become_floats_on_the_fast_path() -> None:
    frame = dumps(upbit_msg([upbit_unit(ask_price=1390, bid_price=1389, ask_size=10, bid_size=5)]))
    top = upbit()._parse_fast(frame, NOW_NS)
    assert top is not None and top.bids == ((1389.0, 5.0),) and top.asks == ((1390.0, 10.0),)
    assert all(type(x) is float for lv in top.bids + top.asks for x in lv)
    assert all(type(x) is float for x in (top.bid, top.ask, top.bid_size, top.ask_size))


UPBIT_CRAFTED: list[tuple[str, bytes | str]] = [
    # msgspec only syntax-checks what it skips; orjson refuses all of these.
    (venues.NOT_JSON, dumps(upbit_msg(x=Lit("1e999")))),
    (venues.NOT_JSON, dumps(upbit_msg(total_ask_size=Lit("1e999")))),
    (venues.NOT_JSON, dumps(upbit_msg(level=Lit("1" + "0" * 400)))),
    (venues.NOT_JSON, dumps(upbit_msg([upbit_unit(x=Lit("-1e999"))]))),
    (venues.NOT_JSON, dumps(upbit_msg(x="\udc80"), ascii_only=False).encode("utf-8", "surrogateescape")),
    (venues.NOT_JSON, dumps(upbit_msg(x="\ud800"), ascii_only=False)),  # a str frame, lone surrogate
    (venues.NOT_JSON, dumps(upbit_msg(x=Lit("[" * 1500 + "]" * 1500)))),  # past orjson's depth limit
    # orjson: int only up to 2**64-1, a float beyond; _parse wants an int.
    (venues.BAD_NUMBER, dumps(upbit_msg(timestamp=2**64))),
    (venues.BAD_NUMBER, dumps(upbit_msg(timestamp=10**30))),
    (venues.BAD_NUMBER, dumps(upbit_msg(timestamp=Lit(f"{NOW_MS}.0")))),
    (venues.BAD_NUMBER, dumps(upbit_msg(timestamp=True))),
    (venues.BAD_NUMBER, dumps(upbit_msg([upbit_unit(bid_size=False)]))),
    (venues.STALE, dumps(upbit_msg(timestamp=-1))),
    (venues.STALE, dumps(upbit_msg(timestamp=NOW_MS - 30_001))),
    (venues.UNKNOWN_SYMBOL, dumps(Obj([*upbit_msg(), ("code", "KRW-DOGE")]))),  # the last key wins
    (venues.UNSORTED, dumps(upbit_msg([upbit_unit(), upbit_unit(bid_price=100.5)]))),
    (venues.CROSSED, dumps(upbit_msg([upbit_unit(bid_price=101.0)]))),
    (venues.MISSING_FIELD, dumps(upbit_msg([upbit_unit(bid_size=...)]))),
    (venues.MISSING_FIELD, dumps(upbit_msg(type=...))),
    (venues.WRONG_TYPE, dumps(upbit_msg(type="ticker"))),
    (venues.MISSING_FIELD, dumps(upbit_msg([]))),
]


@pytest.mark.parametrize(("reason", "frame"), UPBIT_CRAFTED,
                         ids=[f"{r}-{i}" for i, (r, _) in enumerate(UPBIT_CRAFTED)])
def test_upbit_crafted_frames_get_the_slow_path_reason(reason: str, frame: bytes | str) -> None:
    assert agree(upbit, [frame]) == [("bad", reason)]
    assert not fast_takes(upbit(), frame)


@pytest.mark.parametrize("frame", [
    dumps(Obj([("code", "KRW-DOGE"), *upbit_msg()])),  # a repeated key: the last wins in both
    dumps(upbit_msg(x=1)),  # a field the fast path does not know: _parse takes it
    dumps(upbit_msg([upbit_unit(x=1)])),
    dumps(upbit_msg(level="0")),
    dumps(upbit_msg([upbit_unit(bid_size="2")])),
    dumps(upbit_msg([upbit_unit(), upbit_unit(bid_price=100.0, bid_size=2.0, ask_price=102.0)])),  # equal bids
    dumps(upbit_msg(stream_type="ü"), ascii_only=False).encode(),
    dumps(upbit_msg(), sep=", ", colon=": "),
    b'{"status":"UP"}',
])
def test_upbit_frames_the_slow_path_takes(frame: bytes | str) -> None:
    assert agree(upbit, [frame])[0][0] in {"top", "none"}


def test_upbit_fast_path_takes_the_bench_and_reference_frames() -> None:
    from bench.feed import upbit_frames as bench_frames

    a = UpbitAdapter(["BTC", "ETH", "XRP"], max_exchange_age_s=1e9)
    for frame in bench_frames(64):
        top = a._parse_fast(frame, NOW_NS)
        assert top is not None and len(top.bids) == 15
        assert agree(lambda: UpbitAdapter(["BTC", "ETH", "XRP"], max_exchange_age_s=1e9), [frame])
    for frame in (dumps(upbit_msg()), dumps(upbit_msg(level=..., stream_type=..., total_ask_size=...,
                                                      total_bid_size=...))):
        assert fast_takes(upbit(), frame) and fast_takes(upbit(), frame.encode())


# -- Binance ------------------------------------------------------------------------------------


def depth_msg(bids: Any = None, asks: Any = None, stream: str = "btcusdt@depth20@100ms",
              **data_over: Any) -> Obj:
    data = {"lastUpdateId": 160,
            "bids": [["68000.00", "1.5"], ["67999.99", "0.25"]] if bids is None else bids,
            "asks": [["68000.01", "2.0"], ["68000.02", "3"]] if asks is None else asks}
    data.update(data_over)
    return Obj([("stream", stream), ("data", Obj((k, v) for k, v in data.items() if v is not ...))])


# Strings where a decimal belongs: what float() takes (and msgspec may not),
# what neither takes, and JSON values that are no string at all.
EDGE_STRINGS = ["NaN", "nan", "Infinity", "inf", "-inf", "1e999", "-1e999", " 1", "1 ", "1.", ".5",
                "+1", "-1", "1_000", "0x10", "00.5", "01", "١", "１", "", "true", "null", "0", "-0",
                "0.00000000", "1e-400", "1e5", "1E5", "1.5e+3", "9.99e299", "1e300",
                "1.7976931348623157e308", "4.9e-324", "0.00000001", "68000.00"]
DECIMAL = st.one_of(
    st.decimals(min_value=0, max_value=10**7, allow_nan=False, places=8).map(lambda d: format(d, "f")),
    st.floats(1e-8, 1e7).map(repr),
    st.sampled_from(EDGE_STRINGS),
    st.text(alphabet="0123456789.eE+- _xn", max_size=10),
)
ELEMENT = st.one_of(DECIMAL, DECIMAL, DECIMAL, DECIMAL.map(lambda s: Lit(s) if s.strip() else Lit("1")),
                    ODD)


@st.composite
def binance_frames(draw: st.DrawFn) -> bytes | str:
    """A valid combined depth frame (or, now and then, a bookTicker or raw
    one), then up to three changes: a level element replaced by an odd string
    or a bare number, a level of another length, a field added, dropped,
    repeated or given an odd value."""
    n_b, n_a = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    mid = draw(st.floats(0.01, 1e6))
    dec = draw(st.sampled_from([2, 4, 8]))
    tick = max(10.0 ** -dec, mid * 1e-5)
    bids = [[f"{mid - tick * (i + 1):.{dec}f}", f"{draw(st.floats(1e-8, 1e3)):.8f}"] for i in range(n_b)]
    asks = [[f"{mid + tick * (i + 1):.{dec}f}", f"{draw(st.floats(1e-8, 1e3)):.8f}"] for i in range(n_a)]
    extra: dict[str, Any] = {}
    for k in draw(st.sets(st.sampled_from(["E", "T"]))):
        extra[k] = NOW_MS - draw(st.integers(-1_000, 40_000))
    msg = depth_msg(bids, asks, stream=draw(st.sampled_from([
        "btcusdt@depth20@100ms", "ethusdt@depth5", "xrpusdt@depth10@1000ms", "btcusdt@depth",
        "btcusdt@depth20@500ms", "dogeusdt@depth20", "BTCUSDT@depth20"])),
        lastUpdateId=draw(st.integers(0, 2**40)), **extra)
    data = msg[1][1]
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["element", "element", "level", "add", "drop", "repeat", "odd"]))
        side = draw(st.sampled_from([bids, asks]))
        if what == "element" and side:
            lvl = side[draw(st.integers(0, len(side) - 1))]
            if isinstance(lvl, list) and lvl:
                lvl[draw(st.integers(0, len(lvl) - 1))] = draw(ELEMENT)
        elif what == "level" and side:
            side[draw(st.integers(0, len(side) - 1))] = draw(st.lists(ELEMENT, max_size=3) | ODD)
        elif what == "add":
            target = data if draw(st.booleans()) else msg
            target.append((draw(st.sampled_from(["e", "E", "T", "x", "u", "result"])), draw(ODD)))
        elif what == "drop":
            target = data if draw(st.booleans()) else msg
            if target:
                target.pop(draw(st.integers(0, len(target) - 1)))
        elif what == "repeat":
            target = data if draw(st.booleans()) else msg
            if target:
                k, v = target[draw(st.integers(0, len(target) - 1))]
                target.insert(draw(st.integers(0, len(target))), (k, draw(st.just(v) | ODD)))
        elif what == "odd" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = (data[i][0], draw(ODD))
    shape = draw(st.sampled_from(["combined"] * 8 + ["raw", "ticker"]))
    if shape == "raw":
        obj: Any = data
    elif shape == "ticker":
        obj = Obj([("stream", "btcusdt@bookTicker"), ("data", {
            "u": 400900217, "s": "BTCUSDT", "b": draw(DECIMAL), "B": "31.21", "a": draw(DECIMAL), "A": "4"})])
    else:
        obj = msg
    text = dumps(obj, sep=draw(st.sampled_from([",", ", "])), colon=draw(st.sampled_from([":", ": "])),
                 ascii_only=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass") if draw(st.booleans()) else text


@PROPERTY
@given(st.lists(binance_frames(), min_size=1, max_size=4), st.sampled_from([1, 5, 20]),
       st.sampled_from([SYMBOLS, ("BTC",)]))
def test_binance_fast_path_agrees_with_the_slow_path(frames: list[bytes | str], max_levels: int,
                                                      symbols: tuple[str, ...]) -> None:
    # A sequence, so the per-symbol update ids evolve (and are compared) too.
    agree(lambda: BinanceAdapter(symbols, max_levels=max_levels), frames)


@PROPERTY
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_binance_fast_path_agrees_on_any_bytes(frame: bytes | str) -> None:
    agree(binance, [frame])


@PROPERTY
@given(st.lists(st.integers(0, 5), min_size=1, max_size=8))
def test_binance_update_ids_are_ordered_alike(uids: list[int]) -> None:
    outs = agree(binance, [dumps(depth_msg(lastUpdateId=u)) for u in uids])
    assert [o[0] for o in outs] == ["top" if u >= max(uids[: i + 1]) else "bad" for i, u in enumerate(uids)]


FAST_STRINGS = {"1e5", "1E5", "1.5e+3", "9.99e299", "4.9e-324", "0.00000001", "68000.00"}


@pytest.mark.parametrize("s", EDGE_STRINGS)
@pytest.mark.parametrize("place", ["bid_size", "ask_price"])
def test_binance_edge_strings(s: str, place: str) -> None:
    """msgspec (lax) takes a string only when it is float() of it, NaN/inf/<=0
    aside; what it refuses and float() takes, _parse takes."""
    if place == "bid_size":
        frame = dumps(depth_msg(bids=[["0.5", s]], asks=[["1e299", "1"]]))
    else:
        frame = dumps(depth_msg(bids=[["0.5", "1"]], asks=[[s, "1"]]))
    (got,) = agree(binance, [frame])
    try:
        value = float(s)
    except ValueError:
        assert got == ("bad", venues.BAD_NUMBER)
        assert not fast_takes(binance(), frame)
        return
    sane = 0 < value < math.inf and (place == "bid_size" or value > 0.5)
    assert fast_takes(binance(), frame) is (sane and s in FAST_STRINGS)
    assert got[0] == ("top" if sane else "bad"), got
    if not sane:
        assert got[1] == (venues.CROSSED if 0 < value < math.inf else venues.BAD_NUMBER)


def test_binance_escaped_decimal_strings_are_float_of_the_decoded_text() -> None:
    frame = dumps(depth_msg(bids=[[Lit('"6\\u0038000.00"'), "1"]]))
    assert agree(binance, [frame])[0][0] == "top"
    assert binance()._parse_fast(frame, NOW_NS).bid == 68000.0


BINANCE_CRAFTED: list[tuple[str, bytes | str]] = [
    # Bare numbers where strings belong; in the last, a repeated key's quotes
    # offset the missing ones (the ':' count catches it).
    (venues.BAD_NUMBER, dumps(depth_msg(bids=[[Lit("68000.0"), "1"]]))),
    (venues.BAD_NUMBER, dumps(depth_msg(asks=[["68001", Lit("2")]]))),
    (venues.BAD_NUMBER, dumps(Obj([("stream", "btcusdt@depth20@100ms"), ("data", Obj([
        ("lastUpdateId", 1), ("E", NOW_MS), ("E", NOW_MS),
        ("bids", [[Lit("68000.0"), "1"]]), ("asks", [["68001", "1"]])]))]))),
    (venues.BAD_NUMBER, dumps(Obj([("stream", "btcusdt@depth20@100ms"), ("data", Obj([
        ("lastUpdateId", 1), ("bids", [["1", Lit("1")]]), ("asks", [["2", "1"]]), ("lastUpdateId", 1)]))]))),
    # Lax msgspec ints would take these; _parse wants a JSON int.
    (venues.BAD_NUMBER, dumps(depth_msg(lastUpdateId="160"))),
    (venues.BAD_NUMBER, dumps(depth_msg(lastUpdateId=160.0))),
    (venues.BAD_NUMBER, dumps(depth_msg(lastUpdateId=True))),
    (venues.BAD_NUMBER, dumps(depth_msg(lastUpdateId=2**64))),  # a float to orjson
    (venues.BAD_NUMBER, dumps(depth_msg(E="5"))),
    (venues.MISSING_FIELD, dumps(depth_msg(lastUpdateId=None))),
    # msgspec only syntax-checks what it skips; orjson refuses all of these.
    (venues.NOT_JSON, dumps(depth_msg(x=Lit("1e999")))),
    (venues.NOT_JSON, dumps(depth_msg(E=NOW_MS, T=Lit("1" + "0" * 400)))),  # T unused: E wins
    (venues.NOT_JSON, dumps(depth_msg(E=NOW_MS, T=Lit("[" * 1500 + "]" * 1500)))),
    (venues.NOT_JSON, dumps(depth_msg(stream="btcusdt@depth20@100ms\udc80"), ascii_only=False)
     .encode("utf-8", "surrogateescape")),
    (venues.WRONG_TYPE, dumps(depth_msg(e="depthUpdate"))),
    (venues.STALE, dumps(depth_msg(T=NOW_MS - 31_000))),
    (venues.STALE, dumps(depth_msg(E=NOW_MS - 31_000, T=NOW_MS))),
    (venues.UNSORTED, dumps(depth_msg(bids=[["1.00", "1"], ["2.00", "1"]], asks=[["3", "1"]]))),
    (venues.CROSSED, dumps(depth_msg(bids=[["68000.01", "1"]]))),
    (venues.BAD_SHAPE, dumps(depth_msg(bids=[["68000.00"]]))),
    (venues.MISSING_FIELD, dumps(depth_msg(bids=[]))),
    (venues.UNKNOWN_SYMBOL, dumps(depth_msg(stream="dogeusdt@depth20@100ms"))),
    (venues.BAD_SHAPE, dumps(depth_msg(stream=Lit("5")))),
    (venues.BAD_NUMBER, dumps(depth_msg(bids=[["1.0", "2.0"], [["3.0"], "4.0"]]))),  # nested list
    (venues.BAD_SHAPE, dumps(depth_msg(bids=[["1.0,2.0"], ["3.0", "4.0", "5.0"]]))),  # comma in a string
    (venues.BAD_NUMBER, dumps(depth_msg(bids=[["[1.0", "2.0]"]]))),  # brackets in strings
    (venues.BAD_NUMBER, dumps(depth_msg(asks=[["3.0", {}]]))),
    (venues.BAD_SHAPE, dumps(depth_msg(bids=["10", ["3.0", "4.0"]]))),  # a two-char string level
]


@pytest.mark.parametrize(("reason", "frame"), BINANCE_CRAFTED,
                         ids=[f"{r}-{i}" for i, (r, _) in enumerate(BINANCE_CRAFTED)])
def test_binance_crafted_frames_get_the_slow_path_reason(reason: str, frame: bytes | str) -> None:
    assert agree(binance, [frame]) == [("bad", reason)]
    assert not fast_takes(binance(), frame)


@pytest.mark.parametrize(("frame", "fast"), [
    (dumps(depth_msg(E=NOW_MS - 5)), True),
    (dumps(depth_msg(T=NOW_MS - 5)), True),
    (dumps(depth_msg(E=NOW_MS, T=[1, 2])), False),  # T unused: both take the frame
    (dumps(depth_msg(E=None)), False),  # data.get("E") is None: no exchange time
    (dumps(depth_msg(stream="ethusdt@depth5")), True),
    (dumps(depth_msg(stream="btcusdt@depth20@500ms")), False),
    (dumps(depth_msg(stream="btcusdt@depth20\\u0040100ms")), False),
    (dumps(depth_msg(stream=Lit('"btcusdt@depth20\\u0040100ms"'))), True),  # an escape, not a '"'
    (dumps(depth_msg(x=1)), False),  # a field the fast path does not know
    (dumps(depth_msg(bids=[["68000.00", "1", "x"]])), False),  # _parse reads the first two
    (dumps(depth_msg(bids=[[" 68000", "1"]])), False),  # float() takes the space
    (dumps(depth_msg(bids=[["68000", "1"], ["68000", "2"]])), False),  # equal prices
    (dumps(Obj([*depth_msg(), ("stream", "ethusdt@depth20@100ms")])), False),  # the last wins
    (dumps(depth_msg(), sep=", ", colon=": "), True),
    ('{"result":null,"id":1}', False),
    (dumps({"stream": "btcusdt@bookTicker", "data": {"u": 1, "s": "BTCUSDT", "b": "1", "B": "1",
                                                    "a": "2", "A": "1"}}), False),
])
def test_binance_frames_both_paths_take(frame: str, fast: bool) -> None:
    assert agree(binance, [frame])[0][0] in {"top", "none"}
    assert agree(binance, [frame.encode()])[0][0] in {"top", "none"}
    assert fast_takes(binance(), frame) is fast and fast_takes(binance(), frame.encode()) is fast


def test_binance_raw_depth_for_one_symbol_takes_the_slow_path_alike() -> None:
    frame = dumps(depth_msg()[1][1])
    assert agree(lambda: BinanceAdapter(["BTC"]), [frame])[0][0] == "top"


def test_binance_fast_path_takes_the_bench_frames_in_order() -> None:
    from bench.feed import binance_templates

    frames = [t.replace("__UID__", str(i + 1)) for i, t in enumerate(binance_templates(64))]
    a = binance()
    for f in frames:
        top = a._parse_fast(f, NOW_NS)
        assert top is not None and len(top.bids) == len(top.asks) == 20
    assert [o[0] for o in agree(binance, frames)] == ["top"] * len(frames)
