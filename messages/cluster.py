"""The link between the main daemon and a node (``arbd node``), and the
clock offsets it measures.

A node says hello; main answers with its effective config, the endpoints
and the actors placed there. Main pings every node each heartbeat interval;
the node answers with a report of its actors that echoes the last ping, so
each report is one NTP-style sample (t0 = ping sent, main's clock; t1 =
ping received and t2 = report sent, the node's clock; t3 = report received,
main's clock). Every timestamp keeps its sender's clock: nothing is
re-stamped on the way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from messages.base import Message, register


@register("node_hello")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeHello(Message):
    node: str
    incarnation: int  # a new one per node start
    pid: int


@register("node_welcome")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeWelcome(Message):
    node: str
    main_incarnation: int  # a new one per main daemon start: the node restarts its actors on a change
    config: dict[str, object]  # main's effective ArbdConfig as plain data (supervisors.node)
    endpoints: str  # Endpoints.to_json()
    actors: tuple[str, ...]  # the node's actors, in start order


@register("node_ping")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodePing(Message):
    """Main -> node; ``ts_ns`` is t0 (main's clock)."""

    main_incarnation: int
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteChild:
    """One actor of a node as its local supervisor sees it."""

    name: str
    state: str
    pid: int
    incarnation: int
    uptime_s: float
    restarts: int
    heartbeat_age_s: float  # -1: no heartbeat yet
    rss_mb: float = 0.0
    loop_latency_ms: float = 0.0
    msgs_in: int = 0
    msgs_out: int = 0
    gaps: int = 0
    decode_errors: int = 0
    counters: dict[str, float] = field(default_factory=dict)


@register("node_report")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeReport(Message):
    """Node -> main, every heartbeat interval; ``ts_ns`` is t2 (the node's clock)."""

    node: str
    incarnation: int
    main_incarnation: int  # whose welcome it runs under (0: none yet)
    ping_seq: int  # the last ping it got (0: none)
    ping_ts_ns: int  # t0 of that ping (main's clock)
    ping_recv_ns: int  # t1: when the node got it (the node's clock)
    state: str  # "waiting" (no welcome yet) | "running" | "orphaned" (main lost past the grace)
    actors: tuple[RemoteChild, ...] = ()


@register("node_relay")
@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRelay(Message):
    """A frame between a node's actor and the main daemon's actor channel
    (snapshots, restart requests, replies to forwarded commands)."""

    node: str
    identity: bytes  # the actor's DEALER identity on the node
    frame: bytes


@register("clocks")
@dataclass(frozen=True, slots=True, kw_only=True)
class HostClocks(Message):
    """Each host's clock offset from the main daemon's (ns, + ahead), for
    every host whose offset is known; hosts correct what they receive."""

    offsets_ns: dict[str, int]
    rtt_ns: dict[str, int] = field(default_factory=dict)
