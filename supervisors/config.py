"""arbd's configuration: one frozen section per component, composed here.

Sections whose shape belongs to pure logic (``live_trading``, ``rebalancer``,
``engine``, ``strategy``) reuse that logic's own config classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from arbitrage.baseline import BaselineConfig
from arbitrage.breaker import BreakerConfig
from arbitrage.live_guard import LiveTradingConfig
from arbitrage.premium import PremiumConfig
from arbitrage.rate_budget import BudgetConfig
from arbitrage.rebalancer import RebalancerConfig
from arbitrage.strategy import StrategyConfig
from supervisors.config_loader import ConfigError, apply_override, build, load_yaml

MODES = ("paper", "live_readonly", "live_trading")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "configs" / "paper.yaml"


def _positive(obj: object, *names: str, also: tuple[str, ...] = ()) -> None:
    """Raise one ValueError naming every bad limit ("; "-separated), so the
    loader reports them all at once, each at its own key path."""
    problems = [f"{n} must be > 0, got {getattr(obj, n)}" for n in names if getattr(obj, n) <= 0]
    problems += [p for p in also if p]
    if problems:
        raise ValueError("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class CurveConfig:
    """CURVE on every tcp socket (supervisors.curve); required beyond loopback."""

    enabled: bool = False
    keys_dir: str = ""  # <host>.key_secret, and authorized/<peer>.key for every peer

    def __post_init__(self) -> None:
        if self.enabled and not self.keys_dir:
            raise ValueError("keys_dir must name this host's keys directory when CURVE is enabled")


@dataclass(frozen=True, kw_only=True)
class BusConfig:
    transport: Literal["ipc", "inproc", "tcp"] = "ipc"
    tcp_host: str = "127.0.0.1"
    curve: CurveConfig = field(default_factory=CurveConfig)
    # PUB drops silently at its high-water mark; these are sized for bursts of
    # minutes of market data so that drops mean a stuck consumer, not a burst.
    pub_hwm: int = 100_000
    sub_hwm: int = 100_000
    ack_timeout_s: float = 1.0

    def __post_init__(self) -> None:
        _positive(self, "pub_hwm", "sub_hwm", "ack_timeout_s")


@dataclass(frozen=True, kw_only=True)
class SupervisionConfig:
    strategy: Literal["one_for_one"] = "one_for_one"
    heartbeat_interval_s: float = 0.5
    liveness_s: float = 3.0  # a heartbeat older than this: kill and restart
    start_timeout_s: float = 30.0  # first heartbeat must come within this
    intensity: int = 5  # max restarts of one child ...
    period_s: float = 30.0  # ... within this many seconds, else escalate
    backoff_initial_s: float = 0.05
    backoff_max_s: float = 5.0
    shutdown_grace_s: float = 5.0

    def __post_init__(self) -> None:
        _positive(self, "heartbeat_interval_s", "liveness_s", "start_timeout_s", "intensity",
                  "period_s", "backoff_max_s", "shutdown_grace_s", also=(
                      f"backoff_initial_s must be >= 0, got {self.backoff_initial_s}"
                      if self.backoff_initial_s < 0 else "",
                      "liveness_s must exceed heartbeat_interval_s"
                      if self.liveness_s <= self.heartbeat_interval_s else ""))


@dataclass(frozen=True, kw_only=True)
class MetricsConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8000

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")


@dataclass(frozen=True, kw_only=True)
class VenuesConfig:
    source: Literal["sim", "live"] = "sim"
    symbols: tuple[str, ...] = ("BTC", "ETH", "XRP")
    upbit_rest: str = "https://api.upbit.com"
    upbit_ws: str = "wss://api.upbit.com/websocket/v1"
    binance_rest: str = "https://api.binance.com"
    binance_ws: str = "wss://stream.binance.com:9443/ws"

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ValueError("symbols must name at least one coin")


@dataclass(frozen=True, kw_only=True)
class FeedsConfig:
    stale_after_s: float = 5.0  # silent-but-open socket: reconnect
    ping_interval_s: float = 20.0
    max_exchange_age_s: float = 30.0  # frames older than this are dropped
    backoff_max_s: float = 10.0

    def __post_init__(self) -> None:
        _positive(self, "stale_after_s", "ping_interval_s", "max_exchange_age_s", "backoff_max_s")


@dataclass(frozen=True, kw_only=True)
class WatchdogConfig:
    fail_closed_after_s: float = 3.0
    restart_after_s: float = 6.0
    # Hysteresis (arbitrage.freshness): fresh this long, and this many quotes of
    # each book, before a venue's fail-closed clears; doubled for every further
    # trip within flap_window_s, up to clear_max_s.
    clear_after_s: float = 0.3
    clear_after_samples: int = 2
    flap_window_s: float = 30.0
    clear_max_s: float = 10.0
    check_interval_s: float = 0.25
    rss_limit_mb: float = 600.0
    memory_drift_threshold: float = 0.5
    memory_drift_window: int = 120
    min_recycle_interval_s: float = 60.0
    # The seed's "loop latency degraded for 2 hours" -> rebalance; shorter in tests.
    latency_degradation_sustain_s: float = 7200.0

    def __post_init__(self) -> None:
        _positive(self, "fail_closed_after_s", "restart_after_s", "clear_after_s",
                  "check_interval_s", "rss_limit_mb", "memory_drift_threshold", "clear_after_samples",
                  "flap_window_s", "clear_max_s", "memory_drift_window", "latency_degradation_sustain_s",
                  also=(f"min_recycle_interval_s must be >= 0, got {self.min_recycle_interval_s}"
                        if self.min_recycle_interval_s < 0 else "",))


@dataclass(frozen=True, kw_only=True)
class TradingConfig:
    arm_on_start: bool = False  # paper.yaml sets it so the demo trades


@dataclass(frozen=True, kw_only=True)
class PaperConfig:
    upbit_krw: float = 100_000_000.0
    binance_usdt: float = 70_000.0
    coin_units: dict[str, float] = field(default_factory=lambda: {"BTC": 1.0, "ETH": 20.0, "XRP": 50_000.0})

    def __post_init__(self) -> None:
        # A simulated balance is what the paper account holds: it can be empty, never owed.
        problems = [f"{n} must be >= 0, got {getattr(self, n)}" for n in ("upbit_krw", "binance_usdt")
                    if getattr(self, n) < 0]
        problems += [f"coin_units must be >= 0 for every coin, got {coin}: {units}"
                     for coin, units in self.coin_units.items() if units < 0]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, kw_only=True)
class LongRunConfig:
    """The seed's ``longrun:`` keys."""

    enabled: bool = False
    interval_loops: int = 360
    snapshot_path: str = "logs/stability"
    event_logging: bool = True

    def __post_init__(self) -> None:
        _positive(self, "interval_loops")


