"""Private stream frames -> OrderUpdate / BalanceUpdate: status mapping, fees, averages,
malformed frames, and the host safety check."""

from __future__ import annotations

import json
from typing import Any

import pytest

from venues.private_streams import (
    BalanceUpdate,
    BinanceParser,
    BinanceUserStream,
    ListenKeyExpired,
    MalformedFrame,
    OrderUpdate,
    UpbitParser,
    UpbitPrivateStream,
    VenueStreamError,
    check_hosts,
    upbit_jwt,
)
from venues.sim.auth import decode_upbit_jwt

KEYS = {"apiKey": "k", "secret": "s"}


def report(**over: Any) -> str:
    """An executionReport as in binance-spot-api-docs user-data-stream.md."""
    base: dict[str, Any] = {
        "e": "executionReport", "E": 1499405658658, "s": "BTCUSDT", "c": "cid-1", "S": "BUY", "o": "LIMIT",
        "f": "IOC", "q": "0.50000000", "p": "68000.00000000", "P": "0.00000000", "F": "0.00000000", "g": -1,
        "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": 4293153, "l": "0.00000000", "z": "0.00000000",
        "L": "0.00000000", "n": "0", "N": None, "T": 1499405658657, "t": -1, "I": 8641984, "w": False,
        "m": False, "M": False, "O": 1499405658657, "Z": "0.00000000", "Y": "0.00000000", "Q": "0.00000000",
        "V": "NONE",
    }
    base.update(over)
    return json.dumps(base)


def my_order(**over: Any) -> bytes:
    """A myOrder frame as in ccxt 4.5.90 pro/upbit.py's sample."""
    base: dict[str, Any] = {
        "type": "myOrder", "code": "KRW-BTC", "uuid": "ac2dc2a3-fce9-40a2-a4f6-5987c25c438f", "ask_bid": "BID",
        "order_type": "limit", "state": "wait", "trade_uuid": None, "price": 98000000.0, "avg_price": 0.0,
        "volume": 0.01, "remaining_volume": 0.01, "executed_volume": 0.0, "trades_count": 0,
        "reserved_fee": 490.0, "remaining_fee": 490.0, "paid_fee": 0.0, "locked": 980490.0,
        "executed_funds": 0.0, "time_in_force": "ioc", "trade_fee": None, "is_maker": None,
        "identifier": "arb-1", "trade_timestamp": None, "order_timestamp": 1710751590000,
        "timestamp": 1710751597500, "stream_type": "REALTIME",
    }
    base.update(over)
    return json.dumps(base).encode()


def one(updates: list[Any]) -> Any:
    assert len(updates) == 1
    return updates[0]


# -- Binance ---------------------------------------------------------------------------------


def test_binance_ioc_sequence_new_trade_expired() -> None:
    p = BinanceParser()
    new = one(p.parse(report()))
    assert isinstance(new, OrderUpdate)
    assert (new.venue, new.client_order_id, new.venue_order_id, new.symbol, new.side) == \
        ("binance", "cid-1", "4293153", "BTC", "buy")
    assert (new.status, new.done, new.filled_qty, new.ts_ns) == ("open", False, 0.0, 1499405658658_000_000)
    # a BTC commission on a buy is converted at the fill price
    t1 = one(p.parse(report(x="TRADE", X="PARTIALLY_FILLED", l="0.1", z="0.1", L="68000", n="0.0001", N="BTC",
                            Z="6800", t=7)))
    assert (t1.status, t1.done, t1.filled_qty, t1.avg_price) == ("partially_filled", False, 0.1, 68000.0)
    assert t1.fee_quote == pytest.approx(6.8)
    t2 = one(p.parse(report(x="TRADE", X="PARTIALLY_FILLED", l="0.1", z="0.2", L="68010", n="0.0001", N="BTC",
                            Z="13601", t=8)))
    assert t2.avg_price == pytest.approx(68005.0)
    assert t2.fee_quote == pytest.approx(6.8 + 6.801)
    end = one(p.parse(report(x="EXPIRED", X="EXPIRED", z="0.2", Z="13601")))
    assert (end.status, end.done, end.filled_qty) == ("partially_filled", True, 0.2)
    assert end.fee_quote == pytest.approx(13.601)  # cumulative carried to the last event


