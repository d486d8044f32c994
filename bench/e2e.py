"""End-to-end latency: a quote on the exchange's WebSocket to the order sent.

One run measures the raw transport floor (``bench.floor``: pyzmq
DEALER/ROUTER ping-pong between two spawned processes, a round trip) and
then, for each rate, a real ``live_trading`` daemon (armed, test keys from
the environment) trading against the embedded exchange:

    exchange WS send ─ws→ feed (BookTop.recv_ts_ns)
      ─bus→ engine (Opportunity.ts_ns) ─bus→ position (OrderIntent.ts_ns)
      ─p2p→ guard (GuardDecision.ts_ns) ─p2p→ executor ('sent' OrderEvent.ts_ns,
      after its ledger write)

Five hops; each stamp is taken where the message is made (wall clock, the
same host). The exchange runs in a process of its own (as the ``sim`` actor
does), with one measuring addition that lives only in this benchmark: every
orderbook frame's send time is recorded right after aiohttp has handed it
to the socket, keyed by its top of book, and matched to the ``BookTop`` the
feed made of it. The guard puts a copy of each decision on the bus (it
carries every earlier stamp); the executor's 'sent' events are on it too.

"Updates/s" counts quotes on the exchange's WebSockets (Upbit's four books
update on every market step; Binance's partial depth comes every 100 ms per
coin, as on the real venue). A rate saturates when the daemon does not see
at least 90 % of it, or the trade path drops messages (sequence gaps), or
the path's p50 grows past 5x its value at the lowest rate.

``python -m bench.e2e [--rate R ...] [--seconds S] [--json]``; with
``--json`` and one rate, one JSON object with ``rate``, ``path_p50_ms``,
``path_p99_ms``, ``floor_p50_us``, ``hops``, ``ratio`` (path p50 / (floor
p50 x hops)), ``gaps`` and the per-hop figures. Loopback only; every wait has
a deadline. ``ARBD_E2E_ENV=K=V,K2=V2`` adds variables to the daemon's
environment (for experiments, e.g. a different PYTHONPATH).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil
import zmq

from bench.feed import cpu_ticks, machine, steal_pct
from bench.floor import percentile, ping_pong_floor
from messages import BookTop, DecodeError, GuardDecision, OrderEvent, decode
from tests.support.daemon import DaemonRun, free_port, wait_until
from venues.sim.config import TEST_KEYS

RATES = (100, 1_000, 10_000)
HOPS = ("ws", "feed_to_engine", "engine_to_position", "position_to_guard", "guard_to_executor")
HOP_LABELS = {"ws": "exchange -> feed (WebSocket)", "feed_to_engine": "feed -> engine (BookTop, direct stream)",
              "engine_to_position": "engine -> position (Opportunity)",
              "position_to_guard": "position -> guard (OrderIntent)",
              "guard_to_executor": "guard -> executor (decision -> sent)"}
TRADE_PATH = ("engine", "position", "guard", "executor")
TARGET_P99_MS = 5.0
BINANCE_DEPTH_PER_S = 10.0  # partial depth every 100 ms per coin
UPBIT_BOOKS = 4  # BTC, ETH, XRP and KRW-USDT


def update_hz(rate: float, coins: int = 3) -> float:
    """The simulator's market steps per second that put ``rate`` quotes/s on its WebSockets."""
    return max(0.5, (rate - BINANCE_DEPTH_PER_S * coins) / UPBIT_BOOKS)


# -- the exchange, in its own process, with send stamps -------------------------------------------

Key = tuple[str, str, float, float, float, float]


