"""The process host: one per actor process (or thread, with inproc).

It owns every ZeroMQ socket of its process (in one I/O thread), starts the
role's pykka actor, forwards decoded messages to it, sends what the actor
emits, retransmits unacknowledged trade-path messages, counts sequence gaps
and decode errors, and heartbeats to the supervisor with numbers produced by
the actor thread itself (a wedged actor stops heartbeating).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import psutil
import pykka
import zmq

from actors.base import Beat, Inbound, LatestBox, RoleActor, Tick
from messages import (
    Ack,
    Command,
    Heartbeat,
    HostClocks,
    Message,
    Reply,
    clock,
    decode,
    encode,
    warm,
)
from messages.codec import DecodeError
from supervisors import logjson
from supervisors.actor_context import ActorContext, HostSpec, resolve_role
from supervisors.clocksync import ClockTable, skew_process_clock
from supervisors.curve import context_from_config
from supervisors.metricnames import key
from supervisors.outbox import Outbox
from supervisors.progress import NEVER, Progress, board_path, tick_endpoint
from supervisors.publisher import Publisher

log = logging.getLogger("arbd.host")

EXIT_ACTOR_DIED = 3
EXIT_ORPHANED = 70
_RETRANSMIT_MAX_AGE_S = 30.0
_DEDUP_WINDOW = 20_000
# Seconds after the actor's start at which the heap is frozen (see _freeze_heap).
_GC_FREEZE_AFTER_S = (0.0, 10.0)
# Outbound data items sent per I/O-loop pass: a burst is sent in slices so
# that heartbeats, inbound messages and acks keep flowing between them.
_DRAIN_BATCH = 1_000


def _set_parent_death_signal() -> None:
    """Linux: get SIGTERM when the supervisor dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ActorHost:
    def __init__(self, spec: HostSpec, zctx: zmq.Context | None = None) -> None:
        self.spec = spec
        self.cfg = spec.config
        self.zctx = zctx or context_from_config(spec.config, spec.endpoints)
        self._own_ctx = zctx is None
        self._stop = threading.Event()
        self._exit_code = 0
        self._tag = f"{spec.name}-{spec.incarnation}"
        self._wake_ep = f"inproc://wake-{self._tag}"
        self.outbox = Outbox(self.zctx, self._wake_ep)
        self.actx = ActorContext(spec, self.outbox, self.zctx)
        # A backtest: ticks follow the tape clock, and every step of this
        # process's work is counted on the board (supervisors.progress).
        self.progress: Progress | None = None
        if spec.config.backtest.tape:
            self.progress = self.actx.progress = Progress(self.actx.run.root, spec.name)
            self.outbox.on_put = lambda: self.progress.add(out_put=1)  # type: ignore[union-attr]
        # I/O-thread state
        self._p2p_seq: dict[str, int] = {}
        self._last_seen: dict[tuple[str, str], tuple[int, int]] = {}
        self._unacked: OrderedDict[str, tuple[str, bytes, float, float]] = OrderedDict()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self.msgs_in = 0
        self.msgs_out = 0
        self.gaps = 0
        self.decode_errors = 0
        self._conflate: tuple[bytes, ...] = ()
        self._actor: RoleActor | None = None
        self._handed_over = 0  # deliveries queued to the actor thread (see _deliver)
        self._latest = LatestBox()
        self._proc = psutil.Process()
        # Actors on several hosts: stamps from another host are read on this
        # host's clock (supervisors.clocksync), from the offsets main publishes.
        self.clocks = (ClockTable(spec.config.cluster.host, spec.endpoints.placement)
                       if spec.endpoints.placement else None)
        # Test-only: grow RSS steadily to prove leaking actors get recycled.
        leaks = spec.config.testing.get("leak_mb_per_s") or {}
        self._leak_mb = float(leaks.get(spec.name, 0.0)) if isinstance(leaks, dict) else 0.0
        self._leak: list[bytes] = []  # touched pages, so RSS really grows

    def request_stop(self) -> None:
        self._stop.set()

    # -- socket setup --------------------------------------------------------
    def _socket(self, kind: int, linger_ms: int = 0) -> zmq.Socket:
        s = self.zctx.socket(kind)
        s.setsockopt(zmq.LINGER, linger_ms)
        return s

    def _open(self, actor_cls: type[RoleActor]) -> None:
        ep = self.spec.endpoints
        self.wake = self._socket(zmq.PULL)
        self.wake.bind(self._wake_ep)
        self.pub = self._socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, self.cfg.bus.pub_hwm)
        self.pub.connect(ep.bus_in)
        self.sub = self._socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, self.cfg.bus.sub_hwm)
        self.sub.connect(ep.bus_out)
        for prefix in actor_cls.subscriptions_for(self.cfg):
            self.sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        if self.clocks is not None:
            self.sub.setsockopt(zmq.SUBSCRIBE, HostClocks.TAG.encode())
        self.sup = self._socket(zmq.DEALER, linger_ms=500)
        self.sup.setsockopt(zmq.IDENTITY, self._tag.encode())
        self.sup.connect(ep.sup)
        self.inbox: zmq.Socket | None = None
        if actor_cls.has_inbox:
            self.inbox = self._socket(zmq.ROUTER, linger_ms=500)
            self.inbox.bind(ep.inbox(self.spec.name))
        # Direct streams (RoleActor.streams / .direct): no proxy on the hot path.
        self.stream_pub: zmq.Socket | None = None
        if actor_cls.streams and not actor_cls.streams_from_thread:
            self.stream_pub = self._socket(zmq.PUB)
            self.stream_pub.setsockopt(zmq.SNDHWM, self.cfg.bus.pub_hwm)
            self.stream_pub.bind(ep.stream(self.spec.name))
        self.publisher = Publisher(self.pub, self.stream_pub, self.spec.name, self.spec.incarnation,
                                   stream_prefixes=actor_cls.streams, bus_every=actor_cls.bus_every)
        self.dsub: zmq.Socket | None = None
        direct = actor_cls.direct_for(self.cfg)
        if direct:
            self.dsub = self._socket(zmq.SUB)
            self.dsub.setsockopt(zmq.RCVHWM, self.cfg.bus.sub_hwm)
            for source, prefixes in direct.items():
                if source not in ep.streams:
                    continue  # no such child in this deployment
                self.dsub.connect(ep.stream(source))
                for prefix in prefixes:
                    self.dsub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self.outs: dict[str, zmq.Socket] = {}
        self.poller = zmq.Poller()
        for s in (self.wake, self.sub, self.sup, self.dsub):
            if s is not None:
                self.poller.register(s, zmq.POLLIN)
        if self.inbox is not None:
            self.poller.register(self.inbox, zmq.POLLIN)
        self.clock_sub: zmq.Socket | None = None
        if self.progress is not None:
            self.clock_sub = self._socket(zmq.SUB)
            self.clock_sub.setsockopt(zmq.SUBSCRIBE, b"")
            self.clock_sub.connect(tick_endpoint(self.actx.run.root))
            self.poller.register(self.clock_sub, zmq.POLLIN)
            sources = [name for name in direct if name in ep.streams]
            self.progress.subscribe(actor_cls.subscriptions_for(self.cfg))
            self.publisher.on_bus = self.progress.bus_sent
            self.progress.set(direct_mask=self.progress.mask_of(sources))

    def _out(self, target: str) -> zmq.Socket:
        s = self.outs.get(target)
        if s is None:
            s = self._socket(zmq.DEALER)
            s.setsockopt(zmq.IDENTITY, f"{self._tag}->{target}".encode())
            s.setsockopt(zmq.SNDHWM, 10_000)
            s.connect(self.spec.endpoints.inbox(target))
            self.poller.register(s, zmq.POLLIN)  # acks come back here
            self.outs[target] = s
        return s

    # -- run -----------------------------------------------------------------
    def run(self) -> int:
        warm()
        if self.cfg.testing.get("crash_at_start") == self.spec.name:
            raise RuntimeError("test-only crash at start")
        actor_cls = resolve_role(self.spec.role)
        self._open(actor_cls)
        self._conflate = tuple(p.encode() for p in actor_cls.conflate)
        ref = actor_cls.start(self.actx)
        self.ref = ref
        self._actor = self.actx.actor  # for inline delivery (see _deliver)
        self.outbox.owner = threading.get_ident()
        subscriptions = (*actor_cls.subscriptions_for(self.cfg),
                         *(p for prefixes in actor_cls.direct_for(self.cfg).values() for p in prefixes))
        if actor_cls.wants_snapshot and subscriptions:
            self._send_sup(Command(command="snapshot", args={"prefixes": list(subscriptions)}))
        hb_every = self.cfg.supervision.heartbeat_interval_s
        tick_every = actor_cls.tick_interval_s
        next_beat = time.monotonic()
        next_tick = time.monotonic() + (tick_every or 1e9)
        progress = self.progress
        if progress is not None:  # ticks on the tape clock: see _tape_ticks
            tick_ns = int(tick_every * 1e9) if tick_every else 0
            self._next_tick_ns = clock.monotonic_ns() + tick_ns if tick_ns else NEVER
            progress.set(next_tick=self._next_tick_ns, attached=1)
            tick_every, next_tick = None, time.monotonic() + 1e9
        next_retx = time.monotonic() + self.cfg.bus.ack_timeout_s
        next_check = time.monotonic()
        freeze_at: list[float] | None = None  # set once the actor has started
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                timeout = max(0.0, min(next_beat, next_tick, next_retx, next_check) - now)
                if self.outbox.backlog():
                    timeout = 0.0
                events = dict(self.poller.poll(timeout * 1000))
                if events:
                    self._on_events(events, ref)
                self._drain_outbox(_DRAIN_BATCH)
                if progress is not None and tick_ns:
                    self._tape_ticks(ref, tick_ns)
                now = time.monotonic()
                if now >= next_beat:
                    if self._leak_mb:
                        self._leak.append(b"\x01" * int(self._leak_mb * hb_every * 1e6))
                    ref.tell(Beat(time.time_ns()))
                    next_beat = now + hb_every
                if tick_every and now >= next_tick:
                    ref.tell(Tick(clock.time_ns()))
                    next_tick = now + tick_every
                if now >= next_retx:
                    self._retransmit(now)
                    next_retx = now + self.cfg.bus.ack_timeout_s / 2
                if now >= next_check:
                    next_check = now + 0.2
                    if self._actor is not None and self._actor.host_ready:
                        if freeze_at is None:
                            freeze_at = [now + s for s in _GC_FREEZE_AFTER_S]
                        if freeze_at and now >= freeze_at[0]:
                            _freeze_heap(collect=len(freeze_at) == len(_GC_FREEZE_AFTER_S))
                            freeze_at.pop(0)
                    if not ref.is_alive():
                        log.error("actor %s died; exiting for a restart", self.spec.name)
                        self._exit_code = EXIT_ACTOR_DIED
                        break
                    if not self.spec.threaded and os.getppid() != self.spec.parent_pid:
                        log.error("supervisor is gone; exiting")
                        self._exit_code = EXIT_ORPHANED
                        break
        finally:
            self._shutdown(ref)
        return self._exit_code

    def _tape_ticks(self, ref: Any, tick_ns: int) -> None:
        """A backtest's tick: due when the tape clock reaches it (the replay stops
        the clock on every tick boundary and waits until it has run)."""
        now = clock.monotonic_ns()
        if now < self._next_tick_ns:
            return
        nxt = self._next_tick_ns + tick_ns
        while nxt <= now:
            nxt += tick_ns
        self._next_tick_ns = nxt
        self.progress.update({"recv": 1}, {"next_tick": nxt})  # type: ignore[union-attr]
        ref.tell(Tick(clock.time_ns()))

    def _shutdown(self, ref: pykka.ActorRef[Any]) -> None:
        with contextlib.suppress(Exception):
            ref.stop(block=True, timeout=self.cfg.supervision.shutdown_grace_s / 2)
        with contextlib.suppress(Exception):
            self._drain_outbox()
        self.outbox.close()
        self.actx.close()
        if self.progress is not None:
            self.progress.close()
        if self._own_ctx:
            self.zctx.destroy(linger=0)
        else:
            for s in [self.wake, self.pub, self.sub, self.sup, self.inbox, self.stream_pub, self.dsub,
                      getattr(self, "clock_sub", None), *self.outs.values()]:
                if s is not None:
                    s.close(linger=0)

    # -- inbound -------------------------------------------------------------
    def _on_events(self, events: dict[Any, int], ref: Any) -> None:
        if self.wake in events:
            with contextlib.suppress(zmq.Again):
                for _ in range(1000):
                    self.wake.recv(zmq.NOBLOCK)
        if self.clock_sub is not None and self.clock_sub in events:
            with contextlib.suppress(zmq.Again):  # the tick itself is run by the loop
                for _ in range(1000):
                    self.clock_sub.recv(zmq.NOBLOCK)
        if self.sub in events:
            self._read_subscriber(self.sub, ref)
        if self.dsub is not None and self.dsub in events:
            self._read_subscriber(self.dsub, ref)
        if self.inbox is not None and self.inbox in events:
            for _ in range(1000):
                try:
                    parts = self.inbox.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(parts) != 2:
                    self.decode_errors += 1
                    continue
                ident, frame = parts
                env = self._decode(frame)
                if env is None:
                    continue
                msg = env.msg if self.clocks is None else self.clocks.correct(env.msg, env.sender)
                mid = msg.id
                if mid in self._recent:  # a retransmit of something we have
                    self._send_ack(ident, mid)
                    continue
                self._recent[mid] = None
                if len(self._recent) > _DEDUP_WINDOW:
                    self._recent.popitem(last=False)
                self.msgs_in += 1
                if self.progress is not None:
                    self.progress.add(recv=1)
                self._deliver(ref, Inbound(msg, env.sender, "inbox", ack_to=ident))
        if self.sup in events:
            for _ in range(100):
                try:
                    frame = self.sup.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                env = self._decode(frame)
                if env is None:
                    continue
                self._on_sup_message(env.msg, ref)
        for s in self.outs.values():
            if s in events:
                for _ in range(1000):
                    try:
                        frame = s.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    env = self._decode(frame)
                    if env is not None and type(env.msg) is Ack:
                        self._unacked.pop(env.msg.ref_id, None)
                        if self.progress is not None:
                            self.progress.set(unacked=len(self._unacked))

    def _read_subscriber(self, sock: zmq.Socket, ref: Any) -> None:
        for _ in range(1000):
            try:
                topic, frame = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except ValueError:
                self.decode_errors += 1
                continue
            env = self._decode(frame)
            if env is None:
                continue
            msg = env.msg
            if self.clocks is not None:
                if type(msg) is HostClocks:
                    self.clocks.update(msg.offsets_ns)
                    continue
                msg = self.clocks.correct(msg, env.sender)
            self._count_gap(env.sender, topic, env.incarnation, env.seq)
            self.msgs_in += 1
            inbound = Inbound(msg, env.sender, "bus")
            progress = self.progress
            if self._conflate and topic.startswith(self._conflate):
                replaced = self._latest.replaced
                empty = self._latest.put(topic, inbound)
                if progress is not None:  # a superseded quote is never handled: count it done
                    self._count_in(progress, sock, env.sender, self._latest.replaced - replaced)
                if empty:
                    self._deliver(ref, self._latest)
            else:
                if progress is not None:
                    self._count_in(progress, sock, env.sender, 0)
                self._deliver(ref, inbound)

    def _count_in(self, progress: Progress, sock: zmq.Socket, sender: str, superseded: int) -> None:
        if sock is self.dsub:
            progress.add(recv=1, direct_recv=1, done=superseded)
        else:
            progress.bus_received(sender, superseded)

    def _deliver(self, ref: Any, item: Inbound | LatestBox) -> None:
        """Hand a message to the actor: inline on this thread when the actor
        is idle, else through its pykka inbox.

        Each pykka hand-off costs two thread wake-ups (the inbox, then the
        GIL) - measured ~140 µs apiece on a 2-vCPU VM, more than the ZeroMQ
        hop itself - and every reply pays them again on the way back to this
        thread. An idle actor loses nothing by running here: ``host_run_lock``
        keeps it single-threaded, and inlining only when every earlier
        hand-off has been handled keeps the order. A busy actor gets the
        message queued as before. A handler that raises ends the process,
        as it would have ended the actor.
        """
        actor = self._actor
        if (actor is not None and actor.host_ready and actor.host_inbounds_done == self._handed_over
                and actor.host_run_lock.acquire(blocking=False)):
            try:
                handled = not actor.actor_stopped.is_set()
                if handled:
                    actor.deliver(item)
            except Exception:
                log.exception("actor %s failed handling a message; exiting for a restart", self.spec.name)
                self._exit_code = EXIT_ACTOR_DIED
                self._stop.set()
                return
            finally:
                actor.host_run_lock.release()
            if handled:
                # Send what it emitted now, not after the rest of this read
                # batch: the books behind it in the socket would delay this
                # opportunity by their handling (~60 µs each).
                self._drain_outbox(_DRAIN_BATCH)
                return
        self._handed_over += 1
        ref.tell(item)  # a LatestBox is told as itself: the actor takes what it holds then

    def _on_sup_message(self, msg: Message, ref: Any) -> None:
        if type(msg) is Command and msg.command == "stop":
            log.info("supervisor asked %s to stop (%s)", self.spec.name, msg.args.get("reason", ""))
            self._send_sup(Reply(request_id=msg.id, ok=True))
            self._stop.set()
        elif type(msg) is Reply and isinstance(msg.result, dict) and "snapshot" in msg.result:
            frames = msg.result["snapshot"]
            for frame in frames if isinstance(frames, list) else ():
                env = self._decode(frame) if isinstance(frame, bytes) else None
                if env is not None:
                    if self.progress is not None:
                        self.progress.add(recv=1)
                    msg = env.msg if self.clocks is None else self.clocks.correct(env.msg, env.sender)
                    self._deliver(ref, Inbound(msg, env.sender, "snapshot"))
        else:
            if self.progress is not None:
                self.progress.add(recv=1)
            self._deliver(ref, Inbound(msg, "supervisor", "sup"))

    def _decode(self, frame: bytes) -> Any:
        try:
            return decode(frame)
        except DecodeError as e:
            self.decode_errors += 1
            if self.decode_errors <= 10 or self.decode_errors % 1000 == 0:
                log.warning("dropped a bad frame (%s); %d so far", e, self.decode_errors)
            return None

    def _count_gap(self, sender: str, topic: bytes, incarnation: int, seq: int) -> None:
        key = (sender, topic)
        last = self._last_seen.get(key)
        if last is not None and last[0] == incarnation and seq > last[1] + 1:
            self.gaps += seq - last[1] - 1
        self._last_seen[key] = (incarnation, seq)

    # -- outbound ------------------------------------------------------------
    def _drain_outbox(self, limit: int | None = None) -> None:
        items = self.outbox.drain(limit)
        for item in items:
            kind = item[0]
            if kind == "pub":
                self.publisher.publish(item[1])
            elif kind == "send":
                self._send_p2p(item[1], item[2])
            elif kind == "ack":
                self._send_ack(item[1], item[2])
            elif kind == "sup":
                self._send_sup(item[1])
            elif kind == "beat":
                self._send_heartbeat(item[1], item[2])
        if self.progress is not None and items:
            # One write: a reader sees the stream's count and the outbox's together.
            self.progress.update({"out_sent": len(items)}, {
                "stream_sent": self.stream_sent(), "unacked": len(self._unacked)})

    def stream_sent(self) -> int:
        """Messages this process sent on its direct stream, from any thread's publisher."""
        return self.publisher.stream_sent + sum(p.stream_sent for p in self.actx.publishers)

    def _send_p2p(self, target: str, msg: Message) -> None:
        seq = self._p2p_seq.get(target, 0) + 1
        self._p2p_seq[target] = seq
        frame = encode(msg, self.spec.name, self.spec.incarnation, seq)
        now = time.monotonic()
        expires = getattr(msg, "expires_ns", 0) or 0
        self._unacked[msg.id] = (target, frame, now, expires)
        with contextlib.suppress(zmq.Again):
            self._out(target).send(frame, zmq.NOBLOCK)
        self.msgs_out += 1

    def _retransmit(self, now: float) -> None:
        if not self._unacked:
            return
        wall = clock.time_ns()  # expiries are market time
        for mid, (target, frame, first, expires) in list(self._unacked.items()):
            if now - first > _RETRANSMIT_MAX_AGE_S or (expires and wall > expires):
                del self._unacked[mid]
                self.actx.count("p2p_expired_unacked")
                if self.progress is not None:
                    self.progress.set(unacked=len(self._unacked))
                continue
            if now - first >= self.cfg.bus.ack_timeout_s:
                with contextlib.suppress(zmq.Again):
                    self._out(target).send(frame, zmq.NOBLOCK)
                self.actx.count("p2p_retransmits")

    def _send_ack(self, ident: bytes | None, ref_id: str) -> None:
        if ident is None or self.inbox is None:
            return
        frame = encode(Ack(ref_id=ref_id), self.spec.name, self.spec.incarnation, 0)
        with contextlib.suppress(zmq.ZMQError):
            self.inbox.send_multipart([ident, frame], zmq.NOBLOCK)

    def _send_sup(self, msg: Message) -> None:
        frame = encode(msg, self.spec.name, self.spec.incarnation, 0)
        with contextlib.suppress(zmq.Again):
            self.sup.send(frame, zmq.NOBLOCK)

    def _send_heartbeat(self, latency_ms: float, counters: dict[str, float]) -> None:
        try:
            rss_mb = self._proc.memory_info().rss / 1e6
        except psutil.Error:
            rss_mb = 0.0
        counters = dict(counters)
        counters["p2p_unacked"] = float(len(self._unacked))
        if self._conflate:
            counters[key("c", "arbd_bus_conflated_total", actor=self.spec.name)] = float(self._latest.replaced)
        self._send_sup(Heartbeat(
            actor=self.spec.name, incarnation=self.spec.incarnation, pid=os.getpid(),
            loop_latency_ms=latency_ms, rss_mb=rss_mb, msgs_in=self.msgs_in,
            msgs_out=self.msgs_out + self.publisher.sent + sum(p.sent for p in self.actx.publishers),
            gaps=self.gaps, decode_errors=self.decode_errors,
            counters=counters))


