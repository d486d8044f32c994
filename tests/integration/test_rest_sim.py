"""VenueRest + unmodified ccxt against the embedded exchange (in-process
SimThread, ephemeral 127.0.0.1 ports): balances, IOC fills, lookups by
client id, resting orders and cancels, clear refusals, and the unclear-send
path — a 5xx that never reached the book, a reply lost after the order was
booked — checked against the sim's own order log: never two orders under
one client id. Also 429s with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from arbitrage.venue_rules import round_binance_price, round_upbit_price
from venues.rest import VenueRest, build_binance, build_upbit
from venues.sim.config import SimConfig
from venues.sim.testing import sim_thread

VENUES = ("upbit", "binance")
QTY = {"upbit": 0.001, "binance": 0.001}
_ids = itertools.count(1)

pytestmark = pytest.mark.timeout(60)


def cid(tag: str) -> str:
    return f"arbd-{tag}-{next(_ids)}-{time.monotonic_ns() % 10**9}"


def admin_get(sim: dict[str, Any], path: str) -> Any:
    with urllib.request.urlopen(f"{sim['admin']}{path}", timeout=5) as resp:
        return json.load(resp)


def post_fault(sim: dict[str, Any], **body: Any) -> None:
    req = urllib.request.Request(f"{sim['admin']}/_sim/fault", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.load(resp)["ok"]


def orders_with(sim: dict[str, Any], venue: str, client_order_id: str) -> list[dict[str, Any]]:
    return [o for o in admin_get(sim, f"/_sim/orders?venue={venue}")
            if o["client_order_id"] == client_order_id]


@pytest.fixture
def sim() -> Iterator[dict[str, Any]]:
    thread = sim_thread(SimConfig(seed=3))
    urls = thread.start()
    try:
        yield urls
    finally:
        thread.stop()


@asynccontextmanager
async def venue_rest(sim: dict[str, Any], venue: str, *, timeout_ms: int = 5000,
                     **kw: Any) -> AsyncIterator[VenueRest]:
    build = build_upbit if venue == "upbit" else build_binance
    exchange = build(sim[venue], sim["test_keys"][venue], timeout_ms=timeout_ms)
    kw.setdefault("unclear_settle_s", 0.5)
    kw.setdefault("backoff_initial_s", 0.05)
    kw.setdefault("backoff_max_s", 0.5)
    rest = VenueRest(venue, exchange, **kw)
    try:
        yield rest
    finally:
        await rest.close()


async def marketable_buy_price(rest: VenueRest) -> float:
    book = await rest.exchange.fetch_order_book(rest.market_symbol("BTC"))
    ask = book["asks"][0][0] * 1.002  # through the touch: an IOC that fills
    if rest.venue == "upbit":
        return round_upbit_price(ask, "BTC", "up")
    return round_binance_price(ask, "BTC", "up")


async def passive_buy_price(rest: VenueRest) -> float:
    book = await rest.exchange.fetch_order_book(rest.market_symbol("BTC"))
    bid = book["bids"][0][0] * 0.9  # far below the market: rests, never fills
    if rest.venue == "upbit":
        return round_upbit_price(bid, "BTC", "down")
    return round_binance_price(bid, "BTC", "down")


# -- plain calls ------------------------------------------------------------------------------

@pytest.mark.parametrize("venue", VENUES)
def test_balances_are_the_simulated_accounts(sim, venue):
    async def go() -> dict[str, float]:
        async with venue_rest(sim, venue) as rest:
            return await rest.fetch_balance()
    free = asyncio.run(go())
    quote = "KRW" if venue == "upbit" else "USDT"
    expected = dict(SimConfig().upbit_balances if venue == "upbit" else SimConfig().binance_balances)
    assert free[quote] == expected[quote] and free["BTC"] == expected["BTC"]


@pytest.mark.parametrize("venue", VENUES)
def test_a_marketable_ioc_limit_order_fills_and_is_found_by_client_id(sim, venue):
    c = cid("fill")

    async def go():
        async with venue_rest(sim, venue) as rest:
            price = await marketable_buy_price(rest)
            placed = await rest.create_limit_order("BTC", "buy", QTY[venue], price, c)
            found = await rest.fetch_order_by_client_id("BTC", c)
            missing = await rest.fetch_order_by_client_id("BTC", cid("never-sent"))
            return price, placed, found, missing
    price, placed, found, missing = asyncio.run(go())
    assert placed.status == "filled" and placed.done
    assert placed.filled == pytest.approx(QTY[venue]) and 0 < placed.avg_price <= price
    assert placed.fee > 0 and placed.client_order_id == c and placed.venue_order_id
    assert (found.status, found.venue_order_id) == ("filled", placed.venue_order_id)
    assert found.avg_price == pytest.approx(placed.avg_price)
    assert missing is None
    (rec,) = orders_with(sim, venue, c)
    assert (rec["status"], rec["tif"], rec["filled"]) == ("filled", "IOC", pytest.approx(QTY[venue]))


@pytest.mark.parametrize("venue", VENUES)
def test_an_ioc_that_cannot_fill_ends_cancelled(sim, venue):
    c = cid("nofill")

    async def go():
        async with venue_rest(sim, venue) as rest:
            return await rest.create_limit_order("BTC", "buy", QTY[venue], await passive_buy_price(rest), c)
    res = asyncio.run(go())
    assert (res.status, res.filled, res.done) == ("cancelled", 0.0, True)


@pytest.mark.parametrize("venue", VENUES)
def test_a_resting_order_is_listed_open_and_cancelled_by_client_id(sim, venue):
    c = cid("rest")

    async def go():
        async with venue_rest(sim, venue) as rest:
            placed = await rest.create_limit_order("BTC", "buy", QTY[venue], await passive_buy_price(rest),
                                                   c, time_in_force="GTC")
            listed = await rest.fetch_open_orders("BTC")
            cancelled = await rest.cancel("BTC", client_order_id=c)
            after = await rest.fetch_open_orders("BTC")
            return placed, listed, cancelled, after
    placed, listed, cancelled, after = asyncio.run(go())
    assert (placed.status, placed.done) == ("open", False)
    assert c in {o.client_order_id for o in listed}
    assert cancelled is not None and cancelled.status == "cancelled" and cancelled.done
    assert c not in {o.client_order_id for o in after}


@pytest.mark.parametrize("venue", VENUES)
def test_cancel_all_open_cancels_our_resting_orders(sim, venue):
    ids = [cid("all"), cid("all")]

    async def go():
        async with venue_rest(sim, venue) as rest:
            price = await passive_buy_price(rest)
            for c in ids:
                await rest.create_limit_order("BTC", "buy", QTY[venue], price, c, time_in_force="GTC")
            n = await rest.cancel_all_open(prefix="arbd-all")
            return n, await rest.fetch_open_orders()
    n, left = asyncio.run(go())
    assert n == 2 and not {o.client_order_id for o in left} & set(ids)


@pytest.mark.parametrize("venue", VENUES)
def test_insufficient_funds_is_a_rejected_result_sent_once(sim, venue):
    c = cid("nofunds")
    post_fault(sim, venue=venue, kind="insufficient_funds", seconds=30)

    async def go():
        async with venue_rest(sim, venue) as rest:
            return await rest.create_limit_order("BTC", "buy", QTY[venue], await marketable_buy_price(rest), c)
    res = asyncio.run(go())
    assert res.status == "rejected" and "InsufficientFunds" in res.reason
    assert len(orders_with(sim, venue, c)) <= 1  # the sim may log the refusal itself


# -- unclear sends -------------------------------------------------------------------------------

@pytest.mark.parametrize("venue", VENUES)
def test_a_5xx_on_the_order_post_is_looked_up_then_sent_once_more(sim, venue, caplog):
    """The 503 comes before the venue's handler: the lookup finds nothing,
    and only then is the order sent again, under the same client id."""
    c = cid("503")

    async def go():
        async with venue_rest(sim, venue, unclear_settle_s=0.4) as rest:
            price = await marketable_buy_price(rest)
            post_fault(sim, venue=venue, kind="http_error", status=503, seconds=10, requests=1)
            t0 = time.monotonic()
            res = await rest.create_limit_order("BTC", "buy", QTY[venue], price, c)
            return res, time.monotonic() - t0
    with caplog.at_level(logging.WARNING, logger="venues.rest"):
        res, elapsed = asyncio.run(go())
    assert res.status == "filled" and res.client_order_id == c
    assert f"send of {c} failed unclearly" in caplog.text
    assert elapsed >= 0.4  # the lookup window passed before the resend
    (rec,) = orders_with(sim, venue, c)  # exactly one order under this id
    assert rec["filled"] == pytest.approx(QTY[venue])


@pytest.mark.parametrize("venue", VENUES)
def test_a_lost_reply_is_found_by_client_id_and_not_resent(sim, venue, caplog):
    """The order is booked, then its reply is held past ccxt's timeout: the
    lookup finds it and nothing is sent again."""
    c = cid("lost")

    async def go():
        async with venue_rest(sim, venue, timeout_ms=700) as rest:
            price = await marketable_buy_price(rest)
            post_fault(sim, venue=venue, kind="delay", delay_s=1.5, seconds=10, requests=1)
            return await rest.create_limit_order("BTC", "buy", QTY[venue], price, c)
    with caplog.at_level(logging.WARNING, logger="venues.rest"):
        res = asyncio.run(go())
    assert "RequestTimeout" in caplog.text  # the reply really was lost
    assert res.status == "filled" and res.filled == pytest.approx(QTY[venue])
    assert len(orders_with(sim, venue, c)) == 1


@pytest.mark.parametrize("venue", VENUES)
def test_when_the_lookup_cannot_be_made_the_outcome_is_unknown_and_nothing_is_resent(sim, venue):
    from venues.rest import OrderStatusUnknown

    c = cid("unknown")

    async def go():
        async with venue_rest(sim, venue, max_attempts=2) as rest:
            price = await marketable_buy_price(rest)
            post_fault(sim, venue=venue, kind="http_error", status=502, seconds=10)
            try:
                await rest.create_limit_order("BTC", "buy", QTY[venue], price, c)
            finally:
                post_fault(sim, venue=venue, kind="http_error", status=502, seconds=0)
    with pytest.raises(OrderStatusUnknown):
        asyncio.run(go())
    assert orders_with(sim, venue, c) == []


# -- rate limits --------------------------------------------------------------------------------------

@pytest.mark.parametrize("venue", VENUES)
def test_429_is_waited_out_with_backoff(sim, venue):
    async def go():
        async with venue_rest(sim, venue) as rest:
            await rest.load_markets()
            post_fault(sim, venue=venue, kind="http_error", status=429, seconds=10, requests=1)
            t0 = time.monotonic()
            free = await rest.fetch_balance()
            return free, time.monotonic() - t0
    free, elapsed = asyncio.run(go())
    assert free["BTC"] == 1.0
    assert elapsed >= 0.05  # paused at least one backoff step (Binance: Retry-After, >= 1 s)
    if venue == "binance":
        assert elapsed >= 1.0


@pytest.mark.parametrize("venue", VENUES)
def test_an_order_refused_with_429_is_resent_after_the_pause_without_a_lookup(sim, venue, caplog):
    c = cid("429")

    async def go():
        async with venue_rest(sim, venue) as rest:
            price = await marketable_buy_price(rest)
            post_fault(sim, venue=venue, kind="http_error", status=429, seconds=10, requests=1)
            return await rest.create_limit_order("BTC", "buy", QTY[venue], price, c)
    with caplog.at_level(logging.WARNING, logger="venues.rest"):
        res = asyncio.run(go())
    assert "rate limited" in caplog.text and "failed unclearly" not in caplog.text
    assert res.status == "filled"
    assert len(orders_with(sim, venue, c)) == 1


@pytest.mark.parametrize("venue", VENUES)
def test_no_key_reaches_a_log_line_even_at_debug(sim, venue, caplog):
    keys = sim["test_keys"][venue]
    c = cid("quiet")

    async def go():
        async with venue_rest(sim, venue, max_attempts=2) as rest:
            price = await marketable_buy_price(rest)
            await rest.create_limit_order("BTC", "buy", QTY[venue], price, c)
            post_fault(sim, venue=venue, kind="http_error", status=503, seconds=5)
            with contextlib.suppress(Exception):
                await rest.fetch_balance()
            post_fault(sim, venue=venue, kind="http_error", status=503, seconds=0)
    with caplog.at_level(logging.DEBUG):
        asyncio.run(go())
    assert caplog.records  # something was logged
    assert keys["apiKey"] not in caplog.text and keys["secret"] not in caplog.text
