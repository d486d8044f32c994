"""One venue's market-data WebSocket: connect, subscribe, parse, reconnect.

:class:`FeedClient` owns one connection at a time. It

- connects (``websockets`` asyncio client), sends the adapter's subscribe
  messages, and hands every frame to ``adapter.parse``;
- calls ``on_top(BookTop)`` for each book, counts ignorable frames, and
  counts bad frames by reason (it never dies of a frame);
- keeps the socket alive with protocol-level pings (websockets answers the
  server's pings by itself; a pong missing for ``ping_timeout_s`` drops the
  connection);
- treats a connection that delivers no *book* for ``stale_after_s`` as dead
  (silent but open, or spewing only garbage/keep-alives) and reconnects;
- reconnects with exponential backoff and jitter, reset once a connection
  has delivered a book, and resubscribes every time.

Counters are published as a frozen :class:`FeedStats` from ``snapshot()``,
safe to call from any thread. ``run()`` is a coroutine for an existing loop;
``run_in_thread()``/``stop()`` give the caller (an actor on its own thread)
a private event loop thread and a thread-safe stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from messages.market import BookTop
from venues import PARSER_ERROR, BadFrame, VenueAdapter

log = logging.getLogger("venues.feed")

_EMPTY: MappingProxyType[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedStats:
    """A point-in-time copy of a feed's counters.

    ``reconnects`` counts connection attempts after the first; ``connects``
    the handshakes that succeeded; ``stale_disconnects`` the connections
    dropped for delivering no book within ``stale_after_s``. Times are
    wall-clock epoch nanoseconds (0 = never).
    """

    venue: str
    connected: bool = False
    frames: int = 0
    tops: int = 0
    ignored: int = 0
    bad_frames: MappingProxyType[str, int] = field(default_factory=lambda: _EMPTY)
    reconnects: int = 0
    connects: int = 0
    stale_disconnects: int = 0
    callback_errors: int = 0
    last_frame_ns: int = 0
    last_top_ns: int = 0
    last_error: str = ""

    @property
    def bad_total(self) -> int:
        return sum(self.bad_frames.values())


class FeedClient:
    """Streams one venue's books into ``on_top`` until :meth:`stop`."""

    def __init__(self, adapter: VenueAdapter, ws_url: str, symbols: Sequence[str],
                 on_top: Callable[[BookTop], None], *,
                 ping_interval_s: float = 20.0, ping_timeout_s: float | None = None,
                 stale_after_s: float = 10.0,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 rng: random.Random | None = None,
                 open_timeout_s: float = 10.0, close_timeout_s: float = 1.0,
                 max_frame_bytes: int = 1 << 20, compression: bool = False,
                 clock_ns: Callable[[], int] = time.time_ns,
                 on_frame: Callable[[], None] | None = None) -> None:
        if stale_after_s <= 0 or ping_interval_s <= 0:
            raise ValueError("stale_after_s and ping_interval_s must be positive")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ValueError("need 0 < backoff_initial_s <= backoff_max_s")
        self.adapter = adapter
        self.symbols = tuple(symbols)
        self.url = adapter.ws_url(ws_url, self.symbols)
        try:
            parse_uri(self.url)
        except InvalidURI as e:
            raise ValueError(f"bad WebSocket URL for {adapter.name}: {e}") from None
        self.on_top = on_top
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_interval_s if ping_timeout_s is None else ping_timeout_s
        self.stale_after_s = stale_after_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.rng = rng if rng is not None else random.Random()
        self.open_timeout_s = open_timeout_s
        self.close_timeout_s = close_timeout_s
        self.max_frame_bytes = max_frame_bytes
        self.compression = compression
        self.clock_ns = clock_ns
        self.on_frame = on_frame  # after each frame is fully handled (a backtest counts them)
        # Counters: written only by the loop thread, read by snapshot().
        self._frames = 0
        self._tops = 0
        self._ignored = 0
        self._bad: dict[str, int] = {}
        self._reconnects = 0
        self._connects = 0
        self._stale = 0
        self._callback_errors = 0
        self._last_frame_ns = 0
        self._last_top_ns = 0
        self._last_error = ""
        self._connected = False
        self._attempt = 0  # backoff exponent; reset by a connection that delivered a book
        self._last_top_mono = 0.0
        self._bad_logged_at: dict[str, float] = {}
        # Stopping: a flag for any thread, an event for the loop.
        self._stop_flag = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_ev: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._on_thread_start: Callable[[], None] | None = None
        self._on_thread_exit: Callable[[], None] | None = None

    # -- public ------------------------------------------------------------------
    def snapshot(self) -> FeedStats:
        return FeedStats(
            venue=self.adapter.name, connected=self._connected, frames=self._frames,
            tops=self._tops, ignored=self._ignored,
            bad_frames=MappingProxyType(dict(self._bad)),  # dict copy is atomic under the GIL
            reconnects=self._reconnects, connects=self._connects, stale_disconnects=self._stale,
            callback_errors=self._callback_errors, last_frame_ns=self._last_frame_ns,
            last_top_ns=self._last_top_ns, last_error=self._last_error,
        )

    def run_in_thread(self, name: str | None = None, *,
                      on_thread_start: Callable[[], None] | None = None,
                      on_thread_exit: Callable[[], None] | None = None) -> threading.Thread:
        """Run on a private event loop in a daemon thread; returns the thread.

        ``on_thread_start`` runs on that thread before the first connection
        (to set up what ``on_top`` uses there, e.g. a socket only that thread
        may touch); ``on_thread_exit`` runs on it last, whatever happened.
        """
        if self._thread is not None:
            raise RuntimeError("this FeedClient already ran in a thread")
        self._on_thread_start = on_thread_start
        self._on_thread_exit = on_thread_exit
        t = threading.Thread(target=self._thread_main, name=name or f"feed-{self.adapter.name}",
                             daemon=True)
        self._thread = t
        t.start()
        return t

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the client to stop; callable from any thread, any number of times.

        If the client runs in its own thread (``run_in_thread``), wait up to
        ``timeout`` seconds for it to end and return whether it has.
        """
        self._stop_flag.set()
        loop, ev = self._loop, self._stop_ev
        if loop is not None and ev is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(ev.set)
        t = self._thread
        if t is None or t is threading.current_thread():
            return True
        t.join(timeout)
        return not t.is_alive()

    async def run(self) -> None:
        """Connect and stream until stop(); reconnect on any failure."""
        self._loop = asyncio.get_running_loop()
        self._stop_ev = asyncio.Event()
        if self._stop_flag.is_set():
            return
        stopper = asyncio.ensure_future(self._stop_ev.wait())
        first = True
        try:
            while not self._stop_flag.is_set():
                if not first:
                    self._reconnects += 1
                first = False
                try:
                    await self._connect_and_stream(stopper)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # every failure means: back off, reconnect
                    self._last_error = _describe(e)
                    log.warning("feed %s: connection failed: %s", self.adapter.name, self._last_error)
                if self._stop_flag.is_set():
                    break
                delay = self._next_delay()
                done, _ = await asyncio.wait({stopper}, timeout=delay)
                if done:
                    break
        finally:
            stopper.cancel()
            self._connected = False
            self._loop = None

    # -- internals ---------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            if self._on_thread_start is not None:
                self._on_thread_start()
            asyncio.run(self.run())
        except Exception:  # pragma: no cover - run() catches everything itself
            log.exception("feed %s: event loop thread died", self.adapter.name)
        finally:
            if self._on_thread_exit is not None:
                with contextlib.suppress(Exception):
                    self._on_thread_exit()

    def _next_delay(self) -> float:
        """Exponential backoff with 'equal jitter': in [base/2, base]."""
        base = min(self.backoff_max_s, self.backoff_initial_s * (2.0 ** min(self._attempt, 32)))
        self._attempt += 1
        return base * (0.5 + 0.5 * self.rng.random())

    async def _connect_and_stream(self, stopper: asyncio.Future[Any]) -> None:
        opening = asyncio.ensure_future(connect(
            self.url, ping_interval=self.ping_interval_s, ping_timeout=self.ping_timeout_s,
            open_timeout=self.open_timeout_s, close_timeout=self.close_timeout_s,
            max_size=self.max_frame_bytes, compression="deflate" if self.compression else None,
            proxy=None,
        ))
        await asyncio.wait({opening, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if not opening.done():  # stopped while connecting
            opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                ws = await opening
                await ws.close()
            return
        ws = opening.result()
        self._connects += 1
        stale = False
        reader: asyncio.Task[None] | None = None
        try:
            self.adapter.reset()
            for msg in self.adapter.subscribe_messages(self.symbols):
                await ws.send(msg)
            self._connected = True
            self._last_top_mono = time.monotonic()  # a silent new connection is stale too
            log.info("feed %s: connected to %s", self.adapter.name, self.url)
            reader = asyncio.ensure_future(self._read(ws))
            while True:
                remaining = self._last_top_mono + self.stale_after_s - time.monotonic()
                if remaining <= 0:
                    stale = True
                    self._stale += 1
                    self._last_error = f"no book for {self.stale_after_s:g}s"
                    log.warning("feed %s: %s, reconnecting", self.adapter.name, self._last_error)
                    return
                done, _ = await asyncio.wait({reader, stopper}, timeout=remaining,
                                             return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    return
                if reader in done:
                    reader.result()  # raises ConnectionClosedError & co.
                    self._last_error = _close_text(ws)
                    log.warning("feed %s: connection closed: %s", self.adapter.name, self._last_error)
                    return
        finally:
            self._connected = False
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader
            if stale:
                ws.transport.abort()  # a dead peer would only stall a close handshake
            with contextlib.suppress(Exception):
                await ws.close()

    async def _read(self, ws: ClientConnection) -> None:
        on_frame = self.on_frame
        async for frame in ws:
            self._on_frame(frame)
            if on_frame is not None:
                on_frame()

    def _on_frame(self, frame: bytes | str) -> None:
        now = self.clock_ns()
        self._frames += 1
        self._last_frame_ns = now
        try:
            top = self.adapter.parse(frame, now)
        except BadFrame as e:
            self._count_bad(e.reason, e.detail)
            return
        except Exception as e:  # an adapter that breaks its contract still must not kill us
            self._count_bad(PARSER_ERROR, type(e).__name__)
            return
        if top is None:
            self._ignored += 1
            return
        self._tops += 1
        self._last_top_ns = now
        self._last_top_mono = time.monotonic()
        self._attempt = 0
        try:
            self.on_top(top)
        except Exception:
            self._callback_errors += 1
            if self._callback_errors == 1 or self._callback_errors % 1000 == 0:
                log.exception("feed %s: on_top raised (%d so far)", self.adapter.name,
                              self._callback_errors)

    def _count_bad(self, reason: str, detail: str) -> None:
        n = self._bad.get(reason, 0) + 1
        self._bad[reason] = n
        now = time.monotonic()
        if now - self._bad_logged_at.get(reason, -1e9) >= 10.0:  # at most one line per reason per 10 s
            self._bad_logged_at[reason] = now
            log.warning("feed %s: bad frame (%s: %s), %d so far", self.adapter.name, reason,
                        detail[:120], n)


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def _close_text(ws: ClientConnection) -> str:
    code, reason = ws.close_code, ws.close_reason
    return f"closed by peer (code {code}{', ' + reason if reason else ''})"
