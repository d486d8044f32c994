"""Upbit orderbook parsing: shapes, every bad-frame class, agreement with
ccxt's own handler, and a fuzz that never escapes ``parse``."""

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
from venues.upbit import UpbitAdapter

NOW_NS = 1_730_000_000_123_000_000
NOW_MS = NOW_NS // 1_000_000
SYMBOLS = ("BTC", "ETH", "XRP")


def units(bid: float, ask: float, step: float, n: int = 15) -> list[dict]:
    return [{"ask_price": ask + i * step, "bid_price": bid - i * step,
             "ask_size": 0.125 + i, "bid_size": 0.31 + i} for i in range(n)]


def book(code: str = "KRW-BTC", **over) -> bytes:
    msg = {"type": "orderbook", "code": code, "timestamp": NOW_MS,
           "total_ask_size": 4.512, "total_bid_size": 7.204,
           "orderbook_units": units(98_000_000.0, 98_001_000.0, 1000.0),
           "level": 0, "stream_type": "REALTIME"}
    msg.update(over)
    for k, v in list(msg.items()):
        if v is ...:
            del msg[k]
    return json.dumps(msg).encode()  # Upbit sends binary frames of UTF-8 JSON


@pytest.fixture
def adapter() -> UpbitAdapter:
    return UpbitAdapter(SYMBOLS)


def reason_of(adapter: UpbitAdapter, frame: bytes | str, recv: int = NOW_NS) -> str:
    with pytest.raises(BadFrame) as ei:
        adapter.parse(frame, recv)
    return ei.value.reason


# -- connection --------------------------------------------------------------

def test_subscribe_is_one_array_with_a_ticket_and_every_code_plus_fx(adapter):
    (msg,) = adapter.subscribe_messages(["BTC", "ETH", "XRP"])
    assert isinstance(msg, str)
    req = json.loads(msg)
    assert set(req[0]) == {"ticket"} and req[0]["ticket"].startswith("arbd-")
    assert req[1] == {"type": "orderbook",
                      "codes": ["KRW-BTC.15", "KRW-ETH.15", "KRW-XRP.15", "KRW-USDT.15"]}
    assert len(req) == 2


def test_each_subscription_gets_a_fresh_ticket(adapter):
    a = json.loads(adapter.subscribe_messages(["BTC"])[0])[0]["ticket"]
    b = json.loads(adapter.subscribe_messages(["BTC"])[0])[0]["ticket"]
    assert a != b


def test_usdt_is_not_doubled_when_asked_for(adapter):
    req = json.loads(adapter.subscribe_messages(["USDT", "BTC"])[0])
    assert req[1]["codes"] == ["KRW-USDT.15", "KRW-BTC.15"]


def test_ws_url_is_the_full_websocket_url(adapter):
    assert adapter.ws_url("wss://api.upbit.com/websocket/v1", ["BTC"]) == "wss://api.upbit.com/websocket/v1"


# -- good frames -------------------------------------------------------------

def test_parses_the_reference_orderbook_example(adapter):
    frame = (b'{"type":"orderbook","code":"KRW-BTC","timestamp":1730000000123,'
             b'"total_ask_size":4.512,"total_bid_size":7.204,"orderbook_units":['
             b'{"ask_price":98001000.0,"bid_price":98000000.0,"ask_size":0.125,"bid_size":0.310},'
             b'{"ask_price":98002000.0,"bid_price":97999000.0,"ask_size":0.400,"bid_size":1.022}],'
             b'"level":0,"stream_type":"REALTIME"}')
    top = adapter.parse(frame, NOW_NS)
    assert isinstance(top, BookTop)
    assert (top.venue, top.symbol, top.bid, top.ask, top.bid_size, top.ask_size) == (
        "upbit", "BTC", 98_000_000.0, 98_001_000.0, 0.31, 0.125)
    assert top.bids == ((98_000_000.0, 0.31), (97_999_000.0, 1.022))
    assert top.asks == ((98_001_000.0, 0.125), (98_002_000.0, 0.4))
    assert top.exch_ts_ns == 1_730_000_000_123_000_000 and top.recv_ts_ns == NOW_NS


def test_krw_usdt_is_the_fx_book_named_usdt(adapter):
    top = adapter.parse(book("KRW-USDT", orderbook_units=units(1389.5, 1390.0, 0.5)), NOW_NS)
    assert (top.symbol, top.bid, top.ask) == ("USDT", 1389.5, 1390.0)


def test_integer_prices_become_floats(adapter):
    frame = book(orderbook_units=[{"ask_price": 1390, "bid_price": 1389, "ask_size": 10, "bid_size": 5}])
    top = adapter.parse(frame, NOW_NS)
    assert type(top.bid) is float and top.bids == ((1389.0, 5.0),)


