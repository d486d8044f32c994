"""The hand-off from actor threads to the host's I/O thread.

ZeroMQ sockets are not thread-safe, so actor code never touches a socket:
it appends to a deque and, if the I/O thread is not already awake, pokes
it through a per-thread inproc PUSH socket (each socket has one owner).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from typing import Any

import zmq

# Control-plane items (heartbeats, replies to the supervisor, acks) go out
# ahead of data: a burst of publishes must not delay a heartbeat past the
# liveness limit (the supervisor would kill a busy but healthy actor).
_URGENT = frozenset({"beat", "sup", "ack"})


class Outbox:
    def __init__(self, ctx: zmq.Context, wake_endpoint: str) -> None:
        self._ctx = ctx
        self._endpoint = wake_endpoint
        self._items: deque[tuple[Any, ...]] = deque()
        self._urgent: deque[tuple[Any, ...]] = deque()
        self._local = threading.local()
        self._pending = False
        self._closed = False
        self.owner = 0  # thread ident of the I/O thread that drains this outbox
        self.on_put: Any = None  # a backtest counts every item put (supervisors.progress)

    def put(self, item: tuple[Any, ...]) -> None:
        if self.on_put is not None:
            self.on_put()
        (self._urgent if item[0] in _URGENT else self._items).append(item)
        if threading.get_ident() == self.owner:
            return  # the I/O thread itself (an inline handler): it drains after handling
        if not self._pending and not self._closed:
            self._pending = True
            sock = getattr(self._local, "sock", None)
            if sock is None:
                sock = self._ctx.socket(zmq.PUSH)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDHWM, 1000)
                sock.connect(self._endpoint)
                self._local.sock = sock
            # A full wake queue means the I/O thread is awake already.
            with contextlib.suppress(zmq.ZMQError):
                sock.send(b"", zmq.NOBLOCK)

    def drain(self, limit: int | None = None) -> list[tuple[Any, ...]]:
        """Every urgent item, then at most ``limit`` data items (all if None)."""
        # Clear the flag *before* draining: an append racing with us either
        # lands in this drain or sees the flag down and wakes us again.
        self._pending = False
        out = []
        urgent = self._urgent
        while urgent:
            out.append(urgent.popleft())
        items = self._items
        n = len(items) if limit is None else min(limit, len(items))
        for _ in range(n):
            out.append(items.popleft())
        return out

    def backlog(self) -> bool:
        """Data items left behind by a bounded drain."""
        return bool(self._items)

    def close(self) -> None:
        self._closed = True
