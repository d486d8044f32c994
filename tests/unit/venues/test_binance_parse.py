"""Binance partial-depth / bookTicker parsing: shapes, every bad-frame class,
agreement with ccxt's own parser, and a fuzz that never escapes ``parse``."""

from __future__ import annotations

import json
import math
import warnings
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import venues
from messages.market import BookTop
from venues import BadFrame
from venues.binance import BinanceAdapter

NOW_NS = 1_730_000_000_000_000_000
SYMBOLS = ("BTC", "ETH", "XRP")


def levels(start: float, step: float, n: int = 20, dec: int = 8) -> list[list[str]]:
    return [[f"{start + i * step:.{dec}f}", f"{0.5 + i * 0.25:.8f}"] for i in range(n)]


def depth(stream: str = "btcusdt@depth20@100ms", **data_over) -> bytes:
    data = {"lastUpdateId": 160, "bids": levels(68000.0, -0.01), "asks": levels(68000.01, 0.01)}
    data.update(data_over)
    for k, v in list(data.items()):
        if v is ...:
            del data[k]
    return json.dumps({"stream": stream, "data": data}).encode()


def book_ticker(**over) -> bytes:
    msg = {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
           "a": "25.36520000", "A": "40.66000000"}
    msg.update(over)
    return json.dumps(msg).encode()


@pytest.fixture
def adapter() -> BinanceAdapter:
    return BinanceAdapter(SYMBOLS)


def reason_of(adapter: BinanceAdapter, frame: bytes | str, recv: int = NOW_NS) -> str:
    with pytest.raises(BadFrame) as ei:
        adapter.parse(frame, recv)
    return ei.value.reason


# -- connection --------------------------------------------------------------

def test_ws_url_is_the_combined_stream_of_every_coin(adapter):
    url = adapter.ws_url("wss://stream.binance.com:9443/ws", ["BTC", "ETH"])
    assert url == ("wss://stream.binance.com:9443/stream?streams="
                   "btcusdt@depth20@100ms/ethusdt@depth20@100ms")


def test_ws_url_accepts_a_sim_base_with_trailing_slash(adapter):
    assert adapter.ws_url("ws://127.0.0.1:9000/ws/", ["XRP"]) == (
        "ws://127.0.0.1:9000/stream?streams=xrpusdt@depth20@100ms")


def test_combined_url_needs_no_subscribe_message(adapter):
    assert adapter.subscribe_messages(["BTC"]) == []


def test_usdt_is_not_a_binance_symbol():
    assert BinanceAdapter(["BTC", "USDT"]).symbols == ("BTC",)


# -- good frames -----------------------------------------------------------

def test_parses_a_twenty_level_combined_depth_frame(adapter):
    top = adapter.parse(depth(), NOW_NS)
    assert isinstance(top, BookTop)
    assert (top.venue, top.symbol) == ("binance", "BTC")
    assert (top.bid, top.ask, top.bid_size, top.ask_size) == (68000.0, 68000.01, 0.5, 0.5)
    assert len(top.bids) == len(top.asks) == 20
    assert top.bids[1] == (67999.99, 0.75) and top.asks[19] == (68000.2, 5.25)
    assert all(type(p) is float and type(q) is float for p, q in top.bids + top.asks)
    assert top.recv_ts_ns == NOW_NS and top.exch_ts_ns == 0  # spot partial depth has no time


def test_reference_example_with_integer_strings_parses(adapter):
    frame = depth(stream="ethusdt@depth5", bids=[["0.0024", "10"]], asks=[["0.0026", "100"]])
    top = adapter.parse(frame, NOW_NS)
    assert (top.symbol, top.bid, top.bid_size, top.ask, top.ask_size) == ("ETH", 0.0024, 10.0, 0.0026, 100.0)
    assert type(top.bid_size) is float


def test_max_levels_trims_the_book():
    top = BinanceAdapter(SYMBOLS, max_levels=5).parse(depth(), NOW_NS)
    assert len(top.bids) == len(top.asks) == 5