@dataclass(frozen=True, kw_only=True)
class ReportConfig:
    """What the daemon keeps for people's reports (``arbctl report``)."""

    # The engine appends one ``premium`` line (mid premium and baseline per
    # coin, the USDT rate) to the event log this often; 0: never. A line is
    # ~200 bytes: ~3.5 MB a day at 5 s, and no message on the bus.
    premium_sample_s: float = 5.0

    def __post_init__(self) -> None:
        if self.premium_sample_s < 0:
            raise ValueError(f"premium_sample_s must be >= 0, got {self.premium_sample_s}")


@dataclass(frozen=True, kw_only=True)
class PositionAdvConfig:
    """The seed's ``position_adv:`` keys."""

    enabled: bool = True
    base_position_size_krw: float = 100_000.0
    max_exposure_krw: float = 500_000.0
    slippage_cost_threshold_pct: float = 0.2

    def __post_init__(self) -> None:
        _positive(self, "base_position_size_krw", "max_exposure_krw", "slippage_cost_threshold_pct")


@dataclass(frozen=True, kw_only=True)
class ExecutionConfig:
    """How orders reach the venues (live modes): the order path, its limits and breakers."""

    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    budgets: BudgetConfig = field(default_factory=BudgetConfig)  # the venues' REST limits (arbitrage.rate_budget)
    inventory_margin: float = 0.002  # kept back from each balance when checking an open
    order_timeout_s: float = 2.0  # an order reply later than this is an unclear send: look it up
    fill_wait_s: float = 0.5  # an accepted leg whose final state has not streamed in by then is looked up
    resolve_give_up_s: float = 10.0  # looked up this long without an answer: unknown (tried again on the tick)
    stream_grace_s: float = 2.0  # a private stream down this long fails trading closed
    balance_refresh_s: float = 30.0  # REST balance snapshot while the private streams are up
    balance_poll_s: float = 2.0  # ... and while one is down
    # A decision is about the book it saw: a pair whose tokens are not there now is refused
    # unsent (kind budget), not sent late on a book that has moved on.
    budget_wait_s: float = 0.0

    def __post_init__(self) -> None:
        _positive(self, "order_timeout_s", "fill_wait_s", "resolve_give_up_s", "stream_grace_s",
                  "balance_refresh_s", "balance_poll_s", also=(
                      f"inventory_margin must be in [0, 0.5), got {self.inventory_margin}"
                      if not 0 <= self.inventory_margin < 0.5 else "",
                      f"budget_wait_s must be >= 0, got {self.budget_wait_s}" if self.budget_wait_s < 0 else ""))


