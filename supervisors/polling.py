"""What the supervisor loops (the main daemon's and a node's) do with their poller."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import zmq


def track_sentinels(poller: zmq.Poller, registered: set[int], sentinels: Iterable[int]) -> set[int]:
    """Poll the children's process sentinels (a child's exit wakes the loop):
    register the new ones, drop the gone ones; returns the set now registered."""
    now = set(sentinels)
    for fd in now - registered:
        poller.register(fd, zmq.POLLIN)
    for fd in registered - now:
        poller.unregister(fd)
    return now


def drain_router(sock: zmq.Socket, limit: int = 1000) -> Iterator[tuple[bytes, bytes]]:
    """Up to ``limit`` waiting ``(identity, frame)`` messages of a ROUTER socket,
    without blocking; a message of another shape is skipped."""
    for _ in range(limit):
        try:
            ident, frame = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        except ValueError:
            continue
        yield ident, frame
