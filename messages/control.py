"""Supervision, trading state, operator control and observability messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from messages.base import Message, register


@register("hb")
@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Message):
    """Sent by every actor process to the supervisor, produced by the actor
    thread itself so a dead or wedged actor stops heartbeating."""

    actor: str
    incarnation: int
    pid: int
    loop_latency_ms: float
    rss_mb: float
    msgs_in: int
    msgs_out: int
    gaps: int
    decode_errors: int
    counters: dict[str, float] = field(default_factory=dict)


@register("state")
@dataclass(frozen=True, slots=True, kw_only=True)
class TradingState(Message):
    """The guard's view: the one source of truth for whether orders may flow."""

    mode: str
    state: str  # disarmed | armed | halted
    fail_closed: bool
    reasons: tuple[str, ...]
    allowed: int
    blocked: int
    daily_pnl: float
    halt_reason: str = ""


@register("failclosed")
@dataclass(frozen=True, slots=True, kw_only=True)
class FailClosed(Message):
    """Raise (``active``) or clear one fail-closed condition, keyed by ``key``.

    One topic per key, so the bus's last-value cache holds every condition's
    current state and a restarted guard learns them all from its snapshot."""

    source: str
    key: str
    active: bool
    reason: str

    def topic(self) -> str:
        return f"failclosed.{self.key}"


@register("restart_req")
@dataclass(frozen=True, slots=True, kw_only=True)
class RestartRequest(Message):
    actor: str
    reason: str
    recycle: bool = False  # graceful (between messages) rather than kill


@register("rebalance_req")
@dataclass(frozen=True, slots=True, kw_only=True)
class RebalanceRequest(Message):
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CoinExposure:
    """What the open pairs hold of one coin, per venue (signed, + long).

    ``naked_qty`` is the sum over both venues: zero for balanced hedges, the
    unhedged quantity when a leg filled and its partner did not.
    ``naked_age_s`` counts from when it last became non-zero (0 when flat).
    """

    symbol: str
    upbit_qty: float
    binance_qty: float
    naked_qty: float
    naked_krw: float
    naked_age_s: float


@register("position")
@dataclass(frozen=True, slots=True, kw_only=True)
class PositionState(Message):
    exposure_krw: float
    open_pairs: int
    trades_opened: int
    trades_closed: int
    realized_pnl_krw: float
    daily_pnl_krw: float
    gauges: dict[str, float] = field(default_factory=dict)
    coins: tuple[CoinExposure, ...] = ()  # every coin the open pairs hold


@register("orderstats")
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderStats(Message):
    open: int
    filled: int
    cancelled: int
    rejected: int
    sent: int


@register("event")
@dataclass(frozen=True, slots=True, kw_only=True)
class EventNote(Message):
    """Announces a line its owner already appended to the event log."""

    event_type: str
    actor: str
    data: dict[str, object] = field(default_factory=dict)


@register("metrics")
@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSample(Message):
    """Gauges and cumulative counters an actor wants exported."""

    actor: str
    gauges: dict[str, float] = field(default_factory=dict)
    labelled: tuple[tuple[str, str, str, float], ...] = ()  # (metric, label, value, sample)


@register("cmd")
@dataclass(frozen=True, slots=True, kw_only=True)
class Command(Message):
    """A request over a control channel (operator -> daemon -> actor)."""

    command: str
    args: dict[str, object] = field(default_factory=dict)


@register("reply")
@dataclass(frozen=True, slots=True, kw_only=True)
class Reply(Message):
    request_id: str
    ok: bool
    result: object = None
    error_code: str = ""
    error_reason: str = ""


@register("ack")
@dataclass(frozen=True, slots=True, kw_only=True)
class Ack(Message):
    """Point-to-point acknowledgement of the message with ``ref_id``."""

    ref_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorInfo:
    name: str
    pid: int
    state: str
    heartbeat_age_s: float
    rss_mb: float
    loop_latency_ms: float
    restarts: int
    trade_path: bool


@register("actors")
@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorReport(Message):
    """The supervisor's child table, published on the bus for the watchdog."""

    actors: tuple[ActorInfo, ...]


@register("balances")
@dataclass(frozen=True, slots=True, kw_only=True)
class Balances(Message):
    """Free balances per venue and asset, published by the executor."""

    free: dict[str, dict[str, float]]  # venue -> asset -> free amount
    source: str  # "paper" | "venue" | "unavailable"
