"""Unmodified ccxt (async) against the simulated Upbit: JWT auth, orders, the venue's errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import ccxt
import pytest

from venues.sim.auth import make_upbit_jwt
from venues.sim.config import SimConfig
from venues.sim.testing import admin, ccxt_upbit, sim_thread


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, Any]]:
    sim = sim_thread(SimConfig(seed=4, update_hz=20, rest_rate_limit_per_s=0))
    yield sim.start()
    sim.stop()


def run_with(urls: dict[str, Any], fn: Callable[[Any], Awaitable[Any]], **config: Any) -> Any:
    async def main() -> Any:
        ex = ccxt_upbit(urls, **{"enableRateLimit": False, **config})
        try:
            return await fn(ex)
        finally:
            await ex.close()
    return asyncio.run(asyncio.wait_for(main(), 30))


def raw(urls: dict[str, Any], method: str, path: str, token: str | None = None,
        body: dict[str, Any] | None = None) -> tuple[int, Any, dict[str, str]]:
    async def main() -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as s, s.request(method, urls["upbit"]["rest"] + path, headers=headers,
                                                           json=body) as r:
            text = await r.text()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text
            return r.status, payload, dict(r.headers)
    return asyncio.run(main())


def _best_bid(urls: dict[str, Any], code: str) -> float:
    status, books, _ = raw(urls, "GET", f"/v1/orderbook?markets={code}")
    return books[0]["orderbook_units"][0]["bid_price"]


def test_load_markets_lists_the_krw_markets_with_usdt(urls: dict[str, Any]) -> None:
    markets = run_with(urls, lambda ex: ex.load_markets())
    assert {"BTC/KRW", "ETH/KRW", "XRP/KRW", "USDT/KRW"} <= set(markets)
    assert markets["BTC/KRW"]["taker"] == 0.0005


def test_fetch_order_book_has_fifteen_levels_on_tick(urls: dict[str, Any]) -> None:
    book = run_with(urls, lambda ex: ex.fetch_order_book("BTC/KRW"))
    assert len(book["bids"]) == len(book["asks"]) == 15
    assert all(p % 1000 == 0 for p, _ in book["bids"] + book["asks"])
    assert book["bids"][0][0] < book["asks"][0][0]


def test_fetch_balance_shows_krw_and_coins(urls: dict[str, Any]) -> None:
    balance = run_with(urls, lambda ex: ex.fetch_balance())
    assert balance["KRW"]["free"] > 0 and balance["BTC"]["free"] > 0


def test_limit_order_lifecycle_by_uuid_and_identifier(urls: dict[str, Any]) -> None:
    price = _best_bid(urls, "KRW-BTC") - 1_000_000

    async def go(ex: Any) -> dict[str, Any]:
        order = await ex.create_order("BTC/KRW", "limit", "buy", 0.001, price, {"clientOrderId": "up-life-1"})
        out = {"created": order, "by_id": await ex.fetch_order(order["id"]),
               "by_identifier": await ex.fetch_order(None, None, {"identifier": "up-life-1"}),
               "open": await ex.fetch_open_orders("BTC/KRW")}
        out["cancel"] = await ex.cancel_order(order["id"])
        out["after"] = await ex.fetch_order(order["id"])
        return out
    r = run_with(urls, go)
    assert r["created"]["status"] == "open" and r["created"]["clientOrderId"] == "up-life-1"
    assert r["by_id"]["id"] == r["by_identifier"]["id"] == r["created"]["id"]
    assert r["created"]["id"] in {o["id"] for o in r["open"]}
    assert r["cancel"]["status"] == "open"  # Upbit answers the cancel request with state "wait"
    assert r["after"]["status"] == "canceled"


def test_market_sell_and_market_buy_by_cost_fill_with_krw_fees(urls: dict[str, Any]) -> None:
    async def go(ex: Any) -> tuple[Any, Any, Any]:
        created = await ex.create_order("ETH/KRW", "market", "sell", 0.01)
        buy = await ex.create_order("XRP/KRW", "market", "buy", None, None, {"cost": 20_000})
        return created, await ex.fetch_order(created["id"]), await ex.fetch_order(buy["id"])
    created, sell, buy = run_with(urls, go)
    # Upbit answers an order request as accepted ("wait", nothing executed); the fill is looked up.
    assert created["status"] == "open" and not created["filled"]
    assert sell["status"] == "closed" and sell["filled"] == pytest.approx(0.01)
    assert sell["fee"]["currency"] == "KRW"
    assert buy["status"] == "closed" and buy["cost"] == pytest.approx(20_000, abs=1)


def test_off_tick_price_is_rejected_as_invalid_price(urls: dict[str, Any]) -> None:
    price = _best_bid(urls, "KRW-BTC") - 1_000_500  # BTC trades in 1,000 KRW ticks
    with pytest.raises(ccxt.ExchangeError, match="invalid_price_bid"):
        run_with(urls, lambda ex: ex.create_order("BTC/KRW", "limit", "buy", 0.001, price))


def test_order_below_5000_krw_is_rejected_as_under_min_total(urls: dict[str, Any]) -> None:
    with pytest.raises(ccxt.ExchangeError, match="under_min_total_ask"):
        run_with(urls, lambda ex: ex.create_order("XRP/KRW", "limit", "sell", 1, 1000))


def test_insufficient_funds_raise_insufficient_funds(urls: dict[str, Any]) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        run_with(urls, lambda ex: ex.create_order("BTC/KRW", "market", "sell", 40))


def test_unknown_order_raises_order_not_found(urls: dict[str, Any]) -> None:
    with pytest.raises(ccxt.OrderNotFound):
        run_with(urls, lambda ex: ex.fetch_order("00000000-0000-4000-8000-000000000000"))


def test_identifier_cannot_be_reused_even_after_a_failed_order(urls: dict[str, Any]) -> None:
    with pytest.raises(ccxt.ExchangeError, match="under_min_total"):
        run_with(urls, lambda ex: ex.create_order("XRP/KRW", "limit", "sell", 1, 1000, {"clientOrderId": "once"}))
    with pytest.raises(ccxt.ExchangeError, match="duplicate_identifier"):
        run_with(urls, lambda ex: ex.create_order("XRP/KRW", "market", "sell", 100, None, {"clientOrderId": "once"}))
    statuses = [o["status"] for o in admin(urls, "GET", "/_sim/orders?venue=upbit")[1] if o["client_order_id"] == "once"]
    assert statuses == ["rejected", "rejected"]


def test_bad_secret_and_unknown_key_raise_authentication_error(urls: dict[str, Any]) -> None:
    good = urls["test_keys"]["upbit"]
    with pytest.raises(ccxt.AuthenticationError, match="jwt_verification"):
        run_with(urls, lambda ex: ex.fetch_balance(), keys={"apiKey": good["apiKey"], "secret": "wrong"})
    with pytest.raises(ccxt.AuthenticationError, match="invalid_access_key"):
        run_with(urls, lambda ex: ex.fetch_balance(), keys={"apiKey": "nobody", "secret": good["secret"]})


def test_a_reused_nonce_and_a_wrong_query_hash_are_refused(urls: dict[str, Any]) -> None:
    keys = urls["test_keys"]["upbit"]
    token = make_upbit_jwt(keys["apiKey"], keys["secret"], nonce="fixed-nonce-1")
    assert raw(urls, "GET", "/v1/accounts", token)[0] == 200
    status, body, _ = raw(urls, "GET", "/v1/accounts", token)
    assert status == 401 and body["error"]["name"] == "nonce_used"
    token = make_upbit_jwt(keys["apiKey"], keys["secret"], [("market", "KRW-ETH")])
    status, body, _ = raw(urls, "GET", "/v1/orders/open?market=KRW-BTC", token)
    assert status == 401 and body["error"]["name"] == "invalid_query_payload"


def test_post_body_is_hashed_in_the_order_sent(urls: dict[str, Any]) -> None:
    keys = urls["test_keys"]["upbit"]
    body = {"market": "KRW-XRP", "side": "ask", "volume": "10", "ord_type": "market"}
    token = make_upbit_jwt(keys["apiKey"], keys["secret"], list(body.items()))
    status, order, headers = raw(urls, "POST", "/v1/orders", token, body)
    assert status == 201 and order["state"] == "wait" and order["volume"] == "10"
    assert order["executed_volume"] == "0" and order["locked"] == "10"  # as accepted: the sell locks its volume
    assert headers["Remaining-Req"].startswith("group=order; min=1800; sec=")
    ident = [("uuid", order["uuid"])]
    status, done, _ = raw(urls, "GET", "/v1/order?uuid=" + order["uuid"],
                          make_upbit_jwt(keys["apiKey"], keys["secret"], ident))
    assert status == 200 and done["state"] == "done" and done["executed_volume"] == "10"


def test_past_the_rate_limit_upbit_answers_plain_text_429() -> None:
    sim = sim_thread(SimConfig(rest_rate_limit_per_s=3))
    urls = sim.start()
    try:
        async def go(ex: Any) -> list[Any]:
            return await asyncio.gather(*(ex.fetch_markets() for _ in range(8)), return_exceptions=True)
        results = run_with(urls, go)
        errors = [r for r in results if isinstance(r, Exception)]
        assert errors and all(isinstance(e, ccxt.RateLimitExceeded) for e in errors)
        replies = [raw(urls, "GET", "/v1/market/all") for _ in range(4)]
        status, body, headers = next(r for r in replies if r[0] == 429)
        assert isinstance(body, str) and "error" not in body
        assert "Remaining-Req" in headers
    finally:
        sim.stop()


def test_resting_limit_order_fills_when_the_premium_drops_through_it(urls: dict[str, Any]) -> None:
    price = _best_bid(urls, "KRW-ETH") - 20_000

    async def go(ex: Any) -> tuple[Any, Any]:
        order = await ex.create_order("ETH/KRW", "limit", "buy", 0.01, price)
        status, _ = admin(urls, "POST", "/_sim/market", {"premium_pct": -3.0})
        assert status == 200
        return order, await ex.fetch_order(order["id"])
    created, filled = run_with(urls, go)
    assert created["status"] == "open"
    assert filled["status"] == "closed" and filled["filled"] == pytest.approx(0.01)
    assert filled["fee"]["currency"] == "KRW"
