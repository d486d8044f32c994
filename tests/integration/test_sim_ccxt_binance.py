"""Unmodified ccxt (async) against the simulated Binance: markets, books, balances, orders, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import ccxt
import pytest

from venues.sim.auth import binance_signature
from venues.sim.config import SimConfig
from venues.sim.testing import admin, ccxt_binance, sim_thread


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, Any]]:
    sim = sim_thread(SimConfig(seed=3, update_hz=20, rest_rate_limit_per_s=0))
    yield sim.start()
    sim.stop()


def run_with(urls: dict[str, Any], fn: Callable[[Any], Awaitable[Any]], **config: Any) -> Any:
    async def main() -> Any:
        ex = ccxt_binance(urls, **{"enableRateLimit": False, **config})
        try:
            return await fn(ex)
        finally:
            await ex.close()
    return asyncio.run(asyncio.wait_for(main(), 30))


def raw_signed(urls: dict[str, Any], method: str, path: str, params: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    keys = urls["test_keys"]["binance"]
    query = urlencode({**params, "timestamp": int(time.time() * 1000)})
    query += "&signature=" + binance_signature(keys["secret"], query)

    async def main() -> tuple[int, Any, dict[str, str]]:
        async with aiohttp.ClientSession() as s, s.request(
                method, f"{urls['binance']['rest']}/api/v3/{path}?{query}",
                headers={"X-MBX-APIKEY": keys["apiKey"]}) as r:
            return r.status, await r.json(content_type=None), dict(r.headers)
    return asyncio.run(main())


def test_load_markets_reads_spot_symbols_and_filters(urls: dict[str, Any]) -> None:
    markets = run_with(urls, lambda ex: ex.load_markets())
    assert {"BTC/USDT", "ETH/USDT", "XRP/USDT"} <= set(markets)
    btc = markets["BTC/USDT"]
    assert btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5.0 and btc["active"]


def test_fetch_order_book_returns_sorted_levels_and_the_update_id(urls: dict[str, Any]) -> None:
    book = run_with(urls, lambda ex: ex.fetch_order_book("ETH/USDT", 10))
    assert len(book["bids"]) == len(book["asks"]) == 10
    assert book["bids"][0][0] < book["asks"][0][0]
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)
    assert isinstance(book["nonce"], int)


def test_fetch_balance_shows_the_starting_balances(urls: dict[str, Any]) -> None:
    balance = run_with(urls, lambda ex: ex.fetch_balance())
    assert balance["USDT"]["total"] > 0 and balance["ETH"]["total"] > 0


def test_market_buy_fills_and_moves_balances(urls: dict[str, Any]) -> None:
    async def go(ex: Any) -> tuple[Any, Any, Any]:
        before = await ex.fetch_balance()
        order = await ex.create_order("XRP/USDT", "market", "buy", 100)
        after = await ex.fetch_balance()
        return before, order, after
    before, order, after = run_with(urls, go)
    assert order["status"] == "closed" and order["filled"] == 100
    assert order["fee"]["currency"] == "XRP" and order["fee"]["cost"] == pytest.approx(0.1)
    assert after["XRP"]["total"] == pytest.approx(before["XRP"]["total"] + 99.9)
    assert after["USDT"]["total"] == pytest.approx(before["USDT"]["total"] - order["cost"])


def test_limit_order_rests_is_found_by_id_and_client_id_and_cancels(urls: dict[str, Any]) -> None:
    async def go(ex: Any) -> dict[str, Any]:
        book = await ex.fetch_order_book("BTC/USDT", 5)
        price = round(book["bids"][0][0] * 0.95, 2)
        order = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "rest-1"})
        out = {"created": order, "open": await ex.fetch_open_orders("BTC/USDT"),
               "by_id": await ex.fetch_order(order["id"], "BTC/USDT"),
               "by_cid": await ex.fetch_order(None, "BTC/USDT", {"origClientOrderId": "rest-1"}),
               "balance": await ex.fetch_balance()}
        out["cancel"] = await ex.cancel_order(order["id"], "BTC/USDT")
        out["after"] = await ex.fetch_order(order["id"], "BTC/USDT")
        return out
    r = run_with(urls, go)
    assert r["created"]["status"] == "open" and r["created"]["clientOrderId"] == "rest-1"
    assert r["created"]["id"] in {o["id"] for o in r["open"]}
    assert r["by_id"]["id"] == r["by_cid"]["id"] == r["created"]["id"]
    assert r["balance"]["USDT"]["used"] == pytest.approx(0.001 * r["created"]["price"])
    assert r["cancel"]["status"] == "canceled" and r["after"]["status"] == "canceled"


def test_unknown_orders_raise_order_not_found(urls: dict[str, Any]) -> None:
    with pytest.raises(ccxt.OrderNotFound):
        run_with(urls, lambda ex: ex.fetch_order("999", "BTC/USDT"))
    with pytest.raises(ccxt.OrderNotFound):
        run_with(urls, lambda ex: ex.cancel_order("999", "BTC/USDT"))


def test_insufficient_balance_raises_insufficient_funds(urls: dict[str, Any]) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        run_with(urls, lambda ex: ex.create_order("BTC/USDT", "market", "sell", 50))


def test_duplicate_client_order_id_of_an_open_order_is_rejected(urls: dict[str, Any]) -> None:
    async def go(ex: Any) -> None:
        book = await ex.fetch_order_book("ETH/USDT", 5)
        price = round(book["bids"][0][0] * 0.9, 2)
        await ex.create_order("ETH/USDT", "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})
        await ex.create_order("ETH/USDT", "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        run_with(urls, go)
    records = [o for o in admin(urls, "GET", "/_sim/orders?venue=binance")[1] if o["client_order_id"] == "dup-1"]
    assert [o["status"] for o in records] == ["new", "rejected"]


def test_bad_signature_and_unknown_key_raise_authentication_error(urls: dict[str, Any]) -> None:
    good = urls["test_keys"]["binance"]
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        run_with(urls, lambda ex: ex.fetch_balance(), keys={"apiKey": good["apiKey"], "secret": "wrong"})
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        run_with(urls, lambda ex: ex.fetch_balance(), keys={"apiKey": "nope", "secret": good["secret"]})


def test_timestamp_outside_recv_window_raises_invalid_nonce(urls: dict[str, Any]) -> None:
    async def go(ex: Any) -> Any:
        ex.options["timeDifference"] = 120_000  # our clock 2 min behind
        return await ex.fetch_balance()
    with pytest.raises(ccxt.InvalidNonce):
        run_with(urls, go)


def test_filter_failures_use_the_venue_codes(urls: dict[str, Any]) -> None:
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    status, body, _ = raw_signed(urls, "POST", "order", {**base, "quantity": "0.001", "price": "60000.005"})
    assert (status, body) == (400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"})
    status, body, _ = raw_signed(urls, "POST", "order", {**base, "quantity": "0.000015", "price": "60000"})
    assert body == {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
    status, body, _ = raw_signed(urls, "POST", "order", {**base, "quantity": "0.00001", "price": "60000"})
    assert body == {"code": -1013, "msg": "Filter failure: NOTIONAL"}
    with pytest.raises(ccxt.BadRequest):  # ccxt's top-level mapping of -1013
        run_with(urls, lambda ex: ex.create_order("BTC/USDT", "limit", "buy", 0.00001, 60000))


def test_every_reply_carries_the_used_weight_header(urls: dict[str, Any]) -> None:
    status, body, headers = raw_signed(urls, "GET", "openOrders", {"symbol": "BTCUSDT"})
    assert status == 200 and isinstance(body, list)
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) > 0


def test_past_the_rate_limit_binance_answers_429_with_retry_after() -> None:
    sim = sim_thread(SimConfig(rest_rate_limit_per_s=3))
    urls = sim.start()
    try:
        async def go(ex: Any) -> list[Any]:
            return await asyncio.gather(*(ex.fetch_time() for _ in range(8)), return_exceptions=True)
        results = run_with(urls, go, enableRateLimit=False)
        errors = [r for r in results if isinstance(r, Exception)]
        assert errors and all(isinstance(e, ccxt.DDoSProtection) for e in errors)  # ccxt: 429 -> DDoSProtection

        async def raw() -> tuple[int, dict[str, str], Any]:
            async with aiohttp.ClientSession() as s:
                replies = []
                for _ in range(5):
                    async with s.get(urls["binance"]["rest"] + "/api/v3/time") as r:
                        replies.append((r.status, dict(r.headers), await r.json()))
                return next(x for x in replies if x[0] == 429)
        status, headers, body = asyncio.run(raw())
        assert int(headers["Retry-After"]) >= 1 and body["code"] == -1003
    finally:
        sim.stop()


def test_resting_limit_order_fills_when_the_market_crosses_it(urls: dict[str, Any]) -> None:
    async def go(ex: Any) -> tuple[Any, Any]:
        book = await ex.fetch_order_book("BTC/USDT", 5)
        price = round(book["bids"][0][0] - 20, 2)
        order = await ex.create_order("BTC/USDT", "limit", "buy", 0.001, price)
        status, _ = admin(urls, "POST", "/_sim/market", {"usd": {"BTC": price - 200}})
        assert status == 200
        return order, await ex.fetch_order(order["id"], "BTC/USDT")
    created, filled = run_with(urls, go)
    assert created["status"] == "open"
    assert filled["status"] == "closed" and filled["average"] == pytest.approx(created["price"])
