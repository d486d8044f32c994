"""The hand-off from actor threads to the host's I/O thread.

ZeroMQ sockets are not thread-safe, so actor code never touches a socket:
it appends to a deque and, if the I/O thread is not already awake, pokes
it through a per-thread inproc PUSH socket (each socket has one owner).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import zmq


class Outbox:
    def __init__(self, ctx: zmq.Context, wake_endpoint: str) -> None:
        self._ctx = ctx
        self._endpoint = wake_endpoint
        self._items: deque[tuple[Any, ...]] = deque()
        self._local = threading.local()
        self._pending = False
        self._closed = False

    def put(self, item: tuple[Any, ...]) -> None:
        self._items.append(item)
        if not self._pending and not self._closed:
            self._pending = True
            sock = getattr(self._local, "sock", None)
            if sock is None:
                sock = self._ctx.socket(zmq.PUSH)
                sock.setsockopt(zmq.LINGER, 0)
                sock.setsockopt(zmq.SNDHWM, 1000)
                sock.connect(self._endpoint)
                self._local.sock = sock
            try:
                sock.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # wake queue full: the I/O thread is already awake

    def drain(self) -> list[tuple[Any, ...]]:
        # Clear the flag *before* draining: an append racing with us either
        # lands in this drain or sees the flag down and wakes us again.
        self._pending = False
        items = self._items
        out = []
        while items:
            out.append(items.popleft())
        return out

    def close(self) -> None:
        self._closed = True
