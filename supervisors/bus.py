"""The bus: an XSUB/XPUB proxy in the supervisor process, plus a last-value
cache fed by the proxy's capture socket (snapshots for restarted actors,
and the supervisor's own view for status and metrics)."""

from __future__ import annotations

import contextlib
import threading

import zmq

from messages import DecodeError, Message, decode
from messages.codec import check_envelope
from supervisors.endpoints import Endpoints

# Low-rate topics that status and metrics read as "the current value".
_VERIFIED = frozenset({b"state", b"position", b"orderstats", b"balances", b"actors"})


class Bus:
    def __init__(self, zctx: zmq.Context, endpoints: Endpoints, hwm: int) -> None:
        self.zctx = zctx
        self.endpoints = endpoints
        self.hwm = hwm
        self.last: dict[bytes, bytes] = {}  # topic -> last frame
        self.rejected = 0  # frames kept out of the cache as undecodable
        self._ctl_ep = f"inproc://bus-ctl-{id(self)}"
        self._cap_ep = f"inproc://bus-cap-{id(self)}"
        self._thread: threading.Thread | None = None
        self.capture = zctx.socket(zmq.PULL)
        self.capture.setsockopt(zmq.LINGER, 0)
        self.capture.setsockopt(zmq.RCVHWM, hwm)
        self.capture.bind(self._cap_ep)
        self._ctl = zctx.socket(zmq.PAIR)
        self._ctl.setsockopt(zmq.LINGER, 0)
        self._ctl.bind(self._ctl_ep)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="bus-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(5)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            xsub = self.zctx.socket(zmq.XSUB)
            xpub = self.zctx.socket(zmq.XPUB)
            cap = self.zctx.socket(zmq.PUSH)
            ctl = self.zctx.socket(zmq.PAIR)
            for s in (xsub, xpub, cap, ctl):
                s.setsockopt(zmq.LINGER, 0)
            xsub.setsockopt(zmq.RCVHWM, self.hwm)
            xpub.setsockopt(zmq.SNDHWM, self.hwm)
            cap.setsockopt(zmq.SNDHWM, self.hwm)
            xsub.bind(self.endpoints.bus_in)
            # PUB sockets filter at the publisher: a topic no actor subscribes
            # to (orderstats, event) would never reach the proxy, and so never
            # the last-value cache that status, metrics and snapshots read.
            # Subscribing the XSUB itself to everything makes every publisher
            # send everything here; XPUB still filters per subscriber.
            xsub.send(b"\x01")
            xpub.bind(self.endpoints.bus_out)
            cap.connect(self._cap_ep)
            ctl.connect(self._ctl_ep)
        except BaseException as e:  # surfaced by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            zmq.proxy_steerable(xsub, xpub, cap, ctl)
        except zmq.ZMQError:
            pass
        finally:
            for s in (xsub, xpub, cap, ctl):
                s.close(linger=0)

    def drain_capture(self, limit: int = 10_000) -> list[tuple[bytes, bytes]]:
        """Take captured data messages (skipping subscription frames).

        A frame enters the last-value cache only if it is a message: a bad
        frame published on a topic must not replace the last good one that
        status, metrics and snapshots read. Every frame gets the cheap
        envelope check; the few single-value topics status and metrics
        read are fully decoded (they come a few times a second)."""
        out = []
        for _ in range(limit):
            try:
                parts = self.capture.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(parts) == 2:
                topic, frame = parts
                if self._cacheable(topic, frame):
                    self.last[topic] = frame
                else:
                    self.rejected += 1
                out.append((topic, frame))
        return out

    @staticmethod
    def _cacheable(topic: bytes, frame: bytes) -> bool:
        if not check_envelope(frame):
            return False
        if topic not in _VERIFIED:
            return True
        try:
            decode(frame)
        except DecodeError:
            return False
        return True

    def latest(self, topic: str) -> Message | None:
        """The last message published under ``topic``, decoded (None if none or bad)."""
        frame = self.last.get(topic.encode())
        if frame is None:
            return None
        try:
            return decode(frame).msg
        except DecodeError:
            return None

    def snapshot(self, prefixes: list[str]) -> list[bytes]:
        pre = [p.encode() for p in prefixes]
        return [f for t, f in self.last.items() if any(t.startswith(p) for p in pre)]

    def stop(self) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self._ctl.send(b"TERMINATE")
        if self._thread is not None:
            self._thread.join(2)
        self._ctl.close(linger=0)
        self.capture.close(linger=0)
