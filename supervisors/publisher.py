"""Publishing a role's messages: on its stream, and on the bus.

A role that has a stream (``RoleActor.streams``) puts every message of
those topics on its own PUB, where its direct consumers read them (the
engine reads books straight from the feeds, the position opportunities
straight from the engine). The bus gets every message of every other
topic, and of a market-data topic listed in ``RoleActor.bus_every`` at most
one copy per interval: the bus's readers (watchdog, guard, status, metrics,
snapshots) need the current value, not a thousand a second, and each copy
costs the proxy, the supervisor's cache and every subscriber a wake-up.

Each socket numbers each topic on its own, so a subscriber's gap counter
means "lost", never "thinned". A :class:`Publisher` is used by one thread:
the host's I/O thread, or, through :class:`ThreadPublisher`, a producer
thread of its own - a feed's WebSocket thread, where handing every book to
the I/O thread would cost more than parsing it. ZeroMQ's rule holds either
way: a socket is used only by the thread that made it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import zmq

from messages import Message, encode
from messages import clock as market_clock


class Publisher:
    def __init__(self, bus: zmq.Socket, stream: zmq.Socket | None, sender: str, incarnation: int, *,
                 stream_prefixes: tuple[str, ...] = (), bus_every: Mapping[str, float] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self._bus: zmq.Socket | None = bus
        self._stream = stream
        self._sender = sender
        self._incarnation = incarnation
        self._stream_prefixes = tuple(stream_prefixes) if stream is not None else ()
        self._bus_every = dict(bus_every or {})
        # Thinning follows the market's clock, so a replay thins the same copies at any speed.
        self._clock = clock or market_clock.monotonic
        # topic -> (topic bytes, on the stream?, bus interval in s, 0 = every message)
        self._routes: dict[str, tuple[bytes, bool, float]] = {}
        self._bus_seq: dict[str, int] = {}
        self._stream_seq: dict[str, int] = {}
        self._bus_at: dict[str, float] = {}
        self.sent = 0  # frames sent; read by the host for its heartbeat (an int store is atomic)
        self.stream_sent = 0  # of which on the stream (a backtest's board counts them)
        self.thinned = 0  # bus copies left out by bus_every
        self.on_bus: Callable[[str], None] | None = None  # a backtest counts bus sends per topic

    def _route(self, topic: str) -> tuple[bytes, bool, float]:
        every = max((s for p, s in self._bus_every.items() if topic.startswith(p)), default=0.0)
        r = self._routes[topic] = (topic.encode(), topic.startswith(self._stream_prefixes)
                                   if self._stream_prefixes else False, every)
        return r

    def publish(self, msg: Message) -> None:
        bus = self._bus
        if bus is None:
            return  # closed: the process is stopping
        topic = msg.topic()
        route = self._routes.get(topic) or self._route(topic)
        t, on_stream, every = route
        if on_stream:
            seq = self._stream_seq.get(topic, 0) + 1
            self._stream_seq[topic] = seq
            self._stream.send_multipart((t, encode(msg, self._sender, self._incarnation, seq)))  # type: ignore[union-attr]
            self.sent += 1
            self.stream_sent += 1
        if every:
            now = self._clock()
            if now - self._bus_at.get(topic, -1e18) < every:
                self.thinned += 1
                return
            self._bus_at[topic] = now
        # PUB never blocks: at the high-water mark it drops, which subscribers
        # see as a sequence gap (the bus's documented behaviour).
        seq = self._bus_seq.get(topic, 0) + 1
        self._bus_seq[topic] = seq
        bus.send_multipart((t, encode(msg, self._sender, self._incarnation, seq)))
        self.sent += 1
        if self.on_bus is not None:
            self.on_bus(topic)

    def close(self) -> None:
        """Close both sockets (from the owner thread, or once it has ended)."""
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.close(linger=0)
        st, self._stream = self._stream, None
        if st is not None:
            st.close(linger=0)


class ThreadPublisher(Publisher):
    """A :class:`Publisher` with sockets of its own, for the thread that makes it."""

    def __init__(self, zctx: zmq.Context, endpoint: str, hwm: int, sender: str, incarnation: int, *,
                 stream_endpoint: str = "", stream_prefixes: tuple[str, ...] = (),
                 bus_every: Mapping[str, float] | None = None) -> None:
        self._owner = threading.get_ident()
        sock = zctx.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.connect(endpoint)
        stream: zmq.Socket | None = None
        if stream_endpoint and stream_prefixes:
            stream = zctx.socket(zmq.PUB)
            stream.setsockopt(zmq.LINGER, 0)
            stream.setsockopt(zmq.SNDHWM, hwm)
            stream.bind(stream_endpoint)
        super().__init__(sock, stream, sender, incarnation, stream_prefixes=stream_prefixes,
                         bus_every=bus_every)

    def publish(self, msg: Message) -> None:
        if threading.get_ident() != self._owner:
            raise RuntimeError("a ThreadPublisher is used only by the thread that made it")
        super().publish(msg)
