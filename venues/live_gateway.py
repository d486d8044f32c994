"""The live order gateway: both legs at once on signed keep-alive HTTP, fills
from the venues' private streams, everything under per-venue rate budgets.

One asyncio loop thread owns every client. The hot path per leg:

1. take order tokens from the venue's :class:`arbitrage.rate_budget.VenueBudget`
   (orders never wait behind polls; a leg that cannot get a token within
   ``execution.budget_wait_s`` is refused unsent, kind ``budget``);
2. one signed POST (:mod:`venues.order_http`): Binance answers with the
   fills (``newOrderRespType=FULL``); Upbit answers ``wait``, and the leg's
   final state comes from its private stream (``myOrder``);
3. the private streams (:mod:`venues.private_streams`) report every state
   change of every order and every balance change. A leg whose final state
   has not streamed in within ``execution.fill_wait_s`` — the stream is down
   or slow — is looked up by client id over REST, the fallback.

Balance snapshots are signed GETs on the same clients (the first ones, at
start, are what the first open waits for). ccxt (:mod:`venues.rest`) stays
for cancel-all and markets, imported in the background so that an
executor's start does not wait for it. Polls are paid from the budget (they
back off when it is low); every reply's rate headers update the budget.

Results go back to the executor through ``on_result`` (called on the loop
thread). A leg's states only move forward: once a final state is reported,
later updates for it are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvloop

from arbitrage.rate_budget import ORDER, VenueBudget
from messages import Balances, clock
from supervisors.config import ArbdConfig
from supervisors.runfiles import RunDir
from venues import BINANCE, UPBIT
from venues.gateway import LegOrder, LegResult, VenueReply, env_keys
from venues.order_http import LookupFailed, OrderHttp, OrderOutcome, UnclearSend
from venues.order_result import OrderResult
from venues.private_streams import BalanceUpdate, BinanceUserStream, OrderUpdate, UpbitPrivateStream
from venues.urls import VenueUrls

log = logging.getLogger("arbd.gateway")

VENUES = (UPBIT, BINANCE)
LOOKUP_RETRY_S = 0.5


def _order_cost(legs: list[LegOrder]) -> dict[str, dict[str, float]]:
    """venue -> bucket -> tokens: what sending ``legs`` together takes."""
    per_venue: dict[str, dict[str, float]] = {}
    for lg in legs:
        cost = per_venue.setdefault(lg.venue, {})
        for bucket, n in VenueBudget.cost_of(lg.venue, "order").items():
            cost[bucket] = cost.get(bucket, 0.0) + n
    return per_venue


@dataclass(slots=True)
class _Live:
    leg: LegOrder
    sent_mono: float
    filled: float = 0.0
    done: bool = False
    status: str = "sent"
    told: tuple[str, float] = ("sent", 0.0)  # the last (status, filled) the executor heard


class LiveGateway:
    """See module docs. ``fx()`` is KRW per USDT for fees in KRW."""

    def __init__(self, cfg: ArbdConfig, run: RunDir, on_result: Callable[[LegResult], None],
                 allow_orders: bool, fx: Callable[[], float]) -> None:
        self.cfg = cfg
        self.exe = cfg.execution
        self.on_result = on_result
        self.allow_orders = allow_orders
        self.fx = fx
        self.keys = env_keys(cfg, run)
        v = cfg.venues
        self.urls = {UPBIT: VenueUrls(rest=v.upbit_rest, ws=v.upbit_ws),
                     BINANCE: VenueUrls(rest=v.binance_rest, ws=v.binance_ws)}
        # Rate budgets run on the market's clock (a replay's tape time); socket and
        # fill timeouts below stay on the process's own.
        self.budgets = {venue: VenueBudget(venue, cfg.execution.budgets, now=clock.monotonic()) for venue in VENUES}
        # uvloop (already here: ccxt depends on it): the order path's sends and replies
        # go through this loop; bench.orders measured the difference.
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="gateway-loop", daemon=True)
        self.thread.start()
        self._live: dict[str, _Live] = {}  # loop thread only
        self._free: dict[str, dict[str, float]] = {}  # venue -> asset -> free (loop writes, actor reads)
        self._updated_ns: dict[str, int] = {}
        self._stream_up: dict[str, bool] = {venue: False for venue in VENUES}
        self._stream_since: dict[str, float] = {venue: time.monotonic() for venue in VENUES}
        self._last_msg: dict[str, float] = {}
        self._said_no_keys = False
        self._tasks: list[asyncio.Future[Any]] = []
        self._call(self._build(), timeout=30.0)

    # -- set-up (on the loop) -------------------------------------------------------
    async def _build(self) -> None:
        """Only what a first order needs: signed clients (their connections
        opened in the background), private streams, the first balances. ccxt
        (cancel-all) is imported and built in the background: half a second an
        executor's start does not wait for."""
        self.http: dict[str, OrderHttp] = {}
        self.rest: dict[str, Any] = {}  # venue -> VenueRest, once _load_rest has run
        self._rest_ready = asyncio.Event()
        self.streams: dict[str, Any] = {}
        for venue in VENUES:
            keys = self.keys.get(venue)
            url = self.urls[venue]
            if keys is None:
                continue
            self.http[venue] = OrderHttp(venue, url.rest, keys, self.budgets[venue],
                                         timeout_s=self.exe.order_timeout_s)
            self._tasks.append(asyncio.ensure_future(self.http[venue].warm()))
            stream_cls = UpbitPrivateStream if venue == UPBIT else BinanceUserStream
            self.streams[venue] = stream_cls(url.rest, url.ws, keys, on_order=self._on_order,
                                             on_balance=self._on_balance, on_state=self._on_stream_state)
            self.streams[venue].start()
        if self.keys:
            self._tasks.append(asyncio.ensure_future(self._balance_loop()))
            self._tasks.append(asyncio.ensure_future(self._load_rest()))

    async def _load_rest(self) -> None:
        """ccxt for cancel-all: imported on a worker thread (the loop keeps
        serving orders), built and given its markets here."""
        try:
            mod = await self.loop.run_in_executor(None, importlib.import_module, "venues.rest")
            builders = {UPBIT: mod.build_upbit, BINANCE: mod.build_binance}
            for venue in self.keys:
                url = self.urls[venue]
                self.rest[venue] = mod.VenueRest(venue, builders[venue]({"rest": url.rest, "ws": url.ws},
                                                                       self.keys[venue]))
        finally:
            self._rest_ready.set()
        for rest in self.rest.values():
            with contextlib.suppress(Exception):
                await rest.load_markets()

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # -- orders (actor thread -> loop) -------------------------------------------------
    def submit(self, legs: list[LegOrder]) -> None:
        """Send ``legs`` at once; their budget is taken all together or not at all."""
        if not self.allow_orders:
            for lg in legs:
                self.on_result(LegResult(lg, "refused", 0.0, 0.0, 0.0, "orders disabled in this mode"))
            return
        missing = [lg for lg in legs if lg.venue not in self.http]
        if missing:  # a pair half without keys is no pair: nothing goes
            for lg in legs:
                self.on_result(LegResult(lg, "failed", 0.0, 0.0, 0.0,
                                         f"not sent: no API keys for {missing[0].venue}", kind="auth"))
            return
        self.loop.call_soon_threadsafe(self._start_batch, legs, clock.monotonic() + self.exe.budget_wait_s)

    def budget_refusal(self, legs: list[LegOrder]) -> str:
        """Why ``legs`` could not go now for want of rate budget ("" if they could):
        read from the actor thread before anything is written or sent, so that a
        decision the budget cannot carry costs no ledger write. The loop thread
        still takes the tokens (``_start_batch``) and has the last word."""
        if not self.allow_orders:
            return ""
        now = clock.monotonic()
        for venue, cost in _order_cost(legs).items():
            if venue not in self.budgets:
                continue
            wait = self.budgets[venue].peek_wait_s(ORDER, cost, now)
            if wait > self.exe.budget_wait_s:
                return f"{venue} rate budget exhausted (next order in {wait:.2f}s)"
        return ""

    def _start_batch(self, legs: list[LegOrder], deadline: float) -> None:
        now = clock.monotonic()
        per_venue = _order_cost(legs)
        wait = max(self.budgets[v].wait_s(ORDER, cost, now) for v, cost in per_venue.items())
        if wait > 0:
            if now + wait <= deadline:
                self.loop.call_later(wait, self._start_batch, legs, deadline)
                return
            venue = max(per_venue, key=lambda v: self.budgets[v].wait_s(ORDER, per_venue[v], now))
            for lg in legs:
                self.on_result(LegResult(lg, "failed", 0.0, 0.0, 0.0,
                                         f"not sent: {venue} rate budget exhausted", kind="budget"))
            return
        for venue, cost in per_venue.items():
            taken = self.budgets[venue].try_acquire(ORDER, cost, now)
            assert taken, "wait_s said the budget was there"
        gap = float(self.cfg.testing.get("leg_gap_s", 0.0) or 0.0)  # tests: a window between the sends
        for i, lg in enumerate(legs):
            # Registered before the request goes out: a stream update may beat the reply.
            self._live[lg.client_order_id] = _Live(lg, time.monotonic())
            if gap and i:
                self.loop.call_later(gap * i, lambda lg=lg: self.loop.create_task(self._send(lg)))
            else:
                self.loop.create_task(self._send(lg))

    async def _send(self, lg: LegOrder) -> None:
        sent = time.monotonic()
        try:
            out: OrderOutcome = await self.http[lg.venue].create_ioc(lg.symbol, lg.side, lg.qty, lg.price,
                                                                     lg.client_order_id)
        except UnclearSend as e:
            self.on_result(VenueReply(lg.venue, False, e.kind, str(e), time.monotonic() - sent, lg.client_order_id))
            self._report(lg, LegResult(lg, "unknown", 0.0, 0.0, 0.0, str(e), kind=e.kind, done=False))
            self.loop.create_task(self._resolve(lg, sent))
            return
        except Exception as e:  # a bug here must not leave a leg silent
            log.exception("send of %s failed", lg.client_order_id)
            self._report(lg, LegResult(lg, "unknown", 0.0, 0.0, 0.0, f"send failed: {type(e).__name__}",
                                       done=False))
            self.loop.create_task(self._resolve(lg, sent))
            return
        accepted = out.result.status != "rejected"
        self.on_result(VenueReply(lg.venue, accepted, out.kind, out.result.reason, time.monotonic() - sent,
                                  lg.client_order_id))
        result = self._from_order(lg, out.result, out.kind)
        self._report(lg, result)
        if not result.done:
            self.loop.create_task(self._resolve(lg, sent))

    async def _resolve(self, lg: LegOrder, sent: float, first_wait: bool = True) -> None:
        """Wait for the stream's final state; past ``fill_wait_s``, look the leg up.
        A leg the venue does not know is ``failed`` once no request sent with it
        can still arrive (``settle_s`` after the send), never sooner."""
        cid = lg.client_order_id
        http = self.http[lg.venue]
        if first_wait:
            await asyncio.sleep(max(0.0, sent + self.exe.fill_wait_s - time.monotonic()))
        deadline = time.monotonic() + self.exe.resolve_give_up_s
        while time.monotonic() < deadline:
            live = self._live.get(cid)
            if live is None or live.done:
                return
            try:
                found = await http.lookup(lg.symbol, cid)
            except LookupFailed as e:  # unreadable, rate limited, network: try again
                log.info("lookup of %s failed: %s", cid, e)
            else:
                if found is not None:
                    self._report(lg, self._from_order(lg, found, None))
                elif time.monotonic() >= sent + http.settle_s:
                    self._report(lg, LegResult(lg, "failed", 0.0, 0.0, 0.0,
                                               "the venue never took it (no such order after the settle time)",
                                               kind="server"))
                    return
            await asyncio.sleep(LOOKUP_RETRY_S)
        live = self._live.get(cid)
        if live is not None and not live.done:
            self._report(lg, LegResult(lg, "unknown", live.filled, 0.0, 0.0,
                                       "no final state from the stream or the REST lookup", done=True))

    def _from_order(self, lg: LegOrder, r: OrderResult, kind: str | None) -> LegResult:
        fee = float(r.fee or 0.0)
        fee_krw = fee if lg.venue == UPBIT else fee * self.fx()
        status = r.status if r.status in ("filled", "partially_filled", "cancelled", "rejected", "open") \
            else "unknown"
        if status == "rejected":
            return LegResult(lg, "rejected", 0.0, 0.0, 0.0, r.reason or "rejected", kind=kind or "other")
        return LegResult(lg, status, float(r.filled or 0.0), float(r.avg_price or 0.0), fee_krw,
                         r.reason or "", str(r.venue_order_id or ""), done=bool(r.done))

    def _report(self, lg: LegOrder, r: LegResult) -> None:
        """Keep a leg's latest state; forward it when it is final, unclear, or late.

        An IOC ends within milliseconds of its send, so its intermediate states
        (Upbit's ``wait`` reply, the stream's ``new`` and each ``trade``) are kept
        here, not forwarded: each would cost the executor a ledger write and two
        messages ahead of the final state that matters. Past ``fill_wait_s`` (the
        stream is late, the lookup runs) every step forward is told, so the
        executor and the position know what a slow leg has filled so far.
        Anything after the final state is dropped."""
        live = self._live.get(lg.client_order_id)
        if live is None:
            live = self._live[lg.client_order_id] = _Live(lg, time.monotonic())
        if live.done or (r.filled_qty < live.filled and r.status != "rejected"):
            return
        live.filled, live.status, live.done = r.filled_qty, r.status, r.done
        if r.done:
            # Kept a while so a late stream update is recognised and dropped.
            self.loop.call_later(60.0, self._live.pop, lg.client_order_id, None)
        else:
            early = r.status != "unknown" and time.monotonic() - live.sent_mono < self.exe.fill_wait_s
            if early or (r.status, r.filled_qty) == live.told:
                return
        live.told = (r.status, r.filled_qty)
        self.on_result(r)

    # -- private streams (loop) ---------------------------------------------------------
    def _on_order(self, u: OrderUpdate) -> None:
        self._last_msg[u.venue] = time.monotonic()
        live = self._live.get(u.client_order_id)
        if live is None:
            return  # not ours, or long done
        fee_krw = u.fee_quote if u.venue == UPBIT else u.fee_quote * self.fx()
        status = u.status if u.status in ("open", "filled", "partially_filled", "cancelled", "rejected") \
            else "unknown"
        self._report(live.leg, LegResult(live.leg, status, u.filled_qty, u.avg_price, fee_krw,
                                         venue_order_id=u.venue_order_id, done=u.done,
                                         kind="other" if status == "rejected" else ""))

    def _on_balance(self, b: BalanceUpdate) -> None:
        self._last_msg[b.venue] = time.monotonic()
        cur = {} if b.full else dict(self._free.get(b.venue, {}))
        cur.update(b.free)
        self._free = {**self._free, b.venue: cur}  # replaced whole: the actor thread reads it unlocked
        self._updated_ns = {**self._updated_ns, b.venue: b.ts_ns or time.time_ns()}

    def _on_stream_state(self, venue: str, up: bool, reason: str) -> None:
        if up != self._stream_up.get(venue):
            log.log(logging.INFO if up else logging.WARNING, "%s private stream %s%s", venue,
                    "up" if up else "down", f": {reason}" if reason else "")
            self._stream_since[venue] = time.monotonic()
        self._stream_up[venue] = up

    # -- balances ----------------------------------------------------------------------------
    async def _balance_loop(self) -> None:
        """A signed REST snapshot at start (both venues at once: the first open
        waits for them), then now and then (often while a stream is down)."""
        next_at = {venue: 0.0 for venue in self.http}

        async def read(venue: str, now: float) -> None:
            try:
                free = await self.http[venue].balances()
            except LookupFailed as e:  # no budget, unreadable, network: later
                log.warning("balance read from %s failed: %s", venue, e)
                next_at[venue] = now + (1.0 if "budget" in str(e) else self.exe.balance_poll_s)
                return
            self._on_balance(BalanceUpdate(venue=venue, free=free, locked={}, ts_ns=time.time_ns(), full=True))
            up = self._stream_up.get(venue, False)
            next_at[venue] = now + (self.exe.balance_refresh_s if up else self.exe.balance_poll_s)

        while True:
            now = time.monotonic()
            due = [venue for venue, at in next_at.items() if now >= at]
            if due:
                await asyncio.gather(*(read(venue, now) for venue in due))
            await asyncio.sleep(0.2)

    def balance_view(self) -> tuple[dict[str, dict[str, float]], dict[str, int]] | None:
        if not self.allow_orders:
            return None
        return self._free, self._updated_ns

    def balances(self) -> Balances | None:
        if not self.keys:
            if not self._said_no_keys:
                log.warning("balances are unavailable without API keys (set UPBIT_ACCESS_KEY, "
                            "UPBIT_SECRET_KEY, BINANCE_API_KEY, BINANCE_API_SECRET)")
                self._said_no_keys = True
            return Balances(free={}, source="unavailable")
        free = self._free
        return Balances(free={v: dict(b) for v, b in free.items()}, source="venue") if free else None

    def waiting_for(self) -> str:
        """What the first open still waits for ("" when nothing): each keyed
        venue's first balances and its private stream."""
        if not self.allow_orders:
            return ""
        missing = [f"balances from {v}" for v in self.http if v not in self._updated_ns]
        missing += [f"{v} private stream" for v in self.http if not self._stream_up.get(v)]
        return ", ".join(missing)

    def health(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for venue in VENUES:
            last = self._last_msg.get(venue)
            out[venue] = {"stream_up": self._stream_up.get(venue, False),
                          "stream_down_s": 0.0 if self._stream_up.get(venue) else now - self._stream_since[venue],
                          "stream_age_s": now - last if last is not None else -1.0,
                          "keys": venue in self.keys,
                          "budget": self.budgets[venue].fractions(clock.monotonic())}
        return out

    # -- restart safety and shutdown ------------------------------------------------------------
    def reconcile(self, lg: LegOrder, created_ns: int = 0) -> None:
        asyncio.run_coroutine_threadsafe(self._reconcile(lg, created_ns), self.loop)

    async def _reconcile(self, lg: LegOrder, created_ns: int) -> None:
        """Look a leg of the ledger up by client id (it was written before its
        send, perhaps by a killed incarnation). A leg the venue does not have is
        ``failed`` only once no request sent with it can still arrive (the
        venue's settle time after it was written), never sooner."""
        http = self.http.get(lg.venue)
        if http is None:
            self.on_result(LegResult(lg, "unknown", 0.0, 0.0, 0.0, f"reconcile: no API keys for {lg.venue}"))
            return
        live = self._live.get(lg.client_order_id)
        if live is not None:
            return  # this incarnation already follows it
        written_ago = max(0.0, time.time() - created_ns / 1e9) if created_ns else 0.0
        self._live[lg.client_order_id] = _Live(lg, time.monotonic() - written_ago)
        await self._resolve(lg, time.monotonic() - written_ago, first_wait=False)

    def cancel_all(self, reason: str) -> int:
        if self.keys:
            with contextlib.suppress(Exception):  # ccxt may still be loading: wait for it (bounded)
                self._call(asyncio.wait_for(self._rest_ready.wait(), 10.0), timeout=11.0)
        total = 0
        for venue, rest in list(self.rest.items()):
            try:
                total += int(self._call(rest.cancel_all_open(prefix=""), timeout=10.0) or 0)
            except Exception as e:  # noqa: BLE001
                log.warning("cancel_all on %s failed: %s", venue, type(e).__name__)
        return total

    def close(self) -> None:
        async def shut() -> None:
            for t in self._tasks:
                t.cancel()
            for s in self.streams.values():
                with contextlib.suppress(Exception):
                    await s.close()
            for h in self.http.values():
                with contextlib.suppress(Exception):
                    await h.close()
            for r in self.rest.values():
                with contextlib.suppress(Exception):
                    await r.close()
        with contextlib.suppress(Exception):
            self._call(shut(), timeout=5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
