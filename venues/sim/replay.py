"""The embedded exchange replaying a tape: ``arbd backtest``'s market.

Everything a client sees is the embedded exchange's (``SimExchange``): the
same URLs, handshakes, REST API, private streams and matching engine. What
changes:

- the public streams send the tape's frames, byte for byte (``replay_ws``),
  and the books orders match against are the tape's (``replay_books``: less
  the backtest's own impact, behind the recorded takers at the touch);
- an order (``POST /v1/orders``, ``POST /api/v3/order``) reaches the book
  ``latency`` after it was sent, in tape time: it waits, parked, until the
  replay's clock gets there, and is matched against the book of that moment
  (each venue's fees as always);
- the clock follows the tape. The driver cuts the tape into steps
  (``replay_plan``); for each, it moves the clock (``board.clock_ns``, which
  every actor reads through ``messages.clock``) to the step's time, stopping
  on the way at every tick boundary and every parked order's arrival, hands
  the step's frames to the feeds, and waits until the daemon is quiet again
  (``replay_sync``). At ``speed`` N it also waits for the wall clock (N tape
  seconds per second); at 0 (``--speed max``) it does not. Either way each
  actor sees the same inputs at the same tape times.

Without a board (``run_root`` None: a test, a standalone replay) nothing is
waited for but the wall clock.

Admin: ``POST /_sim/replay/start`` starts it (a daemon's backtest starts it
once the daemon is armed); ``GET /_sim/replay`` says how far it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from aiohttp import web

from arbitrage.venue_rules import BINANCE, UPBIT
from storage.tape import TapeError, TapeReader
from supervisors.progress import BUS_SENT, NEVER, Board, board_path, tick_endpoint, wake_path
from venues.sim.binance_ws import BinanceWs
from venues.sim.config import SimConfig
from venues.sim.core import SimCore
from venues.sim.replay_books import ReplayBook, parse_book, parse_trade
from venues.sim.replay_plan import Step, plan_steps
from venues.sim.replay_sync import busy, next_tick, unattached
from venues.sim.replay_ws import ReplayBinanceWs, ReplayUpbitWs
from venues.sim.rest_common import json_response
from venues.sim.server import SimExchange
from venues.sim.upbit_ws import UpbitWs

log = logging.getLogger("venues.sim.replay")

ORDER_PATHS = {UPBIT: "/v1/orders", BINANCE: "/api/v3/order"}
_RETICK_S = 0.02  # a tick wake-up not acted on within this is sent again (a host may have missed it)
_POLL_S = 0.005  # a look at the board at least this often, wake-ups or not


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOptions:
    tape: Path
    speed: float = 0.0  # tape seconds per wall second; 0: as fast as the daemon keeps up
    latency_ms_upbit: float = 5.0
    latency_ms_binance: float = 20.0
    queue: bool = True
    impact_decay_s: float = 5.0
    step_ms: float = 50.0
    settle_timeout_s: float = 10.0
    run_root: Path | None = None  # a daemon's run directory: its board, wake pipe, tick socket
    auto_start: bool = False  # start once both venues' books are subscribed


def replay_sim_config(config: SimConfig) -> SimConfig:
    """The exchange's own clock is tape time in a replay: keep-alive limits
    that would cut a connection over a quiet stretch of tape are lifted."""
    from dataclasses import replace

    return replace(config, upbit_idle_timeout_s=1e9, binance_pong_timeout_s=1e9, binance_ws_lifetime_s=1e9,
                   binance_ws_msg_limit_per_s=0.0)


class ReplayExchange(SimExchange):
    def __init__(self, config: SimConfig, options: ReplayOptions) -> None:
        super().__init__(replay_sim_config(config))
        self.options = options
        self.board: Board | None = None
        self._clock_ns = 0  # without a board
        self._parked: list[tuple[int, int, asyncio.Future[None]]] = []
        self._park_seq = 0
        self._handling: set[asyncio.Future[None]] = set()  # orders released, not yet answered
        self._running = False
        self._start = asyncio.Event()
        self._wake = asyncio.Event()
        self._wake_fd = -1
        self._tick_sock: zmq.Socket | None = None
        self._zctx: zmq.Context | None = None
        self._last_tick_wake = 0.0
        self.upbit_ws: ReplayUpbitWs | None = None
        self.binance_ws: ReplayBinanceWs | None = None
        self.queued = {UPBIT: 0, BINANCE: 0}
        self._bus_base: list[tuple[int, ...]] | None = None
        self.status: dict[str, Any] = {
            "state": "waiting", "tape": str(options.tape), "speed": options.speed, "tape_start_ns": 0,
            "tape_end_ns": 0, "clock_ns": 0, "steps": 0, "frames": 0, "orders": 0, "settle_timeouts": 0,
            "truncated_at": None, "wall_s": 0.0, "speedup": 0.0, "error": ""}
        self._waited: dict[str, float] = {}
        if options.run_root is not None:
            self.board = Board(board_path(options.run_root))

    # -- the clock -------------------------------------------------------------------------
    def now_ns(self) -> int:
        return self.board.clock_ns if self.board is not None else self._clock_ns

    def mono(self) -> float:
        return self.now_ns() / 1e9

    def _set_clock(self, t_ns: int) -> None:
        t = max(t_ns, self.now_ns())  # never back
        if self.board is not None:
            self.board.clock_ns = t
        else:
            self._clock_ns = t
        self.status["clock_ns"] = t

    # -- SimExchange hooks -----------------------------------------------------------------
    def _make_core(self) -> SimCore:
        core = SimCore(self.config, mono=self.mono)
        for venue, books in core.books.items():
            for coin, book in list(books.items()):
                books[coin] = ReplayBook(venue, coin, book.levels, self.config.seed, core._usd_unit(coin),
                                         self.now_ns, self.options.impact_decay_s)
        return core

    def _public_hubs(self, core: SimCore) -> tuple[UpbitWs, BinanceWs]:
        self.upbit_ws, self.binance_ws = ReplayUpbitWs(core), ReplayBinanceWs(core)
        return self.upbit_ws, self.binance_ws

    def _middlewares(self, venue: str) -> list[Any]:
        return [self._park_middleware(venue)]

    def _admin_routes(self) -> list[web.RouteDef]:
        return [web.get("/_sim/replay", self._status), web.post("/_sim/replay/start", self._start_now)]

    def _start_tasks(self, binance_ws: BinanceWs) -> None:
        # No market model, no interval streams: the driver is the market.
        for name in self.private:
            if hasattr(self.private[name], "validity_s"):
                self.private[name].validity_s = 1e9  # type: ignore[union-attr]  # listenKeys: tape time
        self._tasks.append(asyncio.ensure_future(self._drive()))

    async def stop(self) -> None:
        await super().stop()
        loop = asyncio.get_running_loop()
        if self._wake_fd >= 0:
            loop.remove_reader(self._wake_fd)
            os.close(self._wake_fd)
            self._wake_fd = -1
        if self._tick_sock is not None:
            self._tick_sock.close(linger=0)
        if self._zctx is not None:
            self._zctx.term()

    # -- admin -------------------------------------------------------------------------------
    async def _status(self, request: web.Request) -> web.Response:
        return json_response({**self.status, "waited_s": self.waited_s()})

    async def _start_now(self, request: web.Request) -> web.Response:
        self._start.set()
        return json_response({"ok": True, "state": self.status["state"]})

    # -- orders: latency in tape time -----------------------------------------------------
    def _park_middleware(self, venue: str) -> Callable[..., Awaitable[web.StreamResponse]]:
        path = ORDER_PATHS[venue]
        latency_ns = int((self.options.latency_ms_upbit if venue == UPBIT else self.options.latency_ms_binance)
                         * 1e6)

        @web.middleware
        async def park(request: web.Request,
                       handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
            if request.method != "POST" or request.path != path or not self._running:
                return await handler(request)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._park_seq += 1
            heapq.heappush(self._parked, (self.now_ns() + latency_ns, self._park_seq, fut))
            self.status["orders"] += 1
            self._wake.set()
            try:
                await fut
                return await handler(request)
            finally:
                self._handling.discard(fut)
                self._wake.set()

        return park

    def _release(self, until_ns: int) -> None:
        while self._parked and self._parked[0][0] <= until_ns:
            _, _, fut = heapq.heappop(self._parked)
            if not fut.done():
                fut.set_result(None)
                self._handling.add(fut)

    # -- waiting for the daemon ------------------------------------------------------------
    def _open_sync(self) -> None:
        """The board's wake pipe (read here) and the tick socket (hosts read it)."""
        root = self.options.run_root
        assert root is not None
        self._wake_fd = os.open(wake_path(root), os.O_RDWR | os.O_NONBLOCK)  # RDWR: never EOF
        asyncio.get_running_loop().add_reader(self._wake_fd, self._on_wake)
        self._zctx = zmq.Context()
        self._tick_sock = self._zctx.socket(zmq.PUB)
        self._tick_sock.setsockopt(zmq.LINGER, 0)
        self._tick_sock.bind(tick_endpoint(root))

    def _on_wake(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_fd, 65536):
                pass
        self._wake.set()

    def _tick_wake(self) -> None:
        if self._tick_sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._tick_sock.send(b"t", zmq.NOBLOCK)
            self._last_tick_wake = time.monotonic()

    def _busy(self) -> str:
        if self._handling:
            return "exchange: orders being answered"
        if self.board is None:  # nobody to wait for but our own sends
            backlog = (self.upbit_ws and self.upbit_ws.backlog()) or (self.binance_ws and self.binance_ws.backlog())
            return "exchange: frames still going out" if backlog else ""
        slots = self.board.snapshot()
        return busy(slots, self.board.names, self.now_ns(), len(self._parked), self.queued, self._bus_base)

    async def _quiet(self) -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        deadline = t0 + self.options.settle_timeout_s
        waited = self._waited
        last = ""
        poll: asyncio.TimerHandle | None = None
        try:
            while True:
                self._wake.clear()
                why = self._busy()
                if last:  # what the time since the last look went to (status, bench.replay)
                    waited[last] = waited.get(last, 0.0) + loop.time() - t0
                t0, last = loop.time(), why
                if not why:
                    return
                if why.endswith("tick due") and time.monotonic() - self._last_tick_wake > _RETICK_S:
                    self._tick_wake()
                if t0 > deadline:
                    self.status["settle_timeouts"] += 1
                    log.warning("replay: the daemon did not go quiet within %.1fs (%s); going on",
                                self.options.settle_timeout_s, why)
                    return
                if poll is None or poll.when() <= t0:  # a look now and then, wake-ups or not
                    poll = loop.call_later(_POLL_S, self._wake.set)
                await self._wake.wait()
        finally:
            if poll is not None:
                poll.cancel()

    def waited_s(self) -> dict[str, float]:
        """Seconds the replay waited, per reason (counts left out)."""
        out: dict[str, float] = {}
        for why, secs in self._waited.items():
            k = re.sub(r"-?\d+", "N", why)
            out[k] = round(out.get(k, 0.0) + secs, 4)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def _next_tick(self) -> int:
        if self.board is None:
            return NEVER
        return next_tick(self.board.snapshot(), self.board.names, NEVER)

    async def _ready(self) -> None:
        """Both feeds subscribed (and, with a board, every actor on it), then quiet."""
        while True:
            up = self.upbit_ws is not None and any(s.type == "orderbook" for c in self.upbit_ws.conns
                                                   for s in c.subs)
            bn = self.binance_ws is not None and any("@depth" in name for name in self.binance_ws.subs)
            missing = unattached(self.board.snapshot(), self.board.names) if self.board is not None else []
            if up and bn and not missing:
                break
            await asyncio.sleep(0.05)
        if self.board is not None:
            await asyncio.sleep(0.2)  # the hosts' tick subscriptions reach our socket
            self.board.count_bus()
            self._bus_base = await self._settled()
        await self._quiet()

    async def _settled(self) -> list[tuple[int, ...]]:
        """The board once nothing has moved on it for a while: the baseline bus
        counts (whatever the start-up sent before every subscription was up)."""
        assert self.board is not None
        deadline = asyncio.get_running_loop().time() + self.options.settle_timeout_s
        before = self.board.snapshot()
        while True:
            await asyncio.sleep(0.3)
            now = self.board.snapshot()
            still = [s[BUS_SENT:] for s in now] == [s[BUS_SENT:] for s in before]
            if still and not self._busy() or asyncio.get_running_loop().time() > deadline:
                return now
            before = now

    # -- the driver ----------------------------------------------------------------------------
    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            reader = TapeReader(self.options.tape)
            chunks = reader.scan()
            if not chunks:
                raise TapeError(reader.data_offset, "the tape has no whole chunk")
            self.status.update(tape_start_ns=chunks[0].first_ns, tape_end_ns=chunks[-1].last_ns,
                               truncated_at=reader.truncated_at)
            if self.board is None:
                self._set_clock(chunks[0].first_ns)
            else:
                self._open_sync()
            if not self.options.auto_start:
                await self._start.wait()
            await self._ready()
            self._running = True
            self.status["state"] = "running"
            wall0, tape0 = loop.time(), self.now_ns()
            pace = self._pacer(wall0, tape0)
            for step in plan_steps(reader.frames(), int(self.options.step_ms * 1e6)):
                await self._advance(step.t_ns, pace)
                self._apply(step)
                self.status["steps"] += 1
                await self._quiet()
                self.status["wall_s"] = round(loop.time() - wall0, 3)
            while self._parked:  # orders still on their way when the tape ended
                await self._advance(self._parked[0][0], pace)
            await self._quiet()
            wall = loop.time() - wall0
            self.status.update(state="done", wall_s=round(wall, 3),
                               speedup=round((self.now_ns() - tape0) / 1e9 / wall, 2) if wall > 0 else 0.0)
            log.info("replay done: %s", self.status)
        except TapeError as e:
            self.status.update(state="failed", error=f"{self.options.tape}: {e}")
            log.error("replay failed: %s", self.status["error"])
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the status must say so: a backtest waits for "done"
            self.status.update(state="failed", error=f"{type(e).__name__}: {e}")
            log.exception("replay failed")
        finally:
            self._running = False
            self._release(NEVER)

    def _pacer(self, wall0: float, tape0: int) -> Callable[[int], Awaitable[None]]:
        speed = self.options.speed

        async def pace(t_ns: int) -> None:
            if speed > 0:
                wait = wall0 + (t_ns - tape0) / 1e9 / speed - asyncio.get_running_loop().time()
                if wait > 0:
                    await asyncio.sleep(wait)

        return pace

    async def _advance(self, t_ns: int, pace: Callable[[int], Awaitable[None]]) -> None:
        """Move the clock to ``t_ns``, stopping at every tick and order arrival before it."""
        while True:
            tick = self._next_tick()
            arrival = self._parked[0][0] if self._parked else NEVER
            due = min(tick, arrival)
            if due > t_ns:
                break
            await pace(due)
            self._set_clock(due)
            self._release(due)
            if tick <= due:
                self._tick_wake()
            await self._quiet()
        await pace(t_ns)
        self._set_clock(t_ns)

    def _apply(self, step: Step) -> None:
        core = self.core
        assert core is not None and self.upbit_ws is not None and self.binance_ws is not None
        for frame, route in step.frames:
            book = core.books[frame.venue].get(route.coin)
            if route.kind == "book":
                levels = parse_book(frame.venue, frame.data)
                if book is not None and levels is not None:
                    assert isinstance(book, ReplayBook)
                    book.load(*levels)
                    engine = core.engines[frame.venue]
                    if engine.open_orders:
                        engine.match_resting(route.coin)
            elif self.options.queue and book is not None:
                trade = parse_trade(frame.venue, frame.data)
                if trade is not None:
                    assert isinstance(book, ReplayBook)
                    book.take_public(*trade)
            if frame.venue == UPBIT:
                kind = "orderbook" if route.kind == "book" else "trade"
                n = self.upbit_ws.send_recorded(kind, f"KRW-{route.coin}", frame.data, frame.binary)
            else:
                n = self.binance_ws.send_recorded(frame.stream, frame.data)
            self.queued[frame.venue] += n
            self.status["frames"] += n