def test_snapshot_and_text_frames_parse_too(adapter):
    assert adapter.parse(book(stream_type="SNAPSHOT").decode(), NOW_NS).symbol == "BTC"


def test_an_echoed_depth_suffix_is_tolerated(adapter):
    assert adapter.parse(book("KRW-ETH.15"), NOW_NS).symbol == "ETH"


def test_max_levels_trims_the_book():
    assert len(UpbitAdapter(SYMBOLS, max_levels=3).parse(book(), NOW_NS).bids) == 3


@pytest.mark.parametrize("frame", [
    b'{"status":"UP"}', '{"status": "UP"}',
    b'{"method":"LIST_SUBSCRIPTIONS","result":[],"ticket":"t"}',
])
def test_status_and_list_replies_are_ignorable_not_bad(adapter, frame):
    assert adapter.parse(frame, NOW_NS) is None


def test_a_slightly_old_frame_within_the_limit_is_accepted(adapter):
    assert adapter.parse(book(timestamp=NOW_MS - 29_000), NOW_NS) is not None


# -- bad frames: every class, counted ----------------------------------------

BAD_FRAMES: list[tuple[str, bytes | str]] = [
    (venues.NOT_JSON, b"\x00\x01\x02"),
    (venues.NOT_JSON, b"PONG"),
    (venues.NOT_JSON, book()[:-7]),
    (venues.NOT_JSON, b"\xff\xfe{}"),
    (venues.BAD_SHAPE, b"[]"),
    (venues.BAD_SHAPE, b"42"),
    (venues.BAD_SHAPE, book(orderbook_units={"ask_price": 1})),
    (venues.BAD_SHAPE, book(orderbook_units=[[1, 2, 3, 4]])),
    (venues.BAD_SHAPE, book(orderbook_units=["x"])),
    (venues.BAD_SHAPE, book(type=7)),
    (venues.WRONG_TYPE, book(type="ticker")),
    (venues.WRONG_TYPE, book(type="trade")),
    (venues.MISSING_FIELD, book(type=...)),
    (venues.MISSING_FIELD, book(code=...)),
    (venues.MISSING_FIELD, book(timestamp=...)),
    (venues.MISSING_FIELD, book(orderbook_units=...)),
    (venues.MISSING_FIELD, book(orderbook_units=[])),
    (venues.MISSING_FIELD, book(orderbook_units=[{"ask_price": 2.0, "ask_size": 1.0, "bid_price": 1.0}])),
    (venues.MISSING_FIELD, b'{"status":"UP","extra":1}'),
    (venues.BAD_NUMBER, book(orderbook_units=[{"ask_price": 2.0, "bid_price": 1.0, "ask_size": 1.0, "bid_size": None}])),
    (venues.BAD_NUMBER, book(orderbook_units=[{"ask_price": "x", "bid_price": 1.0, "ask_size": 1.0, "bid_size": 1.0}])),
    (venues.BAD_NUMBER, book(orderbook_units=[{"ask_price": 2.0, "bid_price": 0.0, "ask_size": 1.0, "bid_size": 1.0}])),
    (venues.BAD_NUMBER, book(orderbook_units=[{"ask_price": 2.0, "bid_price": 1.0, "ask_size": -1.0, "bid_size": 1.0}])),
    (venues.BAD_NUMBER, book(orderbook_units=[{"ask_price": 2.0, "bid_price": 1.0, "ask_size": 1.0, "bid_size": 0}])),
    (venues.BAD_NUMBER, book(orderbook_units=[{"ask_price": "NaN", "bid_price": 1.0, "ask_size": 1.0, "bid_size": 1.0}])),
    (venues.BAD_NUMBER, book(timestamp="1730000000123")),
    (venues.BAD_NUMBER, book(timestamp=1.73e12)),
    (venues.UNSORTED, book(orderbook_units=units(100.0, 200.0, -1.0, 3))),
    (venues.CROSSED, book(orderbook_units=units(200.0, 100.0, 1.0, 3))),
    (venues.CROSSED, book(orderbook_units=units(100.0, 100.0, 1.0, 3))),
    (venues.STALE, book(timestamp=NOW_MS - 31_000)),
    (venues.UNKNOWN_SYMBOL, book("KRW-DOGE")),
    (venues.UNKNOWN_SYMBOL, book("BTC-ETH")),
    (venues.UNKNOWN_SYMBOL, book(code=123)),
    (venues.VENUE_ERROR, b'{"error":{"name":"WRONG_FORMAT","message":"bad request"}}'),
    (venues.VENUE_ERROR, b'{"error":"INVALID_AUTH"}'),
]


