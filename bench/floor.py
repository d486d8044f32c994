"""The transport floor: raw pyzmq DEALER/ROUTER ping-pong between two spawned
processes over ``ipc://``, a msgpack payload decoded and re-encoded on the
server and decoded on the client (no envelope, no validation, no actors).

Every other benchmark reports its latency as a ratio to this number, so it
is deliberately the simplest thing that crosses two processes. It calls
``msgpack`` directly on purpose: it measures what the codec and the runtime
are built on, not the codec. Usage from another benchmark::

    from bench.floor import ping_pong_floor
    floor = ping_pong_floor(n=5000)          # FloorResult(p50_us=..., p99_us=...)

or alone: ``python -m bench.floor [--n N] [--payload-bytes B]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

import msgpack
import zmq


def default_payload(size: int = 100) -> dict[str, Any]:
    """A book-top-like dict whose msgpack encoding is about ``size`` bytes."""
    p: dict[str, Any] = {"symbol": "BTC-USDT", "bid": 97123.45, "ask": 97124.1, "bid_size": 0.512,
                         "ask_size": 1.25, "ts": 1_700_000_000_123_456_789, "seq": 1, "pad": ""}
    base = len(msgpack.packb(p, use_bin_type=True))
    p["pad"] = "x" * max(0, size - base)
    while p["pad"] and len(msgpack.packb(p, use_bin_type=True)) > size:
        p["pad"] = p["pad"][:-1]  # a longer string may need a longer header
    return p


@dataclass(frozen=True)
class FloorResult:
    n: int
    payload_bytes: int
    p50_us: float
    p90_us: float
    p99_us: float
    mean_us: float
    max_us: float
    complete: bool  # False when the deadline cut the run short


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]


def summarize_us(samples_ns: list[int]) -> dict[str, float]:
    us = sorted(s / 1000 for s in samples_ns)
    return {"p50_us": percentile(us, 50), "p90_us": percentile(us, 90), "p95_us": percentile(us, 95),
            "p99_us": percentile(us, 99), "mean_us": statistics.fmean(us) if us else float("nan"),
            "max_us": us[-1] if us else float("nan")}


def _server(endpoint: str, ready: Any, total: int, deadline_s: float) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.LINGER, 0)
    s.bind(endpoint)
    ready.set()
    deadline = time.monotonic() + deadline_s
    done = 0
    try:
        while done < total and time.monotonic() < deadline:
            if not s.poll(100):
                continue
            ident, frame = s.recv_multipart()
            obj = msgpack.unpackb(frame, raw=False)
            s.send_multipart([ident, msgpack.packb(obj, use_bin_type=True)])
            done += 1
    finally:
        ctx.destroy(linger=0)


def _client(endpoint: str, payload: dict[str, Any], n: int, warmup: int, deadline_s: float,
            out: Any, gap_s: float = 0.0) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    samples: list[int] = []
    deadline = time.monotonic() + deadline_s
    try:
        for i in range(n + warmup):
            if time.monotonic() > deadline:
                break
            payload["seq"] = i
            if gap_s:
                time.sleep(gap_s)
            t0 = time.perf_counter_ns()
            s.send(msgpack.packb(payload, use_bin_type=True))
            if not s.poll(5000):
                break
            msgpack.unpackb(s.recv(), raw=False)
            dt = time.perf_counter_ns() - t0
            if i >= warmup:
                samples.append(dt)
    finally:
        ctx.destroy(linger=0)
        out.send(samples)
        out.close()


def ping_pong_floor(n: int = 20_000, payload: dict[str, Any] | None = None, warmup: int = 1_000,
                    deadline_s: float = 60.0, gap_s: float = 0.0) -> FloorResult:
    """Round-trip latency of ``n`` ping-pongs between two spawned processes over ipc.

    ``gap_s``: a pause before each ping. Back to back, both processes stay
    on their cores; a quote stream at 1-1,000/s wakes them from idle every
    time, which on a VM costs more than the socket (see ``--gap-ms``)."""
    payload = payload if payload is not None else default_payload()
    size = len(msgpack.packb(payload, use_bin_type=True))
    mp = multiprocessing.get_context("spawn")
    tmp = tempfile.mkdtemp(prefix="arbd-floor-")
    endpoint = f"ipc://{tmp}/pingpong"
    ready = mp.Event()
    recv_end, send_end = mp.Pipe(duplex=False)
    server = mp.Process(target=_server, args=(endpoint, ready, n + warmup, deadline_s + 10),
                        name="floor-server")
    client = mp.Process(target=_client, args=(endpoint, payload, n, warmup, deadline_s, send_end, gap_s),
                        name="floor-client")
    try:
        server.start()
        if not ready.wait(30):
            raise RuntimeError("floor server did not start")
        client.start()
        send_end.close()
        samples: list[int] = recv_end.recv() if recv_end.poll(deadline_s + 30) else []
    finally:
        for p in (client, server):
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        shutil.rmtree(tmp, ignore_errors=True)
    s = summarize_us(samples)
    return FloorResult(n=len(samples), payload_bytes=size, p50_us=s["p50_us"], p90_us=s["p90_us"],
                       p99_us=s["p99_us"], mean_us=s["mean_us"], max_us=s["max_us"],
                       complete=len(samples) == n)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="timed round trips (default 20000)")
    ap.add_argument("--payload-bytes", type=int, default=100, help="msgpack payload size (default 100)")
    ap.add_argument("--gap-ms", type=float, default=0.0,
                    help="pause before each ping, ms (default 0: back to back; try 5 for wake-ups from idle)")
    args = ap.parse_args(argv)
    r = ping_pong_floor(args.n, default_payload(args.payload_bytes), gap_s=args.gap_ms / 1e3,
                        deadline_s=max(60.0, 2 * args.n * args.gap_ms / 1e3))
    print(f"floor: DEALER/ROUTER ipc, {r.payload_bytes} B msgpack, n={r.n}, gap {args.gap_ms:g} ms: "
          f"p50 {r.p50_us:.1f} us  p90 {r.p90_us:.1f} us  p99 {r.p99_us:.1f} us  max {r.max_us:.0f} us")
    print(json.dumps({"floor": asdict(r)}))
    return 0 if r.complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
