"""VenueRest's retry and never-resend-blindly rules, against a hand-written
fake ccxt exchange and a fake clock (no sockets, no sleeps); the builders'
configuration; redaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from ccxt.base import errors as cx

from venues import urls as vurls
from venues.rest import (
    OrderStatusUnknown,
    VenueRest,
    VenueUnavailable,
    build_binance,
    build_upbit,
    redact,
)

KEY, SECRET = "AKIAthisIsTheApiKey123", "s3cr3tS3cr3tS3cr3t"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def mono(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def order(cid: str, status: str = "closed", filled: float = 0.001, amount: float = 0.001,
          price: float = 68000.0, **extra: Any) -> dict[str, Any]:
    o = {"id": f"oid-{cid}", "clientOrderId": cid, "symbol": "BTC/USDT", "side": "buy",
         "status": status, "filled": filled, "amount": amount, "price": price,
         "average": price if filled else None, "cost": price * filled, "fee": None, "fees": [],
         "info": {}}
    o.update(extra)
    return o


class FakeExchange:
    """Records every call; ``venue_orders`` is what the venue really holds.

    ``create_script`` lists what each create_order call does: ``"accept"``
    (store and return), ``"accept_then_raise:<Exc>"`` (store, then fail as
    if the reply were lost), or an exception instance (refused, not stored).
    ``lookup_script`` likewise for lookups (default: answer from the store).
    """

    def __init__(self, venue: str = "binance") -> None:
        self.id = venue
        self.apiKey, self.secret = KEY, SECRET
        self.options = {"recvWindow": 5000}
        self.venue_orders: dict[str, dict[str, Any]] = {}
        self.create_script: list[Any] = []
        self.lookup_script: list[Any] = []
        self.read_script: list[Any] = []
        self.calls: list[tuple[str, Any]] = []
        self.last_response_headers: dict[str, str] = {}
        self.fill: Callable[[str], dict[str, Any]] = lambda cid: order(cid)

    async def load_markets(self) -> dict:
        self.calls.append(("load_markets", None))
        return {}

    async def create_order(self, symbol, type_, side, amount, price, params):
        cid = params["clientOrderId"]
        self.calls.append(("create_order", (symbol, type_, side, amount, price, dict(params))))
        step = self.create_script.pop(0) if self.create_script else "accept"
        if isinstance(step, Exception):
            raise step
        if cid in self.venue_orders:  # like the venue: one order per client id
            raise cx.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')
        self.venue_orders[cid] = self.fill(cid)
        if isinstance(step, str) and step.startswith("accept_then_raise"):
            raise cx.RequestTimeout("binance POST http://127.0.0.1/api/v3/order?signature=abc123")
        return self.venue_orders[cid]

    def _lookup(self, cid: str) -> dict[str, Any]:
        self.calls.append(("lookup", cid))
        step = self.lookup_script.pop(0) if self.lookup_script else None
        if isinstance(step, Exception):
            raise step
        if cid not in self.venue_orders:
            raise cx.OrderNotFound('binance {"code":-2013,"msg":"Order does not exist."}')
        return self.venue_orders[cid]

    async def fetch_order(self, id_, symbol, params):
        return self._lookup(params["origClientOrderId"])

    async def privateGetOrder(self, params):  # noqa: N802 - ccxt's implicit API name
        return self._lookup(params["identifier"])

    def parse_order(self, raw):
        return raw

    async def cancel_order(self, id_, symbol, params=None):
        cid = (params or {}).get("origClientOrderId")
        self.calls.append(("cancel", cid))
        if cid not in self.venue_orders:
            raise cx.OrderNotFound('binance {"code":-2011,"msg":"Unknown order sent."}')
        o = self.venue_orders[cid]
        if o["status"] == "open":
            o = self.venue_orders[cid] = {**o, "status": "canceled"}
        return o

    async def fetch_open_orders(self, symbol=None):
        self.calls.append(("open", symbol))
        return [o for o in self.venue_orders.values() if o["status"] == "open"]

    async def fetch_balance(self):
        self.calls.append(("balance", None))
        step = self.read_script.pop(0) if self.read_script else None
        if isinstance(step, Exception):
            raise step
        return {"free": {"USDT": 1000.0, "BTC": 0.5, "ETH": 0.0}}

    async def close(self):
        self.calls.append(("close", None))

    def sends(self) -> list[dict[str, Any]]:
        return [c[1][5] for c in self.calls if c[0] == "create_order"]


def make(venue: str = "binance", **kw) -> tuple[VenueRest, FakeExchange, FakeClock]:
    ex, clock = FakeExchange(venue), FakeClock()
    kw.setdefault("unclear_settle_s", 2.0)
    rest = VenueRest(venue, ex, sleep=clock.sleep, monotonic=clock.mono, **kw)
    return rest, ex, clock


def run(coro):
    return asyncio.run(coro)


# -- builders -------------------------------------------------------------------------

def test_binance_builder_keeps_real_urls_by_default_and_sets_the_reference_options():
    async def go():
        ex = build_binance(None, {"apiKey": KEY, "secret": SECRET})
        try:
            assert ex.urls["api"]["public"] == "https://api.binance.com/api/v3"
            assert ex.enableRateLimit is True
            assert ex.options["fetchMarkets"]["types"] == ["spot"]
            assert ex.options["fetchCurrencies"] is False and ex.options["fetchMargins"] is False
            assert ex.options["adjustForTimeDifference"] is False
            assert (ex.apiKey, ex.secret) == (KEY, SECRET)
            assert ex.logger.getEffectiveLevel() >= logging.INFO  # request headers are logged at DEBUG
        finally:
            await ex.close()
    run(go())


def test_binance_builder_points_every_http_root_at_the_given_rest_url():
    async def go():
        ex = build_binance({"rest": "http://127.0.0.1:9001", "ws": "ws://127.0.0.1:9001/ws"})
        try:
            api = ex.urls["api"]
            assert api["public"] == api["private"] == "http://127.0.0.1:9001/api/v3"
            assert api["sapi"] == "http://127.0.0.1:9001/sapi/v1"
            for v in api.values():  # nothing can reach a real exchange
                if isinstance(v, str):
                    assert not v.startswith("https://"), v
            assert not ex.apiKey
        finally:
            await ex.close()
    run(go())


def test_upbit_builder_uses_the_rest_root_for_public_and_private():
    async def go():
        ex = build_upbit({"rest": "http://127.0.0.1:9002"}, {"apiKey": KEY, "secret": SECRET})
        try:
            assert ex.urls["api"]["public"] == ex.urls["api"]["private"] == "http://127.0.0.1:9002"
            assert ex.enableRateLimit is True
        finally:
            await ex.close()
    run(go())


def test_sim_url_object_maps_to_venue_urls():
    sim = {"binance": {"rest": "http://h:1", "ws": "ws://h:1/ws"},
           "upbit": {"rest": "http://h:2", "ws": "ws://h:2/websocket/v1"}, "admin": "http://h:3"}
    m = vurls.from_sim(sim)
    assert m["binance"] == vurls.VenueUrls("http://h:1", "ws://h:1/ws")
    assert m["upbit"].ws == "ws://h:2/websocket/v1"
    pro_api = {"public": "https://{hostname}", "private": "https://{hostname}", "ws": "wss://{hostname}/websocket/v1"}
    assert vurls.ccxt_api_urls("upbit", pro_api, m["upbit"]) == {
        "public": "http://h:2", "private": "http://h:2", "ws": "ws://h:2/websocket/v1"}


def test_keys_need_both_halves():
    with pytest.raises(ValueError):
        build_upbit(None, {"apiKey": KEY})


def test_redact_removes_signatures_queries_tokens_and_keys():
    text = (f"binance GET https://api.binance.com/api/v3/account?timestamp=1&signature=deadbeef 401 "
            f"Bearer eyJhbGciOi.x.y key={KEY}")
    out = redact(text, (KEY, SECRET))
    assert "deadbeef" not in out and "eyJhbGciOi" not in out and KEY not in out


# -- orders: the happy and the clear paths ---------------------------------------------

def test_a_filled_ioc_order_is_sent_once_with_its_client_id():
    rest, ex, _ = make()
    res = run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-1"))
    assert (res.status, res.filled, res.avg_price, res.client_order_id) == ("filled", 0.001, 68000.0, "cid-1")
    assert ex.sends() == [{"clientOrderId": "cid-1", "timeInForce": "IOC"}]
    assert ex.calls[1][1][:5] == ("BTC/USDT", "limit", "buy", 0.001, 68000.0)


def test_a_clear_refusal_is_a_rejected_result_not_a_resend():
    rest, ex, _ = make()
    ex.create_script = [cx.InsufficientFunds('binance {"code":-2010,"msg":"Account has insufficient balance"}')]
    res = run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-2"))
    assert res.status == "rejected" and "InsufficientFunds" in res.reason
    assert len(ex.sends()) == 1


# -- orders: unclear sends ----------------------------------------------------------------

def test_an_unclear_send_that_landed_is_found_by_client_id_and_not_resent():
    rest, ex, _ = make()
    ex.create_script = ["accept_then_raise"]
    res = run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-3"))
    assert res.status == "filled" and res.venue_order_id == "oid-cid-3"
    assert len(ex.sends()) == 1
    assert ("lookup", "cid-3") in ex.calls


def test_an_unclear_send_that_did_not_land_is_looked_up_until_settled_then_resent_with_the_same_id():
    rest, ex, clock = make(unclear_settle_s=2.0, lookup_interval_s=0.5)
    ex.create_script = [cx.ExchangeNotAvailable("binance POST 503 Service Unavailable"), "accept"]
    res = run(rest.create_limit_order("BTC", "sell", 0.001, 68000.0, "cid-4"))
    assert res.status == "filled"
    sends = ex.sends()
    assert [s["clientOrderId"] for s in sends] == ["cid-4", "cid-4"]
    lookups = [c for c in ex.calls if c[0] == "lookup"]
    assert len(lookups) >= 4  # polled for the whole settle window before the resend
    first_send = next(i for i, c in enumerate(ex.calls) if c[0] == "create_order")
    second_send = max(i for i, c in enumerate(ex.calls) if c[0] == "create_order")
    assert all(first_send < ex.calls.index(lk) < second_send for lk in lookups)
    assert clock.t - 1000.0 >= 2.0


def test_binance_settles_for_recv_window_by_default():
    ex = FakeExchange("binance")
    assert VenueRest("binance", ex).unclear_settle_s == pytest.approx(6.0)


def test_a_failed_lookup_after_an_unclear_send_raises_status_unknown_and_sends_nothing_more():
    rest, ex, _ = make(max_attempts=2)
    ex.create_script = [cx.RequestTimeout("timeout")]
    ex.lookup_script = [cx.ExchangeNotAvailable("503"), cx.ExchangeNotAvailable("503")]
    with pytest.raises(OrderStatusUnknown) as ei:
        run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-5"))
    assert ei.value.client_order_id == "cid-5"
    assert len(ex.sends()) == 1


def test_after_max_unclear_sends_with_no_order_at_the_venue_the_result_is_rejected():
    rest, ex, _ = make(max_attempts=2)
    ex.create_script = [cx.ExchangeNotAvailable("503"), cx.ExchangeNotAvailable("503")]
    res = run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-6"))
    assert res.status == "rejected" and "unclear" in res.reason
    assert len(ex.sends()) == 2 and ex.venue_orders == {}


def test_a_duplicate_refusal_after_a_resend_returns_the_order_that_landed_first():
    rest, ex, _ = make(unclear_settle_s=0.0)
    # First send lands but the lookup misses it (eventual consistency), the
    # resend is refused as a duplicate, the second lookup finds it.
    ex.create_script = ["accept_then_raise",
                        cx.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}')]
    ex.lookup_script = [cx.OrderNotFound("not yet")]
    res = run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-7"))
    assert res.status == "filled" and len(ex.sends()) == 2


# -- rate limits ---------------------------------------------------------------------------

def test_a_429_on_send_pauses_for_retry_after_then_resends():
    rest, ex, clock = make()
    ex.create_script = [cx.DDoSProtection("binance 429 Too Many Requests"), "accept"]
    ex.last_response_headers = {"Retry-After": "3"}
    res = run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-8"))
    assert res.status == "filled" and len(ex.sends()) == 2
    assert max(clock.sleeps) >= 3.0
    assert not [c for c in ex.calls if c[0] == "lookup"]  # a 429 is a clear "not processed"


def test_a_pause_longer_than_max_wait_fails_fast_for_every_call():
    rest, ex, clock = make(max_wait_s=10.0)
    ex.read_script = [cx.RateLimitExceeded("upbit 429")]
    ex.last_response_headers = {"retry-after": "120"}
    with pytest.raises(VenueUnavailable) as ei:
        run(rest.fetch_balance())
    assert ei.value.retry_after_s > 10.0
    with pytest.raises(VenueUnavailable):
        run(rest.fetch_balance())
    assert [c for c in ex.calls if c[0] == "balance"] == [("balance", None)]


def test_reads_retry_network_errors_with_growing_backoff():
    rest, ex, clock = make(max_attempts=4, backoff_initial_s=0.25)
    ex.read_script = [cx.RequestTimeout("t"), cx.ExchangeNotAvailable("502"), cx.NetworkError("reset")]
    assert run(rest.fetch_balance()) == {"USDT": 1000.0, "BTC": 0.5, "ETH": 0.0}
    assert len(clock.sleeps) == 3
    assert 0.125 <= clock.sleeps[0] <= 0.25 and 0.5 <= clock.sleeps[2] <= 1.0


def test_reads_give_up_after_max_attempts_with_a_redacted_message():
    rest, ex, _ = make(max_attempts=2)
    ex.read_script = [cx.ExchangeNotAvailable(f"GET /account?signature=ff&k={KEY}")] * 2
    with pytest.raises(VenueUnavailable) as ei:
        run(rest.fetch_balance())
    assert KEY not in str(ei.value) and "signature=ff" not in str(ei.value)


# -- lookups and cancels -----------------------------------------------------------------------

def test_lookup_of_an_unknown_client_id_is_none():
    rest, ex, _ = make()
    assert run(rest.fetch_order_by_client_id("BTC", "nope")) is None


def test_upbit_lookup_uses_the_identifier():
    rest, ex, _ = make("upbit")
    ex.venue_orders["u1"] = order("u1", symbol="BTC/KRW", fee={"cost": 48.5, "currency": "KRW"})
    res = run(rest.fetch_order_by_client_id("BTC", "u1"))
    assert (res.status, res.fee, res.fee_estimated) == ("filled", 48.5, False)


def test_cancel_of_an_already_finished_order_reports_its_state():
    rest, ex, _ = make()
    ex.venue_orders["c1"] = order("c1")
    res = run(rest.cancel("BTC", client_order_id="c1"))
    assert res.status == "filled"
    assert run(rest.cancel("BTC", client_order_id="never")) is None


def test_cancel_all_open_cancels_only_our_prefix():
    rest, ex, _ = make()
    ex.venue_orders["arbd-1"] = order("arbd-1", status="open", filled=0.0)
    ex.venue_orders["manual"] = order("manual", status="open", filled=0.0)
    assert run(rest.cancel_all_open(prefix="arbd")) == 1
    assert ex.venue_orders["arbd-1"]["status"] == "canceled" and ex.venue_orders["manual"]["status"] == "open"


def test_an_ioc_still_open_is_polled_to_its_end():
    rest, ex, _ = make(lookup_interval_s=0.1)
    states = iter(["open", "open", "expired"])

    def fill(cid):
        return order(cid, status="open", filled=0.0)
    ex.fill = fill
    orig = ex._lookup

    def lookup(cid):
        o = orig(cid)
        ex.venue_orders[cid] = {**o, "status": next(states), "filled": 0.0}
        return ex.venue_orders[cid]
    ex._lookup = lookup
    res = run(rest.create_limit_order("BTC", "buy", 0.001, 68000.0, "cid-9"))
    assert (res.status, res.done) == ("cancelled", True)


# -- result mapping ------------------------------------------------------------------------------

@pytest.mark.parametrize(("ccxt_status", "filled", "expected", "done"), [
    ("open", 0.0, "open", False),
    ("open", 0.0004, "partially_filled", False),
    ("closed", 0.001, "filled", True),
    ("canceled", 0.0, "cancelled", True),
    ("canceled", 0.0004, "partially_filled", True),
    ("expired", 0.0, "cancelled", True),
    ("expired", 0.0002, "partially_filled", True),
    ("rejected", 0.0, "rejected", True),
])
def test_ccxt_statuses_map_to_order_results(ccxt_status, filled, expected, done):
    rest, _, _ = make()
    res = rest._to_result(order("x", status=ccxt_status, filled=filled), "x")
    assert (res.status, res.done) == (expected, done)


def test_a_base_coin_commission_becomes_a_quote_fee_at_the_fill_price():
    rest, _, _ = make()
    o = order("x", fees=[{"cost": 0.000001, "currency": "BTC"}, {"cost": 0.01, "currency": "USDT"}])
    assert rest._to_result(o, "x").fee == pytest.approx(0.068 + 0.01)


def test_a_fill_without_commission_gets_an_estimated_taker_fee():
    rest, _, _ = make()
    res = rest._to_result(order("x"), "x")
    assert res.fee_estimated and res.fee == pytest.approx(0.001 * 68000.0 * 0.001)


@pytest.mark.parametrize(("args", "err"), [
    (("BTC", "hold", 1.0, 1.0, "c"), ValueError),
    (("BTC", "buy", 0.0, 1.0, "c"), ValueError),
    (("BTC", "buy", 1.0, float("nan"), "c"), ValueError),
    (("BTC", "buy", 1.0, 1.0, ""), ValueError),
])
def test_bad_order_arguments_are_refused_before_sending(args, err):
    rest, ex, _ = make()
    with pytest.raises(err):
        run(rest.create_limit_order(*args))
    assert ex.sends() == []
