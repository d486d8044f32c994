"""Test-only roles plugged in through ``testing.role_overrides``.

Besides the idle and crashing roles used by the runtime tests, this holds
the roles behind ``bench/bus.py``: a pinger and a ponger that measure an
actor-to-actor round trip over the point-to-point path (host, inbox,
acknowledgements, pykka on both sides), and a publisher and a subscriber
that push a numbered stream through the XSUB/XPUB proxy and count gaps.
Their parameters come from ``testing.bench`` in the config; their results
are written as JSON under ``<run dir>/bench/``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.base import CommandError, RoleActor
from messages import BookTop, Message, SupervisorReport, register

# -- test-only message ----------------------------------------------------------


@register("t.probe")
@dataclass(frozen=True, slots=True, kw_only=True)
class Probe(Message):
    """A numbered probe: ping/pong on the trade path, or one item of a stream."""

    stream: str  # the pub/sub topic ("t.<stream>")
    n: int
    reply_to: str = ""
    pad: str = ""

    def topic(self) -> str:
        return f"t.{self.stream}"


# -- runtime-test roles -------------------------------------------------------------


class IdleActor(RoleActor):
    """Heartbeats and does nothing else: for runtime tests."""

    subscriptions = ("book.",)

    def _handle_book_top(self, msg: BookTop) -> None:
        self.ctx.count("books")


class InboxIdleActor(IdleActor):
    has_inbox = True


class NullActor(RoleActor):
    """Heartbeats only; subscribes to nothing (keeps benchmarks quiet)."""

    wants_snapshot = False


class InboxNullActor(NullActor):
    has_inbox = True


class CrashAtStartActor(RoleActor):
    def on_start(self) -> None:
        raise RuntimeError("crash at start (test)")


class CommandActor(RoleActor):
    has_inbox = True

    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        if command == "echo":
            return dict(args)
        raise CommandError("unknown_command", command)


# -- benchmark roles ----------------------------------------------------------------


def _bench_cfg(actor: RoleActor) -> dict[str, Any]:
    cfg = actor.ctx.config.testing.get("bench") or {}
    return dict(cfg) if isinstance(cfg, dict) else {}


def _write_result(actor: RoleActor, data: dict[str, Any]) -> None:
    out = Path(actor.ctx.run.root) / "bench"
    out.mkdir(exist_ok=True)
    tmp = out / f".{actor.ctx.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(data))
    os.replace(tmp, out / f"{actor.ctx.name}.json")


class _WaitsForAllRunning(RoleActor):
    """Starts its work once the supervisor's report shows every actor running
    (so the measurement does not compete with the other actors' start-up)."""

    wants_snapshot = False
    subscriptions: tuple[str, ...] = ("actors",)

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.bench = _bench_cfg(self)
        self.started = False

    def _handle_supervisor_report(self, msg: SupervisorReport) -> None:
        if not self.started and msg.actors and all(a.state == "running" for a in msg.actors):
            self.started = True
            self.begin()

    def begin(self) -> None:
        raise NotImplementedError


class PingActor(_WaitsForAllRunning):
    """Sends ``Probe`` point-to-point to ``bench.peer`` and times each reply.

    One probe in flight at a time; the round trip is measured in this actor's
    thread, from just before ``send`` to the handler of the reply."""

    has_inbox = True

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.peer = str(self.bench.get("peer", "executor"))
        self.warmup = int(self.bench.get("warmup", 200))
        self.count = int(self.bench.get("count", 2000))
        self.pad = "x" * int(self.bench.get("pad", 0))
        self.deadline = time.monotonic() + float(self.bench.get("deadline_s", 60))
        self.rtt_ns: list[int] = []
        self.n = 0
        self.t0 = 0
        self.done = False

    def begin(self) -> None:
        self._ping()

    def _ping(self) -> None:
        self.n += 1
        self.t0 = time.perf_counter_ns()
        self.ctx.send(self.peer, Probe(stream="ping", n=self.n, reply_to=self.ctx.name, pad=self.pad))

    def _handle_probe(self, msg: Probe) -> None:
        if self.done or msg.n != self.n:
            return  # a retransmitted duplicate
        dt = time.perf_counter_ns() - self.t0
        if self.n > self.warmup:
            self.rtt_ns.append(dt)
        if len(self.rtt_ns) >= self.count or time.monotonic() > self.deadline:
            self.done = True
            _write_result(self, {"rtt_ns": self.rtt_ns, "complete": len(self.rtt_ns) >= self.count})
            return
        self._ping()


class PongActor(InboxNullActor):
    """Answers every ``Probe`` point-to-point to its ``reply_to``."""

    def _handle_probe(self, msg: Probe) -> None:
        self.ctx.send(msg.reply_to, Probe(stream="pong", n=msg.n, pad=msg.pad))


@dataclass(frozen=True, slots=True)
class _Continue:
    pass


class StreamPublisher(_WaitsForAllRunning):
    """Publishes ``bench.count`` numbered probes on ``t.stream`` as fast as it
    can, once a subscriber has answered its hello (no slow-joiner loss)."""

    subscriptions = ("actors", "t.ready")
    tick_interval_s = 0.05

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.count = int(self.bench.get("count", 100_000))
        self.batch = int(self.bench.get("batch", 2_000))
        self.pad = "x" * int(self.bench.get("pad", 0))
        self.ready = False
        self.sent = 0
        self.t_start = 0.0

    def begin(self) -> None:
        pass  # hello goes out on ticks until a subscriber is ready

    def on_tick(self, now_ns: int) -> None:
        if self.started and not self.ready:
            self.ctx.publish(Probe(stream="hello", n=0))

    def _handle_probe(self, msg: Probe) -> None:
        if msg.stream == "ready" and not self.ready:
            self.ready = True
            self.t_start = time.perf_counter()
            self.actor_ref.tell(_Continue())

    def on_receive(self, message: Any) -> Any:
        if type(message) is _Continue:
            self._publish_batch()
            return None
        return super().on_receive(message)

    def _publish_batch(self) -> None:
        end = min(self.count, self.sent + self.batch)
        publish, pad = self.ctx.publish, self.pad
        for n in range(self.sent + 1, end + 1):
            publish(Probe(stream="stream", n=n, pad=pad))
        self.sent = end
        if self.sent < self.count:
            self.actor_ref.tell(_Continue())  # let heartbeats through between batches
            return
        elapsed = time.perf_counter() - self.t_start
        self.ctx.publish(Probe(stream="end", n=self.count))
        _write_result(self, {"sent": self.sent, "publish_s": elapsed})


class StreamSubscriber(RoleActor):
    """Counts the numbered stream: received, gaps (jumps in ``n``), rate."""

    subscriptions = ("t.hello", "t.stream", "t.end")
    wants_snapshot = False
    tick_interval_s = 0.1

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        bench = _bench_cfg(self)
        self.idle_s = float(bench.get("idle_s", 2.0))
        self.received = 0
        self.gaps = 0
        self.last_n = 0
        self.first_at = 0.0
        self.last_at = 0.0
        self.expected = 0
        self.max_stall_s = 0.0
        self.done = False

    def _handle_probe(self, msg: Probe) -> None:
        if self.done:
            return
        if msg.stream == "hello":
            if self.received == 0:
                self.ctx.publish(Probe(stream="ready", n=0))
            return
        if msg.stream == "end":
            self.expected = msg.n
            self._finish()
            return
        now = time.perf_counter()
        if self.received == 0:
            self.first_at = now
        else:
            self.max_stall_s = max(self.max_stall_s, now - self.last_at)
        self.received += 1
        self.last_at = now
        if msg.n > self.last_n + 1:
            self.gaps += msg.n - self.last_n - 1
        self.last_n = max(self.last_n, msg.n)

    def on_tick(self, now_ns: int) -> None:
        if self.received and not self.done and time.perf_counter() - self.last_at > self.idle_s:
            self._finish()  # the end marker itself was lost

    def _finish(self) -> None:
        self.done = True
        _write_result(self, {"received": self.received, "gaps": self.gaps, "last_n": self.last_n,
                             "expected": self.expected, "max_stall_s": self.max_stall_s,
                             "receive_s": max(self.last_at - self.first_at, 1e-9)})


class RaisesOnBoom(RoleActor):
    """Counts ``t.count`` probes and raises on a ``t.boom`` probe (a handler bug)."""

    subscriptions = ("t.count", "t.boom")
    wants_snapshot = False

    def _handle_probe(self, msg: Probe) -> None:
        if msg.stream == "boom":
            raise RuntimeError("handler bug (test)")
        self.ctx.count("probes")


class P2PSender(_WaitsForAllRunning):
    """Sends ``bench.count`` numbered probes point-to-point to ``bench.peer``
    at a steady pace (``bench.per_tick`` every 50 ms)."""

    tick_interval_s = 0.05

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.peer = str(self.bench.get("peer", "executor"))
        self.count = int(self.bench.get("count", 500))
        self.per_tick = int(self.bench.get("per_tick", 10))
        self.sent = 0

    def begin(self) -> None:
        pass  # the ticks do the sending

    def on_tick(self, now_ns: int) -> None:
        if not self.started or self.sent >= self.count:
            return
        for _ in range(min(self.per_tick, self.count - self.sent)):
            self.sent += 1
            self.ctx.send(self.peer, Probe(stream="p2p", n=self.sent, reply_to=self.ctx.name))
        if self.sent >= self.count:
            _write_result(self, {"sent": self.sent})


class P2PReceiver(InboxNullActor):
    """Appends the number of every probe it handles to ``bench/received.log``
    (one whole line per message, before the host acknowledges it), so what
    every incarnation received can be checked after kills."""

    def on_start(self) -> None:
        out = Path(self.ctx.run.root) / "bench"
        out.mkdir(exist_ok=True)
        self._fd = os.open(out / "received.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def on_stop(self) -> None:
        os.close(self._fd)

    def _handle_probe(self, msg: Probe) -> None:
        os.write(self._fd, f"{msg.n}\n".encode())
