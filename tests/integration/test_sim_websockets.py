"""Market-data WebSockets: ccxt pro stays in sync; raw clients see the venues' frames and errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from venues.sim.config import SimConfig
from venues.sim.testing import ccxt_binance, ccxt_upbit, sim_thread


@pytest.fixture(scope="module")
def urls() -> Iterator[dict[str, Any]]:
    sim = sim_thread(SimConfig(seed=5, update_hz=50, rest_rate_limit_per_s=0))
    yield sim.start()
    sim.stop()


def run(coro: Any, timeout: float = 20.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def _recv_json(ws: Any, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


# -- ccxt pro ------------------------------------------------------------------------------


def test_ccxt_pro_binance_order_book_stays_in_sync_across_updates(urls: dict[str, Any]) -> None:
    async def go() -> list[int]:
        ex = ccxt_binance(urls, pro=True)
        try:
            nonces = []
            for _ in range(12):
                book = await ex.watch_order_book("BTC/USDT")
                nonces.append(book["nonce"])
                assert book["bids"][0][0] < book["asks"][0][0]
                assert len(book["bids"]) == len(book["asks"]) == 20
            eth = await ex.watch_order_book("ETH/USDT")
            assert eth["bids"][0][0] < eth["asks"][0][0]
            return nonces
        finally:
            await ex.close()
    nonces = run(go())
    assert nonces == sorted(nonces) and len(set(nonces)) >= 10  # every update applied, no resync


def test_ccxt_pro_upbit_order_books_arrive_as_binary_frames_for_several_symbols(urls: dict[str, Any]) -> None:
    async def go() -> None:
        ex = ccxt_upbit(urls, pro=True)
        try:
            stamps = []
            for _ in range(5):
                book = await ex.watch_order_book("BTC/KRW")
                stamps.append(book["timestamp"])
                assert book["bids"][0][0] < book["asks"][0][0] and len(book["bids"]) == 15
            for _ in range(3):  # ccxt re-sends the whole list; BTC must keep flowing too
                usdt = await ex.watch_order_book("USDT/KRW")
                assert 1300 < usdt["bids"][0][0] < 1500
            assert (await ex.watch_order_book("BTC/KRW"))["timestamp"] >= stamps[-1]
            ticker = await ex.watch_ticker("ETH/KRW")
            assert ticker["last"] > 1_000_000
        finally:
            await ex.close()
    run(go())


# -- raw Binance ---------------------------------------------------------------------------


def test_raw_binance_book_ticker_stream(urls: dict[str, Any]) -> None:
    async def go() -> dict[str, Any]:
        async with connect(urls["binance"]["ws"] + "/btcusdt@bookTicker") as ws:
            return await _recv_json(ws)
    msg = run(go())
    assert set(msg) == {"u", "s", "b", "B", "a", "A"} and msg["s"] == "BTCUSDT"
    assert float(msg["b"]) < float(msg["a"])


def test_raw_binance_combined_stream_wraps_payloads(urls: dict[str, Any]) -> None:
    base = urls["binance"]["rest"].replace("http://", "ws://")

    async def go() -> list[dict[str, Any]]:
        async with connect(base + "/stream?streams=ethusdt@depth5@100ms/xrpusdt@bookTicker") as ws:
            return [await _recv_json(ws) for _ in range(6)]
    msgs = run(go())
    streams = {m["stream"] for m in msgs}
    assert streams <= {"ethusdt@depth5@100ms", "xrpusdt@bookTicker"} and "ethusdt@depth5@100ms" in streams
    depth = next(m["data"] for m in msgs if m["stream"] == "ethusdt@depth5@100ms")
    assert set(depth) == {"lastUpdateId", "bids", "asks"} and len(depth["bids"]) == 5


def test_raw_binance_subscribe_list_and_errors(urls: dict[str, Any]) -> None:
    async def go() -> list[Any]:
        async with connect(urls["binance"]["ws"]) as ws:
            out = []
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1}))
            out.append(await _recv_json(ws))
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
            out.append(await _recv_json(ws))
            await ws.send("{not json")
            out.append(await _recv_json(ws))
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 3}))
            out.append(await _recv_json(ws))
            return out
    ack, listing, bad_json, bad_stream = run(go())
    assert ack == {"result": None, "id": 1}
    assert listing == {"result": ["btcusdt@trade"], "id": 2}
    assert bad_json["code"] == 3 and bad_json["msg"].startswith("Invalid JSON")
    assert bad_stream["code"] == 2 and bad_stream["id"] == 3


def test_raw_binance_diff_depth_continues_from_the_rest_snapshot(urls: dict[str, Any]) -> None:
    async def go() -> tuple[int, list[dict[str, Any]]]:
        async with connect(urls["binance"]["ws"] + "/xrpusdt@depth@100ms") as ws:
            first = await _recv_json(ws)
            async with aiohttp.ClientSession() as s, s.get(
                    urls["binance"]["rest"] + "/api/v3/depth?symbol=XRPUSDT&limit=1000") as r:
                snapshot = await r.json()
            events = [first] + [await _recv_json(ws) for _ in range(8)]
            return snapshot["lastUpdateId"], events
    last_id, events = run(go())
    live = [e for e in events if e["u"] > last_id]
    assert live and live[0]["U"] <= last_id + 1 <= live[0]["u"]
    for prev, nxt in zip(live, live[1:], strict=False):
        assert nxt["U"] == prev["u"] + 1
    assert all(e["e"] == "depthUpdate" and e["s"] == "XRPUSDT" for e in events)


def test_binance_server_pings_and_drops_a_chatty_client() -> None:
    sim = sim_thread(SimConfig(binance_ping_interval_s=0.2, binance_ws_msg_limit_per_s=5))
    urls = sim.start()
    try:
        async def go() -> tuple[aiohttp.WSMsgType, int | None]:
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(urls["binance"]["ws"], autoping=False) as ws:
                    ping = await ws.receive(timeout=5)
                    await ws.pong(ping.data)
                async with s.ws_connect(urls["binance"]["ws"]) as ws:
                    for i in range(10):
                        await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                    while True:
                        msg = await ws.receive(timeout=5)
                        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                            return ping.type, ws.close_code
        ping_type, close_code = run(go())
        assert ping_type == aiohttp.WSMsgType.PING
        assert close_code == 1008
    finally:
        sim.stop()


# -- raw Upbit -----------------------------------------------------------------------------


def test_raw_upbit_frames_are_binary_json_with_snapshot_then_realtime(urls: dict[str, Any]) -> None:
    async def go() -> list[bytes | str]:
        async with connect(urls["upbit"]["ws"]) as ws:
            await ws.send(json.dumps([{"ticket": "t1"}, {"type": "orderbook", "codes": ["KRW-BTC.5"]}]))
            return [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
    frames = run(go())
    assert all(isinstance(f, bytes) for f in frames)
    msgs = [json.loads(f) for f in frames]
    assert [m["stream_type"] for m in msgs] == ["SNAPSHOT", "REALTIME", "REALTIME"]
    assert msgs[0]["type"] == "orderbook" and msgs[0]["code"] == "KRW-BTC"
    assert len(msgs[0]["orderbook_units"]) == 5
    assert {"ask_price", "bid_price", "ask_size", "bid_size"} == set(msgs[0]["orderbook_units"][0])


def test_raw_upbit_new_request_replaces_the_subscription_set(urls: dict[str, Any]) -> None:
    async def go() -> tuple[set[str], list[Any]]:
        async with connect(urls["upbit"]["ws"]) as ws:
            await ws.send(json.dumps([{"ticket": "a"}, {"type": "orderbook", "codes": ["KRW-ETH"]}]))
            await _recv_json(ws)
            await ws.send(json.dumps([{"ticket": "b"}, {"type": "orderbook", "codes": ["KRW-XRP"]},
                                      {"format": "DEFAULT"}]))
            codes = []
            while len(codes) < 10:  # a few ETH frames may be in flight
                codes.append((await _recv_json(ws))["code"])
            await ws.send(json.dumps([{"ticket": "c"}, {"method": "LIST_SUBSCRIPTIONS"}]))
            while True:
                msg = await _recv_json(ws)
                if msg.get("method") == "LIST_SUBSCRIPTIONS":
                    return set(codes[-5:]), msg["result"]
    tail, listing = run(go())
    assert tail == {"KRW-XRP"}
    assert listing == [{"type": "orderbook", "codes": ["KRW-XRP"], "level": 0}]


def test_raw_upbit_simple_format_and_camel_case_snapshot_flag(urls: dict[str, Any]) -> None:
    async def go() -> dict[str, Any]:
        async with connect(urls["upbit"]["ws"]) as ws:
            await ws.send(json.dumps([{"ticket": "s"}, {"type": "ticker", "codes": ["KRW-BTC"], "isOnlySnapshot": True},
                                      {"format": "SIMPLE"}]))
            return await _recv_json(ws)
    msg = run(go())
    assert msg["ty"] == "ticker" and msg["cd"] == "KRW-BTC" and msg["st"] == "SNAPSHOT" and "tp" in msg


@pytest.mark.parametrize(("request_text", "name"), [
    ("not json", "WRONG_FORMAT"),
    (json.dumps({"ticket": "x"}), "WRONG_FORMAT"),
    (json.dumps([{"type": "ticker", "codes": ["KRW-BTC"]}]), "NO_TICKET"),
    (json.dumps([{"ticket": "x"}]), "NO_TYPE"),
    (json.dumps([{"ticket": "x"}, {"type": "ticker"}]), "NO_CODES"),
])
def test_raw_upbit_bad_requests_get_error_objects(urls: dict[str, Any], request_text: str, name: str) -> None:
    async def go() -> dict[str, Any]:
        async with connect(urls["upbit"]["ws"]) as ws:
            await ws.send(request_text)
            return await _recv_json(ws)
    msg = run(go())
    assert msg["error"]["name"] == name and msg["error"]["message"]


def test_raw_upbit_answers_text_ping_and_protocol_ping(urls: dict[str, Any]) -> None:
    async def go() -> dict[str, Any]:
        async with connect(urls["upbit"]["ws"]) as ws:
            await asyncio.wait_for(await ws.ping(), 5)  # pong arrives
            await ws.send("PING")
            return await _recv_json(ws)
    assert run(go()) == {"status": "UP"}


def test_upbit_closes_an_idle_connection() -> None:
    sim = sim_thread(SimConfig(upbit_idle_timeout_s=0.3))
    urls = sim.start()
    try:
        async def go() -> None:
            async with connect(urls["upbit"]["ws"], ping_interval=None) as ws:
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
        run(go())
    finally:
        sim.stop()
