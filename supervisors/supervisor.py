"""The supervisor: child specs, one_for_one restarts, intensity, backoff,
heartbeat liveness, and a JSON line in the restart log for every event."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from messages import Heartbeat
from supervisors.actor_context import HostSpec
from supervisors.children import ChildHandle, ProcessChild, ThreadChild
from supervisors.config import ArbdConfig
from supervisors.endpoints import Endpoints
from supervisors.policy import Backoff, RestartIntensity
from supervisors.runfiles import JsonlAppender, RunDir

log = logging.getLogger("arbd.supervisor")

STARTING, RUNNING, RESTARTING, STOPPED, FAILED = "starting", "running", "restarting", "stopped", "failed"


@dataclass(frozen=True)
class ChildSpec:
    name: str
    role: str  # "actors.engine:EngineActor"
    has_inbox: bool = False
    trade_path: bool = False  # trading fails closed while this one is down
    host: str = "main"  # where it runs (placement); another host's supervisor starts it there


@dataclass
class Child:
    spec: ChildSpec
    intensity: RestartIntensity
    backoff: Backoff
    state: str = STOPPED
    handle: ChildHandle | None = None
    incarnation: int = 0
    started_at: float = 0.0  # monotonic
    started_wall: float = 0.0
    last_hb_at: float = 0.0
    last_hb: Heartbeat | None = None
    identity: bytes | None = None
    restarts: int = 0
    next_start_at: float | None = None
    planned: str = ""  # why we are stopping it on purpose ("", "restart", "recycle", "shutdown")
    history: list[float] = field(default_factory=list)
    remote_pid: int | None = None  # on another host: its pid there (supervisors.nodes)

    @property
    def pid(self) -> int | None:
        return self.handle.pid if self.handle is not None else self.remote_pid


class Supervisor:
    def __init__(self, cfg: ArbdConfig, run: RunDir, endpoints: Endpoints, specs: list[ChildSpec],
                 zctx: zmq.Context, on_escalate: Callable[[str, str], None],
                 on_event: Callable[[str, dict[str, object]], None] | None = None,
                 host: str = "main") -> None:
        self.cfg = cfg
        self.host = host  # children placed on another host are that host's to start (see is_local)
        self.run = run
        self.endpoints = endpoints
        self.zctx = zctx
        self.on_escalate = on_escalate
        self.on_event = on_event or (lambda kind, data: None)
        sv = cfg.supervision
        self.children: dict[str, Child] = {
            s.name: Child(s, RestartIntensity(sv.intensity, sv.period_s),
                          Backoff(sv.backoff_initial_s, sv.backoff_max_s, stable_after_s=sv.period_s))
            for s in specs
        }
        self.order = [s.name for s in specs]
        self.restart_log = JsonlAppender(run.supervisor_log, fsync=False)
        self.shutting_down = False
        self.escalated: str | None = None

    def is_local(self, name: str) -> bool:
        return self.children[name].spec.host == self.host

    # -- restart log -----------------------------------------------------------
    def _log(self, child: Child, event: str, reason: str = "", exit_code: int | None = None,
             sig: int | None = None, backoff_s: float | None = None, pid: int | None = None) -> None:
        rec = {"ts": round(time.time(), 6), "actor": child.spec.name, "event": event,
               "pid": pid if pid is not None else child.pid, "exit_code": exit_code, "signal": sig, "reason": reason,
               "restarts": child.restarts, "backoff_s": backoff_s}
        self.restart_log.append(rec)
        planned = event in ("start", "stop") or (event == "exit" and bool(child.planned))
        level = logging.INFO if planned or self.shutting_down else logging.WARNING
        # restart_event lets the terminal console drop the records it narrates itself.
        log.log(level, "%s %s %s", child.spec.name, event, reason, extra={"restart_event": event})
        if event in ("restart", "kill", "escalate", "recycle"):
            self.on_event("restart" if event != "escalate" else "escalate", rec)

    # -- starting --------------------------------------------------------------
    def start_all(self, ready: dict[str, Callable[[], bool]] | None = None,
                  ready_timeout_s: float = 15.0) -> None:
        """Start children in order; for a child named in ``ready``, wait
        (bounded) until its check passes before starting the next one."""
        for name in self.order:
            child = self.children[name]
            if not self.is_local(name):
                continue
            self._spawn(child, "initial start")
            check = (ready or {}).get(name)
            if check is None:
                continue
            deadline = time.monotonic() + ready_timeout_s
            while not check() and time.monotonic() < deadline and child.handle is not None \
                    and child.handle.is_alive():
                time.sleep(0.02)

    def _spawn(self, child: Child, reason: str) -> None:
        child.incarnation = time.time_ns()
        spec = HostSpec(name=child.spec.name, role=child.spec.role, incarnation=child.incarnation,
                        endpoints=self.endpoints, config=self.cfg, run_dir=str(self.run.root),
                        parent_pid=os.getpid(), threaded=self.cfg.bus.transport == "inproc")
        child.handle = (ThreadChild(spec, self.zctx) if spec.threaded else ProcessChild(spec))
        child.state = STARTING
        child.started_at = time.monotonic()
        child.started_wall = time.time()
        child.last_hb = None
        child.identity = None
        child.next_start_at = None
        child.planned = ""
        self._log(child, "start", reason)

    # -- events ----------------------------------------------------------------
    def sentinels(self) -> dict[int, str]:
        out = {}
        for name, c in self.children.items():
            if c.handle is not None and c.state in (STARTING, RUNNING, RESTARTING):
                s = c.handle.sentinel()
                if s is not None:
                    out[s] = name
        return out

    def on_heartbeat(self, hb: Heartbeat, identity: bytes) -> None:
        child = self.children.get(hb.actor)
        if child is None or hb.incarnation != child.incarnation:
            return  # a late beat from a previous incarnation
        child.last_hb = hb
        child.last_hb_at = time.monotonic()
        child.identity = identity
        if child.state == STARTING:
            child.state = RUNNING

    def check(self) -> None:
        """Reap exits, enforce liveness, run due restarts. Call often."""
        now = time.monotonic()
        sv = self.cfg.supervision
        for name in self.order:
            child = self.children[name]
            if not self.is_local(name):
                continue
            h = child.handle
            if h is not None and child.state in (STARTING, RUNNING, RESTARTING) and not h.is_alive():
                self._on_exit(child)
                continue
            if child.state == RUNNING and now - child.last_hb_at > sv.liveness_s:
                self._kill(child, f"heartbeat timeout ({now - child.last_hb_at:.1f}s > {sv.liveness_s}s)")
            elif child.state == STARTING and now - child.started_at > sv.start_timeout_s:
                self._kill(child, f"no heartbeat within start timeout {sv.start_timeout_s}s")
            if (child.state == RESTARTING and child.handle is None and child.next_start_at is not None
                    and now >= child.next_start_at and not self.shutting_down):
                self._spawn(child, "restart")

    def _kill(self, child: Child, reason: str) -> None:
        assert child.handle is not None
        self._log(child, "kill", reason)
        child.handle.kill()
        child.state = RESTARTING
        child.handle.reap(1.0)
        if not child.handle.is_alive():
            self._on_exit(child, reason)

    def _on_exit(self, child: Child, reason: str = "") -> None:
        h = child.handle
        assert h is not None
        h.reap(0.5)
        code, sig = h.exit_status()
        dead_pid = h.pid
        ran_for = time.monotonic() - child.started_at
        planned = child.planned
        self._log(child, "exit", reason or planned or "unexpected exit", exit_code=code, sig=sig)
        child.handle = None
        if self.shutting_down or planned == "shutdown":
            child.state = STOPPED
            return
        now = time.monotonic()
        if planned in ("restart", "recycle"):
            # Asked for (operator, watchdog): not a failure, no intensity cost.
            child.state = RESTARTING
            child.next_start_at = now
            child.restarts += 1
            self._log(child, "restart", f"{planned} requested", backoff_s=0.0)
            return
        if child.intensity.record(now):
            child.state = FAILED
            self.escalated = child.spec.name
            why = (f"{child.spec.name} exceeded restart intensity "
                   f"({child.intensity.max_restarts} in {child.intensity.period_s}s)")
            self._log(child, "escalate", why, pid=dead_pid)
            self.on_escalate(child.spec.name, why)
            return
        delay = child.backoff.next_delay(ran_for)
        child.restarts += 1
        child.state = RESTARTING
        child.next_start_at = now + delay
        self._log(child, "restart", reason or "unexpected exit", backoff_s=round(delay, 3))

    # -- requests --------------------------------------------------------------
    def request_restart(self, name: str, reason: str, graceful: bool,
                        send_stop: Callable[[Child, str], bool]) -> tuple[bool, str]:
        child = self.children.get(name)
        if child is None:
            return False, f"no actor named {name!r}; actors: {', '.join(self.order)}"
        if child.state not in (STARTING, RUNNING):
            return False, f"{name} is {child.state}"
        child.planned = "recycle" if graceful else "restart"
        if graceful and send_stop(child, reason):
            self._log(child, "recycle", reason)
        else:
            self._log(child, "kill", reason)
            assert child.handle is not None
            child.handle.kill()
        return True, f"{name} restarting ({reason})"

    def stop_all(self, send_stop: Callable[[Child, str], bool]) -> None:
        """Orderly shutdown in reverse start order: ask, wait the grace period, kill."""
        self.shutting_down = True
        grace = self.cfg.supervision.shutdown_grace_s
        for name in reversed(self.order):
            child = self.children[name]
            if not self.is_local(name):
                continue
            if child.handle is None:
                child.state = STOPPED if child.state != FAILED else FAILED
                continue
            child.planned = "shutdown"
            if not send_stop(child, "shutdown"):
                child.handle.terminate()
        deadline = time.monotonic() + grace
        for name in reversed(self.order):
            child = self.children[name]
            if child.handle is None:
                continue
            if not child.handle.reap(max(0.0, deadline - time.monotonic())):
                child.handle.terminate()
                if not child.handle.reap(1.0):
                    self._log(child, "kill", "did not stop within grace period")
                    child.handle.kill()
                    child.handle.reap(1.0)
            self._on_exit(child)
            self._log(child, "stop", "shutdown")
