"""Where every socket lives, for each transport. Only endpoints differ
between ipc (default), inproc (all actors as threads, for fast tests) and
tcp (actors on other hosts); the code using them is the same."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field

from supervisors.ports import pick_port
from supervisors.runfiles import RunDir


@dataclass(frozen=True)
class Endpoints:
    bus_in: str  # XSUB, bound by the supervisor; publishers connect
    bus_out: str  # XPUB, bound by the supervisor; subscribers connect
    sup: str  # ROUTER, supervisor <-> actors (heartbeats, commands, snapshots)
    control: str  # ROUTER, supervisor <-> arbctl
    inboxes: dict[str, str] = field(default_factory=dict)  # actor -> its trade-path ROUTER
    # actor -> a PUB it binds for its hot topics, read straight by the one
    # consumer that needs them at once (no proxy hop; see RoleActor.streams)
    streams: dict[str, str] = field(default_factory=dict)
    # actor -> the node whose address its inbox and stream are on (absent: main)
    placement: dict[str, str] = field(default_factory=dict)

    def server_of(self, endpoint: str) -> str:
        """The host that binds ``endpoint`` (its CURVE server key is that host's)."""
        for table in (self.streams, self.inboxes):
            for actor, ep in table.items():
                if ep == endpoint:
                    return self.placement.get(actor, "main")
        return "main"

    def inbox(self, actor: str) -> str:
        return self.inboxes[actor]

    def stream(self, actor: str) -> str:
        return self.streams[actor]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Endpoints:
        d = json.loads(text)
        return cls(d["bus_in"], d["bus_out"], d["sup"], d["control"], dict(d.get("inboxes", {})),
                   dict(d.get("streams", {})), dict(d.get("placement", {})))


def make_endpoints(transport: str, run: RunDir, inbox_actors: list[str],
                   tcp_host: str = "127.0.0.1", stream_actors: list[str] | None = None) -> Endpoints:
    streamers = stream_actors or []
    if transport == "ipc":
        base = f"ipc://{run.sock_dir}"
        return Endpoints(f"{base}/bus-in", f"{base}/bus-out", f"{base}/sup", f"{base}/control",
                         {a: f"{base}/in-{a}" for a in inbox_actors},
                         {a: f"{base}/out-{a}" for a in streamers})
    if transport == "inproc":
        tag = f"arbd-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        base = f"inproc://{tag}"
        # arbctl is another process: the control socket is always reachable by ipc.
        return Endpoints(f"{base}/bus-in", f"{base}/bus-out", f"{base}/sup",
                         f"ipc://{run.sock_dir}/control",
                         {a: f"{base}/in-{a}" for a in inbox_actors},
                         {a: f"{base}/out-{a}" for a in streamers})
    if transport == "tcp":
        used: set[int] = set()

        def ep() -> str:
            port = pick_port(tcp_host, lambda p: p not in used)
            used.add(port)
            return f"tcp://{tcp_host}:{port}"
        return Endpoints(ep(), ep(), ep(), ep(), {a: ep() for a in inbox_actors},
                         {a: ep() for a in streamers})
    raise ValueError(f"unknown transport {transport!r}")
