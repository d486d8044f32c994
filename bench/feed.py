"""Feed benchmark: how many frames per second one feed actor parses and
publishes, against a bare ``websockets`` receive loop on the same stream.

A **blaster** process speaks just enough WebSocket (RFC 6455 handshake,
unmasked server frames) to push a pre-built stream of exchange frames in
large writes, so the sender is never the bottleneck. The stream is Upbit's
orderbook (15 levels, binary JSON, every coin plus KRW-USDT) or Binance's
combined partial depth (20 levels of decimal strings, increasing update ids).
Two consumers read the same ``N`` frames, one after the other:

1. **bare** - a spawned process running ``async for frame in ws: n += 1``
   with the same ``websockets`` client the feed uses (no parsing);
   **client+parse** - ``FeedClient`` and the adapter in a spawned process,
   ``on_top`` only counts (where the time goes: parsing vs publishing);
2. **feed** - the real thing: a real ``arbd`` daemon whose ``feed.<venue>``
   is the shipped ``FeedActor`` (``FeedClient`` + the venue adapter + the
   host's publish path: outbox, I/O thread, codec, PUB, the bus proxy), every
   other actor a quiet test role. Counted at a SUB on the bus: a frame counts
   once its ``BookTop`` is out of the proxy.

Rates are frames over the time from the first to the last frame at the
consumer. Prints a table and, last, one JSON line. Targets: feed >= 0.5x the
bare loop and >= 20,000 frames/s. Loopback only; every wait has a deadline.

``python -m bench.feed [--venue upbit|binance|both] [--frames N] [--json]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

from messages import BookTop, DecodeError, decode
from tests.support.daemon import ACTORS, DaemonRun, runtime_config

ROLES = "tests.support.roles"
TARGET_RATIO = 0.5
TARGET_FPS = 20_000
COINS = ("BTC", "ETH", "XRP")
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


# -- the stream ---------------------------------------------------------------------------

def upbit_frames(n_distinct: int, seed: int = 1) -> list[bytes]:
    """Upbit orderbook messages (15 levels) cycling over every coin and KRW-USDT."""
    rng = random.Random(seed)
    mids = {"BTC": 96_000_000.0, "ETH": 4_900_000.0, "XRP": 840.0, "USDT": 1_400.0}
    ticks = {"BTC": 1000.0, "ETH": 1000.0, "XRP": 1.0, "USDT": 1.0}
    codes = list(mids)
    now_ms = int(time.time() * 1000)
    out = []
    for i in range(n_distinct):
        coin = codes[i % len(codes)]
        t = ticks[coin]
        mid = round(mids[coin] * (1 + rng.gauss(0, 1e-4)) / t) * t
        units = [{"ask_price": mid + t * (k + 1), "bid_price": mid - t * k,
                  "ask_size": round(rng.uniform(0.001, 2.0), 8), "bid_size": round(rng.uniform(0.001, 2.0), 8)}
                 for k in range(15)]
        msg = {"type": "orderbook", "code": f"KRW-{coin}", "timestamp": now_ms,
               "total_ask_size": round(sum(u["ask_size"] for u in units), 8),
               "total_bid_size": round(sum(u["bid_size"] for u in units), 8),
               "orderbook_units": units, "stream_type": "REALTIME", "level": 0}
        out.append(json.dumps(msg, separators=(",", ":")).encode())
    return out


def binance_templates(n_distinct: int, seed: int = 1) -> list[str]:
    """Combined partial-depth frames (20 levels) with an update-id slot ``__UID__``."""
    rng = random.Random(seed)
    mids = {"BTC": 68_000.0, "ETH": 3_500.0, "XRP": 0.6}
    out = []
    for i in range(n_distinct):
        coin = COINS[i % len(COINS)]
        dec = 2 if coin != "XRP" else 4
        tick = 10.0 ** -dec
        mid = mids[coin] * (1 + rng.gauss(0, 1e-4))
        bids = [[f"{mid - tick * (k + 1):.{dec}f}", f"{rng.uniform(0.001, 2.0):.8f}"] for k in range(20)]
        asks = [[f"{mid + tick * (k + 1):.{dec}f}", f"{rng.uniform(0.001, 2.0):.8f}"] for k in range(20)]
        msg = {"stream": f"{coin.lower()}usdt@depth20@100ms",
               "data": {"lastUpdateId": "__UID__", "bids": bids, "asks": asks}}
        out.append(json.dumps(msg, separators=(",", ":")).replace('"__UID__"', "__UID__"))
    return out


def ws_frame(payload: bytes, binary: bool) -> bytes:
    """One unmasked, unfragmented server frame."""
    head = 0x82 if binary else 0x81
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", head, n) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", head, 126, n) + payload
    return struct.pack("!BBQ", head, 127, n) + payload


def build_stream(venue: str, n: int) -> bytes:
    """``n`` WebSocket frames of ``venue``, concatenated, ready to write."""
    if venue == "upbit":
        frames = upbit_frames(256)
        return b"".join(ws_frame(frames[i % len(frames)], True) for i in range(n))
    tpl = binance_templates(256)
    return b"".join(ws_frame(tpl[i % len(tpl)].replace("__UID__", str(i + 1)).encode(), False)
                    for i in range(n))


# -- the blaster (its own process) ----------------------------------------------------------

def _blaster(venue: str, n: int, port_out: Any, go: Any, deadline_s: float) -> None:
    stream = build_stream(venue, n)
    chunk = 1 << 20

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await writer.drain()
        drain = asyncio.ensure_future(_discard(reader))  # subscribe requests, pings: read and drop
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(None, go.wait, deadline_s)  # the consumer is ready
        try:
            if ok:
                for i in range(0, len(stream), chunk):
                    writer.write(stream[i:i + chunk])
                    await writer.drain()
            await asyncio.wait_for(drain, timeout=deadline_s)  # hold the connection until the peer leaves
        except (ConnectionError, TimeoutError):
            pass
        finally:
            drain.cancel()
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_out.send(server.sockets[0].getsockname()[1])
        port_out.close()
        async with server:
            await asyncio.sleep(deadline_s)

    asyncio.run(main())


async def _discard(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


class Blaster:
    """The blaster process for one consumer: ``url``, ``go()``, ``stop()``."""

    def __init__(self, venue: str, n: int, deadline_s: float = 120.0) -> None:
        mp = multiprocessing.get_context("spawn")
        recv, send = mp.Pipe(duplex=False)
        self._go = mp.Event()
        self.proc = mp.Process(target=_blaster, args=(venue, n, send, self._go, deadline_s), name="blaster")
        self.proc.start()
        send.close()
        if not recv.poll(30):
            self.stop()
            raise RuntimeError("blaster did not start")
        port = recv.recv()
        path = "/websocket/v1" if venue == "upbit" else "/ws"
        self.url = f"ws://127.0.0.1:{port}{path}"

    def go(self) -> None:
        self._go.set()

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)


# -- 1. the bare receive loop (its own process) -----------------------------------------------

def _bare(url: str, n: int, out: Any, deadline_s: float) -> None:
    from websockets.asyncio.client import connect

    async def main() -> tuple[int, float]:
        async with connect(url, ping_interval=None, compression=None, max_size=1 << 20,
                           proxy=None) as ws:
            count, t0, t1 = 0, 0.0, 0.0
            end = time.monotonic() + deadline_s
            async for _frame in ws:
                count += 1
                if count == 1:
                    t0 = time.perf_counter()
                if count >= n or time.monotonic() > end:
                    t1 = time.perf_counter()
                    break
            return count, t1 - t0

    try:
        out.send(asyncio.run(main()))
    finally:
        out.close()


def _run_consumer(venue: str, n: int, deadline_s: float, target: Any, args: tuple[Any, ...],
                  name: str) -> Any:
    """Run ``target(*args, url, n, pipe, deadline_s)`` in a process of its own
    against a fresh blaster; return what it sends back on the pipe."""
    blaster = Blaster(venue, n, deadline_s + 30)
    mp = multiprocessing.get_context("spawn")
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=target, args=(*args, blaster.url, n, send, deadline_s), name=name)
    try:
        proc.start()
        send.close()
        blaster.go()
        if not recv.poll(deadline_s + 30):
            raise RuntimeError(f"{name} consumer did not finish")
        return recv.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        blaster.stop()


def measure_bare(venue: str, n: int, deadline_s: float = 60.0) -> dict[str, Any]:
    count, secs = _run_consumer(venue, n, deadline_s, _bare, (), "bare-loop")
    return {"frames": count, "seconds": secs, "fps": (count - 1) / secs if secs > 0 else 0.0}


# -- 1b. FeedClient + adapter, no publishing (its own process) -----------------------------------

def _parse_only(venue: str, url: str, n: int, out: Any, deadline_s: float) -> None:
    import threading

    from venues import make_adapter
    from venues.feed_client import FeedClient

    state = {"n": 0, "t0": 0.0, "t1": 0.0}
    done = threading.Event()

    def on_top(_top: Any) -> None:
        state["n"] += 1
        if state["n"] == 1:
            state["t0"] = time.perf_counter()
        if state["n"] >= n:
            state["t1"] = time.perf_counter()
            done.set()

    client = FeedClient(make_adapter(venue, COINS, max_exchange_age_s=600.0), url, COINS, on_top,
                        stale_after_s=120.0)
    client.run_in_thread()
    try:
        done.wait(deadline_s)
        out.send((state["n"], (state["t1"] or time.perf_counter()) - state["t0"],
                  dict(client.snapshot().bad_frames)))
    finally:
        client.stop(2.0)
        out.close()


def measure_parse_only(venue: str, n: int, deadline_s: float = 60.0) -> dict[str, Any]:
    count, secs, bad = _run_consumer(venue, n, deadline_s, _parse_only, (venue,), "parse-only")
    return {"frames": count, "seconds": secs, "fps": (count - 1) / secs if secs > 0 else 0.0, "bad": bad}


# -- 2. the real feed actor ---------------------------------------------------------------------

def _feed_config(venue: str, url: str) -> dict[str, Any]:
    roles = {name: f"{ROLES}:NullActor" for name in ACTORS}
    for name in ("guard", "executor", "position"):  # these names own an inbox endpoint
        roles[name] = f"{ROLES}:InboxNullActor"
    del roles[f"feed.{venue}"]  # the shipped FeedActor
    venues: dict[str, Any] = {"source": "live", "symbols": list(COINS)}
    venues["upbit_ws" if venue == "upbit" else "binance_ws"] = url
    cfg = runtime_config({
        "venues": venues,
        # The stream starts when the bench says go: no stale reconnect before that,
        # and frames built at start-up stay fresh for the whole run.
        "feeds": {"stale_after_s": 120.0, "max_exchange_age_s": 600.0},
    }, fast=False)
    cfg["testing"]["role_overrides"] = roles  # replaced, not merged: the feed keeps its shipped role
    return cfg


def measure_feed(venue: str, n: int, root: Path, deadline_s: float = 90.0) -> dict[str, Any]:
    blaster = Blaster(venue, n, deadline_s + 60)
    run = DaemonRun(root / f"feed-{venue}", _feed_config(venue, blaster.url))
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    try:
        run.start(timeout=60, max_runtime_s=deadline_s + 60)
        sub.setsockopt(zmq.SUBSCRIBE, f"book.{venue}".encode())
        # Every book is on the feed's own stream (the bus gets ten a second per
        # book). Join before the stream starts: wait for the connection's
        # handshake, then give the subscription it carries a moment to land.
        mon = sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        sub.connect(run.endpoints().stream(f"feed.{venue}"))
        if not mon.poll(15_000):
            raise RuntimeError(f"could not connect to feed.{venue}'s stream")
        sub.disable_monitor()
        mon.close(linger=0)
        time.sleep(0.2)
        blaster.go()
        count = bad = 0
        t0 = t1 = 0.0
        end = time.monotonic() + deadline_s
        while count < n and time.monotonic() < end:
            if not sub.poll(3000):
                if count:
                    break  # the stream is over and some books never came: report them lost
                continue
            topic, frame = sub.recv_multipart()
            t = time.perf_counter()
            if count % 1000 == 0:  # check a sample; decoding every frame here would take a core
                try:
                    ok = type(decode(frame).msg) is BookTop
                except DecodeError:
                    ok = False
                if not ok:
                    bad += 1
                    continue
            count += 1
            if count == 1:
                t0 = t
            t1 = t
        restarts = sum(1 for r in run.restart_log() if r["actor"] == f"feed.{venue}" and r["event"] == "restart")
        peak_rss = max((a["rss_mb"] or 0.0) for a in run.status()["actors"] if a["name"] == f"feed.{venue}")
    finally:
        sub.close(linger=0)
        ctx.term()
        run.cleanup()
        blaster.stop()
    secs = t1 - t0
    return {"frames": count, "bad": bad, "seconds": secs, "fps": (count - 1) / secs if secs > 0 else 0.0,
            "complete": count >= n, "restarts": restarts, "rss_mb_at_end": peak_rss}


# -- the run ---------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model or platform.processor(), "python": platform.python_version()}


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) clock ticks of all CPUs so far, from /proc/stat ((0, 0) without it)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """CPU time the hypervisor gave to other machines between two cpu_ticks(), in %:
    on a shared VM a run with much steal measures the neighbours, not the code."""
    total = after[1] - before[1]
    return round(100.0 * (after[0] - before[0]) / total, 1) if total > 0 else 0.0


def run_venue(venue: str, n: int, root: Path) -> dict[str, Any]:
    bare = measure_bare(venue, n)
    parse = measure_parse_only(venue, n)
    feed = measure_feed(venue, n, root)
    ratio = feed["fps"] / bare["fps"] if bare["fps"] else 0.0
    return {"venue": venue, "frames": n, "bare_fps": round(bare["fps"]), "parse_only_fps": round(parse["fps"]),
            "feed_fps": round(feed["fps"]), "ratio": round(ratio, 3),
            "ratio_to_parse_only": round(feed["fps"] / parse["fps"], 3) if parse["fps"] else None,
            "feed_complete": feed["complete"], "feed_lost": n - feed["frames"], "feed_restarts": feed["restarts"],
            "feed_rss_mb_at_end": feed["rss_mb_at_end"],
            "meets_target": ratio >= TARGET_RATIO and feed["fps"] >= TARGET_FPS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.feed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--venue", choices=("upbit", "binance", "both"), default="both")
    ap.add_argument("--frames", type=int, default=200_000, help="frames per consumer (default 200000)")
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    args = ap.parse_args(argv)
    venues = ("upbit", "binance") if args.venue == "both" else (args.venue,)
    root = Path(tempfile.mkdtemp(prefix="arbd-bfeed-", dir="/tmp"))
    try:
        results = [run_venue(v, args.frames, root) for v in venues]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = {"bench": "feed", "machine": machine(), "targets": {"ratio": TARGET_RATIO, "fps": TARGET_FPS},
           "results": results}
    if not args.json:
        print(f"feed benchmark: {args.frames} frames per consumer, {out['machine']}")
        print(f"{'venue':<8} {'bare loop':>12} {'client+parse':>13} {'feed actor':>12} {'ratio':>7}  "
              f"target (>= {TARGET_RATIO}x bare, >= {TARGET_FPS:,}/s)")
        for r in results:
            print(f"{r['venue']:<8} {r['bare_fps']:>10,}/s {r['parse_only_fps']:>11,}/s {r['feed_fps']:>10,}/s "
                  f"{r['ratio']:>7.2f}  {'met' if r['meets_target'] else 'MISSED'}"
                  + (f"  (feed restarted {r['feed_restarts']}x by the supervisor)" if r["feed_restarts"] else ""))
    print(json.dumps(out))
    return 0 if all(r["feed_complete"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