def test_binance_quote_commission_and_fill() -> None:
    p = BinanceParser()
    u = one(p.parse(report(S="SELL", x="TRADE", X="FILLED", l="0.5", z="0.5", L="68000", n="34", N="USDT",
                           Z="34000")))
    assert (u.side, u.status, u.done, u.fee_quote, u.avg_price) == ("sell", "filled", True, 34.0, 68000.0)
    # the next order with the same id starts from zero (done orders are forgotten)
    again = one(p.parse(report(x="TRADE", X="PARTIALLY_FILLED", l="0.1", z="0.1", L="1", n="1", N="USDT", Z="0.1")))
    assert again.fee_quote == 1.0


def test_binance_commission_in_a_third_asset_is_not_counted() -> None:
    u = one(BinanceParser().parse(report(x="TRADE", X="FILLED", l="0.5", z="0.5", L="68000", n="0.01", N="BNB",
                                         Z="34000")))
    assert u.fee_quote == 0.0 and u.status == "filled"


@pytest.mark.parametrize(("x", "status", "z", "want", "done"), [
    ("CANCELED", "CANCELED", "0", "cancelled", True),
    ("CANCELED", "CANCELED", "0.1", "partially_filled", True),
    ("EXPIRED", "EXPIRED", "0", "cancelled", True),
    ("REJECTED", "REJECTED", "0", "rejected", True),
    ("NEW", "NEW", "0", "open", False),
])
def test_binance_status_mapping(x: str, status: str, z: str, want: str, done: bool) -> None:
    u = one(BinanceParser().parse(report(x=x, X=status, z=z, Z="0")))
    assert (u.status, u.done) == (want, done)


def test_binance_cancel_reports_the_original_client_id() -> None:
    u = one(BinanceParser().parse(report(x="CANCELED", X="CANCELED", c="cancelReqId123", C="cid-1")))
    assert u.client_order_id == "cid-1"


def test_binance_account_position_lists_changed_assets() -> None:
    raw = json.dumps({"e": "outboundAccountPosition", "E": 1564034571105, "u": 1564034571073,
                      "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"},
                            {"a": "USDT", "f": "5.5", "l": "1.25"}]})
    b = one(BinanceParser().parse(raw))
    assert isinstance(b, BalanceUpdate)
    assert b == BalanceUpdate("binance", {"ETH": 10000.0, "USDT": 5.5}, {"ETH": 0.0, "USDT": 1.25},
                              1564034571105_000_000, full=False)


def test_binance_other_events_are_ignored_and_expiry_is_signalled() -> None:
    p = BinanceParser()
    assert p.parse('{"e":"balanceUpdate","E":1,"a":"BTC","d":"1","T":1}') == []
    assert p.parse('{"result":null,"id":1}') == []
    with pytest.raises(ListenKeyExpired):
        p.parse('{"e":"listenKeyExpired","E":1,"listenKey":"x"}')


@pytest.mark.parametrize("raw", [
    b"\xff\xfe garbage", "not json", "[1,2", "[]", '{"x":1}', report(X="WHATEVER"), report(S="UP"),
    report(z="abc"), report(z=None), report(E="soon"), report(z="nan"),
    '{"e":"outboundAccountPosition","E":1,"B":"oops"}', '{"e":"outboundAccountPosition","E":1,"B":[{"a":"X"}]}',
])
def test_binance_malformed_frames_raise_malformed(raw: str | bytes) -> None:
    with pytest.raises(MalformedFrame):
        BinanceParser().parse(raw)


# -- Upbit -----------------------------------------------------------------------------------


def test_upbit_sequence_wait_trade_done() -> None:
    p = UpbitParser()
    w = one(p.parse(my_order()))
    assert (w.venue, w.client_order_id, w.venue_order_id, w.symbol, w.side, w.status, w.done) == \
        ("upbit", "arb-1", "ac2dc2a3-fce9-40a2-a4f6-5987c25c438f", "BTC", "buy", "open", False)
    t = one(p.parse(my_order(state="trade", trade_uuid="t1", price=97990000.0, volume=0.004,
                             executed_volume=0.004, executed_funds=391960.0, avg_price=97990000.0,
                             paid_fee=195.98, trade_fee=195.98, is_maker=False)))
    assert (t.status, t.done, t.filled_qty, t.avg_price, t.fee_quote) == \
        ("partially_filled", False, 0.004, 97990000.0, 195.98)
    d = one(p.parse(my_order(state="done", executed_volume=0.01, executed_funds=979950.0, avg_price=None,
                             paid_fee=489.975)))
    assert (d.status, d.done, d.filled_qty, d.fee_quote) == ("filled", True, 0.01, 489.975)
    assert d.avg_price == pytest.approx(97995000.0)  # executed_funds / executed_volume


