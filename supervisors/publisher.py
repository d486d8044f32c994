"""A bus publisher owned by one producer thread.

The outbox hands every message to the host's I/O thread: right for actors
(one socket owner, heartbeats first), but for a producer that runs its own
loop at tens of thousands of messages a second - a feed's WebSocket thread -
the hand-off costs more than the work (a deque, a wake-up, and the GIL
passed back and forth for every book). A :class:`ThreadPublisher` gives such
a thread its own PUB socket to the bus instead. ZeroMQ's rule still holds:
the socket is used only by the thread that made it.

Sequence numbers are per topic, as on the host's publisher; a topic must
have one publisher per process (a feed's ``book.*`` topics have).
"""

from __future__ import annotations

import threading

import zmq

from messages import Message, encode


class ThreadPublisher:
    def __init__(self, zctx: zmq.Context, endpoint: str, hwm: int, sender: str, incarnation: int, *,
                 stream_endpoint: str = "", stream_prefixes: tuple[str, ...] = ()) -> None:
        self._owner = threading.get_ident()
        self._sender = sender
        self._incarnation = incarnation
        self._seq: dict[str, int] = {}
        self._topics: dict[str, bytes] = {}
        self.sent = 0  # read by the host for its heartbeat; an int store is atomic
        sock = zctx.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, hwm)
        sock.connect(endpoint)
        self._sock: zmq.Socket | None = sock
        # The role's stream (see RoleActor.streams): the same frames for the
        # topics its direct consumers read straight, bound here.
        self._stream: zmq.Socket | None = None
        self._stream_prefixes = tuple(stream_prefixes)
        if stream_endpoint and stream_prefixes:
            st = zctx.socket(zmq.PUB)
            st.setsockopt(zmq.LINGER, 0)
            st.setsockopt(zmq.SNDHWM, hwm)
            st.bind(stream_endpoint)
            self._stream = st

    def publish(self, msg: Message) -> None:
        if threading.get_ident() != self._owner:
            raise RuntimeError("a ThreadPublisher is used only by the thread that made it")
        sock = self._sock
        if sock is None:
            return  # closed: the process is stopping
        topic = msg.topic()
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        t = self._topics.get(topic)
        if t is None:
            t = self._topics[topic] = topic.encode()
        # PUB never blocks: at the high-water mark it drops, which subscribers
        # see as a sequence gap (the bus's documented behaviour).
        frame = encode(msg, self._sender, self._incarnation, seq)
        sock.send_multipart((t, frame))
        if self._stream is not None and topic.startswith(self._stream_prefixes):
            self._stream.send_multipart((t, frame))
        self.sent += 1

    def close(self) -> None:
        """Call from the owner thread, or once the owner thread has ended."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(linger=0)
        st, self._stream = self._stream, None
        if st is not None:
            st.close(linger=0)
