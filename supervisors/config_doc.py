"""The config reference as a Markdown table, generated from the config
classes so the README can't drift from the code (a test compares them).

    python -m supervisors.config_doc
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from supervisors.config import ArbdConfig

NOTES: dict[str, str] = {
    "mode": "paper | live_readonly | live_trading",
    "log_format": "auto: readable text on a terminal, one JSON object a line otherwise (`--log-format`)",
    "bus.transport": "ipc (default), inproc (all actors as threads, for tests), tcp",
    "bus.pub_hwm": "PUB high-water mark; PUB drops silently past it, so it is sized on purpose",
    "supervision.liveness_s": "a heartbeat older than this: kill and restart",
    "supervision.intensity": "max restarts of one child within period_s, else escalate",
    "venues.source": "sim: the embedded exchange; live: the real URLs below",
    "sim": "embedded exchange settings (venues/sim/config.py SimConfig), e.g. seed, update_hz",
    "watchdog.fail_closed_after_s": "a required quote older than this fails trading closed",
    "watchdog.restart_after_s": "... and after this long the feed is restarted",
    "watchdog.clear_after_s": "fresh this long before fail-closed clears",
    "trading.arm_on_start": "arm at start (paper demo); never arms live_trading",
    "longrun.interval_loops": "snapshot every N watchdog checks (0.25 s each)",
    "report.premium_sample_s": "the engine logs a `premium` event (premium, baseline per coin) this often, for `arbctl report`; 0: never",
    "strategy.refusal_backoff_s": "a pair whose order was refused unsent (budget, breaker) waits this long",
    "execution.breaker.slow_after_s": "a venue that has left an order unanswered this long gets no new open until it answers",
    "execution.budget_wait_s": "an order that cannot have rate budget within this is refused unsent",
    "live_trading.enabled": "the seed's master switch; also needs `arbctl arm --confirm live_trading`",
    "live_trading.min_account_balance": "USDT (Binance USDT + Upbit KRW / fx)",
    "live_trading.max_daily_loss": "USDT; past it: session_stop -> persisted halt",
    "live_trading.max_notional_per_trade": "USDT, before dry_run_scale",
    "engine.entry_threshold_pct": "edge past fees and baseline needed to open, percent",
    "engine.exit_threshold_pct": "close when the premium is back within this of the baseline",
    "testing": "test-only hooks (role_overrides, crash_at_start, leak_mb_per_s, clock_skew_s)",
    "bus.tcp_host": "where tcp endpoints bind; anything but loopback needs bus.curve",
    "bus.curve.enabled": "CURVE (zmq.auth) on every tcp socket; required beyond loopback",
    "bus.curve.keys_dir": "this host's keys: HOST.key_secret, authorized/PEER.key (arbctl keys new)",
    "record.enabled": "a trading daemon also records the venues' public streams (the `recorder` actor)",
    "record.dir": "the daemon's tape segments, relative to the run directory",
    "record.max_mb": "disk bound: `arbd record` stops there, a daemon drops its oldest segments",
    "record.segment_mb": "a daemon's segment size (each segment is a tape of its own)",
    "record.chunk_kb": "raw frames per zstandard chunk; a kill loses at most the chunk being filled",
    "record.flush_s": "a chunk is written at least this often",
    "record.trades": "also the public trades (a replay queues a taker behind them)",
    "backtest.tape": "set by `arbd backtest`: the tape the embedded exchange replays",
    "backtest.speed": "tape seconds per wall second; 0 (`--speed max`): as fast as the daemon keeps up",
    "backtest.latency_ms_upbit": "a replayed Upbit order reaches the recorded book this long after it was sent",
    "backtest.latency_ms_binance": "the same for Binance",
    "backtest.queue": "a taker at the touch fills after the takers the tape shows there",
    "backtest.impact_decay_s": "liquidity a backtest took stays gone this long at most",
    "backtest.step_ms": "frames within this much tape time arrive at one clock value",
    "backtest.settle_timeout_s": "a wait for the daemon to go quiet longer than this is given up (counted)",
    "cluster.host": "this host's name: main runs `arbd start`, a node `arbd node`",
    "cluster.main": "(node) the main daemon's node channel, tcp://ADDRESS:PORT",
    "cluster.port": "(main) the node channel's port on bus.tcp_host",
    "cluster.nodes": "(main) name -> {address, port_base}: where that node's actors bind",
    "cluster.node_timeout_s": "a link silent this long is down: its actors down, trading fails closed",
    "cluster.orphan_grace_s": "(node) its actors outlive a lost main daemon this long, then stop",
    "cluster.max_clock_offset_s": "a host whose clock is further off main's fails trading closed",
    "placement": "actor -> node, e.g. {feed.upbit: seoul, feed.binance: tokyo}; unlisted: main",
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in typing.get_args(tp))
    if origin is not None:
        return str(tp).replace("typing.", "").replace("supervisors.config.", "").replace("|", "\\|")
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return ""


def rows(cls: type = ArbdConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and path != "strategy.premium":
            out += rows(tp, path + ".")
        elif path != "strategy.premium":
            d = _default(f)
            out.append((path, _type_name(tp), repr(d) if not isinstance(d, dict) or d else "{}"))
    return out


def markdown() -> str:
    lines = ["| key | type | default | notes |", "|---|---|---|---|"]
    for path, tp, default in rows():
        note = NOTES.get(path, '').replace('|', '\\|')
        lines.append(f"| `{path}` | {tp} | `{default}` | {note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
