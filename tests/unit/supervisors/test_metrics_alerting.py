"""The exporter's series the alert rules hang on: ``arbd_halted{cause}`` and
``arbd_supervisor_escalations_total{actor}``. A stand-in daemon (child table
and the bus's last values) feeds a real :class:`MetricsExporter`; the text is
read back with prometheus_client's own parser, as Prometheus would read it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from arbitrage.trading_state import ESCALATION, SESSION_STOP, halt_reason
from messages import TradingState
from supervisors.config import MetricsConfig
from supervisors.metrics import MetricsExporter

ACTORS = ("guard", "executor", "engine")


@dataclass
class _Child:
    state: str = "running"
    restarts: int = 0
    incarnation: int = 1
    last_hb_at: float = 0.0


@dataclass
class _Supervisor:
    order: tuple[str, ...] = ACTORS
    children: dict[str, _Child] = field(default_factory=lambda: {n: _Child() for n in ACTORS})


@dataclass
class _Bus:
    last: dict[str, Any] = field(default_factory=dict)

    def latest(self, topic: str) -> Any:
        return self.last.get(topic)


@dataclass
class _Daemon:
    supervisor: _Supervisor = field(default_factory=_Supervisor)
    bus: _Bus = field(default_factory=_Bus)


def _state(state: str, reason: str = "") -> TradingState:
    return TradingState(mode="live_trading", state=state, fail_closed=False, reasons=(), allowed=0,
                        blocked=0, daily_pnl=0.0, halt_reason=reason)


def samples(exporter: MetricsExporter, d: _Daemon, name: str) -> dict[str, float]:
    """``name``'s samples after a refresh, keyed by their one label's value ("" for none)."""
    exporter.refresh(d)  # type: ignore[arg-type]
    text = generate_latest(exporter.registry).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name:
                out[next(iter(s.labels.values()), "")] = s.value
    return out


def test_no_trading_state_yet_means_no_halted_series_rather_than_a_guess() -> None:
    assert samples(MetricsExporter(MetricsConfig()), _Daemon(), "arbd_halted") == {}


def test_not_halted_exports_every_cause_at_zero() -> None:
    d = _Daemon()
    d.bus.last["state"] = _state("armed")

    assert samples(MetricsExporter(MetricsConfig()), d, "arbd_halted") == {
        "session_stop": 0.0, "escalation": 0.0, "operator": 0.0}


def test_a_session_stop_is_exported_as_its_cause() -> None:
    d = _Daemon()
    d.bus.last["state"] = _state("halted", halt_reason(SESSION_STOP, "daily loss -3.1 exceeds max -0.5"))

    assert samples(MetricsExporter(MetricsConfig()), d, "arbd_halted") == {
        "session_stop": 1.0, "escalation": 0.0, "operator": 0.0}


def test_an_escalation_halt_and_an_operator_halt_are_told_apart() -> None:
    exporter, d = MetricsExporter(MetricsConfig()), _Daemon()
    d.bus.last["state"] = _state("halted", halt_reason(ESCALATION, "engine exceeded restart intensity"))
    assert samples(exporter, d, "arbd_halted")["escalation"] == 1.0

    d.bus.last["state"] = _state("halted", "operator halt")
    assert samples(exporter, d, "arbd_halted") == {"session_stop": 0.0, "escalation": 0.0, "operator": 1.0}


def test_escalations_are_counted_per_actor_from_the_supervisors_events() -> None:
    exporter, d = MetricsExporter(MetricsConfig()), _Daemon()
    assert samples(exporter, d, "arbd_supervisor_escalations_total") == dict.fromkeys(ACTORS, 0.0)

    exporter.on_supervisor_event("restart", {"actor": "engine"})
    exporter.on_supervisor_event("escalate", {"actor": "engine", "reason": "exceeded restart intensity"})

    assert samples(exporter, d, "arbd_supervisor_escalations_total") == {
        "guard": 0.0, "executor": 0.0, "engine": 1.0}
