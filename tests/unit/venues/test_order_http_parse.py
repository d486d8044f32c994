"""The order path's pure parts: decimal strings, refusal kinds, and order replies of both venues."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbitrage.venue_rules import BINANCE_TAKER_FEE, UPBIT_TAKER_FEE
from venues.order_http import (
    classify_binance,
    classify_upbit,
    num,
    parse_binance_order,
    parse_upbit_order,
)
from venues.sim import binance_format, upbit_format
from venues.sim.engine import Fill, SimOrder

# -- num ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("x", "text"), [
    (1e-5, "0.00001"), (0.00012, "0.00012"), (4e-9, "0"), (2.6e-8, "0.00000003"), (100_000.0, "100000"),
    (143_500_000.0, "143500000"), (0.1 + 0.2, "0.3"), (1.5, "1.5"), (0.0, "0"), (99_990.01, "99990.01"),
    (2.5e-7, "0.00000025"), (1e15, "1000000000000000"), (42.10, "42.1")])
def test_num_examples(x: float, text: str) -> None:
    assert num(x) == text


def assert_plain_decimal(text: str) -> None:
    assert "e" not in text.lower()
    assert text == "0" or not text.startswith("-")
    if "." in text:
        assert not text.endswith("0") and not text.endswith(".")


@settings(max_examples=150, deadline=None)
@given(k=st.integers(1, 10**9), decimals=st.integers(0, 8))
def test_num_of_grid_values_round_trips_without_exponent_or_trailing_zeros(k: int, decimals: int) -> None:
    # prices and quantities rounded to a tick / step grid, as the executor sends them
    x = round(k * 10.0**-decimals, decimals)
    if x >= 1e6:
        x = float(int(x))  # whole numbers up there (see test_num_of_a_large_value_with_a_fraction)

    text = num(x)

    assert_plain_decimal(text)
    assert float(text) == x
    assert Decimal(text) == Decimal(repr(x))  # exactly the shortest decimal of x, no float noise
    if "." in text:
        assert len(text.split(".")[1]) <= decimals


@pytest.mark.parametrize("x", [3567380.7, 1234567.12345678])
def test_num_of_a_large_value_with_a_fraction(x: float) -> None:
    assert Decimal(num(x)) == Decimal(repr(x))


# -- classify_binance ------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "code", "msg", "kind"), [
    (400, -2010, "Account has insufficient balance for requested action.", "funds"),
    (400, -1013, "Filter failure: LOT_SIZE", "filter"),
    (400, -1013, "Filter failure: NOTIONAL", "filter"),
    (400, -1013, "Filter failure: PRICE_FILTER", "filter"),
    (400, -1111, "Precision is over the maximum defined for this asset.", "filter"),
    (400, -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.", "filter"),
    (400, -2010, "Filter failure: PERCENT_PRICE_BY_SIDE", "filter"),
    (429, -1003, "Too many requests; current limit of IP(1.2.3.4) request weight per 1 MINUTE is 6000.",
     "rate_limit"),
    (418, -1003, "Way too many requests; IP(1.2.3.4) banned until 1700000000000. Please use the "
     "websocket for live updates to avoid bans.", "rate_limit"),
    (429, -1015, "Too many new orders; current limit is 100 orders per TEN_SECONDS.", "rate_limit"),
    (400, -1015, "Too many new orders; current limit is 200000 orders per DAY.", "rate_limit"),
    (429, None, "", "rate_limit"),
    (418, None, "", "rate_limit"),
    (401, -2015, "Invalid API-key, IP, or permissions for action.", "auth"),
    (400, -1022, "Signature for this request is not valid.", "auth"),
    (400, -1021, "Timestamp for this request is outside of the recvWindow.", "auth"),
    (401, -2014, "API-key format invalid.", "auth"),
    (400, -2010, "Duplicate order sent.", "duplicate"),
    (400, -2010, "Market is closed.", "other"),
    (400, -1121, "Invalid symbol.", "filter"),
    (403, None, "", "other"),
])
def test_classify_binance(status: int, code: int | None, msg: str, kind: str) -> None:
    assert classify_binance(status, code, msg) == kind


def test_classify_binance_rate_limit_wins_over_the_message() -> None:
    assert classify_binance(429, -2010, "Account has insufficient balance for requested action.") == "rate_limit"
    assert classify_binance(400, -2015, "Duplicate order sent.") == "auth"


def test_classify_binance_message_match_is_case_insensitive() -> None:
    assert classify_binance(400, -2010, "ACCOUNT HAS INSUFFICIENT BALANCE FOR REQUESTED ACTION.") == "funds"
    assert classify_binance(400, -2010, "duplicate ORDER sent.") == "duplicate"


# -- classify_upbit ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "name", "kind"), [
    (400, "insufficient_funds_bid", "funds"),
    (400, "insufficient_funds_ask", "funds"),
    (400, "under_min_total_ask", "filter"),
    (400, "under_min_total_bid", "filter"),
    (400, "invalid_price_bid", "filter"),
    (400, "invalid_price_ask", "filter"),
    (400, "invalid_volume_bid", "filter"),
    (400, "validation_error", "filter"),
    (400, "create_ask_error", "filter"),
    (404, "market_does_not_exist", "filter"),
    (429, "too_many_requests", "rate_limit"),
    (429, "", "rate_limit"),
    (401, "jwt_verification", "auth"),
    (401, "invalid_access_key", "auth"),
    (401, "expired_access_key", "auth"),
    (401, "nonce_used", "auth"),
    (401, "no_authorization_ip", "auth"),
    (401, "out_of_scope", "auth"),
    (401, "", "auth"),
    (400, "invalid_query_payload", "auth"),
    (400, "duplicate_identifier", "duplicate"),
    (400, "something_new", "other"),
    (400, "", "other"),
])
def test_classify_upbit(status: int, name: str, kind: str) -> None:
    assert classify_upbit(status, name) == kind


def test_classify_upbit_418_is_a_rate_limit() -> None:
    assert classify_upbit(418, "") == "rate_limit"


# -- parse_binance_order --------------------------------------------------------------------------------

def binance_full(**over: Any) -> dict[str, Any]:
    """A FULL reply to a LIMIT IOC BUY of 0.01 BTC at 100,010 filled in two trades (fee in BTC)."""
    out: dict[str, Any] = {
        "symbol": "BTCUSDT", "orderId": 28457, "orderListId": -1, "clientOrderId": "p1-bn-o",
        "transactTime": 1_700_000_000_123, "price": "100010.00000000", "origQty": "0.01000000",
        "executedQty": "0.01000000", "origQuoteOrderQty": "0.00000000",
        "cummulativeQuoteQty": "1000.05000000", "status": "FILLED", "timeInForce": "IOC",
        "type": "LIMIT", "side": "BUY", "workingTime": 1_700_000_000_123,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "fills": [
            {"price": "100000.00000000", "qty": "0.00500000", "commission": "0.00000500",
             "commissionAsset": "BTC", "tradeId": 56},
            {"price": "100010.00000000", "qty": "0.00500000", "commission": "0.00000500",
             "commissionAsset": "BTC", "tradeId": 57},
        ],
    }
    out.update(over)
    return out


def test_binance_full_buy_with_commission_in_the_base_coin() -> None:
    r = parse_binance_order(binance_full(), "p1-bn-o", "BTC")

    assert (r.client_order_id, r.venue_order_id, r.status, r.done) == ("p1-bn-o", "28457", "filled", True)
    assert (r.symbol, r.side) == ("BTC", "buy")
    assert r.filled == pytest.approx(0.01)
    assert r.amount == pytest.approx(0.01)
    assert r.price == pytest.approx(100_010.0)
    assert r.avg_price == pytest.approx(100_005.0)
    # 0.000005 BTC at 100,000 + 0.000005 BTC at 100,010, in USDT
    assert r.fee == pytest.approx(0.5 + 0.50005)
    assert r.fee_estimated is False


def test_binance_full_sell_with_commission_in_the_quote() -> None:
    o = binance_full(side="SELL", price="99980.00000000", cummulativeQuoteQty="999.90000000",
                     fills=[{"price": "99990.00000000", "qty": "0.01000000", "commission": "0.99990000",
                             "commissionAsset": "USDT", "tradeId": 58}])

    r = parse_binance_order(o, "p1-bn-o", "BTC")

    assert (r.side, r.status, r.done) == ("sell", "filled", True)
    assert r.avg_price == pytest.approx(99_990.0)
    assert r.fee == pytest.approx(0.9999)  # already USDT: not multiplied by a price
    assert r.fee_estimated is False


def test_binance_expired_ioc_with_a_partial_fill_is_partially_filled_and_done() -> None:
    o = binance_full(status="EXPIRED", executedQty="0.00400000", cummulativeQuoteQty="400.00000000",
                     fills=[{"price": "100000.00000000", "qty": "0.00400000", "commission": "0.00000400",
                             "commissionAsset": "BTC", "tradeId": 59}])

    r = parse_binance_order(o, "p1-bn-o", "BTC")

    assert (r.status, r.done) == ("partially_filled", True)
    assert r.filled == pytest.approx(0.004)
    assert r.amount == pytest.approx(0.01)
    assert r.avg_price == pytest.approx(100_000.0)
    assert r.fee == pytest.approx(0.4)


def test_binance_expired_ioc_without_fills_is_cancelled_and_done() -> None:
    o = binance_full(status="EXPIRED", executedQty="0.00000000", cummulativeQuoteQty="0.00000000", fills=[])

    r = parse_binance_order(o, "p1-bn-o", "BTC")

    assert (r.status, r.done, r.filled, r.avg_price, r.fee) == ("cancelled", True, 0.0, 0.0, 0.0)
    assert r.fee_estimated is False


def test_binance_new_is_open_and_not_done() -> None:
    o = binance_full(status="NEW", executedQty="0.00000000", cummulativeQuoteQty="0.00000000", fills=[])

    r = parse_binance_order(o, "p1-bn-o", "BTC")

    assert (r.status, r.done) == ("open", False)


@pytest.mark.parametrize(("raw", "filled", "status", "done"), [
    ("PARTIALLY_FILLED", "0.00300000", "partially_filled", False),
    ("CANCELED", "0.00300000", "partially_filled", True),
    ("CANCELED", "0.00000000", "cancelled", True),
    ("EXPIRED_IN_MATCH", "0.00000000", "cancelled", True),
    ("REJECTED", "0.00000000", "rejected", True),
])
def test_binance_other_statuses(raw: str, filled: str, status: str, done: bool) -> None:
    quote = f"{float(filled) * 100_000:.8f}"
    o = binance_full(status=raw, executedQty=filled, cummulativeQuoteQty=quote, fills=[])

    r = parse_binance_order(o, "cid", "BTC")

    assert (r.status, r.done) == (status, done)


def test_binance_get_reply_without_fills_estimates_the_fee() -> None:
    o = {"symbol": "BTCUSDT", "orderId": 28457, "orderListId": -1, "clientOrderId": "p1-bn-o",
         "price": "100010.00000000", "origQty": "0.01000000", "executedQty": "0.01000000",
         "cummulativeQuoteQty": "1000.05000000", "status": "FILLED", "timeInForce": "IOC", "type": "LIMIT",
         "side": "BUY", "stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": 1_700_000_000_123,
         "updateTime": 1_700_000_000_125, "isWorking": True, "workingTime": 1_700_000_000_123,
         "origQuoteOrderQty": "0.00000000", "selfTradePreventionMode": "EXPIRE_MAKER"}

    r = parse_binance_order(o, "p1-bn-o", "BTC")

    assert r.fee_estimated is True
    assert r.fee == pytest.approx(1000.05 * BINANCE_TAKER_FEE)
    assert (r.status, r.done) == ("filled", True)
    assert r.avg_price == pytest.approx(100_005.0)


def test_binance_missing_client_id_falls_back_to_ours() -> None:
    o = binance_full()
    del o["clientOrderId"]

    assert parse_binance_order(o, "ours", "BTC").client_order_id == "ours"
    assert parse_binance_order(binance_full(), "ours", "BTC").client_order_id == "p1-bn-o"


@pytest.mark.parametrize("reply", [
    {"code": -2010, "msg": "Account has insufficient balance for requested action."},
    {"orderId": 1}, {"status": "FILLED"}, {"status": 3, "orderId": 1}, {}])
def test_binance_not_an_order(reply: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_binance_order(reply, "cid", "BTC")


def test_binance_unreadable_numbers_read_as_zero() -> None:
    o = binance_full(executedQty="abc", cummulativeQuoteQty=None, origQty="nan", price="inf", fills=[])

    r = parse_binance_order(o, "cid", "BTC")

    assert (r.filled, r.avg_price, r.amount, r.price) == (0.0, 0.0, 0.0, 0.0)
    assert all(math.isfinite(v) for v in (r.filled, r.avg_price, r.fee, r.amount, r.price))


# -- parse_upbit_order --------------------------------------------------------------------------------

def upbit_order(**over: Any) -> dict[str, Any]:
    """POST /v1/orders reply for a limit IOC bid of 0.01 BTC at 143,600,000 KRW, filled at 143.5M."""
    out: dict[str, Any] = {
        "uuid": "cdd92199-2897-4e14-9448-f923320408ad", "side": "bid", "ord_type": "limit",
        "price": "143600000", "state": "done", "market": "KRW-BTC",
        "created_at": "2024-11-14T10:00:00+09:00", "volume": "0.01", "remaining_volume": "0",
        "reserved_fee": "718", "remaining_fee": "0", "paid_fee": "717.5", "locked": "0",
        "executed_volume": "0.01", "executed_funds": "1435000", "trades_count": 1,
        "time_in_force": "ioc", "identifier": "p1-up-o",
    }
    out.update(over)
    return out


def test_upbit_done_bid_is_filled() -> None:
    r = parse_upbit_order(upbit_order(), "p1-up-o", "BTC")

    assert (r.client_order_id, r.venue_order_id) == ("p1-up-o", "cdd92199-2897-4e14-9448-f923320408ad")
    assert (r.status, r.done, r.side, r.symbol) == ("filled", True, "buy", "BTC")
    assert r.filled == pytest.approx(0.01)
    assert r.avg_price == pytest.approx(1_435_000 / 0.01)
    assert r.fee == pytest.approx(717.5)
    assert r.amount == pytest.approx(0.01)
    assert r.price == pytest.approx(143_600_000.0)


def test_upbit_wait_is_open_and_not_done() -> None:
    o = upbit_order(state="wait", remaining_volume="0.01", remaining_fee="718", paid_fee="0",
                    locked="1436718", executed_volume="0", executed_funds="0", trades_count=0)

    r = parse_upbit_order(o, "p1-up-o", "BTC")

    assert (r.status, r.done, r.filled, r.avg_price) == ("open", False, 0.0, 0.0)


def test_upbit_wait_with_a_fill_is_partially_filled_not_done() -> None:
    o = upbit_order(state="wait", executed_volume="0.004", executed_funds="574000", paid_fee="287")

    r = parse_upbit_order(o, "p1-up-o", "BTC")

    assert (r.status, r.done) == ("partially_filled", False)
    assert r.avg_price == pytest.approx(574_000 / 0.004)


def test_upbit_cancelled_ioc_with_a_partial_fill() -> None:
    o = upbit_order(state="cancel", remaining_volume="0.006", executed_volume="0.004",
                    executed_funds="574000", paid_fee="287")

    r = parse_upbit_order(o, "p1-up-o", "BTC")

    assert (r.status, r.done) == ("partially_filled", True)
    assert r.filled == pytest.approx(0.004)
    assert r.avg_price == pytest.approx(143_500_000.0)
    assert r.fee == pytest.approx(287.0)


def test_upbit_cancelled_ioc_without_fills() -> None:
    o = upbit_order(state="cancel", remaining_volume="0.01", executed_volume="0", executed_funds="0",
                    paid_fee="0")

    r = parse_upbit_order(o, "p1-up-o", "BTC")

    assert (r.status, r.done, r.filled, r.avg_price, r.fee) == ("cancelled", True, 0.0, 0.0, 0.0)


def test_upbit_ask_is_a_sell_with_avg_from_funds_over_volume() -> None:
    o = upbit_order(side="ask", price="143400000", volume="0.03", executed_volume="0.03",
                    executed_funds="4305000", paid_fee="2152.5")

    r = parse_upbit_order(o, "cid", "BTC")

    assert (r.side, r.status) == ("sell", "filled")
    assert r.avg_price == pytest.approx(4_305_000 / 0.03)


def test_upbit_done_but_short_of_the_volume_is_partially_filled() -> None:
    o = upbit_order(executed_volume="0.005", executed_funds="717500", paid_fee="358.75")

    assert parse_upbit_order(o, "cid", "BTC").status == "partially_filled"


def test_upbit_missing_paid_fee_estimates_it() -> None:
    o = upbit_order()
    del o["paid_fee"]

    r = parse_upbit_order(o, "cid", "BTC")

    assert r.fee == pytest.approx(1_435_000 * UPBIT_TAKER_FEE)


def test_upbit_estimated_fee_is_flagged() -> None:
    o = upbit_order()
    del o["paid_fee"]

    assert parse_upbit_order(o, "cid", "BTC").fee_estimated is True


def test_upbit_missing_identifier_falls_back_to_ours() -> None:
    o = upbit_order()
    del o["identifier"]

    assert parse_upbit_order(o, "ours", "BTC").client_order_id == "ours"


@pytest.mark.parametrize("reply", [
    {"error": {"name": "insufficient_funds_bid", "message": "주문가능한 금액(KRW)이 부족합니다."}},
    {"uuid": "x"}, {"state": "done"}, {"state": "done", "uuid": ""}, {"state": None, "uuid": "x"}])
def test_upbit_not_an_order(reply: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_upbit_order(reply, "cid", "BTC")


# -- agreement with the embedded exchange's formatters ---------------------------------------------

def sim_order(venue: str, side: str, status: str, fills: list[tuple[float, float]], *, qty: float = 0.01,
              price: float = 100_010.0, fee_rate: float = 0.001, fee_in_base: bool = True) -> SimOrder:
    o = SimOrder(venue=venue, order_id="28457" if venue == "binance" else "uuid-1",
                 client_order_id="cid-1", coin="BTC",
                 market_id="BTCUSDT" if venue == "binance" else "KRW-BTC", side=side, type="limit", tif="IOC",
                 price=price, qty=qty, ts_ns=1_700_000_000_000_000_000, status=status,
                 meta={"time_in_force": "IOC" if venue == "binance" else "ioc"})
    for i, (px, q) in enumerate(fills):
        quote = px * q
        base_fee = fee_in_base and side == "buy"
        fee = q * fee_rate if base_fee else quote * fee_rate
        asset = "BTC" if base_fee else ("USDT" if venue == "binance" else "KRW")
        o.fills.append(Fill(trade_id=100 + i, price=px, qty=q, quote=quote, fee=fee, fee_asset=asset,
                            ts_ms=1_700_000_000_000, maker=False))
        o.filled += q
        o.cost += quote
        o.fee += fee if not base_fee else fee * px
    return o


@pytest.mark.parametrize(("side", "status", "fills", "want", "done"), [
    ("buy", "filled", [(100_000.0, 0.006), (100_010.0, 0.004)], "filled", True),
    ("sell", "filled", [(99_990.0, 0.01)], "filled", True),
    ("buy", "expired", [(100_000.0, 0.003)], "partially_filled", True),
    ("buy", "expired", [], "cancelled", True),
    ("sell", "new", [], "open", False),
])
def test_binance_sim_full_and_query_replies_parse_alike(side: str, status: str, fills: list[tuple[float, float]],
                                                        want: str, done: bool) -> None:
    o = sim_order("binance", side, status, fills)

    full = parse_binance_order(binance_format.order_new(o, "FULL"), "x", "BTC")
    query = parse_binance_order(binance_format.order_query(o), "x", "BTC")

    for r in (full, query):
        assert (r.status, r.done, r.side, r.client_order_id) == (want, done, side, "cid-1")
        assert r.filled == pytest.approx(o.filled, abs=1e-8)
        assert r.avg_price == pytest.approx(o.cost / o.filled if o.filled else 0.0, rel=1e-8)
    assert full.fee_estimated is False and query.fee_estimated is True
    assert full.fee == pytest.approx(o.fee, rel=1e-6, abs=1e-8)
    assert query.fee == pytest.approx(o.cost * BINANCE_TAKER_FEE, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize(("side", "status", "fills", "want", "done"), [
    ("buy", "filled", [(143_500_000.0, 0.006), (143_600_000.0, 0.004)], "filled", True),
    ("sell", "filled", [(143_500_000.0, 0.01)], "filled", True),
    ("buy", "cancelled", [(143_500_000.0, 0.004)], "partially_filled", True),
    ("sell", "cancelled", [], "cancelled", True),
    ("buy", "new", [], "open", False),
    ("buy", "partially_filled", [(143_500_000.0, 0.002)], "partially_filled", False),
])
def test_upbit_sim_replies_parse(side: str, status: str, fills: list[tuple[float, float]], want: str,
                                 done: bool) -> None:
    o = sim_order("upbit", side, status, fills, price=143_600_000.0, fee_rate=UPBIT_TAKER_FEE,
                  fee_in_base=False)

    r = parse_upbit_order(upbit_format.order_json(o, UPBIT_TAKER_FEE), "x", "BTC")

    assert (r.status, r.done, r.side, r.client_order_id) == (want, done, side, "cid-1")
    assert r.filled == pytest.approx(o.filled, abs=1e-8)
    assert r.avg_price == pytest.approx(o.cost / o.filled if o.filled else 0.0, rel=1e-8)
    assert r.fee == pytest.approx(o.fee, rel=1e-6, abs=1e-6)
    assert r.amount == pytest.approx(0.01)
