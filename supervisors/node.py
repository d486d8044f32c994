"""`arbd node`: the node supervisor on another host.

It connects to the main daemon's node channel (``cluster.main``, CURVE with
this host's keys), says hello, and gets the main daemon's effective config,
the endpoints and the actors placed on this host. It starts and supervises
them here with the same OTP policy (``supervisors.supervisor``; restarts are
in this run directory's restart log), answers every ping of main's with a
report of its actors (state, heartbeats, and the echo of the ping that lets
main estimate this host's clock offset), carries frames between its actors
and main's actor channel (snapshots, restart requests, replies), and obeys
main's restart and stop requests.

What the node keeps of its own config: its name (``cluster.host``), where
main is (``cluster.main``), its keys (``bus.curve``), how long its actors
outlive a lost main (``cluster.orphan_grace_s``), its log level and its
``testing`` hooks. Everything else is main's.

Main lost: no ping for ``cluster.node_timeout_s`` and the node says hello
again every second; its actors keep running (main fails trading closed on
its side meanwhile). Still no ping after ``cluster.orphan_grace_s``: the
actors are stopped, and started again when main welcomes the node back. A
main daemon that restarted (another incarnation) gets this node's actors
restarted under its new endpoints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import replace
from typing import Any

import zmq

from messages import (
    Command,
    Heartbeat,
    NodeHello,
    NodePing,
    NodeRelay,
    NodeReport,
    NodeWelcome,
    RemoteChild,
    Reply,
    decode,
    encode,
)
from messages.codec import DecodeError
from supervisors import logjson
from supervisors.clocksync import skew_process_clock
from supervisors.config import ArbdConfig
from supervisors.config_loader import ConfigError, build
from supervisors.curve import context_from_config, tcp_host
from supervisors.endpoints import Endpoints
from supervisors.placement import placed_specs
from supervisors.polling import drain_router, track_sentinels
from supervisors.roles import child_specs
from supervisors.runfiles import InstanceLock, RunDir
from supervisors.supervisor import Child, Supervisor

log = logging.getLogger("arbd.node")

HELLO_EVERY_S = 1.0


def actor_config(data: dict[str, Any], own: ArbdConfig) -> ArbdConfig:
    """Main's config for this node's actors, with what stays this host's own."""
    errors: list[str] = []
    cfg = build(ArbdConfig, data, "", errors)
    if errors or cfg is None:
        raise ConfigError(errors or ["main's config did not build"])
    venues = cfg.venues
    main_host = tcp_host(own.cluster.main)
    if venues.source == "sim" and main_host:
        # The embedded exchange is an actor of the main daemon: from here it is
        # at main's address (its sim.host must then listen there, e.g. 0.0.0.0).
        loop = "//127.0.0.1:"
        venues = replace(venues, **{k: getattr(venues, k).replace(loop, f"//{main_host}:")
                                    for k in ("upbit_rest", "upbit_ws", "binance_rest", "binance_ws")})
    return replace(cfg, log_level=own.log_level, bus=replace(cfg.bus, curve=own.bus.curve),
                   cluster=replace(cfg.cluster, host=own.cluster.host), venues=venues,
                   testing={**cfg.testing, **own.testing})