@dataclass(frozen=True, kw_only=True)
class RecordConfig:
    """Recording the venues' public streams to tapes (``arbd record``, or inside a daemon)."""

    enabled: bool = False  # a trading daemon records too (the ``recorder`` actor)
    dir: str = "tapes"  # a daemon's segments, relative to the run directory
    max_mb: float = 1024.0  # disk bound: ``arbd record`` stops there, a daemon drops its oldest segments
    segment_mb: float = 64.0  # a daemon's segment size
    chunk_kb: int = 512  # raw frames per compressed chunk
    flush_s: float = 1.0  # a chunk is written at least this often: a kill loses no more
    trades: bool = True  # also the public trades (a replay queues a taker behind them)

    def __post_init__(self) -> None:
        _positive(self, "max_mb", "segment_mb", "chunk_kb", "flush_s", also=(
            "segment_mb must not exceed max_mb" if self.segment_mb > self.max_mb else "",))


@dataclass(frozen=True, kw_only=True)
class BacktestConfig:
    """Replaying a tape through the daemon (``arbd backtest``; set by it, not by hand)."""

    tape: str = ""  # the tape the embedded exchange replays; empty: it runs its own market
    speed: float = 0.0  # tape seconds per wall second; 0: as fast as the daemon keeps up
    latency_ms_upbit: float = 5.0  # an order reaches the book this long after it was sent
    latency_ms_binance: float = 20.0
    queue: bool = True  # a taker at the touch comes after the takers the tape shows there
    impact_decay_s: float = 5.0  # liquidity a backtest took stays gone this long at most
    step_ms: float = 50.0  # frames within this much tape time arrive at one clock value
    settle_timeout_s: float = 10.0  # a wait for the daemon to go quiet longer than this is given up

    def __post_init__(self) -> None:
        _positive(self, "step_ms", "settle_timeout_s", also=(
            f"speed must be >= 0, got {self.speed}" if self.speed < 0 else "",
            *(f"{n} must be >= 0, got {getattr(self, n)}" for n in ("latency_ms_upbit", "latency_ms_binance")
              if getattr(self, n) < 0),
            f"impact_decay_s must be >= 0, got {self.impact_decay_s}" if self.impact_decay_s < 0 else ""))


@dataclass(frozen=True, kw_only=True)
class NodeConfig:
    """Where one node's actors bind: actor i placed on it (in start order) gets
    its stream on ``port_base + 2i`` and its inbox on ``port_base + 2i + 1``."""

    address: str
    port_base: int

    def __post_init__(self) -> None:
        if not 1 <= self.port_base <= 65000:
            raise ValueError(f"port_base must be 1..65000, got {self.port_base}")


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """Actors on other hosts (supervisors.nodes, supervisors.node)."""

    host: str = "main"  # this host's name: main runs `arbd start`, a node `arbd node`
    main: str = ""  # (node) the main daemon's node channel, tcp://ADDRESS:PORT
    port: int = 7700  # (main) the node channel's port on bus.tcp_host
    nodes: dict[str, NodeConfig] = field(default_factory=dict)  # (main) name -> where it binds
    node_timeout_s: float = 2.0  # a link silent this long is down
    orphan_grace_s: float = 10.0  # (node) actors outlive a lost main daemon this long
    max_clock_offset_s: float = 0.25  # a host whose clock is further off fails trading closed

    def __post_init__(self) -> None:
        from supervisors.curve import MAIN, NAME_RE

        _positive(self, "node_timeout_s", "orphan_grace_s", "max_clock_offset_s", also=(
            f"port must be 1..65535, got {self.port}" if not 1 <= self.port <= 65535 else "",
            f"host {self.host!r}: a host name is letters, digits, '.', '_' or '-'"
            if not NAME_RE.match(self.host) else "",
            f"main must be tcp://ADDRESS:PORT, got {self.main!r}"
            if self.main and not self.main.startswith("tcp://") else "",
            f"nodes: {MAIN!r} is the main daemon's name, not a node's" if MAIN in self.nodes else "",
            *(f"nodes: {n!r} is not a host name" for n in self.nodes if not NAME_RE.match(n))))


