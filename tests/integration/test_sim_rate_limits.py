"""The embedded exchange enforces each venue's published REST limits, sends the venues'
own rate-limit headers and counts every violation (``GET /_sim/limits``).

Real aiohttp / ccxt clients against ``SimThread`` on loopback. The simulator's
monotonic clock is replaced by a hand-driven one, so that "within a second" and
"after the window" do not depend on how loaded the machine is.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import aiohttp
import ccxt
import pytest

from venues.sim.auth import binance_signature, make_upbit_jwt
from venues.sim.config import SimConfig, SimConfigError
from venues.sim.core import SimCore
from venues.sim.testing import admin, ccxt_binance, ccxt_upbit, sim_thread

Reply = tuple[int, Any, dict[str, str]]


class Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def running(**overrides: Any) -> Iterator[tuple[dict[str, Any], Clock]]:
    sim = sim_thread(SimConfig(seed=11, **overrides))
    urls = sim.start()
    clock = Clock()

    def install(core: SimCore) -> None:
        core.mono = clock
    try:
        sim.call(install)
        yield urls, clock
    finally:
        sim.stop()


async def _reply(r: aiohttp.ClientResponse) -> Reply:
    text = await r.text()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    return r.status, body, dict(r.headers)


async def upbit(s: aiohttp.ClientSession, urls: dict[str, Any], method: str, path: str,
                body: dict[str, Any] | None = None, private: bool = False) -> Reply:
    headers = {}
    if private or body is not None:
        keys = urls["test_keys"]["upbit"]
        token = make_upbit_jwt(keys["apiKey"], keys["secret"], list((body or {}).items()) or None)
        headers["Authorization"] = f"Bearer {token}"
    async with s.request(method, urls["upbit"]["rest"] + path, headers=headers, json=body) as r:
        return await _reply(r)


async def binance(s: aiohttp.ClientSession, urls: dict[str, Any], method: str, path: str,
                  params: dict[str, Any] | None = None, signed: bool = False) -> Reply:
    query = urlencode(params or {})
    headers = {}
    if signed:
        keys = urls["test_keys"]["binance"]
        query = urlencode({**(params or {}), "timestamp": int(time.time() * 1000)})
        query += "&signature=" + binance_signature(keys["secret"], query)
        headers["X-MBX-APIKEY"] = keys["apiKey"]
    url = f"{urls['binance']['rest']}/api/v3/{path}" + (f"?{query}" if query else "")
    async with s.request(method, url, headers=headers) as r:
        return await _reply(r)


def run(coro_fn: Any) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as s:
            return await coro_fn(s)
    return asyncio.run(asyncio.wait_for(main(), 60))


def limits(urls: dict[str, Any]) -> dict[str, Any]:
    status, body = admin(urls, "GET", "/_sim/limits")
    assert status == 200
    return body


UPBIT_SELL = {"market": "KRW-XRP", "side": "ask", "volume": "10", "ord_type": "market"}
RESTING_BUY = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
               "quantity": "0.001", "price": "30000"}


# -- Upbit ---------------------------------------------------------------------------


def test_upbit_ninth_order_in_a_second_is_refused_and_other_groups_are_not() -> None:
    with running() as (urls, clock):
        async def go(s: aiohttp.ClientSession) -> dict[str, Any]:
            orders = [await upbit(s, urls, "POST", "/v1/orders", UPBIT_SELL) for _ in range(9)]
            others = {
                "default": await upbit(s, urls, "GET", "/v1/accounts", private=True),
                "market": await upbit(s, urls, "GET", "/v1/market/all"),
                "ticker": await upbit(s, urls, "GET", "/v1/ticker?markets=KRW-BTC"),
                "orderbook": await upbit(s, urls, "GET", "/v1/orderbook?markets=KRW-BTC"),
                "order-test": await upbit(s, urls, "POST", "/v1/orders/test", UPBIT_SELL),
            }
            clock.advance(1.0)  # the 1 s window has slid past every one of them
            after = await upbit(s, urls, "POST", "/v1/orders", UPBIT_SELL)
            return {"orders": orders, "others": others, "after": after}
        out = run(go)
        orders = out["orders"]
        assert [o[0] for o in orders] == [201] * 8 + [429]
        assert [o[2]["Remaining-Req"] for o in orders] == (
            [f"group=order; min=1800; sec={n}" for n in range(7, -1, -1)] + ["group=order; min=1800; sec=0"])
        status, body, _ = orders[8]
        assert body == "Too many API requests."  # plain text: ccxt falls through to RateLimitExceeded

        expected_left = {"default": 29, "market": 9, "ticker": 9, "orderbook": 9, "order-test": 7}
        for group, (status, _body, headers) in out["others"].items():
            assert status in (200, 201), group
            assert headers["Remaining-Req"] == f"group={group}; min=1800; sec={expected_left[group]}"
        status, _body, headers = out["after"]
        assert status == 201 and headers["Remaining-Req"] == "group=order; min=1800; sec=7"

        view = limits(urls)["upbit"]
        assert view["order"] == {"limit": 8, "window_s": 1, "violations": 1, "max_in_window": 8}
        assert view["default"]["limit"] == 30 and view["default"]["violations"] == 0
        assert all(view[g]["limit"] == 10 for g in ("market", "ticker", "orderbook", "candles", "trades"))
        assert view["order-test"]["max_in_window"] == 1


def test_upbit_quotation_groups_are_independent_and_ccxt_sees_rate_limit_exceeded() -> None:
    with running(upbit_quotation_limit_per_s=3) as (urls, _clock):
        async def go(s: aiohttp.ClientSession) -> tuple[list[Reply], Reply, Reply]:
            markets = [await upbit(s, urls, "GET", "/v1/market/all") for _ in range(4)]
            ticker = await upbit(s, urls, "GET", "/v1/ticker?markets=KRW-ETH")
            book = await upbit(s, urls, "GET", "/v1/orderbook?markets=KRW-ETH")
            return markets, ticker, book
        markets, ticker, book = run(go)
        assert [m[0] for m in markets] == [200, 200, 200, 429]
        assert [m[2]["Remaining-Req"].rsplit("=", 1)[1] for m in markets] == ["2", "1", "0", "0"]
        assert ticker[0] == 200 and ticker[2]["Remaining-Req"] == "group=ticker; min=1800; sec=2"
        assert book[0] == 200 and book[2]["Remaining-Req"] == "group=orderbook; min=1800; sec=2"

        async def with_ccxt() -> Any:
            ex = ccxt_upbit(urls, enableRateLimit=False)
            try:
                return (await asyncio.gather(ex.fetch_markets(), return_exceptions=True))[0]
            finally:
                await ex.close()
        assert isinstance(asyncio.run(with_ccxt()), ccxt.RateLimitExceeded)
        accounts = run(lambda s: upbit(s, urls, "GET", "/v1/accounts", private=True))  # group default
        assert accounts[0] == 200
        view = limits(urls)["upbit"]
        assert view["market"]["violations"] == 2 and view["market"]["max_in_window"] == 3
        assert view["ticker"]["violations"] == 0 and view["default"]["violations"] == 0


def test_an_injected_429_is_not_a_violation_but_carries_the_header() -> None:
    with running() as (urls, _clock):
        status, _ = admin(urls, "POST", "/_sim/fault", {"venue": "upbit", "kind": "http_error", "seconds": 30,
                                                         "status": 429})
        assert status == 200
        reply = run(lambda s: upbit(s, urls, "GET", "/v1/market/all"))
        admin(urls, "DELETE", "/_sim/fault")
        assert reply[0] == 429 and reply[2]["Remaining-Req"] == "group=market; min=1800; sec=0"
        assert all(w["violations"] == 0 for venue in limits(urls).values() for w in venue.values())


# -- Binance -------------------------------------------------------------------------


def test_binance_request_weight_over_the_minute_answers_1003_with_retry_after() -> None:
    with running(binance_weight_per_min=100) as (urls, clock):
        async def go(s: aiohttp.ClientSession) -> tuple[list[Reply], Reply, Reply, Reply]:
            infos = [await binance(s, urls, "GET", "exchangeInfo") for _ in range(6)]  # weight 20 each
            cheap = await binance(s, urls, "GET", "time")  # weight 1 does not fit either
            clock.advance(60.0)
            later = await binance(s, urls, "GET", "time")
            depth = await binance(s, urls, "GET", "depth", {"symbol": "BTCUSDT", "limit": 500})  # weight 25
            return infos, cheap, later, depth
        infos, cheap, later, depth = run(go)
        assert [i[0] for i in infos] == [200] * 5 + [429]
        assert [i[2]["X-MBX-USED-WEIGHT-1M"] for i in infos] == ["20", "40", "60", "80", "100", "100"]
        status, body, headers = infos[5]
        assert body["code"] == -1003 and "100 request weight per 1 MINUTE" in body["msg"]
        assert headers["Retry-After"] == "60"
        assert cheap[0] == 429 and cheap[1]["code"] == -1003 and int(cheap[2]["Retry-After"]) >= 1
        assert later[0] == 200 and later[2]["X-MBX-USED-WEIGHT-1M"] == "1"
        assert depth[0] == 200 and depth[2]["X-MBX-USED-WEIGHT-1M"] == "26"
        assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                "limit": 100} in infos[0][1]["rateLimits"]

        view = limits(urls)["binance"]["weight_1m"]
        assert view == {"limit": 100, "window_s": 60, "violations": 2, "max_in_window": 100}


def test_binance_101st_order_in_ten_seconds_answers_1015_without_retry_after() -> None:
    with running() as (urls, clock):
        async def go(s: aiohttp.ClientSession) -> tuple[list[Reply], Reply, Reply, Reply]:
            placed = [await binance(s, urls, "POST", "order", RESTING_BUY, signed=True) for _ in range(101)]
            test_order = await binance(s, urls, "POST", "order/test", RESTING_BUY, signed=True)
            clock.advance(10.0)
            again = await binance(s, urls, "POST", "order", RESTING_BUY, signed=True)
            info = await binance(s, urls, "GET", "exchangeInfo")
            return placed, test_order, again, info
        placed, test_order, again, info = run(go)
        assert [p[0] for p in placed] == [200] * 100 + [429]
        assert [p[2]["X-MBX-ORDER-COUNT-10S"] for p in placed[:100]] == [str(n) for n in range(1, 101)]
        assert placed[99][2]["X-MBX-ORDER-COUNT-1D"] == "100"
        status, body, headers = placed[100]
        assert body == {"code": -1015, "msg": "Too many new orders; current limit is 100 orders per TEN_SECONDS."}
        assert "Retry-After" not in headers
        assert "X-MBX-USED-WEIGHT-1M" in headers and headers["X-MBX-ORDER-COUNT-10S"] == "100"
        assert test_order[0] == 200  # test orders do not count against ORDERS
        assert again[0] == 200 and again[2]["X-MBX-ORDER-COUNT-10S"] == "1"
        assert again[2]["X-MBX-ORDER-COUNT-1D"] == "101"
        orders_limits = [r for r in info[1]["rateLimits"] if r["rateLimitType"] == "ORDERS"]
        assert orders_limits == [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                                 {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000}]
        view = limits(urls)["binance"]
        assert view["orders_10s"] == {"limit": 100, "window_s": 10, "violations": 1, "max_in_window": 100}
        assert view["orders_1d"]["violations"] == 0 and view["orders_1d"]["max_in_window"] == 101


def test_binance_filled_and_rejected_orders_do_not_count_and_ccxt_gets_the_429() -> None:
    with running(binance_orders_per_10s=3) as (urls, _clock):
        async def go(s: aiohttp.ClientSession) -> tuple[list[Reply], Reply, list[Reply]]:
            market = {"symbol": "XRPUSDT", "side": "BUY", "type": "MARKET", "quantity": "10"}
            filled = [await binance(s, urls, "POST", "order", market, signed=True) for _ in range(3)]
            bad = await binance(s, urls, "POST", "order", {**RESTING_BUY, "quantity": "0.0000001"}, signed=True)
            resting = [await binance(s, urls, "POST", "order", RESTING_BUY, signed=True) for _ in range(4)]
            return filled, bad, resting
        filled, bad, resting = run(go)
        assert [f[0] for f in filled] == [200] * 3 and filled[0][1]["status"] == "FILLED"
        # Each filled order shows in its own reply's count, then leaves it (it traded).
        assert [f[2]["X-MBX-ORDER-COUNT-10S"] for f in filled] == ["1", "1", "1"]
        assert bad[0] == 400 and "X-MBX-ORDER-COUNT-10S" not in bad[2]
        assert [r[0] for r in resting] == [200, 200, 200, 429]
        assert [r[2]["X-MBX-ORDER-COUNT-10S"] for r in resting[:3]] == ["1", "2", "3"]
        assert resting[3][1]["msg"] == "Too many new orders; current limit is 3 orders per TEN_SECONDS."

        async def with_ccxt() -> Any:
            ex = ccxt_binance(urls, enableRateLimit=False)
            try:
                return (await asyncio.gather(ex.create_order("BTC/USDT", "limit", "buy", 0.001, 30000),
                                             return_exceptions=True))[0]
            finally:
                await ex.close()
        # ccxt's binance turns every 429 into DDoSProtection before it reads the code
        # (RateLimitExceeded is its subclass); what it gets is the venue's -1015 body.
        error = asyncio.run(with_ccxt())
        assert isinstance(error, ccxt.DDoSProtection) and "-1015" in str(error)
        assert limits(urls)["binance"]["orders_10s"]["violations"] == 2


def test_binance_daily_order_limit_says_per_day() -> None:
    with running(binance_orders_per_day=2) as (urls, _clock):
        replies = run(lambda s: asyncio.gather(*(binance(s, urls, "POST", "order", RESTING_BUY, signed=True)
                                                 for _ in range(3))))
        assert sorted(r[0] for r in replies) == [200, 200, 429]
        refused = next(r for r in replies if r[0] == 429)
        assert refused[1] == {"code": -1015, "msg": "Too many new orders; current limit is 2 orders per DAY."}
        assert "Retry-After" not in refused[2]
        view = limits(urls)["binance"]
        assert view["orders_1d"]["violations"] == 1 and view["orders_10s"]["violations"] == 0


# -- admin, switches, config ---------------------------------------------------------


def test_limits_view_has_every_limit_and_reset_zeroes_the_counters() -> None:
    with running(upbit_order_limit_per_s=2) as (urls, _clock):
        replies = run(lambda s: asyncio.gather(*(upbit(s, urls, "POST", "/v1/orders", UPBIT_SELL)
                                                 for _ in range(3))))
        assert sorted(r[0] for r in replies) == [201, 201, 429]
        view = limits(urls)
        assert set(view) == {"upbit", "binance"}
        assert set(view["upbit"]) == {"order", "order-test", "default", "market", "ticker", "orderbook",
                                      "candles", "trades"}
        assert set(view["binance"]) == {"weight_1m", "raw_5m", "orders_10s", "orders_1d"}
        assert view["upbit"]["order"] == {"limit": 2, "window_s": 1, "violations": 1, "max_in_window": 2}
        status, body = admin(urls, "POST", "/_sim/limits/reset")
        assert status == 200 and body["ok"] is True
        assert body["limits"]["upbit"]["order"] == {"limit": 2, "window_s": 1, "violations": 0, "max_in_window": 0}
        assert all(w["violations"] == 0 and w["max_in_window"] == 0
                   for venue in limits(urls).values() for w in venue.values())
        # The window itself is not forgotten: still full within the same second.
        assert run(lambda s: upbit(s, urls, "POST", "/v1/orders", UPBIT_SELL))[0] == 429


def test_the_flat_cap_is_counted_as_rest_flat_when_on() -> None:
    with running(rest_rate_limit_per_s=2) as (urls, _clock):
        replies = run(lambda s: asyncio.gather(*(binance(s, urls, "GET", "time") for _ in range(3))))
        assert sorted(r[0] for r in replies) == [200, 200, 429]
        assert limits(urls)["binance"]["rest_flat"]["violations"] == 1


def test_venue_rate_limits_off_counts_and_reports_but_refuses_nothing() -> None:
    with running(venue_rate_limits=False, binance_weight_per_min=10) as (urls, _clock):
        async def go(s: aiohttp.ClientSession) -> tuple[list[Reply], list[Reply]]:
            orders = [await upbit(s, urls, "POST", "/v1/orders", UPBIT_SELL) for _ in range(10)]
            infos = [await binance(s, urls, "GET", "exchangeInfo") for _ in range(2)]
            return orders, infos
        orders, infos = run(go)
        assert all(o[0] == 201 for o in orders)
        assert orders[-1][2]["Remaining-Req"] == "group=order; min=1800; sec=0"
        assert [i[0] for i in infos] == [200, 200] and infos[1][2]["X-MBX-USED-WEIGHT-1M"] == "40"
        view = limits(urls)
        assert view["upbit"]["order"]["violations"] == 0 and view["upbit"]["order"]["max_in_window"] == 10
        assert view["binance"]["weight_1m"]["max_in_window"] == 40


def test_config_defaults_are_the_venues_published_limits() -> None:
    cfg = SimConfig()
    assert cfg.venue_rate_limits is True and cfg.rest_rate_limit_per_s == 0.0
    assert (cfg.upbit_order_limit_per_s, cfg.upbit_exchange_limit_per_s, cfg.upbit_quotation_limit_per_s) == (
        8.0, 30.0, 10.0)
    assert (cfg.binance_weight_per_min, cfg.binance_raw_requests_per_5min, cfg.binance_orders_per_10s,
            cfg.binance_orders_per_day) == (6000, 61000, 100, 200_000)


@pytest.mark.parametrize("key", ["upbit_order_limit_per_s", "upbit_exchange_limit_per_s",
                                 "upbit_quotation_limit_per_s", "binance_weight_per_min",
                                 "binance_raw_requests_per_5min", "binance_orders_per_10s",
                                 "binance_orders_per_day", "rest_rate_limit_per_s"])
def test_config_rejects_negative_limits(key: str) -> None:
    with pytest.raises(SimConfigError, match=key):
        SimConfig(**{key: -1})
    with pytest.raises(SimConfigError, match=key):
        SimConfig.from_mapping({key: -0.5})


def test_config_rejects_non_numbers_and_a_non_bool_switch() -> None:
    with pytest.raises(SimConfigError, match="binance_orders_per_10s"):
        SimConfig(binance_orders_per_10s=True)
    with pytest.raises(SimConfigError, match="upbit_order_limit_per_s"):
        SimConfig(upbit_order_limit_per_s=float("nan"))
    with pytest.raises(SimConfigError, match="venue_rate_limits"):
        SimConfig.from_mapping({"venue_rate_limits": "yes"})
    assert SimConfig(binance_orders_per_10s=0).binance_orders_per_10s == 0  # 0 = that limit is off