def _freeze_heap(collect: bool) -> None:
    """Move every object alive now out of the cyclic collector's reach.

    What an actor holds after its start - modules, ccxt's market tables, its
    config - lives as long as the process, yet every full collection walks
    it again: in the executor (ccxt) each one took ~47 ms, three times in 20
    seconds, each a stall of the trade path. Frozen objects are still freed
    by reference counting; only cycles among them would outlive their use,
    and start-up state has none worth a 47 ms pause. Done once the actor has
    started (after one full collection, while nothing trades yet) and again
    a few seconds later without one (lazy loads, e.g. ccxt's markets).
    """
    if collect:
        gc.collect()
    gc.freeze()


def _exit_when_orphaned(parent_pid: int, grace_s: float) -> None:
    """The supervisor promises every child gone within 5 s of its death. The
    death signal asks for an orderly stop, and its handler arms a hard exit;
    this thread is the last word, on its own: a handler that never got to run
    (a starved or wedged main thread) cannot keep an orphan alive."""
    while os.getppid() == parent_pid:
        time.sleep(0.1)
    time.sleep(grace_s)
    os._exit(EXIT_ORPHANED)


def host_main(spec: HostSpec) -> None:
    """Entry point of an actor process (multiprocessing 'spawn' target)."""
    _set_parent_death_signal()
    if os.getppid() != spec.parent_pid:  # parent died while we were starting
        os._exit(EXIT_ORPHANED)
    threading.Thread(target=_exit_when_orphaned, name="orphan-exit", daemon=True,
                     args=(spec.parent_pid, spec.config.supervision.shutdown_grace_s * 0.8)).start()
    skew_process_clock(float(spec.config.testing.get("clock_skew_s") or 0.0))
    logjson.setup(spec.name, spec.config.log_level, spec.config.log_format)
    # The supervisor owns shutdown: Ctrl-C in a terminal reaches the whole
    # process group, and children must not race it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.config.backtest.tape:  # before anything reads the time: the tape's clock
        clock.attach(board_path(Path(spec.run_dir).resolve()))
    host = ActorHost(spec)

    def on_term(signum: int, frame: Any) -> None:
        # The I/O loop polls with a short timeout and sees the flag promptly.
        host.request_stop()
        # If an orderly stop wedges, do not outlive the limit the supervisor
        # promises (every child gone within 5 s of its death).
        t = threading.Timer(spec.config.supervision.shutdown_grace_s * 0.8,
                            lambda: os._exit(EXIT_ORPHANED))
        t.daemon = True
        t.start()

    signal.signal(signal.SIGTERM, on_term)
    code = 1
    try:
        code = host.run()
    except Exception:
        log.exception("host of %s crashed", spec.name)
        code = 1
    finally:
        logging.shutdown()
    sys.stdout.flush()
    os._exit(code)