@pytest.mark.parametrize(("reason", "frame"), BAD_FRAMES,
                         ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_FRAMES)])
def test_bad_frame_is_classified(adapter, reason, frame):
    assert reason_of(adapter, frame) == reason


def test_every_bad_frame_reason_is_exercised():
    # Upbit frames carry no update id (each is a full snapshot): no out_of_order.
    seen = {r for r, _ in BAD_FRAMES}
    assert seen == set(venues.BAD_FRAME_REASONS) - {venues.PARSER_ERROR, venues.OUT_OF_ORDER}


def test_bad_frames_are_counted_by_reason(adapter):
    counts: Counter[str] = Counter()
    for _, frame in BAD_FRAMES:
        try:
            assert adapter.parse(frame, NOW_NS) is None
        except BadFrame as e:
            counts[e.reason] += 1
    assert counts == Counter(r for r, _ in BAD_FRAMES)


def test_a_nan_literal_is_refused_whichever_json_decoder_runs(adapter):
    frame = ('{"type":"orderbook","code":"KRW-BTC","timestamp":' + str(NOW_MS) + ',"orderbook_units":'
             '[{"ask_price":NaN,"bid_price":1.0,"ask_size":1.0,"bid_size":1.0}]}')
    # orjson refuses the literal (not JSON); stdlib json reads it, then the range check does.
    assert reason_of(adapter, frame) in {venues.NOT_JSON, venues.BAD_NUMBER}


def test_stale_limit_is_configurable():
    a = UpbitAdapter(SYMBOLS, max_exchange_age_s=1.0)
    assert reason_of(a, book(timestamp=NOW_MS - 1_500)) == venues.STALE


# -- agreement with ccxt ---------------------------------------------------------

class _Client:
    """The one method ccxt.pro's handler calls on its connection."""

    def __init__(self) -> None:
        self.resolved: list[tuple[object, str]] = []

    def resolve(self, result: object, message_hash: str) -> None:
        self.resolved.append((result, message_hash))


@pytest.fixture(scope="module")
def ccxt_upbit():
    import ccxt.pro

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ccxt.pro.upbit({"options": {"watchOrderBook": {"limit": 30}}})


@pytest.mark.parametrize(("code", "rows"), [
    ("KRW-BTC", units(98_000_000.0, 98_001_000.0, 1000.0)),
    ("KRW-USDT", units(1389.5, 1390.0, 0.5, 30)),
    ("KRW-XRP", [{"ask_price": 812.3, "bid_price": 812.2, "ask_size": 1234.56789012, "bid_size": 0.00000001}]),
])
def test_levels_agree_with_ccxt_pro_upbit_handle_order_book(adapter, ccxt_upbit, code, rows):
    msg = json.loads(book(code, orderbook_units=rows, stream_type="SNAPSHOT"))
    client = _Client()
    ccxt_upbit.handle_order_book(client, msg)
    theirs, _hash = client.resolved[-1]
    ours = adapter.parse(json.dumps(msg).encode(), NOW_NS)
    assert [list(lv) for lv in ours.bids] == [list(lv) for lv in theirs["bids"]]
    assert [list(lv) for lv in ours.asks] == [list(lv) for lv in theirs["asks"]]
    assert ours.exch_ts_ns == theirs["timestamp"] * 1_000_000


# -- fuzz ----------------------------------------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=6), kids, max_size=4),
    max_leaves=20,
)
_num = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(), st.none(),
                 st.text(max_size=4), st.booleans())
_unit = st.one_of(
    st.fixed_dictionaries({"ask_price": _num, "bid_price": _num, "ask_size": _num, "bid_size": _num}),
    _json_values,
)


@st.composite
def _bookish(draw) -> str:
    msg = {"type": draw(st.sampled_from(["orderbook", "ticker", None, 3])),
           "code": draw(st.sampled_from(["KRW-BTC", "KRW-USDT", "KRW-DOGE", None, 5])),
           "timestamp": draw(st.one_of(st.integers(), st.just(NOW_MS), st.floats(), st.none())),
           "orderbook_units": draw(st.lists(_unit, max_size=4))}
    return json.dumps(msg)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=64), st.text(max_size=64), _json_values.map(json.dumps), _bookish()))
def test_fuzz_parse_only_ever_returns_a_top_none_or_a_classified_bad_frame(frame):
    adapter = UpbitAdapter(SYMBOLS)
    try:
        out = adapter.parse(frame, NOW_NS)
    except BadFrame as e:
        assert e.reason in venues.BAD_FRAME_REASONS and e.reason != venues.PARSER_ERROR
        return
    if out is not None:
        assert out.bid < out.ask
        assert all(0 < p < math.inf and 0 < q < math.inf for p, q in out.bids + out.asks)
