"""The daemon process: binds the bus and the control and actor channels,
runs the supervisor, answers arbctl, and shuts everything down in order."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import zmq

from arbitrage.trading_state import ESCALATION, halt_reason
from messages import (
    ActorInfo,
    Command,
    EventNote,
    Heartbeat,
    Reply,
    RestartRequest,
    SupervisorReport,
    decode,
    encode,
)
from messages.codec import DecodeError
from supervisors import status as status_view
from supervisors.bus import Bus
from supervisors.config import ArbdConfig
from supervisors.control import COMMANDS, ControlError, Forward, parse_request, reply_frame
from supervisors.curve import context_from_config
from supervisors.endpoints import make_endpoints
from supervisors.metrics import MetricsExporter
from supervisors.nodes import RELAY, Nodes
from supervisors.placement import place_endpoints, placed_specs
from supervisors.polling import drain_router, track_sentinels
from supervisors.roles import child_specs
from supervisors.runfiles import (
    EventLog,
    InstanceLock,
    RunDir,
    atomic_write_json,
    atomic_write_text,
)
from supervisors.sim_ports import PortReservation, assign_sim_ports
from supervisors.supervisor import Child, Supervisor

if TYPE_CHECKING:
    from supervisors.console import DaemonConsole

log = logging.getLogger("arbd.daemon")

EXIT_OK = 0
EXIT_ESCALATED = 2
PROGRESS_EVERY_S = 60.0  # long runs print one progress line a minute


class Daemon:
    def __init__(self, cfg: ArbdConfig, run: RunDir, max_runtime_s: float | None = None,
                 console: DaemonConsole | None = None) -> None:
        self.cfg = cfg
        self.console = console  # text logs on a terminal: trade, state, restart and status lines
        self.run = run
        self.max_runtime_s = max_runtime_s
        self.pid = os.getpid()
        self.started = time.monotonic()
        self.started_wall = time.time()
        self._stop_reason = ""
        self._exit_code = EXIT_OK
        self._pending: dict[str, tuple[bytes, str, float, Any]] = {}  # forwarded cmd id -> client
        self._escalation_deadline: float | None = None
        self._sim_ports: PortReservation | None = None  # held while the daemon runs
        self._last_states: tuple[str, ...] = ()
        self._next_progress = time.monotonic() + min(PROGRESS_EVERY_S, (max_runtime_s or 600.0) / 10)

    # -- lifecycle -------------------------------------------------------------
    def run_forever(self) -> int:
        self.run.create()
        with InstanceLock(self.run):
            return self._run()

    def _run(self) -> int:
        if self.cfg.venues.source == "sim":
            self.cfg, self._sim_ports = assign_sim_ports(self.cfg)
        # CURVE on tcp (supervisors.curve); first, so that missing keys refuse the start before anything binds.
        self.zctx = context_from_config(self.cfg)
        if self.console is not None:
            self.console.start(self.run.ledger_path)
        specs = placed_specs(self.cfg, child_specs(self.cfg))
        self.endpoints = make_endpoints(self.cfg.bus.transport, self.run,
                                        [s.name for s in specs if s.has_inbox], self.cfg.bus.tcp_host,
                                        [s.name for s in specs])
        self.endpoints = place_endpoints(self.endpoints, self.cfg, specs, self.run)
        self.zctx.server_of = self.endpoints.server_of
        atomic_write_text(self.run.endpoints_file, self.endpoints.to_json() + "\n")
        self.bus = Bus(self.zctx, self.endpoints, self.cfg.bus.sub_hwm)
        self.bus.start()
        self.sup_sock = self._bind(zmq.ROUTER, self.endpoints.sup)
        self.sup_sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.ctl_sock = self._bind(zmq.ROUTER, self.endpoints.control)
        self.pub = self.zctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.connect(self.endpoints.bus_in)
        self._report_seq = 0
        self._pub_seq: dict[str, int] = {}
        self.events = EventLog(self.run, "supervisor")
        self.metrics = MetricsExporter(self.cfg.metrics)
        self.metrics.start()
        self.supervisor = Supervisor(self.cfg, self.run, self.endpoints, specs, self.zctx,
                                     on_escalate=self._on_escalate, on_event=self._on_sup_event)
        # Actors placed on other hosts: their nodes' link (supervisors.nodes).
        self.nodes = Nodes(self) if self.endpoints.placement else None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda s, f: self.request_shutdown(f"signal {signal.Signals(s).name}"))
        log.info("arbd started", extra={"fields": {"mode": self.cfg.mode, "run_dir": str(self.run.root),
                                                   "transport": self.cfg.bus.transport}})
        if self.cfg.backtest.tape:
            self._create_board(specs)
        # Feeds connect to the embedded exchange: start them once it listens.
        with contextlib.suppress(FileNotFoundError):
            self.run.sim_file.unlink()
        self.supervisor.start_all(ready={"sim": self.run.sim_file.exists})
        try:
            self._loop()
        finally:
            self._shutdown()
        return self._exit_code

    def _create_board(self, specs: list[Any]) -> None:
        """A backtest: the tape clock, at the tape's first frame, and a slot per child
        (supervisors.progress), before any child starts and reads the clock."""
        from storage.tape import TapeReader
        from supervisors.progress import Board, board_path

        start_ns = TapeReader(self.cfg.backtest.tape).first_ns()
        Board.create(board_path(self.run.root), [s.name for s in specs], start_ns).close()

    def _bind(self, kind: int, endpoint: str) -> zmq.Socket:
        s = self.zctx.socket(kind)
        s.setsockopt(zmq.LINGER, 500)
        s.bind(endpoint)
        return s

    def request_shutdown(self, reason: str, exit_code: int | None = None) -> None:
        if not self._stop_reason:
            self._stop_reason = reason
        if exit_code is not None:
            self._exit_code = exit_code

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.ctl_sock, zmq.POLLIN)
        poller.register(self.sup_sock, zmq.POLLIN)
        poller.register(self.bus.capture, zmq.POLLIN)
        node_socks = self.nodes.sockets() if self.nodes is not None else []
        for sock in node_socks:
            poller.register(sock, zmq.POLLIN)
        registered: set[int] = set()
        next_metrics = 0.0
        while not self._stop_reason:
            registered = track_sentinels(poller, registered, self.supervisor.sentinels())
            events = dict(poller.poll(50))
            if self.ctl_sock in events:
                self._on_control()
            if self.sup_sock in events:
                self._on_sup()
            if self.bus.capture in events:
                frames = self.bus.drain_capture()
                for topic, frame in frames:
                    if topic == b"event":
                        self._on_event_note(frame)
                if self.console is not None:
                    self.console.on_frames(frames)
            if self.nodes is not None:
                for sock in node_socks:
                    if sock in events:
                        self.nodes.on_readable(sock)
                self.nodes.tick()
            self.supervisor.check()
            # The guard fails closed on what this report says: send it the
            # moment any child changes state, not at the next timer tick.
            states = tuple(c.state for c in self.supervisor.children.values())
            if states != self._last_states:
                self._last_states = states
                self._publish_report()
            now = time.monotonic()
            self._expire_pending(now)
            if now >= next_metrics:
                self.metrics.refresh(self)
                self._publish_report()
                next_metrics = now + 0.5
            if self.console is not None:
                self.console.tick(self)
            if self.cfg.longrun.enabled and now >= self._next_progress:
                self._next_progress = now + min(PROGRESS_EVERY_S, (self.max_runtime_s or 600.0) / 10)
                print(status_view.progress_line(self), flush=True)
            if self._escalation_deadline is not None and now >= self._escalation_deadline:
                self.request_shutdown("escalation", EXIT_ESCALATED)
            if self.max_runtime_s is not None and now - self.started >= self.max_runtime_s:
                self.request_shutdown("max runtime reached")

    def _shutdown(self) -> None:
        log.info("arbd stopping: %s", self._stop_reason)
        if self.nodes is not None:
            self.nodes.shutdown()
        self.supervisor.stop_all(self._send_stop)
        # Final refresh so the summary sees the last published numbers.
        frames = self.bus.drain_capture()
        if self.console is not None:
            self.console.on_frames(frames)  # the last fills before the stop still get their line
        self.summary = status_view.run_summary(self)
        self.bus.stop()
        self.metrics.stop()
        self.events.close()
        if self.nodes is not None:
            self.nodes.close()
        self.zctx.destroy(linger=0)
        if self._sim_ports is not None:
            self._sim_ports.close()

    # -- supervisor hooks --------------------------------------------------------
    def _send_stop(self, child: Child, reason: str) -> bool:
        if child.identity is None:
            return False
        return self._send_to(child.identity, Command(command="stop", args={"reason": reason}))

    def _publish_report(self) -> None:
        """The child table on the bus: the watchdog and guard act on it."""
        now = time.monotonic()
        infos = []
        for name in self.supervisor.order:
            c = self.supervisor.children[name]
            hb = c.last_hb
            infos.append(ActorInfo(
                name=name, pid=c.pid or 0, state=c.state,
                heartbeat_age_s=(now - c.last_hb_at) if hb is not None else -1.0,
                rss_mb=hb.rss_mb if hb is not None else 0.0,
                loop_latency_ms=hb.loop_latency_ms if hb is not None else 0.0,
                restarts=c.restarts, trade_path=c.spec.trade_path))
        self._report_seq += 1
        msg = SupervisorReport(actors=tuple(infos))
        self.pub.send_multipart([msg.topic().encode(),
                                 encode(msg, "supervisor", int(self.started_wall * 1e9), self._report_seq)])

    def publish(self, msg: Any) -> None:
        """A message of the supervisor's own on the bus (fail-closed conditions, clocks)."""
        topic = msg.topic()
        seq = self._pub_seq[topic] = self._pub_seq.get(topic, 0) + 1
        self.pub.send_multipart([topic.encode(), encode(msg, "supervisor", int(self.started_wall * 1e9), seq)])

    def _send_to(self, identity: bytes, msg: Any) -> bool:
        if identity.startswith(RELAY):  # an actor on a node: through its link
            return self.nodes is not None and self.nodes.relay(identity, encode(msg, "supervisor", 0, 0))
        try:
            self.sup_sock.send_multipart([identity, encode(msg, "supervisor", 0, 0)], zmq.NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def _on_sup_event(self, kind: str, data: dict[str, object]) -> None:
        self.events.record(kind, {k: v for k, v in data.items() if k != "ts"})
        self.metrics.on_supervisor_event(kind, data)
        if self.console is not None:
            self.console.on_supervisor_event(kind, data)

    def _on_escalate(self, actor: str, why: str) -> None:
        """Fail closed: halt (persisted), cancel open orders, then exit non-zero."""
        reason = halt_reason(ESCALATION, why)
        self.halt_without_guard(reason)
        for name, command in (("guard", Command(command="halt", args={"reason": reason})),
                              ("executor", Command(command="cancel_all", args={"reason": reason}))):
            child = self.supervisor.children.get(name)
            if child is not None and child.identity is not None:
                self._send_to(child.identity, command)
        self._escalation_deadline = time.monotonic() + 3.0

    def halt_without_guard(self, reason: str) -> dict[str, Any]:
        """Persist a halt directly (the guard is the usual owner, but a halt
        must never depend on the guard being alive)."""
        path = self.run.trading_state_file
        state: dict[str, Any] = {}
        with contextlib.suppress(Exception):
            import json
            state = json.loads(path.read_text())
        state.update({"state": "halted", "halt_reason": reason, "ts": time.time()})
        atomic_write_json(path, state)
        return {"state": "halted", "halt_reason": reason, "persisted_by": "supervisor"}

    def on_remote_escalation(self, actor: str, why: str) -> None:
        """A node's supervisor gave up on one of its actors: as if it were ours."""
        log.error("escalation on a node: %s", why)
        self._on_escalate(actor, why)

    def restart_actor(self, name: str, reason: str, graceful: bool) -> dict[str, Any]:
        child = self.supervisor.children.get(name)
        if child is not None and not self.supervisor.is_local(name) and self.nodes is not None:
            ok, text = self.nodes.restart(child, reason, graceful)
        else:
            ok, text = self.supervisor.request_restart(name, reason, graceful, self._send_stop)
        if not ok:
            raise ControlError("bad_actor", text)
        return {"restarting": name, "reason": reason}

    # -- control channel ----------------------------------------------------------
    def _on_control(self) -> None:
        for _ in range(100):
            try:
                parts = self.ctl_sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            ident, frame = parts[0], parts[-1]
            if len(parts) != 2:
                self.metrics.decode_error("control")
                self._ctl_reply(ident, reply_frame("", False, code="bad_request",
                                                   reason="expected one frame per request"))
                continue
            try:
                req = parse_request(frame)
            except ControlError as e:
                self.metrics.decode_error("control")  # counted like every other dropped frame
                self._ctl_reply(ident, reply_frame("", False, code=e.code, reason=e.reason))
                continue
            cmd = COMMANDS.get(req.command)
            if cmd is None:
                self._ctl_reply(ident, reply_frame(req.id, False, code="unknown_command",
                                                   reason=f"unknown command {req.command!r}; "
                                                          f"known: {', '.join(sorted(COMMANDS))}"))
                continue
            try:
                result = cmd.execute(self, dict(req.args))
            except ControlError as e:
                self._ctl_reply(ident, reply_frame(req.id, False, code=e.code, reason=e.reason))
                continue
            except Exception as e:  # nothing raw crosses the socket
                log.exception("control command %s failed", req.command)
                self._ctl_reply(ident, reply_frame(req.id, False, code="internal",
                                                   reason=f"{type(e).__name__}: {e}"))
                continue
            if isinstance(result, Forward):
                self._forward(ident, req.id, result)
            else:
                self._ctl_reply(ident, reply_frame(req.id, True, result))

    def _ctl_reply(self, ident: bytes, frame: bytes) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.ctl_sock.send_multipart([ident, frame], zmq.NOBLOCK)

    def _forward(self, ident: bytes, request_id: str, fwd: Forward) -> None:
        child = self.supervisor.children.get(fwd.actor)
        deadline = time.monotonic() + fwd.timeout_s
        if child is None or child.identity is None or not self._send_to(child.identity, fwd.command):
            self._finish_forward(ident, request_id, fwd, f"{fwd.actor} is not running")
            return
        self._pending[fwd.command.id] = (ident, request_id, deadline, fwd)

    def _finish_forward(self, ident: bytes, request_id: str, fwd: Forward, why: str) -> None:
        if fwd.on_timeout is not None:
            self._ctl_reply(ident, reply_frame(request_id, True, fwd.on_timeout()))
        else:
            self._ctl_reply(ident, reply_frame(request_id, False, code="unavailable", reason=why))

    def _expire_pending(self, now: float) -> None:
        for cid, (ident, rid, deadline, fwd) in list(self._pending.items()):
            if now >= deadline:
                del self._pending[cid]
                self._finish_forward(ident, rid, fwd, f"{fwd.actor} did not answer within {fwd.timeout_s:g}s")

    # -- actor channel ----------------------------------------------------------------
    def _on_sup(self) -> None:
        for ident, frame in drain_router(self.sup_sock):
            self.on_actor_frame(ident, frame)

    def on_actor_frame(self, ident: bytes, frame: bytes) -> None:
        """One frame from an actor: from the actor channel, or relayed by its node."""
        try:
            msg = decode(frame).msg
        except DecodeError as e:
            self.metrics.decode_error("supervisor")
            log.warning("bad frame on the actor channel: %s", e)
            return
        t = type(msg)
        if t is Heartbeat:
            self.supervisor.on_heartbeat(msg, ident)
            self.metrics.on_heartbeat(msg)
        elif t is Reply:
            pending = self._pending.pop(msg.request_id, None)
            if pending is not None:
                cident, rid, _, fwd = pending
                if not msg.ok and fwd.on_timeout is not None:
                    # The actor answered but could not do it (e.g. a guard
                    # without a halt): a halt must never depend on the
                    # guard, so the fallback applies as on a timeout.
                    self._finish_forward(cident, rid, fwd, msg.error_reason)
                else:
                    self._ctl_reply(cident, reply_frame(rid, msg.ok, msg.result, msg.error_code,
                                                        msg.error_reason))
        elif t is RestartRequest:
            with contextlib.suppress(ControlError):
                self.restart_actor(msg.actor, msg.reason, graceful=msg.recycle)
        elif t is Command and msg.command == "snapshot":
            prefixes = msg.args.get("prefixes")
            frames = self.bus.snapshot([str(p) for p in prefixes]) if isinstance(prefixes, list) else []
            self._send_to(ident, Reply(request_id=msg.id, ok=True, result={"snapshot": frames}))

    def _on_event_note(self, frame: bytes) -> None:
        with contextlib.suppress(DecodeError):
            msg = decode(frame).msg
            if type(msg) is EventNote:
                self.metrics.on_event(msg)

    # -- views ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return status_view.build_status(self)


def cfg_for_run(cfg: ArbdConfig, **changes: Any) -> ArbdConfig:
    return replace(cfg, **changes)
