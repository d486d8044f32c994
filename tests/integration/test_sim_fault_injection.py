"""Each admin fault kind, seen at protocol level; the admin API itself."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import ccxt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from venues.sim.config import SimConfig
from venues.sim.testing import admin, ccxt_binance, ccxt_upbit, sim_thread


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, Any]]:
    sim = sim_thread(SimConfig(seed=6, update_hz=50, rest_rate_limit_per_s=0))
    yield sim.start()
    sim.stop()


@pytest.fixture(autouse=True)
def clear_faults(urls: dict[str, Any]) -> Iterator[None]:
    yield
    assert admin(urls, "DELETE", "/_sim/fault")[0] == 200


def run(coro: Any, timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def fault(urls: dict[str, Any], **body: Any) -> dict[str, Any]:
    status, reply = admin(urls, "POST", "/_sim/fault", body)
    assert status == 200, reply
    return reply


# A pause is judged by the sender's clock (each frame's event time), not by
# when the client read it: the admin POST blocks the client's loop, and frames
# sent before the pause may be read after it began.

def test_pause_keeps_the_socket_open_but_stops_data_and_the_diff_stream_resumes_contiguous(urls: dict[str, Any]) -> None:
    async def go() -> list[dict[str, Any]]:
        async with connect(urls["binance"]["ws"] + "/btcusdt@depth@100ms") as ws:
            events = [json.loads(await asyncio.wait_for(ws.recv(), 5))]
            fault(urls, venue="binance", kind="pause", seconds=0.8)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.5 or len(events) < 4:  # well past the pause's end
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return events
    events = run(go())
    assert max(b["E"] - a["E"] for a, b in zip(events, events[1:], strict=False)) >= 700  # nothing sent while paused
    for prev, nxt in zip(events, events[1:], strict=False):
        assert nxt["U"] == prev["u"] + 1  # no gap in update ids across the pause


def test_pause_on_upbit_stops_orderbook_frames(urls: dict[str, Any]) -> None:
    async def go() -> list[int]:
        async with connect(urls["upbit"]["ws"]) as ws:
            await ws.send(json.dumps([{"ticket": "p"}, {"type": "orderbook", "codes": ["KRW-ETH"]}]))
            stamps = [json.loads(await asyncio.wait_for(ws.recv(), 5))["timestamp"]]
            fault(urls, venue="upbit", kind="pause", seconds=0.6)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.3 or len(stamps) < 3:
                stamps.append(json.loads(await asyncio.wait_for(ws.recv(), 5))["timestamp"])
            return stamps
    stamps = run(go())
    assert max(b - a for a, b in zip(stamps, stamps[1:], strict=False)) >= 500


def test_drop_closes_every_connection_and_refuses_new_ones_for_the_window(urls: dict[str, Any]) -> None:
    async def go() -> tuple[int, int]:
        async with connect(urls["upbit"]["ws"]) as up, connect(urls["binance"]["ws"] + "/ethusdt@bookTicker") as bn:
            await up.send(json.dumps([{"ticket": "d"}, {"type": "orderbook", "codes": ["KRW-BTC"]}]))
            await asyncio.wait_for(up.recv(), 5)
            reply = fault(urls, venue="upbit", kind="drop", seconds=60)  # the test clears it
            assert reply["dropped"] >= 1
            with pytest.raises(ConnectionClosed):
                while True:
                    await asyncio.wait_for(up.recv(), 5)
            await asyncio.wait_for(bn.recv(), 5)  # the other venue is untouched
        with pytest.raises(InvalidStatus) as info:
            async with connect(urls["upbit"]["ws"]):
                pass
        admin(urls, "DELETE", "/_sim/fault")
        async with connect(urls["upbit"]["ws"]) as again:
            await again.send("PING")
            status = json.loads(await asyncio.wait_for(again.recv(), 5))
        return info.value.response.status_code, len(status)
    refused, ok = run(go())
    assert refused == 503 and ok == 1


def test_graceful_drop_sends_a_close_frame(urls: dict[str, Any]) -> None:
    async def go() -> int | None:
        async with connect(urls["binance"]["ws"] + "/btcusdt@bookTicker") as ws:
            await asyncio.wait_for(ws.recv(), 5)
            fault(urls, venue="binance", kind="drop", seconds=0, graceful=True)
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            return info.value.rcvd.code if info.value.rcvd else None
    assert run(go()) == 1001


def _valid(frame: bytes | str, keys: set[str]) -> bool:
    try:
        msg = json.loads(frame)
    except ValueError:
        return False
    return isinstance(msg, dict) and keys <= set(msg) and not isinstance(msg.get("timestamp", 0), str)


BINANCE_TOP_KEYS = {"u", "s", "b", "B", "a", "A"}
UPBIT_BOOK_KEYS = {"type", "code", "orderbook_units"}


async def from_first_garbage(ws: Any, keys: set[str], n: int) -> list[bytes | str]:
    """``n`` frames from the first one that is not a valid frame: the frames
    queued before the fault (however many the admin POSTs let pile up) are skipped."""
    for _ in range(1000):
        frame = await asyncio.wait_for(ws.recv(), 5)
        if not _valid(frame, keys):
            return [frame] + [await asyncio.wait_for(ws.recv(), 5) for _ in range(n - 1)]
    raise AssertionError("1000 frames and none was garbage")


def test_malformed_sends_garbage_frames(urls: dict[str, Any]) -> None:
    async def go() -> tuple[list[bytes | str], list[bytes | str]]:
        async with connect(urls["binance"]["ws"] + "/btcusdt@bookTicker") as bn, connect(urls["upbit"]["ws"]) as up:
            await up.send(json.dumps([{"ticket": "m"}, {"type": "orderbook", "codes": ["KRW-BTC"]}]))
            await asyncio.wait_for(bn.recv(), 5)
            await asyncio.wait_for(up.recv(), 5)
            # Until the autouse fixture clears it: no window for the reads to fit in.
            fault(urls, venue="binance", kind="malformed", seconds=60)
            fault(urls, venue="upbit", kind="malformed", seconds=60)
            return (await from_first_garbage(bn, BINANCE_TOP_KEYS, 6),
                    await from_first_garbage(up, UPBIT_BOOK_KEYS, 6))
    binance, upbit = run(go())
    # Once garbage starts, every frame is garbage while the fault lasts.
    assert not [f for f in binance if _valid(f, BINANCE_TOP_KEYS)], binance
    assert not [f for f in upbit if _valid(f, UPBIT_BOOK_KEYS)], upbit


def test_http_error_gives_5xx_then_ccxt_exchange_not_available(urls: dict[str, Any]) -> None:
    fault(urls, venue="upbit", kind="http_error", seconds=60)  # cleared by the fixture

    async def go() -> None:
        ex = ccxt_upbit(urls, enableRateLimit=False)
        try:
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await ex.fetch_markets()
        finally:
            await ex.close()
    run(go())


def test_http_error_429_maps_to_each_venues_rate_limit_error(urls: dict[str, Any]) -> None:
    fault(urls, venue="upbit", kind="http_error", seconds=60, status=429)
    fault(urls, venue="binance", kind="http_error", seconds=60, status=429)

    async def go() -> None:
        up, bn = ccxt_upbit(urls, enableRateLimit=False), ccxt_binance(urls, enableRateLimit=False)
        try:
            with pytest.raises(ccxt.RateLimitExceeded):
                await up.fetch_markets()
            with pytest.raises(ccxt.DDoSProtection):
                await bn.fetch_time()
        finally:
            await up.close()
            await bn.close()
    run(go())


def test_delay_holds_the_reply_after_the_order_is_taken(urls: dict[str, Any]) -> None:
    async def go() -> None:
        ex = ccxt_binance(urls, enableRateLimit=False)
        try:
            await ex.load_markets()
            fault(urls, venue="binance", kind="delay", seconds=60, delay_s=0.5)
            ex.timeout = 200  # ms
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order("XRP/USDT", "market", "buy", 20, None, {"clientOrderId": "slow-1"})
        finally:
            await ex.close()
    run(go())
    orders = admin(urls, "GET", "/_sim/orders?venue=binance")[1]
    assert [o["status"] for o in orders if o["client_order_id"] == "slow-1"] == ["filled"]


def test_insufficient_funds_fault_rejects_new_orders(urls: dict[str, Any]) -> None:
    fault(urls, venue="upbit", kind="insufficient_funds", seconds=60)
    fault(urls, venue="binance", kind="insufficient_funds", seconds=60)

    async def go() -> None:
        up, bn = ccxt_upbit(urls, enableRateLimit=False), ccxt_binance(urls, enableRateLimit=False)
        try:
            with pytest.raises(ccxt.InsufficientFunds):
                await up.create_order("XRP/KRW", "market", "sell", 10)
            with pytest.raises(ccxt.InsufficientFunds):
                await bn.create_order("XRP/USDT", "market", "sell", 10)
        finally:
            await up.close()
            await bn.close()
    run(go())


@pytest.mark.parametrize("body", [
    b"not json",
    {"venue": "kraken", "kind": "pause", "seconds": 1},
    {"venue": "upbit", "kind": "nap", "seconds": 1},
    {"venue": "upbit", "kind": "delay", "seconds": 1},
])
def test_bad_fault_bodies_get_a_one_line_400(urls: dict[str, Any], body: Any) -> None:
    status, reply = admin(urls, "POST", "/_sim/fault", body)
    assert status == 400 and set(reply) == {"error"} and "\n" not in reply["error"]


def test_active_faults_are_listed_and_cleared(urls: dict[str, Any]) -> None:
    fault(urls, venue="upbit", kind="pause", seconds=30)
    listing = admin(urls, "GET", "/_sim/fault")[1]
    assert [(f["venue"], f["kind"]) for f in listing] == [("upbit", "pause")]
    assert admin(urls, "DELETE", "/_sim/fault")[1] == {"ok": True, "cleared": 1}


def test_orders_endpoint_shows_every_order_and_balances_move(urls: dict[str, Any]) -> None:
    before = admin(urls, "GET", "/_sim/balances")[1]

    async def go() -> None:
        up = ccxt_upbit(urls, enableRateLimit=False)
        try:
            await up.create_order("XRP/KRW", "market", "sell", 100, None, {"clientOrderId": "adm-ok"})
            with pytest.raises(ccxt.ExchangeError):
                await up.create_order("XRP/KRW", "limit", "sell", 1, 1000, {"clientOrderId": "adm-bad"})
        finally:
            await up.close()
    run(go())
    orders = {o["client_order_id"]: o for o in admin(urls, "GET", "/_sim/orders")[1]}
    ok, bad = orders["adm-ok"], orders["adm-bad"]
    assert ok["status"] == "filled" and ok["filled"] == 100 and ok["venue"] == "upbit" and ok["symbol"] == "KRW-XRP"
    assert bad["status"] == "rejected" and bad["reason"] == "under_min_total_ask"
    assert abs(ok["ts_ns"] / 1e9 - time.time()) < 60
    after = admin(urls, "GET", "/_sim/balances")[1]
    assert after["upbit"]["XRP"]["free"] == pytest.approx(before["upbit"]["XRP"]["free"] - 100)


def test_market_nudge_moves_the_books_now(urls: dict[str, Any]) -> None:
    status, state = admin(urls, "POST", "/_sim/market", {"premium_pct": 4.0})
    assert status == 200 and state["premium_pct"] == 4.0

    async def go() -> float:
        async with aiohttp.ClientSession() as s:
            async with s.get(urls["upbit"]["rest"] + "/v1/orderbook?markets=KRW-BTC,KRW-USDT") as r:
                up = await r.json()
            async with s.get(urls["binance"]["rest"] + "/api/v3/depth?symbol=BTCUSDT&limit=1") as r:
                bn = await r.json()
        krw = up[0]["orderbook_units"][0]["bid_price"]
        fx = up[1]["orderbook_units"][0]["bid_price"]
        return (krw / (float(bn["bids"][0][0]) * fx) - 1) * 100
    assert 3.0 < run(go()) < 5.0  # the market keeps moving, but not that fast
    assert admin(urls, "POST", "/_sim/market", {"premium": 1})[0] == 400
