"""The recorder subscribes exactly as the feeds do (plus trades) and names each
frame's stream once, so a replay routes frames without parsing them."""

from __future__ import annotations

import json

from venues import make_adapter
from venues.recorder import OTHER, binance_stream, binance_url, upbit_request, upbit_stream

SYMBOLS = ("BTC", "ETH")


def test_the_upbit_request_carries_the_feeds_orderbook_codes_and_the_trades() -> None:
    feed = json.loads(make_adapter("upbit", SYMBOLS).subscribe_messages(SYMBOLS)[0])
    rec = json.loads(upbit_request(SYMBOLS, trades=True))
    assert rec[1] == feed[1]  # same type, codes and depth: the same bytes come back
    assert rec[2] == {"type": "trade", "codes": ["KRW-BTC", "KRW-ETH", "KRW-USDT"]}
    assert len(json.loads(upbit_request(SYMBOLS, trades=False))) == 2


def test_the_binance_url_is_the_feeds_plus_the_trade_streams() -> None:
    feed = make_adapter("binance", SYMBOLS).ws_url("ws://h:1/ws", SYMBOLS)
    assert binance_url("ws://h:1/ws", SYMBOLS, trades=True) == feed + "/btcusdt@trade/ethusdt@trade"
    assert binance_url("ws://h:1/ws", SYMBOLS, trades=False) == feed


def test_frames_are_named_by_stream() -> None:
    assert upbit_stream(b'{"type":"orderbook","code":"KRW-BTC","timestamp":1}') == "orderbook:KRW-BTC"
    assert upbit_stream(b'{"type":"trade","code":"KRW-XRP"}') == "trade:KRW-XRP"
    assert upbit_stream(b'{"status":"UP"}') == OTHER
    assert upbit_stream(b"\xff garbage") == OTHER
    assert binance_stream(b'{"stream":"btcusdt@depth20@100ms","data":{}}') == "btcusdt@depth20@100ms"
    assert binance_stream(b'{"result":null,"id":1}') == OTHER
