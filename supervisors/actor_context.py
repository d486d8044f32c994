"""What a role's actor sees of its process: the spec it was started with and
the context through which it talks to the world (never a socket itself)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import zmq

from actors.base import Inbound, RoleActor
from messages import Command, EventNote, Message, Reply
from supervisors.config import ArbdConfig
from supervisors.endpoints import Endpoints
from supervisors.outbox import Outbox
from supervisors.progress import Progress
from supervisors.publisher import ThreadPublisher
from supervisors.runfiles import EventLog, RunDir


@dataclass(frozen=True)
class HostSpec:
    name: str
    role: str  # "package.module:ClassName"
    incarnation: int
    endpoints: Endpoints
    config: ArbdConfig
    run_dir: str
    parent_pid: int
    threaded: bool = False  # inproc mode: a thread of the supervisor process


def resolve_role(path: str) -> type[RoleActor]:
    mod, _, cls = path.partition(":")
    return getattr(importlib.import_module(mod), cls)


class ActorContext:
    """What an actor may do with the outside world. Safe from any thread."""

    def __init__(self, spec: HostSpec, outbox: Outbox, zctx: zmq.Context | None = None) -> None:
        self.name = spec.name
        self.incarnation = spec.incarnation
        self.config = spec.config
        self.run = RunDir.at(spec.run_dir)
        self.endpoints = spec.endpoints
        self.counters: dict[str, float] = {}
        self._outbox = outbox
        self._zctx = zctx
        self.publishers: list[ThreadPublisher] = []
        self.actor: RoleActor | None = None  # set by the actor itself, for the host's inline delivery
        self._events: EventLog | None = None
        # In a backtest, this process's slot on the board (supervisors.progress); else None.
        self.progress: Progress | None = None

    # trade path and bus
    def publish(self, msg: Message) -> None:
        """On the bus (thinned for the role's ``bus_every`` topics) and, for a
        topic in the role's ``streams``, on its stream (see supervisors.publisher)."""
        self._outbox.put(("pub", msg))

    def thread_publisher(self) -> ThreadPublisher:
        """A bus publisher for the calling thread only (see supervisors.publisher):
        for a high-rate producer on a thread of its own, not for actor code."""
        if self._zctx is None:
            raise RuntimeError("this context has no ZeroMQ context for thread publishers")
        role = type(self.actor) if self.actor is not None else None
        streams = role.streams if role is not None and role.streams_from_thread else ()
        pub = ThreadPublisher(self._zctx, self.endpoints.bus_in, self.config.bus.pub_hwm,
                              self.name, self.incarnation,
                              stream_endpoint=self.endpoints.streams.get(self.name, "") if streams else "",
                              stream_prefixes=streams, bus_every=role.bus_every if role is not None else None)
        if self.progress is not None:
            pub.on_bus = self.progress.bus_sent
        self.publishers.append(pub)
        return pub

    def send(self, target: str, msg: Message) -> None:
        """Point-to-point, acknowledged and retransmitted until acked."""
        self._outbox.put(("send", target, msg))

    def to_supervisor(self, msg: Message) -> None:
        self._outbox.put(("sup", msg))

    def reply(self, cmd: Command, ok: bool, result: Any = None, error_code: str = "",
              error_reason: str = "") -> None:
        self.to_supervisor(Reply(request_id=cmd.id, ok=ok, result=result,
                                 error_code=error_code, error_reason=error_reason))

    def ack(self, inbound: Inbound) -> None:
        self._outbox.put(("ack", inbound.ack_to, inbound.msg.id))

    def beat(self, latency_ms: float) -> None:
        self._outbox.put(("beat", latency_ms, dict(self.counters)))

    # bookkeeping
    def count(self, key: str, n: float = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def record_event(self, event_type: str, data: dict[str, Any]) -> None:
        """Append one whole line to the event log, then announce it."""
        if self._events is None:
            self._events = EventLog(self.run, self.name)
        if self.config.longrun.event_logging:
            self._events.record(event_type, data)
        self.publish(EventNote(event_type=event_type, actor=self.name,
                               data={k: v for k, v in data.items() if isinstance(v, (str, int, float, bool))}))

    def record_sample(self, event_type: str, data: dict[str, Any]) -> None:
        """Append one line to the event log and announce nothing: a periodic
        sample for reports, not an event (on the bus it would count as a live
        event and reach every event subscriber)."""
        if not self.config.longrun.event_logging:
            return
        if self._events is None:
            self._events = EventLog(self.run, self.name)
        self._events.record(event_type, data)

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
