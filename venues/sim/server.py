"""Run the simulator: ``SimExchange`` (asyncio), ``SimThread`` (own loop in a thread),
``run_standalone`` (``bin/arbd sim``).

Three aiohttp servers: Upbit (REST + WS) on one port, Binance (REST + WS) on
another, the admin API on a third (always bound to 127.0.0.1). ``start()``
returns the URL object of ARCHITECTURE section 5. The private streams ride on
the venues' ports: Binance's user data stream (``binance_user_stream``: listenKey
REST, ``/ws/<listenKey>``), Upbit's ``/websocket/v1/private`` (``upbit_private_ws``);
``SimExchange.private`` holds them by venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import uvloop
from aiohttp import web

from arbitrage.venue_rules import BINANCE, UPBIT
from venues.sim.admin import Admin
from venues.sim.binance_rest import BinanceRest
from venues.sim.binance_user_stream import BinanceUserStream
from venues.sim.binance_ws import INTERVALS, BinanceWs
from venues.sim.config import TEST_KEYS, SimConfig
from venues.sim.core import SimCore
from venues.sim.upbit_private_ws import UpbitPrivateWs
from venues.sim.upbit_rest import UpbitRest
from venues.sim.upbit_ws import UpbitWs

T = TypeVar("T")
log = logging.getLogger("venues.sim")
_MAX_CATCH_UP_S = 0.25  # a stalled loop skips model time beyond this instead of bursting


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


class SimExchange:
    """The embedded exchange on the running asyncio loop."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.core: SimCore | None = None
        self.urls: dict[str, Any] = {}
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._hubs: list[UpbitWs | BinanceWs | UpbitPrivateWs | BinanceUserStream] = []
        self.private: dict[str, UpbitPrivateWs | BinanceUserStream] = {}

    # -- what a replay (venues.sim.replay) changes --------------------------------------
    def _make_core(self) -> SimCore:
        return SimCore(self.config)

    def _public_hubs(self, core: SimCore) -> tuple[UpbitWs, BinanceWs]:
        return UpbitWs(core), BinanceWs(core)

    def _middlewares(self, venue: str) -> list[Any]:
        """Run before each venue's own middleware (its limits and faults)."""
        return []

    def _admin_routes(self) -> list[web.RouteDef]:
        return []

    def _start_tasks(self, binance_ws: BinanceWs) -> None:
        """The market model's steps and Binance's interval streams."""
        self._tasks.append(asyncio.ensure_future(self._market_loop()))
        for name in INTERVALS:
            self._tasks.append(asyncio.ensure_future(binance_ws.interval_loop(name)))

    async def start(self) -> dict[str, Any]:
        cfg = self.config
        core = self.core = self._make_core()
        upbit_rest, binance_rest = UpbitRest(core), BinanceRest(core)
        upbit_ws, binance_ws = self._public_hubs(core)
        upbit_private, binance_user = UpbitPrivateWs(core), BinanceUserStream(core)
        self.private = {UPBIT: upbit_private, BINANCE: binance_user}
        self._hubs = [upbit_ws, binance_ws, upbit_private, binance_user]

        def drop_every(*droppers: Callable[[bool], int]) -> Callable[[bool], int]:
            return lambda graceful: sum(d(graceful) for d in droppers)
        admin = Admin(core, {UPBIT: drop_every(upbit_ws.drop_all, upbit_private.drop_all),
                             BINANCE: drop_every(binance_ws.drop_all, binance_user.drop_all)},
                      private_droppers={UPBIT: upbit_private.drop_all, BINANCE: binance_user.drop_all})

        upbit_app = web.Application(middlewares=[*self._middlewares(UPBIT), upbit_rest.middleware()])
        upbit_app.add_routes(upbit_rest.routes() + upbit_ws.routes() + upbit_private.routes())
        binance_app = web.Application(middlewares=[*self._middlewares(BINANCE), binance_rest.middleware()])
        # The user stream's /ws/<listenKey> goes before the public /ws/{tail}: first match wins.
        binance_app.add_routes(binance_rest.routes() + binance_user.rest_routes() + binance_user.ws_routes()
                               + binance_ws.routes())
        admin_app = web.Application(middlewares=[admin.loopback_only])
        admin_app.add_routes(admin.routes() + self._admin_routes())
        try:
            up = await self._serve(upbit_app, cfg.host, cfg.upbit_port)
            bp = await self._serve(binance_app, cfg.host, cfg.binance_port)
            ap = await self._serve(admin_app, "127.0.0.1", cfg.admin_port)
        except BaseException:
            await self.stop()
            raise
        h = _url_host(cfg.host)
        self.urls = {
            "binance": {"rest": f"http://{h}:{bp}", "ws": f"ws://{h}:{bp}/ws"},
            "upbit": {"rest": f"http://{h}:{up}", "ws": f"ws://{h}:{up}/websocket/v1"},
            "admin": f"http://127.0.0.1:{ap}",
            "test_keys": {v: dict(k) for v, k in TEST_KEYS.items()},
        }
        self._start_tasks(binance_ws)
        return self.urls

    async def _serve(self, app: web.Application, host: str, port: int) -> int:
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, reuse_address=True, reuse_port=self.config.reuse_port or None)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        return int(sockets[0].getsockname()[1])

    async def _market_loop(self) -> None:
        assert self.core is not None
        loop = asyncio.get_running_loop()
        dt = 1.0 / self.config.update_hz
        max_batch = max(1, int(_MAX_CATCH_UP_S / dt))
        start, done = loop.time(), 0
        while True:
            due = int((loop.time() - start) / dt) - done
            if due > max_batch:
                start += (due - max_batch) * dt
                due = max_batch
            for _ in range(due):
                try:
                    self.core.step(dt)
                except Exception:  # a bug in one step must not freeze the market
                    log.exception("sim market step failed")
                done += 1
            await asyncio.sleep(max(0.0, start + (done + 1) * dt - loop.time()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for hub in self._hubs:
            with contextlib.suppress(Exception):
                await hub.close_all()
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()


class SimThread:
    """``SimExchange`` on its own event loop in a background thread (tests, the ``sim`` actor)."""

    def __init__(self, config: SimConfig | None = None,
                 factory: Callable[[SimConfig], SimExchange] | None = None,
                 loop_factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop) -> None:
        self.config = config or SimConfig()
        self.factory = factory or SimExchange  # a ReplayExchange for a backtest
        # uvloop: a venue answers an order in well under a millisecond; the stdlib
        # loop made the exchange's own overhead part of arbd's measured latency.
        # In-process test sims take the stdlib loop (venues.sim.testing.sim_thread).
        self.loop_factory = loop_factory
        self.urls: dict[str, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: SimExchange | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 10.0) -> dict[str, Any]:
        """Start and block until every port is bound; return the URL object."""
        if self._thread is not None:
            raise RuntimeError("SimThread already started")
        self._thread = threading.Thread(target=self._run, name="sim-exchange", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("simulator did not start in time")
        if self._error is not None:
            self._thread.join(timeout)
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        return self.urls

    def _run(self) -> None:
        loop = self._loop = self.loop_factory()
        asyncio.set_event_loop(loop)
        sim = self._sim = self.factory(self.config)
        try:
            self.urls = loop.run_until_complete(sim.start())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(sim.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    @property
    def exchange(self) -> SimExchange | None:
        return self._sim

    def call(self, fn: Callable[[SimCore], T], timeout: float = 5.0) -> T:
        """Run ``fn(core)`` on the simulator's loop and return its result (thread-safe)."""
        if self._loop is None or self._sim is None or self._sim.core is None:
            raise RuntimeError("SimThread not running")
        core = self._sim.core

        async def run() -> T:
            return fn(core)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop, close every socket and join the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("simulator thread did not stop")
        self._thread = None

    def __enter__(self) -> SimThread:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def run_standalone(port: int, seed: int, host: str = "127.0.0.1") -> int:
    """``bin/arbd sim``: Upbit on ``port``, Binance on ``port+1``, admin on ``port+2``
    (``port`` 0: all ephemeral). Prints the URL object as the first stdout line,
    runs until SIGTERM/SIGINT, returns the exit code (0; 1 with one line on stderr
    if it cannot start)."""
    ports = (0, 0, 0) if port == 0 else (port, port + 1, port + 2)
    try:
        config = SimConfig(seed=seed, host=host, upbit_port=ports[0], binance_port=ports[1], admin_port=ports[2])
    except ValueError as exc:
        print(f"arbd sim: {exc}", file=sys.stderr, flush=True)
        return 1

    async def main() -> int:
        sim = SimExchange(config)
        try:
            urls = await sim.start()
        except OSError as exc:
            print(f"arbd sim: cannot bind {host}:{port}..{port + 2}: {exc.strerror or exc}", file=sys.stderr, flush=True)
            return 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(json.dumps(urls, separators=(",", ":")), flush=True)
        try:
            await stop.wait()
        finally:
            await sim.stop()
        return 0

    return asyncio.run(main())
