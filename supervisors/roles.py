"""The child specs: which roles run, in which order (OTP start order;
shutdown is the reverse), and which sit on the trade path."""

from __future__ import annotations

from supervisors.config import ArbdConfig
from supervisors.supervisor import ChildSpec

ROLE_NAMES = ("feed.upbit", "feed.binance", "engine", "position", "guard", "executor", "watchdog")


def child_specs(cfg: ArbdConfig) -> list[ChildSpec]:
    specs = []
    if cfg.venues.source == "sim":
        specs.append(ChildSpec("sim", "actors.sim:SimActor"))
    specs += [
        ChildSpec("watchdog", "actors.watchdog:WatchdogActor"),
        ChildSpec("guard", "actors.guard:GuardActor", has_inbox=True, trade_path=True),
        ChildSpec("executor", "actors.executor:ExecutorActor", has_inbox=True, trade_path=True),
        ChildSpec("position", "actors.position:PositionActor", has_inbox=True, trade_path=True),
        ChildSpec("engine", "actors.engine:EngineActor", trade_path=True),
        ChildSpec("feed.upbit", "actors.feed:UpbitFeedActor", trade_path=True),
        ChildSpec("feed.binance", "actors.feed:BinanceFeedActor", trade_path=True),
    ]
    if cfg.record.enabled:  # its own connections: not on the trade path
        specs.append(ChildSpec("recorder", "actors.recorder:RecorderActor"))
    overrides = cfg.testing.get("role_overrides") or {}
    if overrides:
        specs = [ChildSpec(s.name, str(overrides.get(s.name, s.role)), s.has_inbox, s.trade_path)
                 for s in specs]
    return specs