def _install_send_stamps(sent: dict[Key, list[int]]) -> None:
    """Record when each orderbook frame leaves (after aiohttp wrote it to the
    socket), keyed by venue, coin and top of book. Benchmark-only patches."""
    from aiohttp import web

    from venues.sim import binance_ws, upbit_ws, ws_common

    pending: dict[int, tuple[object, Key]] = {}
    orig_encode = upbit_ws.UpbitWs._encode

    def encode(msg: dict[str, Any], form: str) -> bytes:
        data = orig_encode(msg, form)
        if msg.get("type") == "orderbook" and msg.get("orderbook_units"):
            u = msg["orderbook_units"][0]
            pending[id(data)] = (data, ("upbit", str(msg["code"]).split("-", 1)[1], float(u["bid_price"]),
                                        float(u["ask_price"]), float(u["bid_size"]), float(u["ask_size"])))
        return data

    upbit_ws.UpbitWs._encode = staticmethod(encode)
    current: list[Key | None] = [None]
    orig_publish = binance_ws.BinanceWs._publish

    def publish(self: Any, names: tuple[str, ...], payload: dict[str, Any]) -> None:
        bids, asks = payload.get("bids"), payload.get("asks")
        if bids and asks and "lastUpdateId" in payload:
            coin = names[0].split("usdt@", 1)[0].upper()
            current[0] = ("binance", coin, float(bids[0][0]), float(asks[0][0]), float(bids[0][1]),
                          float(asks[0][1]))
        try:
            orig_publish(self, names, payload)
        finally:
            current[0] = None

    binance_ws.BinanceWs._publish = publish
    orig_send_text = ws_common.Conn.send_text

    def send_text(self: Any, text: str) -> None:
        if current[0] is not None:
            pending[id(text)] = (text, current[0])
        orig_send_text(self, text)

    ws_common.Conn.send_text = send_text

    def stamped(orig: Any) -> Any:
        async def send(self: Any, data: Any, *args: Any, **kwargs: Any) -> None:
            await orig(self, data, *args, **kwargs)
            p = pending.pop(id(data), None)
            if p is not None:
                times = sent.setdefault(p[1], [])
                times.append(time.time_ns())
                if len(times) > 8:
                    del times[:-8]
        return send

    web.WebSocketResponse.send_bytes = stamped(web.WebSocketResponse.send_bytes)
    web.WebSocketResponse.send_str = stamped(web.WebSocketResponse.send_str)


def _sim_main(kwargs: dict[str, Any], conn: Any, nice: int = 0) -> None:
    from venues.sim.config import SimConfig
    from venues.sim.server import SimThread

    if nice:
        # The real exchange is on other machines; here it shares two cores
        # with the daemon. A lower priority keeps it from pre-empting the
        # path being measured (its send stamps are taken after each send).
        os.nice(nice)

    sent: dict[Key, list[int]] = {}
    _install_send_stamps(sent)
    sim = SimThread(SimConfig(**kwargs))
    conn.send(sim.start())
    try:
        while True:
            if not conn.poll(600):
                break
            cmd, arg = conn.recv()
            if cmd == "match":
                def lookup(core: Any, queries: list[tuple[Key, int]] = arg) -> list[int | None]:
                    out = []
                    for key, recv_ns in queries:
                        times = [t for t in sent.get(tuple(key), ()) if t <= recv_ns]
                        out.append(max(times) if times else None)
                    return out
                conn.send(sim.call(lookup, timeout=30))
            elif cmd == "frames":
                conn.send(sim.call(lambda core: sum(len(v) for v in sent.values()), timeout=10))
            else:
                break
    finally:
        sim.stop()
        conn.close()


class BenchSim:
    def __init__(self, nice: int = 0, **kwargs: Any) -> None:
        mp = multiprocessing.get_context("spawn")
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=_sim_main, args=(kwargs, child, nice), name="bench-sim")
        self.proc.start()
        child.close()
        if not self.conn.poll(30):
            self.stop()
            raise RuntimeError("the benchmark's exchange did not start")
        self.urls: dict[str, Any] = self.conn.recv()

    def _ask(self, cmd: str, arg: Any = None, timeout: float = 60) -> Any:
        self.conn.send((cmd, arg))
        if not self.conn.poll(timeout):
            raise RuntimeError(f"the benchmark's exchange did not answer {cmd}")
        return self.conn.recv()

    def send_times(self, queries: list[tuple[Key, int]]) -> list[int | None]:
        return self._ask("match", queries) if queries else []

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(("stop", None))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


# -- the observer on the bus ----------------------------------------------------------------------