class NodeDaemon:
    def __init__(self, cfg: ArbdConfig, run: RunDir) -> None:
        self.own = cfg
        self.name = cfg.cluster.host
        self.run = run
        self.incarnation = time.time_ns()
        self.pid = os.getpid()
        self._stop_reason = ""
        self.state = "waiting"
        self.supervisor: Supervisor | None = None
        self.main_incarnation = 0
        self.endpoints: Endpoints | None = None
        self.last_ping_at: float | None = None  # monotonic
        self.ping: tuple[int, int, int] = (0, 0, 0)  # seq, t0 (main's clock), t1 (ours)
        self._own_cmds: set[str] = set()  # commands this node sent its actors (their replies stay here)
        self._main_lost_logged = False

    # -- lifecycle -------------------------------------------------------------
    def run_forever(self) -> int:
        self.run.create()
        with InstanceLock(self.run):
            return self._run()

    def request_shutdown(self, reason: str) -> None:
        if not self._stop_reason:
            self._stop_reason = reason

    def _run(self) -> int:
        skew_process_clock(float(self.own.testing.get("clock_skew_s") or 0.0))
        self.zctx = context_from_config(self.own)
        self.link = self.zctx.socket(zmq.DEALER)
        self.link.setsockopt(zmq.LINGER, 0)
        self.link.setsockopt(zmq.IDENTITY, f"node:{self.name}:{self.incarnation}".encode())
        # Reports are the freshest state: a backlog of old ones is worth nothing.
        self.link.setsockopt(zmq.SNDHWM, 50)
        self.link.connect(self.own.cluster.main)
        self.sup_sock = self.zctx.socket(zmq.ROUTER)
        self.sup_sock.setsockopt(zmq.LINGER, 500)
        self.sup_sock.bind(f"ipc://{self.run.sock_dir}/sup")
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda s, f: self.request_shutdown(f"signal {signal.Signals(s).name}"))
        logjson.log(log, logging.INFO, f"node {self.name} started; main at {self.own.cluster.main}",
                    node=self.name, main=self.own.cluster.main, curve=self.own.bus.curve.enabled)
        try:
            self._loop()
        finally:
            self._stop_actors("node stopping: " + self._stop_reason)
            self.link.close(linger=0)
            self.sup_sock.close(linger=0)
            self.zctx.destroy(linger=0)
        logjson.log(log, logging.INFO, f"node {self.name} stopped ({self._stop_reason})", node=self.name)
        return 0

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.link, zmq.POLLIN)
        poller.register(self.sup_sock, zmq.POLLIN)
        registered: set[int] = set()
        next_hello = 0.0
        next_report = time.monotonic()
        cl = self.own.cluster
        while not self._stop_reason:
            children = self.supervisor.sentinels() if self.supervisor is not None else {}
            registered = track_sentinels(poller, registered, children)
            events = dict(poller.poll(50))
            if self.link in events:
                self._on_link()
            if self.sup_sock in events:
                self._on_sup()
            if self.supervisor is not None:
                self.supervisor.check()
            now = time.monotonic()
            silent = now - self.last_ping_at if self.last_ping_at is not None else None
            if now >= next_hello and (self.state != "running" or silent is None or silent > cl.node_timeout_s):
                next_hello = now + HELLO_EVERY_S
                self._send(NodeHello(node=self.name, incarnation=self.incarnation, pid=self.pid))
            if silent is not None and silent > cl.node_timeout_s and not self._main_lost_logged:
                self._main_lost_logged = True
                logjson.log(log, logging.WARNING, f"main daemon unreachable for {silent:.1f}s; actors keep "
                            f"running for up to {cl.orphan_grace_s:g}s", node=self.name)
            if silent is not None and silent > cl.orphan_grace_s and self.state == "running":
                self._stop_actors(f"main daemon unreachable for {silent:.1f}s (grace {cl.orphan_grace_s:g}s)")
                self.state = "orphaned"
            if now >= next_report:
                interval = (self.supervisor.cfg.supervision.heartbeat_interval_s if self.supervisor
                            else self.own.supervision.heartbeat_interval_s)
                next_report = now + interval
                self._report(now)

    # -- main's link -------------------------------------------------------------
    def _send(self, msg: Any) -> None:
        with contextlib.suppress(zmq.Again):
            self.link.send(encode(msg, f"node.{self.name}", self.incarnation, 0), zmq.NOBLOCK)

    def _on_link(self) -> None:
        for _ in range(1000):
            try:
                frame = self.link.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = decode(frame).msg
            except DecodeError as e:
                log.warning("bad frame from the main daemon: %s", e)
                continue
            t = type(msg)
            if t is NodePing:
                self.ping = (msg.seq, msg.ts_ns, time.time_ns())
                self.last_ping_at = time.monotonic()
                if self._main_lost_logged:
                    self._main_lost_logged = False
                    logjson.log(log, logging.INFO, "main daemon reachable again", node=self.name)
                if msg.main_incarnation != self.main_incarnation:
                    self._send(NodeHello(node=self.name, incarnation=self.incarnation, pid=self.pid))
            elif t is NodeWelcome:
                self._on_welcome(msg)
            elif t is NodeRelay:
                with contextlib.suppress(zmq.ZMQError):
                    self.sup_sock.send_multipart([msg.identity, msg.frame], zmq.NOBLOCK)
            elif t is Command:
                self._on_command(msg)

    def _on_welcome(self, msg: NodeWelcome) -> None:
        if msg.node != self.name:
            log.error("main welcomed node %r, but this node is %r; ignored", msg.node, self.name)
            return
        if msg.main_incarnation == self.main_incarnation and self.state == "running":
            return  # welcomed back after a lost link: the actors ran on meanwhile
        try:
            cfg = actor_config(dict(msg.config), self.own)
            endpoints = replace(Endpoints.from_json(msg.endpoints), sup=f"ipc://{self.run.sock_dir}/sup")
        except (ConfigError, ValueError, KeyError) as e:
            logjson.log(log, logging.ERROR, f"main's welcome is unusable ({e}); waiting", node=self.name)
            return
        if self.supervisor is not None:
            self._stop_actors("main daemon restarted" if msg.main_incarnation != self.main_incarnation
                              else "welcomed back")
        specs = placed_specs(cfg, child_specs(cfg))
        mine = [s.name for s in specs if s.host == self.name]
        if sorted(mine) != sorted(msg.actors):
            logjson.log(log, logging.WARNING, f"main placed {list(msg.actors)} here; the config says {mine}",
                        node=self.name)
        self.main_incarnation = msg.main_incarnation
        self.endpoints = endpoints
        self.last_ping_at = time.monotonic()
        self.supervisor = Supervisor(cfg, self.run, endpoints, specs, self.zctx,
                                     on_escalate=self._on_escalate, host=self.name)
        self.supervisor.start_all()
        self.state = "running"
        logjson.log(log, logging.INFO, f"welcomed by main; running {', '.join(mine)}", node=self.name,
                    actors=mine)

    def _on_command(self, cmd: Command) -> None:
        sup = self.supervisor
        if cmd.command == "restart" and sup is not None:
            actor = str(cmd.args.get("actor", ""))
            ok, text = (sup.request_restart(actor, str(cmd.args.get("reason") or "main's request"),
                                            bool(cmd.args.get("graceful")), self._send_stop)
                        if actor in sup.children and sup.is_local(actor) else (False, f"no actor {actor!r} here"))
            logjson.log(log, logging.INFO if ok else logging.WARNING, f"restart {actor}: {text}", node=self.name)
        elif cmd.command == "stop_all":
            self._stop_actors(str(cmd.args.get("reason") or "main's request"))
            self.state = "waiting"
            self.main_incarnation = 0
            self.last_ping_at = None

    def _report(self, now: float) -> None:
        seq, t0, t1 = self.ping
        actors: tuple[RemoteChild, ...] = ()
        if self.supervisor is not None:
            actors = tuple(self._describe(self.supervisor.children[n], now) for n in self.supervisor.order
                           if self.supervisor.is_local(n))
        self._send(NodeReport(node=self.name, incarnation=self.incarnation, main_incarnation=self.main_incarnation,
                              ping_seq=seq, ping_ts_ns=t0, ping_recv_ns=t1, state=self.state, actors=actors))

    @staticmethod
    def _describe(c: Child, now: float) -> RemoteChild:
        hb = c.last_hb
        return RemoteChild(
            name=c.spec.name, state=c.state, pid=c.pid or 0, incarnation=c.incarnation,
            uptime_s=round(now - c.started_at, 3) if c.handle is not None else 0.0,
            restarts=c.restarts,
            heartbeat_age_s=round(now - c.last_hb_at, 4) if hb is not None else -1.0,
            rss_mb=hb.rss_mb if hb else 0.0, loop_latency_ms=hb.loop_latency_ms if hb else 0.0,
            msgs_in=hb.msgs_in if hb else 0, msgs_out=hb.msgs_out if hb else 0, gaps=hb.gaps if hb else 0,
            decode_errors=hb.decode_errors if hb else 0, counters=dict(hb.counters) if hb else {})

    # -- the actors -----------------------------------------------------------------
    def _on_sup(self) -> None:
        for ident, frame in drain_router(self.sup_sock):
            try:
                msg = decode(frame).msg
            except DecodeError as e:
                log.warning("bad frame on the actor channel: %s", e)
                continue
            if type(msg) is Heartbeat:
                if self.supervisor is not None:
                    self.supervisor.on_heartbeat(msg, ident)
            elif type(msg) is Reply and msg.request_id in self._own_cmds:
                self._own_cmds.discard(msg.request_id)
            else:  # snapshots, restart requests, replies to main's commands: main's business
                self._send(NodeRelay(node=self.name, identity=ident, frame=frame))

    def _send_stop(self, child: Child, reason: str) -> bool:
        if child.identity is None:
            return False
        cmd = Command(command="stop", args={"reason": reason})
        try:
            self.sup_sock.send_multipart([child.identity, encode(cmd, f"node.{self.name}", 0, 0)], zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        self._own_cmds.add(cmd.id)
        return True

    def _stop_actors(self, reason: str) -> None:
        sup, self.supervisor = self.supervisor, None
        if sup is None:
            return
        logjson.log(log, logging.WARNING if "stopping" not in reason else logging.INFO,
                    f"stopping actors: {reason}", node=self.name)
        sup.stop_all(self._send_stop)

    def _on_escalate(self, actor: str, why: str) -> None:
        # Main sees the actor `failed` in the next report and escalates there.
        logjson.log(log, logging.ERROR, f"escalation: {why}", node=self.name, actor=actor)