@dataclass(frozen=True, kw_only=True)
class ArbdConfig:
    mode: Literal["paper", "live_readonly", "live_trading"] = "paper"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: text on a terminal, else JSON
    bus: BusConfig = field(default_factory=BusConfig)
    supervision: SupervisionConfig = field(default_factory=SupervisionConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    venues: VenuesConfig = field(default_factory=VenuesConfig)
    sim: dict[str, Any] = field(default_factory=dict)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    trading: TradingConfig = field(default_factory=TradingConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    longrun: LongRunConfig = field(default_factory=LongRunConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    position_adv: PositionAdvConfig = field(default_factory=PositionAdvConfig)
    live_trading: LiveTradingConfig = field(default_factory=LiveTradingConfig)
    engine: PremiumConfig = field(default_factory=PremiumConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    rebalancer: RebalancerConfig = field(default_factory=RebalancerConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    placement: dict[str, str] = field(default_factory=dict)  # actor -> node (unlisted: main)
    # Test-only hooks (e.g. an injected leak); never set in shipped configs.
    testing: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One home for the entry/exit thresholds: engine:. The strategy reads them from there.
        if self.strategy.premium != PremiumConfig():
            raise ValueError("strategy.premium is not a setting: put thresholds under engine:")
        from supervisors.placement import config_problems

        problems = config_problems(self)
        if problems:
            raise ValueError("; ".join(problems))


def section_names() -> list[str]:
    return [f.name for f in fields(ArbdConfig)]


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                mode: str | None = None) -> ArbdConfig:
    """Load YAML, apply ``--set`` overrides and ``--mode``; raise ConfigError
    listing every problem."""
    data = load_yaml(Path(path) if path else DEFAULT_CONFIG)
    problems: list[str] = []
    for o in overrides:
        try:
            apply_override(data, o)
        except ConfigError as e:
            problems.extend(e.problems)
    if mode is not None:
        if mode not in MODES:
            problems.append(f"--mode: must be one of {', '.join(MODES)}, got {mode!r}")
        else:
            data["mode"] = mode
    errors: list[str] = []
    cfg = build(ArbdConfig, data, "", errors)
    problems.extend(errors)
    if cfg is not None and cfg.venues.source == "sim":
        problems.extend(sim_problems(cfg.sim, cfg.venues.symbols))
    if problems:
        raise ConfigError(problems)
    return cfg


def sim_problems(raw: dict[str, Any], symbols: tuple[str, ...]) -> list[str]:
    """Check the ``sim:`` section against the embedded exchange's own config
    class, so a typo or a bad value is refused at load time instead of being
    ignored or crashing the simulator after start."""
    import typing

    from venues.sim.config import SimConfig, SimConfigError

    hints = typing.get_type_hints(SimConfig)
    names = set(hints)
    pairs = {n for n, tp in hints.items() if tp == tuple[tuple[str, float], ...]}
    errors: list[str] = []
    for name in sorted(pairs & set(raw)):  # {NAME: number} or [[NAME, number], ...]
        val = raw[name]
        items = list(val.items()) if isinstance(val, dict) else val
        if not isinstance(items, list) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
                and type(p[1]) in (int, float) for p in items):
            errors.append(f"sim.{name}: expected a mapping of names to numbers, got {val!r}")
    data = {k: v for k, v in raw.items() if k not in pairs}
    data.setdefault("symbols", list(symbols))
    build(SimConfig, data, "sim", errors)
    if not errors:  # rules across fields (every coin priced, ...) with the real values
        try:
            SimConfig.from_mapping({**raw, "symbols": data["symbols"]})
        except (SimConfigError, TypeError, ValueError) as e:
            errors.extend(f"sim: {m}" for m in str(e).split("; "))
    out = []
    for e in errors:
        head, _, rest = e.removeprefix("sim: ").partition(":")
        out.append(f"sim.{head}:{rest}" if e.startswith("sim: ") and head in names else e)
    return out