class Observer(threading.Thread):
    """Quotes (by receive stamp) from the feeds' streams, decisions and 'sent' events from ``bus_out``."""

    def __init__(self, endpoint: str, book_streams: tuple[str, ...]) -> None:
        super().__init__(name="e2e-observer", daemon=True)
        self.endpoint = endpoint
        self.book_streams = book_streams  # every quote is on the feeds' streams (the bus has 10/s)
        self.quotes: dict[int, Key] = {}
        self.quote_times: list[int] = []  # our receive times, for the delivered rate
        self.quote_lag: list[int] = []  # our receive time - the feed's receive stamp
        self.decisions: dict[str, GuardDecision] = {}
        self.sent: dict[str, int] = {}  # intent id -> first 'sent' stamp
        self.gaps = 0
        self._last: dict[tuple[str, bytes], tuple[int, int]] = {}
        self.bad = 0
        self.ready = threading.Event()
        self._halt = threading.Event()

    def run(self) -> None:
        ctx = zmq.Context()
        bus = ctx.socket(zmq.SUB)
        books = ctx.socket(zmq.SUB)
        for s, topics in ((bus, (b"decision", b"order.")), (books, (b"book.",))):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVHWM, 0)
            for t in topics:
                s.setsockopt(zmq.SUBSCRIBE, t)
        bus.connect(self.endpoint)
        for ep in self.book_streams:
            books.connect(ep)
        poller = zmq.Poller()
        poller.register(bus, zmq.POLLIN)
        poller.register(books, zmq.POLLIN)
        self.ready.set()
        try:
            while not self._halt.is_set():
                for s, _ in poller.poll(100):
                    for _ in range(10_000):
                        try:
                            topic, frame = s.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        except ValueError:
                            self.bad += 1
                            continue
                        self._on(topic, frame)
        finally:
            ctx.destroy(linger=0)

    def _on(self, topic: bytes, frame: bytes) -> None:
        try:
            env = decode(frame)
        except DecodeError:
            self.bad += 1
            return
        msg = env.msg
        if type(msg) is BookTop:
            k = (env.sender, topic)
            last = self._last.get(k)
            if last is not None and last[0] == env.incarnation and env.seq > last[1] + 1:
                self.gaps += env.seq - last[1] - 1
            self._last[k] = (env.incarnation, env.seq)
            self.quotes[msg.recv_ts_ns] = (msg.venue, msg.symbol, msg.bid, msg.ask, msg.bid_size, msg.ask_size)
            now = time.time_ns()
            self.quote_times.append(now)
            self.quote_lag.append(now - msg.recv_ts_ns)
        elif type(msg) is GuardDecision:
            self.decisions[msg.intent.id] = msg
        elif type(msg) is OrderEvent and msg.status == "sent":
            self.sent.setdefault(msg.intent_id, msg.ts_ns)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# -- one rate --------------------------------------------------------------------------------------