@pytest.mark.parametrize(("state", "executed", "volume", "want", "done"), [
    ("watch", 0.0, 0.01, "open", False),
    ("cancel", 0.0, 0.01, "cancelled", True),
    ("cancel", 0.004, 0.01, "partially_filled", True),
    ("done", 0.004, 0.01, "partially_filled", True),  # an ioc that ended short
    ("done", 0.01, 0.01, "filled", True),
    ("done", 0.01, None, "filled", True),  # a price (market buy) order has no volume
])
def test_upbit_status_mapping(state: str, executed: float, volume: float | None, want: str, done: bool) -> None:
    u = one(UpbitParser().parse(my_order(state=state, executed_volume=executed, volume=volume,
                                         executed_funds=executed * 98e6)))
    assert (u.status, u.done) == (want, done)


def test_upbit_asset_frame_and_list_format_and_keepalives() -> None:
    raw = json.dumps([{"type": "myAsset", "asset_uuid": "e635f223", "assets": [
        {"currency": "KRW", "balance": 1386929.37, "locked": 10329.67}], "asset_timestamp": 1710146517259,
        "timestamp": 1710146517267, "stream_type": "REALTIME"}])
    b = one(UpbitParser().parse(raw))
    assert b == BalanceUpdate("upbit", {"KRW": 1386929.37}, {"KRW": 10329.67}, 1710146517267_000_000, full=False)
    assert UpbitParser().parse(b'{"status":"UP"}') == []
    assert UpbitParser().parse(my_order(identifier=None))[0].client_order_id == ""


def test_upbit_error_frame_is_a_venue_error() -> None:
    with pytest.raises(VenueStreamError, match="INVALID_AUTH"):
        UpbitParser().parse(b'{"error":{"name":"INVALID_AUTH","message":"x"}}')


@pytest.mark.parametrize("raw", [
    b"\xc3\x28", b"{", b"[1]", b'{"foo":1}', my_order(state="sleeping"), my_order(ask_bid="UP"),
    my_order(executed_volume="many"), my_order(executed_volume=True), my_order(timestamp=None),
    my_order(code=None), b'{"type":"myAsset","assets":{},"timestamp":1}',
])
def test_upbit_malformed_frames_raise_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedFrame):
        UpbitParser().parse(raw)


def test_upbit_jwt_verifies_with_the_sim_auth() -> None:
    payload = decode_upbit_jwt(upbit_jwt("ak", "sk"), {"ak": "sk"})
    assert payload["access_key"] == "ak" and payload["nonce"] and "query_hash" not in payload


# -- safety ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("venue", "rest", "ws"), [
    ("binance", "http://127.0.0.1:1", "ws://127.0.0.1:2/ws"),
    ("binance", "http://localhost:1", "ws://[::1]:2/ws"),
    ("binance", "https://api.binance.com", "wss://stream.binance.com:9443/ws"),
    ("upbit", "https://api.upbit.com", "wss://api.upbit.com/websocket/v1"),
    ("upbit", "http://127.0.0.1:1", "ws://127.0.0.1:1/websocket/v1"),
])
def test_hosts_both_loopback_or_both_real_pass(venue: str, rest: str, ws: str) -> None:
    check_hosts(venue, rest, ws)


@pytest.mark.parametrize(("cls", "rest", "ws"), [
    (BinanceUserStream, "http://127.0.0.1:1", "wss://stream.binance.com:9443/ws"),
    (BinanceUserStream, "https://api.binance.com", "ws://127.0.0.1:2/ws"),
    (BinanceUserStream, "http://10.0.0.5:1", "ws://10.0.0.5:2/ws"),
    (UpbitPrivateStream, "http://127.0.0.1:1", "wss://api.upbit.com/websocket/v1"),
    (UpbitPrivateStream, "https://api.upbit.com.evil.example", "wss://api.upbit.com/websocket/v1"),
])
def test_mixed_hosts_are_refused_in_init(cls: type, rest: str, ws: str) -> None:
    with pytest.raises(ValueError, match="private stream refused"):
        cls(rest, ws, KEYS, on_order=print, on_balance=print, on_state=print)


def test_keys_are_required_and_never_in_the_error() -> None:
    with pytest.raises(ValueError) as info:
        UpbitPrivateStream("http://127.0.0.1:1", "ws://127.0.0.1:1/websocket/v1", {"apiKey": "SECRETKEY"},
                           on_order=print, on_balance=print, on_state=print)
    assert "SECRETKEY" not in str(info.value)