def test_event_time_when_present_is_the_exchange_timestamp(adapter):
    top = adapter.parse(depth(E=NOW_NS // 1_000_000 - 5), NOW_NS)
    assert top.exch_ts_ns == NOW_NS - 5_000_000


def test_raw_book_ticker_names_its_symbol():
    top = BinanceAdapter(["BNB"]).parse(book_ticker(), NOW_NS)
    assert (top.symbol, top.bid, top.bid_size, top.ask, top.ask_size) == (
        "BNB", 25.3519, 31.21, 25.3652, 40.66)
    assert top.bids == ((25.3519, 31.21),)


def test_combined_book_ticker(adapter):
    inner = json.loads(book_ticker(s="BTCUSDT", b="68000.00", a="68000.01"))
    frame = json.dumps({"stream": "btcusdt@bookTicker", "data": inner})
    assert adapter.parse(frame, NOW_NS).bid == 68000.0


def test_raw_depth_frame_is_accepted_when_one_symbol_is_watched():
    raw = json.dumps(json.loads(depth())["data"])
    assert BinanceAdapter(["BTC"]).parse(raw, NOW_NS).symbol == "BTC"


def test_text_and_bytes_frames_parse_the_same(adapter):
    a = adapter.parse(depth(), NOW_NS)
    adapter.reset()
    b = adapter.parse(depth().decode(), NOW_NS)
    assert (a.bids, a.asks) == (b.bids, b.asks)


@pytest.mark.parametrize("frame", [
    '{"result":null,"id":1}', '{"result":["btcusdt@depth20"],"id":"abc"}', b'{"result":null,"id":7}',
])
def test_subscription_acks_are_ignorable_not_bad(adapter, frame):
    assert adapter.parse(frame, NOW_NS) is None


def test_equal_update_id_is_accepted_but_a_lower_one_is_out_of_order(adapter):
    adapter.parse(depth(lastUpdateId=200), NOW_NS)
    adapter.parse(depth(lastUpdateId=200), NOW_NS)
    assert reason_of(adapter, depth(lastUpdateId=199)) == venues.OUT_OF_ORDER
    adapter.parse(depth(stream="ethusdt@depth20@100ms", lastUpdateId=5), NOW_NS)  # per symbol


def test_reset_forgets_update_ids_for_a_new_connection(adapter):
    adapter.parse(depth(lastUpdateId=200), NOW_NS)
    adapter.reset()
    assert adapter.parse(depth(lastUpdateId=1), NOW_NS) is not None


# -- bad frames: every class, counted ---------------------------------------

BAD_FRAMES: list[tuple[str, bytes | str]] = [
    (venues.NOT_JSON, b"\x00\xff garbage"),
    (venues.NOT_JSON, b'{"stream": "btcusdt@depth20@100ms", "data": {'),
    (venues.NOT_JSON, b"\xc3\x28"),  # invalid UTF-8
    (venues.BAD_SHAPE, b"[1, 2, 3]"),
    (venues.BAD_SHAPE, b'"just a string"'),
    (venues.BAD_SHAPE, b'{"stream": "btcusdt@depth20@100ms", "data": [1]}'),
    (venues.BAD_SHAPE, depth(bids={"0": "1"})),
    (venues.BAD_SHAPE, depth(bids=[["68000.00"]])),
    (venues.BAD_SHAPE, depth(bids=["68000.00", "1.0"])),
    (venues.BAD_SHAPE, b'{"hello": "world"}'),
    (venues.WRONG_TYPE, depth(stream="btcusdt@trade")),
    (venues.WRONG_TYPE, json.dumps({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 2, "b": [], "a": []}})),
    (venues.WRONG_TYPE, b'{"e": "trade", "E": 1, "s": "BTCUSDT", "p": "1", "q": "1"}'),
    (venues.MISSING_FIELD, depth(bids=...)),
    (venues.MISSING_FIELD, depth(lastUpdateId=...)),
    (venues.MISSING_FIELD, depth(bids=[])),
    (venues.MISSING_FIELD, book_ticker(s="BTCUSDT", A=None)),
    (venues.MISSING_FIELD, b'{"u":"x","s":null,"b":[[1,2,3]],"a":"oops"}'),  # the sim's garbage
    (venues.BAD_NUMBER, depth(bids=[["abc", "1.0"]])),
    (venues.BAD_NUMBER, depth(bids=[["NaN", "1.0"]])),
    (venues.BAD_NUMBER, depth(asks=[["Infinity", "1.0"]])),
    (venues.BAD_NUMBER, depth(bids=[["-68000.00", "1.0"]])),
    (venues.BAD_NUMBER, depth(bids=[["0.00000000", "1.0"]])),
    (venues.BAD_NUMBER, depth(bids=[["68000.00", "0.00000000"]])),
    (venues.BAD_NUMBER, depth(asks=[["68000.01", "-1.0"]])),
    (venues.BAD_NUMBER, depth(bids=[[68000.0, 1.0]])),  # numbers where strings belong
    (venues.BAD_NUMBER, depth(bids=[["1e999", "1.0"]])),
    (venues.BAD_NUMBER, depth(lastUpdateId="160")),
    (venues.BAD_NUMBER, depth(E="soon")),
    (venues.BAD_NUMBER, book_ticker(s="BTCUSDT", b="nan")),
    (venues.UNSORTED, depth(bids=[["1.00", "1.0"], ["2.00", "1.0"]], asks=[["3.00", "1.0"]])),
    (venues.UNSORTED, depth(bids=[["2.00", "1.0"]], asks=[["4.00", "1.0"], ["3.00", "1.0"]])),
    (venues.CROSSED, depth(bids=[["68000.02", "1.0"]], asks=[["68000.01", "1.0"]])),
    (venues.CROSSED, depth(bids=[["68000.01", "1.0"]], asks=[["68000.01", "1.0"]])),
    (venues.CROSSED, book_ticker(s="BTCUSDT", b="2.0", a="1.0")),
    (venues.STALE, depth(E=(NOW_NS - 31_000_000_000) // 1_000_000)),
    (venues.UNKNOWN_SYMBOL, depth(stream="dogeusdt@depth20@100ms")),
    (venues.UNKNOWN_SYMBOL, book_ticker(s="DOGEUSDT")),
    (venues.UNKNOWN_SYMBOL, json.dumps(json.loads(depth())["data"])),  # raw depth, 3 symbols
    (venues.VENUE_ERROR, b'{"code": 2, "msg": "Invalid request: unknown property"}'),
]


@pytest.mark.parametrize(("reason", "frame"), BAD_FRAMES,
                         ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_FRAMES)])
def test_bad_frame_is_classified(adapter, reason, frame):
    assert reason_of(adapter, frame) == reason


def test_every_bad_frame_reason_is_exercised():
    # out_of_order needs two frames: see test_equal_update_id_is_accepted_...
    seen = {r for r, _ in BAD_FRAMES}
    assert seen == set(venues.BAD_FRAME_REASONS) - {venues.PARSER_ERROR, venues.OUT_OF_ORDER}


def test_bad_frames_are_counted_by_reason(adapter):
    counts: Counter[str] = Counter()
    tops = 0
    for _, frame in BAD_FRAMES:
        try:
            tops += adapter.parse(frame, NOW_NS) is not None
        except BadFrame as e:
            counts[e.reason] += 1
    assert tops == 0
    assert counts == Counter(r for r, _ in BAD_FRAMES)


def test_a_bad_frame_does_not_advance_the_update_id(adapter):
    reason_of(adapter, depth(lastUpdateId=500, bids=[["abc", "1"]]))
    assert adapter.parse(depth(lastUpdateId=10), NOW_NS) is not None


def test_slow_path_alone_classifies_the_same():
    slow = BinanceAdapter(SYMBOLS)
    slow._fast = False
    for reason, frame in BAD_FRAMES:
        assert reason_of(slow, frame) == reason


# -- agreement with ccxt ------------------------------------------------------

@pytest.fixture(scope="module")
def ccxt_binance():
    import ccxt.pro

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ccxt.pro.binance()


@pytest.mark.parametrize("frame", [
    depth(),
    depth(stream="ethusdt@depth10@100ms", bids=levels(3500.5, -0.1, 10, 2), asks=levels(3500.51, 0.1, 10, 2)),
    depth(stream="xrpusdt@depth5", bids=levels(0.5123, -0.0001, 5, 4), asks=levels(0.5124, 0.0001, 5, 4)),
    depth(stream="ethusdt@depth5", bids=[["0.0024", "10"]], asks=[["0.0026", "100"]]),
])
def test_depth_levels_agree_with_ccxt_parse_order_book(adapter, ccxt_binance, frame):
    data = json.loads(frame)["data"]
    ours = adapter.parse(frame, NOW_NS)
    theirs = ccxt_binance.parse_order_book(data, "BTC/USDT")
    assert [list(lv) for lv in ours.bids] == theirs["bids"]
    assert [list(lv) for lv in ours.asks] == theirs["asks"]
    assert (ours.bid, ours.bid_size) == tuple(theirs["bids"][0])
    assert (ours.ask, ours.ask_size) == tuple(theirs["asks"][0])


def test_book_ticker_agrees_with_ccxt_parse_ws_ticker(ccxt_binance):
    frame = book_ticker()
    ours = BinanceAdapter(["BNB"]).parse(frame, NOW_NS)
    theirs = ccxt_binance.parse_ws_ticker(json.loads(frame), "spot")
    assert (ours.bid, ours.bid_size, ours.ask, ours.ask_size) == (
        theirs["bid"], theirs["bidVolume"], theirs["ask"], theirs["askVolume"])


# -- fuzz ------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=20,
)
_num_str = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=False, allow_infinity=False, places=8).map(str),
    st.text(alphabet="0123456789.-+eE ,[]\"tn_", max_size=10),
)
_level = st.one_of(st.lists(_num_str, min_size=2, max_size=2), st.lists(_num_str, max_size=3), _json_values)


@st.composite
def _depthish(draw) -> bytes:
    data = {"lastUpdateId": draw(st.integers(0, 10)),
            "bids": draw(st.lists(_level, max_size=4)), "asks": draw(st.lists(_level, max_size=4))}
    return json.dumps({"stream": draw(st.sampled_from(["btcusdt@depth20@100ms", "xrpusdt@depth5", "x@y"])),
                       "data": data}).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), _json_values.map(json.dumps), _depthish()))
def test_fuzz_parse_only_ever_returns_a_top_none_or_a_classified_bad_frame(frame):
    adapter = BinanceAdapter(SYMBOLS)
    try:
        out = adapter.parse(frame, NOW_NS)
    except BadFrame as e:
        assert e.reason in venues.BAD_FRAME_REASONS and e.reason != venues.PARSER_ERROR
        return
    if out is not None:
        assert out.bid < out.ask
        assert all(0 < p < math.inf and 0 < q < math.inf for p, q in out.bids + out.asks)
