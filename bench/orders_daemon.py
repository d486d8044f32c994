"""The daemon's half of ``bench.orders``: decision -> both legs acknowledged
with their fill state, in a real ``live_trading`` daemon at the soak's load.

A daemon (enabled, armed, the embedded exchange's test keys) trades on its
own embedded exchange with the soak's config at ``sim.update_hz=200``. Two views
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

import json
import re
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import zmq

from bench.floor import percentile
from messages import DecodeError, GuardDecision, OrderEvent, decode
from tests.soak.test_soak import MAX_EXPOSURE_KRW as SOAK_MAX_EXPOSURE_KRW
from tests.soak.test_soak import UPDATE_HZ as SOAK_UPDATE_HZ
from tests.support.daemon import wait_until
from tests.support.run_daemon import LIVE_TRADING, config, sim_runs, with_keys

# The soak's load, exactly (tests/soak/test_soak.py): its config, its exchange
# rate. A pair every couple of seconds across three coins is what the venues'
# order limits sustain with room (Upbit: 8 orders/s); a faster made-up load
# measures our own rate budget refusing, not an acknowledgement.
UPDATE_HZ = SOAK_UPDATE_HZ
FINAL = frozenset({"filled", "partially_filled", "cancelled", "rejected", "failed"})
CONFIG = config(LIVE_TRADING, {"position_adv": {"max_exposure_krw": SOAK_MAX_EXPOSURE_KRW}}, fast=False)


class AckObserver(threading.Thread):
    def __init__(self, endpoint: str) -> None:
        super().__init__(name="ack-observer", daemon=True)
        self.endpoint = endpoint
        self.decisions: dict[str, tuple[int, int]] = {}  # intent id -> (decision ts, legs)
        self.final: dict[str, dict[str, int]] = {}  # intent id -> cid -> first final event ts
        self.unsent: set[str] = set()
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
                    if msg.status == "failed" and msg.reason.startswith("not sent"):
                        self.unsent.add(msg.intent_id)  # refused by us, never acknowledged by a venue
        finally:
            ctx.destroy(linger=0)

    def acks_ms(self, t0: int, t1: int) -> list[float]:
        out = []
        for iid, (ts, legs) in self.decisions.items():
            f = self.final.get(iid, {})
            if t0 <= ts <= t1 and len(f) == legs and iid not in self.unsent:
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


class FloorPairs(threading.Thread):
    """The floor in the same run: a bare signed pair (``bench.orders._bare_pair``)
    every ``every_s`` against the daemon's own exchange under the same load (its
    market data, the daemon's processes on the same two cores), while the
    daemon is not armed: the test account is the daemon's, and pairs sent
    while it trades would take its rate budget and crowd its private stream.
    Pairs alternate buy/sell so balances stay put."""

    def __init__(self, urls: dict[str, Any], every_s: float = 1.0) -> None:
        super().__init__(name="floor-pairs", daemon=True)
        self.urls, self.every_s = urls, every_s
        self.samples: list[tuple[int, float]] = []  # (wall ns, ms)
        self.errors = 0
        self._halt = threading.Event()

    def run(self) -> None:
        import asyncio

        import aiohttp

        from bench.orders import Prices, _bare_pair

        async def main() -> None:
            prices = Prices(self.urls)
            async with aiohttp.ClientSession() as http:
                i = 0
                while not self._halt.is_set():
                    try:
                        await prices.refresh(http)
                        t0 = time.perf_counter()
                        await _bare_pair(http, self.urls, prices, i)
                        self.samples.append((time.time_ns(), (time.perf_counter() - t0) * 1e3))
                    except (AssertionError, aiohttp.ClientError, TimeoutError, ValueError, KeyError):
                        self.errors += 1  # a refusal (its rate limit, its balance) is not a floor sample
                    i += 1
                    await asyncio.sleep(self.every_s)

        asyncio.run(main())

    def window(self, t0: int, t1: int) -> list[float]:
        return sorted(ms for ts, ms in self.samples if t0 <= ts <= t1)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def measure_daemon(seconds: float, root: Path, floor_s: float = 30.0) -> dict[str, Any]:
    """The floor first (the daemon running, not armed: the same exchange under the
    same market-data load, nothing else ordering), then the daemon armed."""
    with sim_runs(root) as runs:
        run = runs.make(CONFIG, env=with_keys(), args=("--set", f"sim.update_hz={UPDATE_HZ}"),
                        timeout=60, max_runtime_s=seconds + floor_s + 240)
        obs = AckObserver(run.endpoints().bus_out)
        obs.start()
        obs.ready.wait(5)
        floor = FloorPairs(json.loads(run.run.sim_file.read_text()), every_s=0.5)
        try:
            wait_until(lambda: not run.status()["fail_closed"] or None, 60, "fresh quotes everywhere",
                       interval=0.2)
            floor.start()
            threading.Event().wait(floor_s)  # a measured stretch, not a synchronisation
        finally:
            floor.stop()
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
    bare = floor.window(0, t0)
    unsent = sum(1 for iid in obs.unsent if t0 <= obs.decisions.get(iid, (0, 0))[0] <= t1)
    return {"seconds": seconds, "update_hz": UPDATE_HZ, "decisions": len(acks), "unsent": unsent,
            "exchange_orders": orders,
            "exact_p50_ms": round(percentile(acks, 50), 3) if acks else None,
            "exact_p99_ms": round(percentile(acks, 99), 3) if acks else None,
            "exact_max_ms": round(acks[-1], 3) if acks else None,
            "floor_pairs": len(bare), "floor_errors": floor.errors,
            "floor_p50_ms": round(percentile(bare, 50), 3) if bare else None,
            "floor_p99_ms": round(percentile(bare, 99), 3) if bare else None,
            "hist_p50_ms": _round(hist_quantile(0.5, h0, h1)), "hist_p99_ms": _round(hist_quantile(0.99, h0, h1))}


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
