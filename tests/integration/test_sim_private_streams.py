"""The venues' private streams end to end: the simulator's Binance user data stream and
Upbit /websocket/v1/private, read by venues.private_streams' clients, orders placed
over signed REST (venues.sim.auth helpers), all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from arbitrage.venue_rules import round_binance_qty, round_upbit_price, round_upbit_qty
from venues.private_streams import BalanceUpdate, BinanceUserStream, OrderUpdate, UpbitPrivateStream
from venues.sim.auth import binance_signature, make_upbit_jwt
from venues.sim.config import SimConfig
from venues.sim.server import SimExchange
from venues.sim.testing import admin, sim_thread

# The exchange stamps a stream event (Binance ``E``, Upbit ``timestamp``)
# within the budget of the order it recorded: what the venue promises, on its
# own clock. The client's reading of it shares this process (and its GIL)
# with the test's other threads, so its arrival here is bounded loosely.
LATENCY_BUDGET_S = 0.2
ARRIVAL_BOUND_S = 1.0
STREAMS = {"binance": BinanceUserStream, "upbit": UpbitPrivateStream}


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, Any]]:
    # Books move 4 times a second: a partial IOC sized from the touch it just
    # read must land before the touch moves, also on a loaded machine.
    sim = sim_thread(SimConfig(seed=11, update_hz=4))
    yield sim.start()
    sim.stop()


@pytest.fixture(autouse=True)
def clear_faults(urls: dict[str, Any]) -> Iterator[None]:
    yield
    assert admin(urls, "DELETE", "/_sim/fault")[0] == 200


def run(coro: Any, timeout: float = 30.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def admin_async(urls: dict[str, Any], method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return await asyncio.to_thread(admin, urls, method, path, body)


class Seen:
    """What a stream reported, each with its arrival time (perf_counter)."""

    def __init__(self) -> None:
        self.orders: list[tuple[float, OrderUpdate]] = []
        self.balances: list[tuple[float, BalanceUpdate]] = []
        self.states: list[tuple[float, str, bool, str]] = []
        self._changed = asyncio.Event()

    def on_order(self, u: OrderUpdate) -> None:
        self.orders.append((time.perf_counter(), u))
        self._changed.set()

    def on_balance(self, b: BalanceUpdate) -> None:
        self.balances.append((time.perf_counter(), b))
        self._changed.set()

    def on_state(self, venue: str, up: bool, reason: str) -> None:
        self.states.append((time.perf_counter(), venue, up, reason))
        self._changed.set()

    @property
    def up(self) -> bool:
        return bool(self.states) and self.states[-1][2]

    async def until(self, pred: Callable[[], Any], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (result := pred()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for the stream")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
        return result

    def for_order(self, cid: str) -> list[tuple[float, OrderUpdate]]:
        return [(t, u) for t, u in self.orders if u.client_order_id == cid]


def stream(urls: dict[str, Any], venue: str, seen: Seen, **options: Any) -> Any:
    cls = STREAMS[venue]
    s = cls(urls[venue]["rest"], urls[venue]["ws"], urls["test_keys"][venue], on_order=seen.on_order,
            on_balance=seen.on_balance, on_state=seen.on_state, reconnect_min_s=0.05, reconnect_max_s=0.3,
            **options)
    s.start()
    return s


# -- signed REST ---------------------------------------------------------------------------------


async def binance_depth(http: aiohttp.ClientSession, urls: dict[str, Any], symbol: str = "BTCUSDT") -> Any:
    async with http.get(urls["binance"]["rest"] + "/api/v3/depth", params={"symbol": symbol, "limit": 20}) as r:
        return await r.json()


async def binance_signed(http: aiohttp.ClientSession, urls: dict[str, Any], method: str, path: str,
                         params: dict[str, Any]) -> tuple[int, Any, float]:
    """(status, body, perf_counter when the reply was read)."""
    keys = urls["test_keys"]["binance"]
    query = urlencode({**params, "timestamp": int(time.time() * 1000), "recvWindow": 5000})
    body = f"{query}&signature={binance_signature(keys['secret'], query)}"
    headers = {"X-MBX-APIKEY": keys["apiKey"], "Content-Type": "application/x-www-form-urlencoded"}
    url = urls["binance"]["rest"] + path
    if method == "POST":
        req = http.post(url, data=body, headers=headers)
    else:
        req = http.request(method, f"{url}?{body}", headers=headers)
    async with req as r:
        out = await r.json()
        return r.status, out, time.perf_counter()


async def upbit_order(http: aiohttp.ClientSession, urls: dict[str, Any], params: dict[str, Any]) -> tuple[int, Any, float]:
    keys = urls["test_keys"]["upbit"]
    token = make_upbit_jwt(keys["apiKey"], keys["secret"], list(params.items()))
    async with http.post(urls["upbit"]["rest"] + "/v1/orders", data=json.dumps(params),
                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as r:
        out = await r.json()
        return r.status, out, time.perf_counter()


async def upbit_book(http: aiohttp.ClientSession, urls: dict[str, Any], code: str = "KRW-BTC") -> list[tuple[float, float]]:
    """The asks, best first: [(price, size)]."""
    async with http.get(urls["upbit"]["rest"] + "/v1/orderbook", params={"markets": code}) as r:
        book = (await r.json())[0]
    return [(u["ask_price"], u["ask_size"]) for u in book["orderbook_units"]]


async def sim_record(urls: dict[str, Any], venue: str, c: str) -> dict[str, Any]:
    _, orders = await admin_async(urls, "GET", f"/_sim/orders?venue={venue}")
    return next(o for o in orders if o["client_order_id"] == c)


def within_budget(rec: dict[str, Any], stamped_ns: int) -> None:
    """Stamped by the exchange within the budget of its order record (ms stamps)."""
    lag_s = (stamped_ns - rec["ts_ns"]) / 1e9
    assert -0.001 <= lag_s < LATENCY_BUDGET_S, f"stream event stamped {lag_s:.3f}s after the order"


def cid(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}"


# -- Binance -------------------------------------------------------------------------------------


async def binance_partial_ioc(http: aiohttp.ClientSession, urls: dict[str, Any]) -> tuple[str, Any, float]:
    """An IOC buy for a bit more than the best level at its price: a partial fill, then EXPIRED.
    The book moves between the depth read and the order; try again until it was partial."""
    for _ in range(10):
        asks = (await binance_depth(http, urls))["asks"]
        c = cid("bioc")
        status, reply, t_reply = await binance_signed(http, urls, "POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "IOC",
            "quantity": f"{round_binance_qty(float(asks[0][1]) + 0.01, 'BTC'):.5f}", "price": asks[0][0],
            "newClientOrderId": c, "newOrderRespType": "FULL"})
        assert status == 200, reply
        if reply["status"] == "EXPIRED" and reply["fills"]:
            return c, reply, t_reply
    raise AssertionError("no partial fill in 10 tries")


def test_binance_ioc_streams_new_trades_and_expired_with_balances_within_the_budget(urls: dict[str, Any]) -> None:
    async def go() -> None:
        seen = Seen()
        s = stream(urls, "binance", seen)
        async with aiohttp.ClientSession() as http:
            await seen.until(lambda: seen.up)
            c, reply, t_reply = await binance_partial_ioc(http, urls)
            # the FULL reply is what it always was
            assert reply["clientOrderId"] == c
            assert set(reply) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime", "price",
                                  "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status",
                                  "timeInForce", "type", "side", "workingTime", "selfTradePreventionMode", "fills"}
            assert set(reply["fills"][0]) == {"price", "qty", "commission", "commissionAsset", "tradeId"}
            events = await seen.until(lambda: (ev := seen.for_order(c)) and ev[-1][1].done and ev)
            statuses = [u.status for _, u in events]
            assert statuses[0] == "open"
            assert statuses[1:-1] == ["partially_filled"] * len(reply["fills"])
            assert not any(u.done for _, u in events[:-1])
            last = events[-1][1]
            assert (last.status, last.done, last.symbol, last.side) == ("partially_filled", True, "BTC", "buy")
            assert last.venue_order_id == str(reply["orderId"])
            assert last.filled_qty == pytest.approx(float(reply["executedQty"]))
            assert last.avg_price == pytest.approx(float(reply["cummulativeQuoteQty"]) / float(reply["executedQty"]))
            fee = sum(float(f["commission"]) * float(f["price"]) for f in reply["fills"])  # BTC fee at the fill price
            assert last.fee_quote == pytest.approx(fee)
            rec = await sim_record(urls, "binance", c)
            within_budget(rec, max(u.ts_ns for _, u in events))
            assert max(t for t, _ in events) - t_reply < ARRIVAL_BOUND_S
            # the balance change reached the stream too, and matches the account
            _, balances = await admin_async(urls, "GET", "/_sim/balances")
            await seen.until(lambda: seen.balances and seen.balances[-1][1].free.get("USDT")
                             == pytest.approx(balances["binance"]["USDT"]["free"]))
            within_budget(rec, seen.balances[-1][1].ts_ns)
            assert seen.balances[-1][0] - t_reply < ARRIVAL_BOUND_S
            assert seen.balances[-1][1].locked["USDT"] == pytest.approx(balances["binance"]["USDT"]["locked"])
            btc = [b for _, b in seen.balances if "BTC" in b.free]
            assert btc and btc[-1].free["BTC"] == pytest.approx(balances["binance"]["BTC"]["free"])
            assert all(not b.full for _, b in seen.balances)
        await s.close()
    run(go())


def test_binance_market_order_ends_filled_on_its_last_trade(urls: dict[str, Any]) -> None:
    async def go() -> list[tuple[str, bool]]:
        seen = Seen()
        s = stream(urls, "binance", seen)
        async with aiohttp.ClientSession() as http:
            await seen.until(lambda: seen.up)
            c = cid("bmkt")
            status, reply, _ = await binance_signed(http, urls, "POST", "/api/v3/order", {
                "symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.0100",
                "newClientOrderId": c})
            assert status == 200 and reply["status"] == "FILLED", reply
            events = await seen.until(lambda: (ev := seen.for_order(c)) and ev[-1][1].done and ev)
            assert events[-1][1].fee_quote == pytest.approx(sum(float(f["commission"]) for f in reply["fills"]))
        await s.close()
        return [(u.status, u.done) for _, u in events]
    got = run(go())
    assert got[0] == ("open", False) and got[-1] == ("filled", True)
    assert all(st == ("partially_filled", False) for st in got[1:-1])


def test_binance_cancel_reports_the_original_client_id(urls: dict[str, Any]) -> None:
    async def go() -> OrderUpdate:
        seen = Seen()
        s = stream(urls, "binance", seen)
        async with aiohttp.ClientSession() as http:
            await seen.until(lambda: seen.up)
            bid = float((await binance_depth(http, urls))["bids"][-1][0])
            c = cid("bgtc")
            status, reply, _ = await binance_signed(http, urls, "POST", "/api/v3/order", {
                "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.00100",
                "price": f"{round(bid * 0.9, 2):.2f}", "newClientOrderId": c})
            assert status == 200 and reply["status"] == "NEW", reply
            await seen.until(lambda: seen.for_order(c))
            status, reply, _ = await binance_signed(http, urls, "DELETE", "/api/v3/order",
                                                    {"symbol": "BTCUSDT", "origClientOrderId": c})
            assert status == 200, reply
            events = await seen.until(lambda: (ev := seen.for_order(c)) and ev[-1][1].done and ev)
        await s.close()
        return events[-1][1]
    last = run(go())
    assert (last.status, last.done, last.filled_qty) == ("cancelled", True, 0.0)


def test_listen_key_rest_weights_keepalive_unknown_keys_and_delete(urls: dict[str, Any]) -> None:
    async def go() -> None:
        base = urls["binance"]["rest"] + "/api/v3/userDataStream"
        hdr = {"X-MBX-APIKEY": urls["test_keys"]["binance"]["apiKey"]}
        async with aiohttp.ClientSession() as http:
            async with http.post(base, headers=hdr) as r:
                used = int(r.headers["X-MBX-USED-WEIGHT-1M"])
                key = (await r.json())["listenKey"]
            assert len(key) == 60 and key.isalnum()
            async with http.post(base, headers=hdr) as r:  # an active key is handed out again
                assert (await r.json())["listenKey"] == key
                assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) == used + 2  # weight 2, through the limiter
            async with http.put(base, headers=hdr, params={"listenKey": key}) as r:
                assert r.status == 200 and await r.json() == {}
            async with http.put(base, headers=hdr, params={"listenKey": "x" * 60}) as r:
                assert r.status == 400 and (await r.json())["code"] == -1125
            async with http.post(base) as r:
                assert r.status == 401 and (await r.json())["code"] == -2014
            async with http.post(base, headers={"X-MBX-APIKEY": "nope"}) as r:
                assert r.status == 401 and (await r.json())["code"] == -2015
            async with http.put(base, headers=hdr) as r:
                assert r.status == 400 and (await r.json())["code"] == -1102
            # an unknown key is refused at the handshake; the public /ws routes are untouched
            with pytest.raises(InvalidStatus) as info:
                async with connect(urls["binance"]["ws"] + "/" + "Q" * 60):
                    pass
            assert info.value.response.status_code == 400
            async with connect(urls["binance"]["ws"] + "/btcusdt@bookTicker") as pub:
                assert json.loads(await asyncio.wait_for(pub.recv(), 5))["s"] == "BTCUSDT"
            # DELETE closes the key's sockets and the key is gone
            async with connect(urls["binance"]["ws"] + "/" + key) as ws:
                async with http.delete(base, headers=hdr, params={"listenKey": key}) as r:
                    assert r.status == 200
                await asyncio.wait_for(ws.wait_closed(), 5)
                assert ws.close_code == 1000
            with pytest.raises(InvalidStatus):
                async with connect(urls["binance"]["ws"] + "/" + key):
                    pass
    run(go())


def test_binance_client_gets_a_new_key_when_its_key_is_refused(urls: dict[str, Any]) -> None:
    async def go() -> tuple[int, list[bool]]:
        seen = Seen()
        s = stream(urls, "binance", seen)
        await seen.until(lambda: seen.up)
        base = urls["binance"]["rest"] + "/api/v3/userDataStream"
        hdr = {"X-MBX-APIKEY": urls["test_keys"]["binance"]["apiKey"]}
        async with aiohttp.ClientSession() as http:
            async with http.post(base, headers=hdr) as r:  # the active key, i.e. the client's
                key = (await r.json())["listenKey"]
            async with http.delete(base, headers=hdr, params={"listenKey": key}) as r:
                assert r.status == 200
        await seen.until(lambda: [st for st in seen.states if not st[2]])
        await seen.until(lambda: seen.up and s.keys_fetched >= 2)
        await s.close()
        return s.keys_fetched, [st[2] for st in seen.states]
    fetched, states = run(go())
    assert fetched >= 2 and states[0] is True and False in states and states[-1] is True


def test_binance_keepalive_puts_on_schedule(urls: dict[str, Any]) -> None:
    async def go() -> tuple[int, float]:
        seen = Seen()
        s = stream(urls, "binance", seen, keepalive_s=0.1)
        await seen.until(lambda: seen.up)
        async def weight() -> int:
            return (await admin_async(urls, "GET", "/_sim/limits"))[1]["binance"]["weight_1m"]["max_in_window"]

        before, t0 = await weight(), time.monotonic()
        deadline = t0 + 5.0  # a loaded loop may run a keepalive late, not skip it
        while (added := await weight() - before) < 2 * 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - t0
        await s.close()
        assert seen.up  # keepalives do not disturb the socket
        return added, elapsed
    added, elapsed = run(go())
    assert added >= 2 * 3  # several PUTs of weight 2 each
    # On schedule: at least a fifth of the keepalives due in that time (a
    # schedule ten times too slow would need 2-3 s for these three).
    assert added / 2 >= (elapsed / 0.1) / 5, (added, elapsed)


# -- Upbit ---------------------------------------------------------------------------------------


async def upbit_ioc(http: aiohttp.ClientSession, urls: dict[str, Any], price: float, volume: float,
                    c: str) -> tuple[Any, float]:
    status, reply, t_reply = await upbit_order(http, urls, {
        "market": "KRW-BTC", "side": "bid", "ord_type": "limit", "price": f"{price:.0f}",
        "volume": f"{volume:.8f}", "time_in_force": "ioc", "identifier": c})
    assert status == 201, reply
    return reply, t_reply




def test_upbit_ioc_streams_wait_trades_and_done_with_assets_within_the_budget(urls: dict[str, Any]) -> None:
    async def go() -> None:
        seen = Seen()
        s = stream(urls, "upbit", seen)
        async with aiohttp.ClientSession() as http:
            await seen.until(lambda: seen.up)
            await asyncio.sleep(0.05)  # the subscription request is on its way
            book = await upbit_book(http, urls)
            c = cid("uioc")
            # 1 % through the touch: the book cannot move that far in between, so it fills
            reply, t_reply = await upbit_ioc(http, urls, round_upbit_price(book[0][0] * 1.01, "BTC", "up"), 0.01, c)
            events = await seen.until(lambda: (ev := seen.for_order(c)) and ev[-1][1].done and ev)
            assert events[0][1].status == "open"
            assert len(events) >= 3  # wait, at least one trade, done
            assert all(u.status == "partially_filled" and not u.done for _, u in events[1:-1])
            last = events[-1][1]
            assert (last.status, last.done, last.symbol, last.side) == ("filled", True, "BTC", "buy")
            assert last.venue_order_id == reply["uuid"]
            rec = await sim_record(urls, "upbit", c)
            assert last.filled_qty == pytest.approx(rec["filled"]) == pytest.approx(0.01)
            assert last.avg_price == pytest.approx(rec["cost"] / rec["filled"])
            assert last.fee_quote == pytest.approx(rec["fee"])
            within_budget(rec, max(u.ts_ns for _, u in events))
            assert max(t for t, _ in events) - t_reply < ARRIVAL_BOUND_S
            _, balances = await admin_async(urls, "GET", "/_sim/balances")
            await seen.until(lambda: seen.balances and seen.balances[-1][1].free.get("KRW")
                             == pytest.approx(balances["upbit"]["KRW"]["free"]))
            within_budget(rec, seen.balances[-1][1].ts_ns)
            assert seen.balances[-1][0] - t_reply < ARRIVAL_BOUND_S
            btc = [b for _, b in seen.balances if "BTC" in b.free]
            assert btc and btc[-1].free["BTC"] == pytest.approx(balances["upbit"]["BTC"]["free"])
        await s.close()
    run(go())


def test_upbit_ioc_remainder_and_no_fill_end_in_cancel(urls: dict[str, Any]) -> None:
    async def go() -> tuple[OrderUpdate, OrderUpdate]:
        seen = Seen()
        s = stream(urls, "upbit", seen)
        async with aiohttp.ClientSession() as http:
            await seen.until(lambda: seen.up)
            await asyncio.sleep(0.05)
            for attempt in range(10):  # a bit more than the touch at its price: partial (unless the book moved)
                await asyncio.sleep(0.15 if attempt else 0.0)  # within Upbit's 8 orders / 10 orderbooks a second
                book = await upbit_book(http, urls)
                c = cid("upart")
                reply, _ = await upbit_ioc(http, urls, book[0][0], round_upbit_qty(book[0][1] + 0.001), c)
                assert reply["state"] == "wait"  # the reply is the acceptance; the stream tells the rest
                final = (await seen.until(lambda c=c: (ev := seen.for_order(c)) and ev[-1][1].done and ev))[-1][1]
                if final.status == "partially_filled":
                    break
            else:
                raise AssertionError("no partial fill in 10 tries")
            partial = (await seen.until(lambda: (ev := seen.for_order(c)) and ev[-1][1].done and ev))[-1][1]
            assert partial.filled_qty == pytest.approx((await sim_record(urls, "upbit", c))["filled"])
            c = cid("unone")
            await upbit_ioc(http, urls, round_upbit_price(book[-1][0] * 0.5, "BTC", "down"), 0.001, c)
            nothing = await seen.until(lambda: (ev := seen.for_order(c)) and ev[-1][1].done and ev)
            assert [u.status for _, u in nothing] == ["open", "cancelled"]
        await s.close()
        return partial, nothing[-1][1]
    partial, nothing = run(go())
    assert (partial.status, partial.done) == ("partially_filled", True) and partial.filled_qty > 0
    assert (nothing.status, nothing.done, nothing.filled_qty) == ("cancelled", True, 0.0)


def test_upbit_private_handshake_needs_a_valid_jwt(urls: dict[str, Any]) -> None:
    async def go() -> list[int]:
        url = urls["upbit"]["ws"] + "/private"
        keys = urls["test_keys"]["upbit"]
        codes = []
        for headers in ({}, {"Authorization": "Bearer nonsense"},
                        {"Authorization": "Bearer " + make_upbit_jwt(keys["apiKey"], "wrong-secret")},
                        {"Authorization": "Bearer " + make_upbit_jwt("unknown-key", keys["secret"])}):
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, additional_headers=headers):
                    pass
            codes.append(info.value.response.status_code)
        good = {"Authorization": "Bearer " + make_upbit_jwt(keys["apiKey"], keys["secret"])}
        async with connect(url, additional_headers=good) as ws:
            await ws.send(json.dumps([{"ticket": "t"}, {"type": "ticker", "codes": ["KRW-BTC"]}]))
            err = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert err["error"]["name"] == "INVALID_PARAM"  # market data is not on the private endpoint
            await ws.send("PING")
            assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"status": "UP"}
        return codes
    assert run(go()) == [401, 401, 401, 401]


def test_upbit_my_order_codes_filter(urls: dict[str, Any]) -> None:
    async def go() -> list[str]:
        keys = urls["test_keys"]["upbit"]
        headers = {"Authorization": "Bearer " + make_upbit_jwt(keys["apiKey"], keys["secret"])}
        async with aiohttp.ClientSession() as http, \
                connect(urls["upbit"]["ws"] + "/private", additional_headers=headers) as ws:
            await ws.send(json.dumps([{"ticket": "f"}, {"type": "myOrder", "codes": ["KRW-ETH"]},
                                      {"format": "JSON_LIST"}]))
            await asyncio.sleep(0.05)
            for code, coin, vol in (("KRW-BTC", "BTC", "0.001"), ("KRW-ETH", "ETH", "0.01")):
                price = round_upbit_price((await upbit_book(http, urls, code))[0][0] * 1.01, coin, "up")
                status, reply, _ = await upbit_order(http, urls, {"market": code, "side": "bid", "ord_type": "limit",
                                                                  "price": f"{price:.0f}", "volume": vol,
                                                                  "time_in_force": "ioc"})
                assert status == 201, reply
            codes = []
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert isinstance(frame, list)  # JSON_LIST
                codes.append(frame[0]["code"])
                if frame[0]["state"] in ("done", "cancel"):
                    return codes
    assert set(run(go())) == {"KRW-ETH"}


# -- faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize("venue", ["binance", "upbit"])
def test_drop_takes_the_private_stream_down_and_it_comes_back(urls: dict[str, Any], venue: str) -> None:
    async def go() -> tuple[float, list[bool]]:
        seen = Seen()
        s = stream(urls, venue, seen)
        await seen.until(lambda: seen.up)
        t0 = time.perf_counter()
        status, reply = await admin_async(urls, "POST", "/_sim/fault", {"venue": venue, "kind": "drop", "seconds": 0})
        assert status == 200 and reply["dropped"] >= 1
        down = await seen.until(lambda: next((st for st in seen.states if not st[2]), None))
        await seen.until(lambda: seen.up)
        await s.close()
        return down[0] - t0, [st[2] for st in seen.states]
    lag, states = run(go())
    assert lag < 1.0  # reported at once
    assert states == [True, False, True]


@pytest.mark.parametrize("venue", ["binance", "upbit"])
def test_private_down_holds_only_the_private_stream_down_for_its_window(urls: dict[str, Any], venue: str) -> None:
    async def go() -> tuple[float, float, bool]:
        seen = Seen()
        s = stream(urls, venue, seen)
        await seen.until(lambda: seen.up)
        public = urls[venue]["ws"] + ("/ethusdt@bookTicker" if venue == "binance" else "")
        async with connect(public, close_timeout=0.5) as pub:
            if venue == "upbit":
                await pub.send(json.dumps([{"ticket": "p"}, {"type": "orderbook", "codes": ["KRW-ETH"]}]))
            await asyncio.wait_for(pub.recv(), 5)
            # The window starts while the POST is handled: after `asked`, before `answered`.
            asked = time.perf_counter()
            status, reply = await admin_async(urls, "POST", "/_sim/fault",
                                              {"venue": venue, "kind": "private_down", "seconds": 1.0})
            answered = time.perf_counter()
            assert status == 200 and reply["dropped"] == 1, reply
            # Down after `asked`, though a slow reply may come after it is up again.
            await seen.until(lambda: [st for st in seen.states if not st[2] and st[0] >= asked])
            await asyncio.wait_for(pub.recv(), 5)  # market data carries on
            public_alive = True
            await seen.until(lambda: seen.up, timeout=5.0)
        up_again = time.perf_counter()
        await s.close()
        return up_again - asked, up_again - answered, public_alive
    at_least, at_most, public_alive = run(go())
    assert at_least >= 0.98 and at_most < 3.0 and public_alive


def test_private_down_fault_is_validated(urls: dict[str, Any]) -> None:
    assert admin(urls, "POST", "/_sim/fault", {"venue": "upbit", "kind": "private_down"})[0] == 400
    assert admin(urls, "POST", "/_sim/fault", {"venue": "upbit", "kind": "private_down", "seconds": 1,
                                               "status": 500})[0] == 400
    status, reply = admin(urls, "POST", "/_sim/fault", {"venue": "binance", "kind": "private_down", "seconds": 0.1,
                                                        "graceful": True})
    assert status == 200 and reply["fault"]["kind"] == "private_down"


def test_an_expired_listen_key_is_announced_and_the_client_moves_to_a_new_one() -> None:
    async def go() -> tuple[int, list[bool], list[str]]:
        sim = SimExchange(SimConfig(seed=12, update_hz=5))
        sim_urls = await sim.start()
        try:
            hub = sim.private["binance"]
            seen = Seen()
            s = stream(sim_urls, "binance", seen)
            await seen.until(lambda: seen.up)
            key = next(iter(hub.keys))
            async with connect(sim_urls["binance"]["ws"] + "/" + key) as raw:
                # Keys die fast from now on (the client keeps its 30 min keepalive);
                # shortened only once both sockets are on the key, so neither races it.
                hub.validity_s = 0.3
                hub._extend(key)
                note = json.loads(await asyncio.wait_for(raw.recv(), 5))  # a second socket on the key sees why
            await seen.until(lambda: s.keys_fetched >= 2 and seen.up)
            await s.close()
            return s.keys_fetched, [st[2] for st in seen.states], [note["e"], note["listenKey"]]
        finally:
            await sim.stop()
    fetched, states, note = run(go())
    assert fetched >= 2 and states[:3] == [True, False, True]
    assert note[0] == "listenKeyExpired" and len(note[1]) == 60


def test_malformed_frames_are_logged_in_one_line_and_skipped_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """A stand-in Upbit private endpoint that sends garbage between good frames."""
    frames = [b"\xff\xfe garbage", b'{"type":"myOrder","code":', b'{"status":"UP"}',
              json.dumps({"type": "myAsset", "assets": [{"currency": "KRW", "balance": 5.0, "locked": 1.0}],
                          "timestamp": 1710146517267}).encode()]
    keys = {"apiKey": "SECRET-ACCESS-KEY-123", "secret": "SECRET-SECRET-456"}
    auth_seen: list[str] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        auth_seen.append(request.headers.get("Authorization", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive()  # the subscription
        for f in frames:
            await ws.send_bytes(f)
        await ws.receive()  # until the client goes
        return ws

    async def go() -> tuple[Seen, int]:
        app = web.Application()
        app.add_routes([web.get("/websocket/v1/private", handler)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            seen = Seen()
            s = UpbitPrivateStream(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/websocket/v1", keys,
                                   on_order=seen.on_order, on_balance=seen.on_balance, on_state=seen.on_state)
            s.start()
            await seen.until(lambda: seen.balances)
            await s.close()
            return seen, s.malformed
        finally:
            await runner.cleanup()
    with caplog.at_level(logging.DEBUG):
        seen, malformed = run(go())
    assert malformed == 2 and seen.balances[0][1].free == {"KRW": 5.0}
    lines = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(lines) == 2 and all("\n" not in line for line in lines)
    token = auth_seen[0].removeprefix("Bearer ")
    assert token and all(secret not in r.getMessage() for r in caplog.records
                         for secret in (*keys.values(), token))
