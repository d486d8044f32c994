"""The main daemon's side of its nodes (``arbd node`` on other hosts).

The node channel is a ROUTER on ``bus.tcp_host:cluster.port`` (CURVE: only
authorised keys get in, and a node may speak only under the name its key is
authorised as). A node says hello and gets the effective config, the
endpoints and its actors; from then on main pings it every heartbeat
interval and it answers each ping with a report of its actors. The reports
fill the supervisor's table for those actors (status, metrics, the guard's
actor checks), and each one is a clock sample (``supervisors.clocksync``).

Trading fails closed (``failclosed.host.<node>``) while a node with actors is
not connected or has been silent for ``cluster.node_timeout_s`` - its actors
are then shown ``stopped`` -, while its clock offset is not measured yet
(``failclosed.clocksync.<node>``) and while it is larger than
``cluster.max_clock_offset_s`` (``failclosed.clock.<node>``). The offsets
go on the bus (``clocks``) for every host to correct what it receives.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq

from messages import (
    Command,
    FailClosed,
    Heartbeat,
    HostClocks,
    NodeHello,
    NodePing,
    NodeRelay,
    NodeReport,
    NodeWelcome,
    decode,
    encode,
)
from messages.codec import DecodeError
from supervisors import logjson
from supervisors.clocksync import ClockTable, OffsetEstimator
from supervisors.curve import MAIN, HandshakeWatch
from supervisors.link_metrics import RTT_BUCKETS_S, LinkMetrics
from supervisors.placement import node_endpoint, node_specs
from supervisors.supervisor import FAILED, RUNNING, STARTING, STOPPED

if TYPE_CHECKING:
    from supervisors.daemon import Daemon
    from supervisors.supervisor import Child

log = logging.getLogger("arbd.nodes")

RELAY = b"relay:"  # prefix of an actor identity reached through its node
FAIL_CLOSED_REPEAT_S = 1.0


def relay_identity(node: str, ident: bytes) -> bytes:
    return RELAY + node.encode() + b"\x00" + ident


def split_relay(identity: bytes) -> tuple[str, bytes]:
    node, _, ident = identity[len(RELAY):].partition(b"\x00")
    return node.decode(errors="replace"), ident


def config_data(cfg: Any) -> dict[str, object]:
    """An ArbdConfig as plain data a node rebuilds with the config loader."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


@dataclass
class Link:
    name: str
    address: str
    actors: tuple[str, ...]
    identity: bytes | None = None
    incarnation: int = 0
    pid: int = 0
    up: bool = False
    ever_up: bool = False
    last_report_at: float = 0.0
    down_since: float = 0.0
    node_state: str = "not connected"
    clock: OffsetEstimator = field(default_factory=OffsetEstimator)
    ping_seq: int = 0
    pings: dict[int, int] = field(default_factory=dict)  # seq -> t0, for the last few pings
    used_seq: int = 0
    rtt_counts: list[int] = field(default_factory=lambda: [0] * (len(RTT_BUCKETS_S) + 1))
    rtt_sum_s: float = 0.0
    rtt_n: int = 0


