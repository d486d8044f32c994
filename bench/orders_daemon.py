"""The daemon's half of ``bench.orders``: decision -> both legs acknowledged
with their fill state, in a real ``live_trading`` daemon at the soak's load.

A daemon (enabled, armed, the embedded exchange's test keys) trades on its
own embedded exchange at ``sim.update_hz=200`` (the soak's rate) with a
short cooldown, so pairs open and close several times a second. Two views
of the same figure:

- ``arbd_decision_to_ack_seconds`` from the daemon's ``/metrics`` (what the
  dashboard shows), its p50 / p99 interpolated inside the buckets as
  Prometheus' ``histogram_quantile`` does;
- exact per decision, from the bus: the guard's copy of each decision (its
  ``ts_ns``) and the executor's order events (the first event of each leg
  with a final state, ``done``); the decision is acknowledged when the last
  of its legs is.

``measure_daemon(seconds, root) -> dict``; ``python -m bench.orders`` prints it.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import zmq

from bench.floor import percentile
from messages import DecodeError, GuardDecision, OrderEvent, decode
from tests.support.daemon import wait_until
from tests.support.run_daemon import LIVE_TRADING, config, sim_runs, with_keys

UPDATE_HZ = 200  # the soak's load (tests/soak/test_soak.py)
FINAL = frozenset({"filled", "partially_filled", "cancelled", "rejected", "failed"})
CONFIG = config(LIVE_TRADING, {
    "position_adv": {"base_position_size_krw": 60_000, "max_exposure_krw": 2_000_000},
    "strategy": {"cooldown_s": 0.3, "max_hold_s": 3, "max_open_pairs_per_symbol": 1},
    "engine": {"entry_threshold_pct": 0.05, "exit_threshold_pct": 0.05},
}, fast=False)


class AckObserver(threading.Thread):
    def __init__(self, endpoint: str) -> None:
        super().__init__(name="ack-observer", daemon=True)
        self.endpoint = endpoint
        self.decisions: dict[str, tuple[int, int]] = {}  # intent id -> (decision ts, legs)
        self.final: dict[str, dict[str, int]] = {}  # intent id -> cid -> first final event ts
        self.ready = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 0)
        for t in (b"decision", b"order."):
            sub.setsockopt(zmq.SUBSCRIBE, t)
        sub.connect(self.endpoint)
        self.ready.set()
        try:
            while not self._halt.is_set():
                if not sub.poll(100):
                    continue
                try:
                    _topic, frame = sub.recv_multipart(zmq.NOBLOCK)
                    msg = decode(frame).msg
                except (zmq.Again, ValueError, DecodeError):
                    continue
                if type(msg) is GuardDecision and msg.allowed:
                    self.decisions[msg.intent.id] = (msg.ts_ns, len(msg.intent.legs))
                elif type(msg) is OrderEvent and msg.status in FINAL:
                    self.final.setdefault(msg.intent_id, {}).setdefault(msg.client_order_id, msg.ts_ns)
        finally:
            ctx.destroy(linger=0)

    def acks_ms(self, t0: int, t1: int) -> list[float]:
        out = []
        for iid, (ts, legs) in self.decisions.items():
            f = self.final.get(iid, {})
            if t0 <= ts <= t1 and len(f) == legs:
                out.append((max(f.values()) - ts) / 1e6)
        return sorted(out)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _histogram(port: int) -> list[tuple[float, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = []
    for m in re.finditer(r'^arbd_decision_to_ack_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} ([0-9.e+-]+)$',
                         text, re.M):
        out.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2))))
    return sorted(out)


def hist_quantile(q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` over the window's increase, in ms (linear inside a bucket)."""
    prev = dict(before)
    buckets = [(le, c - prev.get(le, 0.0)) for le, c in after]
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank, lo, lo_count = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lo * 1e3
            width = count - lo_count
            return (lo + (le - lo) * ((rank - lo_count) / width if width else 1.0)) * 1e3
        lo, lo_count = le, count
    return None


def measure_daemon(seconds: float, root: Path) -> dict[str, Any]:
    with sim_runs(root) as runs:
        run = runs.make(CONFIG, env=with_keys(), args=("--set", f"sim.update_hz={UPDATE_HZ}"),
                        timeout=60, max_runtime_s=seconds + 240)
        obs = AckObserver(run.endpoints().bus_out)
        obs.start()
        obs.ready.wait(5)
        try:
            run.arm_live()
            wait_until(lambda: obs.acks_ms(0, time.time_ns()) or None, 90, "the first acknowledged decision",
                       interval=0.2)
            port = run.config["metrics"]["port"]
            h0 = _histogram(port)
            t0 = time.time_ns()
            threading.Event().wait(seconds)
            t1 = time.time_ns()
            threading.Event().wait(1.5)  # the last decisions' legs, and one heartbeat of counters
            h1 = _histogram(port)
            orders = len(run.sim_orders())
        finally:
            obs.stop()
    acks = obs.acks_ms(t0, t1)
    return {"seconds": seconds, "update_hz": UPDATE_HZ, "decisions": len(acks), "exchange_orders": orders,
            "exact_p50_ms": round(percentile(acks, 50), 3) if acks else None,
            "exact_p99_ms": round(percentile(acks, 99), 3) if acks else None,
            "exact_max_ms": round(acks[-1], 3) if acks else None,
            "hist_p50_ms": _round(hist_quantile(0.5, h0, h1)), "hist_p99_ms": _round(hist_quantile(0.99, h0, h1))}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
