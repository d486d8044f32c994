"""What both venues' WebSocket front ends share: a per-connection outbound queue.

A publisher never awaits a client: it puts frames on the connection's queue
and one writer task per connection sends them, so a slow reader only delays
itself. A reader that falls too far behind is disconnected (as real venues do).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable

from aiohttp import web

MAX_BACKLOG = 20_000  # queued frames before a slow consumer is cut off

# Garbage frames for the "malformed" fault: (is_binary, payload).
GARBAGE: tuple[tuple[bool, bytes], ...] = (
    (False, b'{"e":"depthUpdate","E":'),
    (False, b"this is not json"),
    (True, b"\xff\xfe\x00\x9f garbage \xc3\x28"),
    (False, b'{"u":"x","s":null,"b":[[1,2,3]],"a":"oops"}'),
    (True, b'{"type":"orderbook","code":'),
    (False, b"[1,2,"),
    (True, b'{"type":"orderbook","code":"KRW-BTC","orderbook_units":"x","timestamp":"never"}'),
)


class Conn:
    """One accepted WebSocket: its queue and writer. ``tick`` runs on every writer wake-up."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.request = request
        self.ws = ws
        self.queue: asyncio.Queue[tuple[bool, bytes | str] | None] = asyncio.Queue()
        self.closed = False
        self._garbage = itertools.cycle(GARBAGE)

    def send_text(self, text: str) -> None:
        self._put((False, text))

    def send_bytes(self, data: bytes) -> None:
        self._put((True, data))

    def send_garbage(self) -> None:
        binary, payload = next(self._garbage)
        self._put((True, payload) if binary else (False, payload.decode("utf-8", "replace")))

    def _put(self, item: tuple[bool, bytes | str]) -> None:
        if self.closed:
            return
        if self.queue.qsize() >= MAX_BACKLOG:
            self.abort()
            return
        self.queue.put_nowait(item)

    def abort(self) -> None:
        """Cut the TCP stream without a close frame (what a network drop looks like)."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()
        self.queue.put_nowait(None)

    async def close(self, code: int, message: str) -> None:
        self.closed = True
        self.queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message.encode())

    async def writer(self, timeout: Callable[[], float], tick: Callable[[], Awaitable[bool]]) -> None:
        """Send queued frames until closed. ``tick`` returns False to stop (it may close)."""
        ws = self.ws
        while not self.closed:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for wraps the get in a task of
                # its own, two more loop iterations between a frame's put and its send.
                async with asyncio.timeout(max(0.001, timeout())):
                    item = await self.queue.get()
            except TimeoutError:
                item = ()  # type: ignore[assignment]
            if item is None:
                break
            try:
                if item:
                    binary, payload = item
                    if binary:
                        await ws.send_bytes(payload)  # type: ignore[arg-type]
                    else:
                        await ws.send_str(payload)  # type: ignore[arg-type]
                    while not self.queue.empty():
                        nxt = self.queue.get_nowait()
                        if nxt is None:
                            self.closed = True
                            break
                        if nxt[0]:
                            await ws.send_bytes(nxt[1])  # type: ignore[arg-type]
                        else:
                            await ws.send_str(nxt[1])  # type: ignore[arg-type]
                if not await tick():
                    break
            except (ConnectionError, RuntimeError):
                break
        self.closed = True