class Nodes:
    def __init__(self, d: Daemon) -> None:
        self.d = d
        cfg = d.cfg
        self.cfg = cfg
        self.incarnation = time.time_ns()
        specs = list(d.supervisor.children[n].spec for n in d.supervisor.order)
        self.links: dict[str, Link] = {}
        for name, spec in sorted(cfg.cluster.nodes.items()):
            actors = tuple(s.name for s in node_specs(specs, name))
            if actors:
                self.links[name] = Link(name, spec.address, actors)
        self.keys = getattr(d.zctx, "keys", None)
        self._key_names = self.keys.names_by_key() if self.keys is not None else {}
        self.sock = d.zctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        # A node whose link was cut reconnects under the same identity while
        # the old connection may not have timed out yet: the new one wins.
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.sock.setsockopt(zmq.SNDHWM, 1000)
        self.watch = HandshakeWatch(self.sock, "node channel") if self.keys is not None else None
        self.endpoint = node_endpoint(cfg)
        self.sock.bind(self.endpoint)
        self.clocks = ClockTable(MAIN, d.endpoints.placement)
        self._fc: dict[str, tuple[bool, str]] = {}
        self._fc_sent_at: dict[str, float] = {}
        self.max_offset_ns = int(cfg.cluster.max_clock_offset_s * 1e9)
        now = time.monotonic()
        for link in self.links.values():
            link.down_since = now
            for name in link.actors:
                c = d.supervisor.children[name]
                c.state = STARTING
                c.started_at = now
        self._next_ping = now
        d.metrics.registry.register(LinkMetrics(self))
        logjson.log(log, logging.INFO, f"node channel on {self.endpoint}", endpoint=self.endpoint,
                    nodes=sorted(self.links), curve=self.keys is not None)

    def sockets(self) -> list[zmq.Socket]:
        return [self.sock] + ([self.watch.socket] if self.watch is not None else [])

    # -- inbound -------------------------------------------------------------------
    def on_readable(self, sock: zmq.Socket) -> None:
        if self.watch is not None and sock is self.watch.socket:
            self.watch.read()
            return
        for _ in range(1000):
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(parts) != 2:
                self.d.metrics.decode_error("nodes")
                continue
            ident, frame = parts[0].bytes, parts[1]
            try:
                msg = decode(frame.bytes).msg
            except DecodeError as e:
                self.d.metrics.decode_error("nodes")
                log.warning("bad frame on the node channel: %s", e)
                continue
            self._on_message(ident, msg, self._authenticated_as(frame))

    def _authenticated_as(self, frame: zmq.Frame) -> str | None:
        if self.keys is None:
            return None
        try:
            key = frame.get("User-Id")
        except zmq.ZMQError:
            return None
        return self._key_names.get(str(key).encode())

    def _on_message(self, ident: bytes, msg: Any, who: str | None) -> None:
        t = type(msg)
        name = getattr(msg, "node", None)
        link = self.links.get(name) if isinstance(name, str) else None
        if link is None:
            logjson.log(log, logging.WARNING, f"ignored {t.__name__} from unknown node {name!r}", node=str(name))
            return
        if self.keys is not None and who != link.name:
            logjson.log(log, logging.WARNING, f"refused {t.__name__} claiming to be node {link.name!r} "
                        f"from the key of {who!r}", node=link.name, key_of=str(who))
            return
        if t is NodeHello:
            self._on_hello(link, ident, msg)
        elif ident != link.identity:
            return  # from a connection we did not welcome (an old incarnation)
        elif t is NodeReport:
            self._on_report(link, msg, time.time_ns())
        elif t is NodeRelay:
            self.d.on_actor_frame(relay_identity(link.name, msg.identity), msg.frame)

    def _on_hello(self, link: Link, ident: bytes, msg: NodeHello) -> None:
        if msg.incarnation != link.incarnation:
            link.clock.reset()  # another process: maybe another clock
            link.used_seq = 0
            link.pings.clear()
        link.identity, link.incarnation, link.pid = ident, msg.incarnation, msg.pid
        welcome = NodeWelcome(node=link.name, main_incarnation=self.incarnation,
                              config=config_data(self.cfg), endpoints=self.d.endpoints.to_json(),
                              actors=link.actors)
        self._send(link, welcome)
        logjson.log(log, logging.INFO, f"node {link.name} said hello (pid {msg.pid}); welcomed",
                    node=link.name, pid=msg.pid, actors=list(link.actors))

    def _on_report(self, link: Link, msg: NodeReport, t3: int) -> None:
        now = time.monotonic()
        link.last_report_at = now
        link.node_state = msg.state
        if msg.main_incarnation != self.incarnation:
            return  # it still runs under an earlier main daemon's welcome; it will say hello
        t0 = link.pings.get(msg.ping_seq)
        if t0 is not None and msg.ping_seq > link.used_seq and t0 == msg.ping_ts_ns:
            link.used_seq = msg.ping_seq
            if link.clock.add(t0, msg.ping_recv_ns, msg.ts_ns, t3):
                self._observe_rtt(link, (link.clock.last_rtt_ns or 0) / 1e9)
        if not link.up:
            link.up = True
            was = now - link.down_since
            logjson.log(log, logging.INFO if not link.ever_up else logging.WARNING,
                        f"node {link.name} up" + (f" again after {was:.1f}s" if link.ever_up else ""),
                        node=link.name, down_s=round(was, 3))
            if link.ever_up:
                self.d.events.record("node_up", {"node": link.name, "down_s": round(was, 3)})
            link.ever_up = True
        reported = set()
        for rc in msg.actors:
            child = self.d.supervisor.children.get(rc.name)
            if child is None or rc.name not in link.actors:
                continue
            reported.add(rc.name)
            self._apply(link, child, rc, now)
        for name in set(link.actors) - reported:  # not running there (an orphaned or waiting node)
            child = self.d.supervisor.children[name]
            child.state, child.identity = STOPPED, None

    def _apply(self, link: Link, child: Child, rc: Any, now: float) -> None:
        was = child.state
        child.state = rc.state
        child.restarts = rc.restarts
        child.incarnation = rc.incarnation
        child.remote_pid = rc.pid or None
        child.started_at = now - rc.uptime_s
        child.identity = relay_identity(link.name, f"{rc.name}-{rc.incarnation}".encode()) \
            if rc.state in (STARTING, RUNNING) else None
        if rc.heartbeat_age_s >= 0:
            hb = Heartbeat(actor=rc.name, incarnation=rc.incarnation, pid=rc.pid,
                           loop_latency_ms=rc.loop_latency_ms, rss_mb=rc.rss_mb, msgs_in=rc.msgs_in,
                           msgs_out=rc.msgs_out, gaps=rc.gaps, decode_errors=rc.decode_errors,
                           counters=dict(rc.counters))
            child.last_hb = hb
            child.last_hb_at = now - rc.heartbeat_age_s
            self.d.metrics.on_heartbeat(hb)
        if rc.state == FAILED and was != FAILED:
            why = f"{rc.name} exceeded restart intensity on node {link.name}"
            self.d.supervisor.escalated = rc.name
            self.d.on_remote_escalation(rc.name, why)

    def _observe_rtt(self, link: Link, rtt_s: float) -> None:
        i = next((i for i, b in enumerate(RTT_BUCKETS_S) if rtt_s <= b), len(RTT_BUCKETS_S))
        link.rtt_counts[i] += 1
        link.rtt_sum_s += rtt_s
        link.rtt_n += 1

    # -- outbound ------------------------------------------------------------------
    def _send(self, link: Link, msg: Any) -> bool:
        if link.identity is None:
            return False
        try:
            self.sock.send_multipart([link.identity, encode(msg, "supervisor", self.incarnation, 0)],
                                     zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def relay(self, identity: bytes, frame: bytes) -> bool:
        """Send an actor-channel frame to an actor on a node (see Daemon._send_to)."""
        node, ident = split_relay(identity)
        link = self.links.get(node)
        if link is None or not link.up:
            return False
        return self._send(link, NodeRelay(node=node, identity=ident, frame=frame))

    def restart(self, child: Child, reason: str, graceful: bool) -> tuple[bool, str]:
        link = self.links[child.spec.host]
        if not link.up:
            return False, f"{child.spec.name} runs on node {link.name}, which is unreachable"
        if child.state not in (STARTING, RUNNING):
            return False, f"{child.spec.name} is {child.state}"
        ok = self._send(link, Command(command="restart", args={"actor": child.spec.name, "reason": reason,
                                                              "graceful": graceful}))
        return (True, f"{child.spec.name} restarting on {link.name}") if ok else \
            (False, f"node {link.name} did not take the request")

    def shutdown(self) -> None:
        """Main is stopping in order: the nodes stop their actors now, not after their grace."""
        for link in self.links.values():
            if link.up:
                self._send(link, Command(command="stop_all", args={"reason": "main daemon stopping"}))

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        self.sock.close(linger=0)

    # -- timers --------------------------------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        cl = self.cfg.cluster
        for link in self.links.values():
            if link.up and now - link.last_report_at > cl.node_timeout_s:
                self._lost(link, now)
        if now >= self._next_ping:
            self._next_ping = now + self.cfg.supervision.heartbeat_interval_s
            for link in self.links.values():
                if link.identity is None:
                    continue
                link.ping_seq += 1
                ping = NodePing(main_incarnation=self.incarnation, seq=link.ping_seq)
                link.pings[link.ping_seq] = ping.ts_ns
                link.pings.pop(link.ping_seq - 20, None)
                self._send(link, ping)
            self._publish_clocks()
        self._fail_closed(now)

    def _lost(self, link: Link, now: float) -> None:
        link.up = False
        link.down_since = now
        silent = now - link.last_report_at
        logjson.log(log, logging.WARNING, f"node {link.name} unreachable: no report for {silent:.1f}s; "
                    f"its actors are down", node=link.name, silent_s=round(silent, 3),
                    actors=list(link.actors))
        self.d.events.record("node_down", {"node": link.name, "silent_s": round(silent, 3)})
        for name in link.actors:
            child = self.d.supervisor.children[name]
            child.state = STOPPED
            child.identity = None

    def offsets_ns(self) -> dict[str, int]:
        out = {MAIN: 0}
        for link in self.links.values():
            off = link.clock.offset_ns
            if off is not None:
                out[link.name] = off
        return out

    def _publish_clocks(self) -> None:
        offsets = self.offsets_ns()
        self.clocks.update(offsets)
        rtts = {n: link.clock.last_rtt_ns for n, link in self.links.items()
                if link.clock.last_rtt_ns is not None}
        self.d.publish(HostClocks(offsets_ns=offsets, rtt_ns=rtts))  # type: ignore[arg-type]

    def _fail_closed(self, now: float) -> None:
        for link in self.links.values():
            if link.up:
                down = (False, "")
            elif link.ever_up:
                down = (True, f"node {link.name} unreachable (no report for {self.cfg.cluster.node_timeout_s:g}s; "
                              f"{', '.join(link.actors)} down)")
            else:
                down = (True, f"node {link.name} not connected yet")
            off = link.clock.offset_ns
            unknown = (True, f"clock offset of {link.name} not measured yet") if off is None else (False, "")
            if off is not None and abs(off) > self.max_offset_ns:
                clock = (True, f"clock of {link.name} is {off / 1e9:+.3f}s off main's "
                               f"(limit {self.cfg.cluster.max_clock_offset_s:g}s)")
            else:
                clock = (False, "")
            # Separate keys: the guard keeps the reason a condition was raised with.
            self._set(f"host.{link.name}", *down, now)
            self._set(f"clocksync.{link.name}", *unknown, now)
            self._set(f"clock.{link.name}", *clock, now)

    def _set(self, key: str, active: bool, reason: str, now: float) -> None:
        prev = self._fc.get(key)
        changed = prev is None or prev[0] != active
        if not changed and now - self._fc_sent_at.get(key, 0.0) < FAIL_CLOSED_REPEAT_S:
            return
        if changed and prev is not None:
            logjson.log(log, logging.WARNING if active else logging.INFO,
                        f"{key}: {reason if active else 'cleared'}", key=key)
        self._fc[key] = (active, reason)
        self._fc_sent_at[key] = now
        self.d.publish(FailClosed(source="supervisor", key=key, active=active, reason=reason or f"{key} ok"))

    # -- views ---------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out: list[dict[str, Any]] = [{"name": MAIN, "address": self.cfg.bus.tcp_host, "state": "up",
                                      "clock_offset_ms": 0.0, "clock_error_ms": 0.0, "rtt_ms": None,
                                      "last_report_s": 0.0, "actors": [
                                          n for n in self.d.supervisor.order
                                          if self.d.supervisor.children[n].spec.host == MAIN]}]
        for link in self.links.values():
            off, err, rtt = link.clock.offset_ns, link.clock.error_ns, link.clock.last_rtt_ns
            out.append({
                "name": link.name, "address": link.address,
                "state": "up" if link.up else ("down" if link.ever_up else "not connected"),
                "node_state": link.node_state, "pid": link.pid or None,
                "clock_offset_ms": round(off / 1e6, 3) if off is not None else None,
                "clock_error_ms": round(err / 1e6, 3) if err is not None else None,
                "rtt_ms": round(rtt / 1e6, 3) if rtt is not None else None,
                "rtt_mean_ms": round(link.rtt_sum_s / link.rtt_n * 1e3, 3) if link.rtt_n else None,
                "last_report_s": round(now - link.last_report_at, 3) if link.ever_up else None,
                "actors": list(link.actors),
            })
        return out
