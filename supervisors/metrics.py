"""The one Prometheus exporter, in the supervisor process, so it stays up
while actors restart. Counters are carried across actor incarnations so
they stay monotonic; everything is assembled at refresh time from the
supervisor's table, heartbeats and the bus's last values."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from arbitrage.trading_state import HALT_CAUSES, HALTED, halt_cause
from messages import EventNote, Heartbeat, PositionState, TradingState
from supervisors import metricnames
from supervisors.config import MetricsConfig

if TYPE_CHECKING:
    from supervisors.daemon import Daemon

log = logging.getLogger("arbd.metrics")

STATE_CODES = {"disarmed": 0, "armed": 1, "halted": 2}


class MetricsExporter:
    def __init__(self, cfg: MetricsConfig) -> None:
        self.cfg = cfg
        self.registry = CollectorRegistry(auto_describe=False)
        self._families: list[Any] = []
        self._lock = threading.Lock()
        self._last_hb: dict[str, Heartbeat] = {}
        self._carried: dict[str, dict[str, float]] = defaultdict(dict)  # actor -> key -> sum of past incarnations
        self._sup_events: dict[tuple[str, str], int] = defaultdict(int)
        self._event_counts: dict[str, int] = defaultdict(int)
        self._decode_errors_sup = 0
        self._server: Any = None
        self.registry.register(self)

    # prometheus_client collector protocol
    def collect(self) -> Any:
        with self._lock:
            return list(self._families)

    def start(self) -> None:
        if not self.cfg.enabled:
            return
        try:
            self._server, _ = start_http_server(self.cfg.port, addr=self.cfg.host, registry=self.registry)
        except OSError as e:
            log.error("metrics exporter could not bind %s:%s (%s); continuing without it",
                      self.cfg.host, self.cfg.port, e)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- inputs ------------------------------------------------------------------
    def on_heartbeat(self, hb: Heartbeat) -> None:
        prev = self._last_hb.get(hb.actor)
        if prev is not None and prev.incarnation != hb.incarnation:
            carried = self._carried[hb.actor]
            for k, v in self._cumulative(prev).items():
                carried[k] = carried.get(k, 0.0) + v
        self._last_hb[hb.actor] = hb

    @staticmethod
    def _cumulative(hb: Heartbeat) -> dict[str, float]:
        out = {"msgs_in": float(hb.msgs_in), "msgs_out": float(hb.msgs_out), "gaps": float(hb.gaps),
               "decode_errors": float(hb.decode_errors)}
        for k, v in hb.counters.items():
            if not k.startswith("g."):
                out[k] = float(v)
        return out

    def carried(self, actor: str, key: str) -> float:
        return self._carried.get(actor, {}).get(key, 0.0)

    def total(self, actor: str, key: str) -> float:
        hb = self._last_hb.get(actor)
        cur = self._cumulative(hb).get(key, 0.0) if hb is not None else 0.0
        return cur + self.carried(actor, key)

    def on_supervisor_event(self, kind: str, data: dict[str, object]) -> None:
        self._sup_events[(str(data.get("actor")), kind)] += 1

    def on_event(self, note: EventNote) -> None:
        self._event_counts[note.event_type] += 1

    def decode_error(self, where: str) -> None:
        self._decode_errors_sup += 1

    # -- assembly ------------------------------------------------------------------
    def refresh(self, d: Daemon) -> None:
        fams: list[Any] = []
        now = time.monotonic()
        up = GaugeMetricFamily("arbd_actor_up", "1 when the actor is running and heartbeating", labels=["actor"])
        restarts = CounterMetricFamily("arbd_actor_restarts", "Restarts of the actor since the daemon started", labels=["actor"])
        hb_age = GaugeMetricFamily("arbd_actor_heartbeat_age_seconds", "Age of the last heartbeat", labels=["actor"])
        rss = GaugeMetricFamily("arbd_actor_rss_bytes", "Resident memory of the actor process", labels=["actor"])
        lat = GaugeMetricFamily("arbd_actor_loop_latency_seconds", "Mailbox latency measured by the last heartbeat", labels=["actor"])
        m_in = CounterMetricFamily("arbd_actor_messages_in", "Messages delivered to the actor", labels=["actor"])
        m_out = CounterMetricFamily("arbd_actor_messages_out", "Messages sent by the actor", labels=["actor"])
        gaps = CounterMetricFamily("arbd_bus_sequence_gaps", "Sequence gaps seen by the actor's subscriber", labels=["actor"])
        dec = CounterMetricFamily("arbd_decode_errors", "Frames dropped as undecodable", labels=["actor"])
        for name in d.supervisor.order:
            c = d.supervisor.children[name]
            hb = self._last_hb.get(name)
            up.add_metric([name], 1.0 if c.state == "running" else 0.0)
            restarts.add_metric([name], float(c.restarts))
            if hb is not None and hb.incarnation == c.incarnation:
                hb_age.add_metric([name], now - c.last_hb_at)
                rss.add_metric([name], hb.rss_mb * 1e6)
                lat.add_metric([name], hb.loop_latency_ms / 1e3)
            m_in.add_metric([name], self.total(name, "msgs_in"))
            m_out.add_metric([name], self.total(name, "msgs_out"))
            gaps.add_metric([name], self.total(name, "gaps"))
            dec.add_metric([name], self.total(name, "decode_errors"))
        dec.add_metric(["supervisor"], float(self._decode_errors_sup))
        # The daemon exits a few seconds after an escalation: the alert on this
        # counter looks back over a window (max_over_time) so one scrape is enough.
        esc = CounterMetricFamily("arbd_supervisor_escalations",
                                  "Children that restarted past their intensity (trading halted, daemon exits)",
                                  labels=["actor"])
        for name in d.supervisor.order:
            esc.add_metric([name], float(self._sup_events.get((name, "escalate"), 0)))
        fams += [up, restarts, hb_age, rss, lat, m_in, m_out, gaps, dec, esc]
        fams += self._actor_metrics()
        fams += self._trading_metrics(d)
        with self._lock:
            self._families = fams

    def _actor_metrics(self) -> list[Any]:
        """Families declared by actors through prefixed counter keys."""
        counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        hists: dict[str, dict[str, float]] = defaultdict(dict)
        for actor, hb in self._last_hb.items():
            keys = set(hb.counters) | {k for k in self._carried.get(actor, {}) if "." in k}
            for k in keys:
                parsed = metricnames.parse(k)
                if parsed is None:
                    continue
                kind, metric, labels = parsed
                if kind == "g":
                    if k in hb.counters:
                        gauges[metric][tuple(sorted(labels.items()))] = float(hb.counters[k])
                    continue
                value = float(hb.counters.get(k, 0.0)) + self._carried.get(actor, {}).get(k, 0.0)
                if kind == "c":
                    lk = tuple(sorted(labels.items()))
                    counters[metric][lk] = counters[metric].get(lk, 0.0) + value
                else:
                    part = labels.get("le", k.rsplit("|", 1)[-1])
                    hists[metric][part] = hists[metric].get(part, 0.0) + value
        out: list[Any] = []
        for metric, series in counters.items():
            names = [n for n, _ in next(iter(series))] if series else []
            fam = CounterMetricFamily(metric, f"{metric} (from actors)", labels=names)
            for lk, v in series.items():
                fam.add_metric([v2 for _, v2 in lk], v)
            out.append(fam)
        for metric, series in gauges.items():
            names = [n for n, _ in next(iter(series))] if series else []
            fam = GaugeMetricFamily(metric, f"{metric} (from actors)", labels=names)
            for lk, v in series.items():
                fam.add_metric([v2 for _, v2 in lk], v)
            out.append(fam)
        for metric, parts in hists.items():
            buckets = [(str(b), parts.get(str(b), 0.0)) for b in metricnames.LATENCY_BUCKETS_S]
            buckets.append(("+Inf", parts.get("+Inf", 0.0)))
            out.append(HistogramMetricFamily(metric, f"{metric} (from actors)", buckets=buckets,
                                             sum_value=parts.get("sum", 0.0)))
        return out

    def _trading_metrics(self, d: Daemon) -> list[Any]:
        out: list[Any] = []
        ts = d.bus.latest("state")
        state = GaugeMetricFamily("arbd_trading_state", "0 disarmed, 1 armed, 2 halted")
        fc = GaugeMetricFamily("arbd_fail_closed", "1 while trading is fail-closed")
        halted = GaugeMetricFamily("arbd_halted", "1 for the cause of the current halt: session_stop "
                                   "(daily loss), escalation (supervisor) or operator", labels=["cause"])
        if isinstance(ts, TradingState):
            state.add_metric([], float(STATE_CODES.get(ts.state, 0)))
            fc.add_metric([], 1.0 if ts.fail_closed else 0.0)
            cause = halt_cause(ts.halt_reason) if ts.state == HALTED else ""
            for c in HALT_CAUSES:
                halted.add_metric([c], 1.0 if c == cause else 0.0)
        else:
            fc.add_metric([], 1.0)
        out += [state, fc, halted]
        pos = d.bus.latest("position")
        if isinstance(pos, PositionState):
            out.append(GaugeMetricFamily("arbd_pnl_krw", "Realised PnL (KRW)", value=pos.realized_pnl_krw))
            out.append(GaugeMetricFamily("arbd_daily_pnl_krw", "Today's realised PnL (KRW)", value=pos.daily_pnl_krw))
            out.append(GaugeMetricFamily("arbd_exposure_krw", "KRW value of open pairs", value=pos.exposure_krw))
            for g, v in pos.gauges.items():
                out.append(GaugeMetricFamily(g, f"{g} (D14)", value=float(v)))
        ev = CounterMetricFamily("arbd_live_events", "Event-log events by type", labels=["event_type"])
        for t, n in sorted(self._event_counts.items()):
            ev.add_metric([t], float(n))
        out.append(ev)
        failclosed = float(self._event_counts.get("fail_closed", 0))
        out.append(CounterMetricFamily("arbd_failclosed_events", "Fail-closed events", value=failclosed))
        # The seed's own names, as its PromQL uses them (increase(live_event_count[1h])):
        # monotonic within a daemon run, so increase() reads them like counters.
        out.append(GaugeMetricFamily("live_event_count", "Event-log events, all types (D14 name)",
                                     value=float(sum(self._event_counts.values()))))
        out.append(GaugeMetricFamily("failclosed_events", "Fail-closed events (D14 name)", value=failclosed))
        return out