def daemon_config(urls: dict[str, Any]) -> dict[str, Any]:
    coins = ["BTC", "ETH", "XRP"]
    return {
        "mode": "live_trading",
        "venues": {"source": "live", "symbols": coins,
                   "upbit_rest": urls["upbit"]["rest"], "upbit_ws": urls["upbit"]["ws"],
                   "binance_rest": urls["binance"]["rest"], "binance_ws": urls["binance"]["ws"]},
        "metrics": {"port": free_port()},
        "live_trading": {"enabled": True, "dry_run_scale": 1.0, "allowed_symbols": coins,
                         "max_notional_per_trade": 500.0, "max_daily_loss": 1000.0},
        # Many intents per second, so the percentiles rest on enough samples.
        "baseline": {"time_constant_s": 30, "warmup_s": 3, "warmup_samples": 20},
        "strategy": {"cooldown_s": 0.3, "max_hold_s": 4},
        "position_adv": {"max_exposure_krw": 5_000_000.0},
    }


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for m in re.finditer(r'^arbd_bus_sequence_gaps(?:_total)?\{actor="([^"]+)"\} ([0-9.e+-]+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def _cpu(run: DaemonRun, extra: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each actor process (pids from status), the
    daemon itself and ``extra`` (name -> pid)."""
    pids = {a["name"]: a["pid"] for a in run.status()["actors"] if a["pid"]}
    pids["supervisor"] = run.pid
    pids.update(extra)
    out = {}
    for name, pid in pids.items():
        try:
            t = psutil.Process(pid).cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            continue
    return out


def _stats_ms(values_ns: list[int]) -> dict[str, float]:
    v = sorted(x / 1e6 for x in values_ns)
    if not v:
        return {"n": 0}
    return {"n": len(v), "p50_ms": round(percentile(v, 50), 3), "p99_ms": round(percentile(v, 99), 3),
            "max_ms": round(v[-1], 3)}


def measure_rate(rate: float, seconds: float, root: Path, seed: int = 7,
                 exchange_nice: int = 0) -> dict[str, Any]:
    sim = BenchSim(nice=exchange_nice, update_hz=update_hz(rate), seed=seed, premium_vol_pct=1.5, jump_prob=0.5,
                   jump_pct=1.0, rest_rate_limit_per_s=0.0)
    run = DaemonRun(root / f"rate-{int(rate)}", daemon_config(sim.urls))
    run.env.update({"UPBIT_ACCESS_KEY": TEST_KEYS["upbit"]["apiKey"],
                    "UPBIT_SECRET_KEY": TEST_KEYS["upbit"]["secret"],
                    "BINANCE_API_KEY": TEST_KEYS["binance"]["apiKey"],
                    "BINANCE_API_SECRET": TEST_KEYS["binance"]["secret"]})
    for kv in filter(None, os.environ.get("ARBD_E2E_ENV", "").split(",")):  # experiments: extra env
        k, _, v = kv.partition("=")
        run.env[k] = v
    obs: Observer | None = None
    try:
        run.start(timeout=60, max_runtime_s=seconds + 180)
        eps = run.endpoints()
        obs = Observer(eps.bus_out, (eps.stream("feed.upbit"), eps.stream("feed.binance")))
        obs.start()
        obs.ready.wait(5)
        run.call("arm", confirm="live_trading")
        wait_until(lambda: obs.sent, 90, "the first order of the armed daemon", interval=0.1)
        port = run.config["metrics"]["port"]
        gaps0 = _scrape(port)
        cpu0 = _cpu(run, {"exchange": sim.proc.pid})
        ticks0 = cpu_ticks()
        t0 = time.time_ns()
        n0 = len(obs.quote_times)
        threading.Event().wait(seconds)  # the measuring window
        t1 = time.time_ns()
        ticks1 = cpu_ticks()
        n1 = len(obs.quote_times)
        lag = obs.quote_lag[n0:n1]
        cpu1 = _cpu(run, {"exchange": sim.proc.pid})
        load = os.getloadavg()[0]
        wait_until(lambda: _scrape(port), 5, "metrics")
        threading.Event().wait(1.0)  # one more heartbeat carries the window's gap counters
        gaps1 = _scrape(port)
    finally:
        if obs is not None:
            obs.stop()
        run.cleanup()
    samples = []
    for iid, sent_ns in obs.sent.items():
        d = obs.decisions.get(iid)
        if d is None or not (t0 <= sent_ns <= t1):
            continue
        it = d.intent
        if not (it.origin_ts_ns and it.opportunity_ts_ns):
            continue
        samples.append({"recv": it.origin_ts_ns, "opp": it.opportunity_ts_ns, "intent": it.ts_ns,
                        "decision": d.ts_ns, "sent": sent_ns, "key": obs.quotes.get(it.origin_ts_ns)})
    queries = [(s["key"], s["recv"]) for s in samples if s["key"] is not None]
    try:
        stamps = iter(sim.send_times(queries))
    finally:
        sim.stop()
    for s in samples:
        s["exch"] = next(stamps) if s["key"] is not None else None
    hops = {
        "ws": [s["recv"] - s["exch"] for s in samples if s["exch"]],
        "feed_to_engine": [s["opp"] - s["recv"] for s in samples],
        "engine_to_position": [s["intent"] - s["opp"] for s in samples],
        "position_to_guard": [s["decision"] - s["intent"] for s in samples],
        "guard_to_executor": [s["sent"] - s["decision"] for s in samples],
    }
    path = [s["sent"] - s["exch"] for s in samples if s["exch"]]
    from_feed = [s["sent"] - s["recv"] for s in samples]
    trade_gaps = sum(gaps1.get(a, 0.0) - gaps0.get(a, 0.0) for a in TRADE_PATH)
    delivered = (n1 - n0) / ((t1 - t0) / 1e9)
    p = _stats_ms(path)
    return {"rate": rate, "update_hz": round(update_hz(rate), 2), "seconds": seconds,
            "delivered_quotes_per_s": round(delivered), "samples": len(samples), "matched": len(path),
            "path_p50_ms": p.get("p50_ms"), "path_p99_ms": p.get("p99_ms"), "path_max_ms": p.get("max_ms"),
            "from_feed": _stats_ms(from_feed), "feed_to_observer": _stats_ms(lag), "hop": {h: _stats_ms(v) for h, v in hops.items()},
            "gaps": int(trade_gaps), "observer_gaps": obs.gaps,
            "cpu_pct": {k: round(100 * (cpu1[k] - cpu0[k]) / ((t1 - t0) / 1e9)) for k in cpu1 if k in cpu0},
            "loadavg_1m": round(load, 2), "steal_pct": steal_pct(ticks0, ticks1)}


def saturated(r: dict[str, Any], base_p50: float | None) -> str:
    why = []
    if r["delivered_quotes_per_s"] < 0.9 * r["rate"]:
        why.append(f"delivers {r['delivered_quotes_per_s']:,}/s of {r['rate']:,.0f}/s")
    if r["gaps"]:
        why.append(f"{r['gaps']} trade-path gaps")
    if base_p50 and r["path_p50_ms"] and r["path_p50_ms"] > 5 * base_p50:
        why.append(f"p50 {r['path_p50_ms']:.2f} ms > 5x {base_p50:.2f} ms")
    return "; ".join(why)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, action="append", help="quotes/s on the exchange's WebSockets "
                    "(repeatable; default 100, 1000, 10000)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring window per rate (default 20)")
    ap.add_argument("--floor-n", type=int, default=5000, help="floor round trips (default 5000)")
    ap.add_argument("--json", action="store_true", help="print only JSON (one object for one rate)")
    ap.add_argument("--exchange-nice", type=int, default=0,
                    help="niceness of the embedded exchange process (default 0: same as the daemon)")
    args = ap.parse_args(argv)
    rates = args.rate or list(RATES)
    root = Path(tempfile.mkdtemp(prefix="arbd-be2e-", dir="/tmp"))
    floor = ping_pong_floor(n=args.floor_n)
    hops = len(HOPS)
    results = []
    base_p50 = None
    try:
        for rate in rates:
            r = measure_rate(rate, args.seconds, root, exchange_nice=args.exchange_nice)
            r["exchange_nice"] = args.exchange_nice
            r["floor_p50_us"] = round(floor.p50_us, 1)
            r["hops"] = hops
            r["ratio"] = round(r["path_p50_ms"] * 1e3 / (floor.p50_us * hops), 2) if r["path_p50_ms"] else None
            base_p50 = base_p50 or r["path_p50_ms"]
            r["saturated"] = saturated(r, base_p50)
            results.append(r)
            if not args.json:
                _print_rate(r, floor.p50_us)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    sat = next((r["rate"] for r in results if r["saturated"]), None)
    summary = {"bench": "e2e", "machine": machine(), "floor": asdict(floor), "hops": hops,
               "target_p99_ms_at_1000": TARGET_P99_MS, "saturates_at": sat, "results": results}
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else summary))
    else:
        print(f"saturation: {'none up to ' + format(max(rates), ',.0f') + '/s' if sat is None else format(sat, ',.0f') + '/s (' + next(r['saturated'] for r in results if r['rate'] == sat) + ')'}")
        print(json.dumps(summary))
    return 0


def _print_rate(r: dict[str, Any], floor_us: float) -> None:
    print(f"\n== {r['rate']:,.0f} quotes/s (sim update_hz {r['update_hz']}), {r['seconds']:g}s window: "
          f"{r['samples']} orders ({r['matched']} matched to the exchange's send), delivered "
          f"{r['delivered_quotes_per_s']:,}/s, trade-path gaps {r['gaps']}")
    for h in HOPS:
        s = r["hop"][h]
        if s.get("n"):
            print(f"  {HOP_LABELS[h]:<40} p50 {s['p50_ms']:7.3f} ms   p99 {s['p99_ms']:7.3f} ms")
    fo = r["feed_to_observer"]
    if fo.get("n"):
        print(f"  {'(feed -> a bench SUB on its stream, every quote)':<40} p50 {fo['p50_ms']:7.3f} ms   p99 {fo['p99_ms']:7.3f} ms")
    print(f"  {'whole path (exchange send -> sent)':<40} p50 {r['path_p50_ms'] or float('nan'):7.3f} ms   "
          f"p99 {r['path_p99_ms'] or float('nan'):7.3f} ms   max {r['path_max_ms'] or float('nan'):.3f} ms")
    print("  cpu % over the window: " + ", ".join(f"{k} {v}" for k, v in sorted(r["cpu_pct"].items(),
                                                                               key=lambda kv: -kv[1]))
          + f"   (1-min load average {r['loadavg_1m']}; hypervisor steal {r['steal_pct']} %)")
    print(f"  = {r['ratio']}x (floor p50 {floor_us:.0f} us x {r['hops']} hops)"
          + (f"   SATURATED: {r['saturated']}" if r["saturated"] else ""))


if __name__ == "__main__":
    sys.exit(main())
