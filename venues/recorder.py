"""Record both venues' public WebSocket streams to a tape (``storage.tape``).

One connection per venue, subscribed exactly as the feeds subscribe (the
adapters build the requests: the same depth, the same format), plus each
coin's public trades, which the replay exchange uses to put a backtest's
taker behind the takers the tape shows at the touch. Every message is kept
byte for byte with its receive time (``clock_ns``, epoch ns); its stream
(``orderbook:KRW-BTC``, ``btcusdt@depth20@100ms``, ...) is named once here,
so a replay routes frames without parsing them.

A dropped connection reconnects with backoff (the gap stays in the tape: a
replay shows the daemon the same silence). ``run`` ends when ``stop`` is set
or the sink is full (``record.max_mb``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from websockets.asyncio.client import connect

from storage.tape import Frame
from venues import BINANCE, UPBIT, make_adapter
from venues.binance import BinanceAdapter
from venues.upbit import FX, QUOTE, UpbitAdapter

log = logging.getLogger("venues.recorder")

OTHER = "other"  # a frame that belongs to no stream (keep-alive replies, errors, acks)
_COMBINED = b'{"stream":"'


class Sink(Protocol):
    """Where frames go: a tape file or a directory of segments."""

    full: bool

    def add(self, frame: Frame) -> None: ...

    def tick(self, now_ns: int) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class VenueStats:
    frames: int = 0
    bytes: int = 0
    connects: int = 0
    connected: bool = False
    last_error: str = ""


@dataclass(slots=True)
class RecorderStats:
    started_ns: int = 0
    venues: dict[str, VenueStats] = field(default_factory=lambda: {UPBIT: VenueStats(), BINANCE: VenueStats()})


def upbit_request(symbols: Sequence[str], trades: bool) -> str:
    """The feed's orderbook request (same codes, depth and format) plus trades."""
    adapter = make_adapter(UPBIT, symbols)
    assert isinstance(adapter, UpbitAdapter)
    req: list[dict[str, Any]] = [{"ticket": f"arbd-record-{uuid.uuid4()}"},
                                 {"type": "orderbook", "codes": adapter.codes(symbols)}]
    if trades:
        req.append({"type": "trade", "codes": [f"{QUOTE}-{c}" for c in adapter.symbols]})
    return json.dumps(req, separators=(",", ":"))


def binance_url(ws_base: str, symbols: Sequence[str], trades: bool) -> str:
    """The feed's combined-stream URL plus each coin's ``@trade`` stream."""
    adapter = make_adapter(BINANCE, symbols)
    assert isinstance(adapter, BinanceAdapter)
    url = adapter.ws_url(ws_base, symbols)
    if trades:
        url += "".join(f"/{c.lower()}usdt@trade" for c in adapter.symbols)
    return url


def upbit_stream(data: bytes) -> str:
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        return OTHER
    if type(msg) is dict and type(msg.get("type")) is str and type(msg.get("code")) is str:
        return f"{msg['type']}:{msg['code']}"
    return OTHER


def binance_stream(data: bytes) -> str:
    if data.startswith(_COMBINED):
        end = data.find(b'"', len(_COMBINED))
        if end > 0:
            return data[len(_COMBINED):end].decode("ascii", "replace")
    return OTHER


def tape_meta(source: str, symbols: Sequence[str], urls: dict[str, str], trades: bool,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tape's header: what was recorded, from where, when."""
    return {"format": "arbd-tape", "source": source, "symbols": list(symbols), "created_ns": time.time_ns(),
            "urls": urls, "trades": trades, **(extra or {})}


class Recorder:
    """Streams both venues into ``sink`` until ``stop`` (or the sink is full)."""

    def __init__(self, urls: dict[str, str], symbols: Sequence[str], sink: Sink, *, trades: bool = True,
                 clock_ns: Callable[[], int] = time.time_ns, backoff_max_s: float = 10.0,
                 open_timeout_s: float = 10.0) -> None:
        self.symbols = tuple(s.upper() for s in symbols if s.upper() != FX)
        self.urls = urls  # venue -> the WebSocket base (config venues.upbit_ws / binance_ws)
        self.sink = sink
        self.trades = trades
        self.clock_ns = clock_ns
        self.backoff_max_s = backoff_max_s
        self.open_timeout_s = open_timeout_s
        self.stats = RecorderStats()
        self.done_reason = ""

    def targets(self) -> dict[str, tuple[str, list[str]]]:
        """venue -> (URL, messages to send after connecting)."""
        return {UPBIT: (self.urls[UPBIT], [upbit_request(self.symbols, self.trades)]),
                BINANCE: (binance_url(self.urls[BINANCE], self.symbols, self.trades), [])}

    async def run(self, stop: asyncio.Event) -> str:
        """Record until ``stop`` is set or the sink is full; returns why it ended."""
        self.stats.started_ns = self.clock_ns()
        halt = asyncio.Event()
        tasks = [asyncio.ensure_future(self._venue(v, url, msgs, halt))
                 for v, (url, msgs) in self.targets().items()]
        waiter = asyncio.ensure_future(stop.wait())
        full = asyncio.ensure_future(halt.wait())
        try:
            while not (waiter.done() or full.done()):
                await asyncio.wait({waiter, full}, timeout=0.25)
                self.sink.tick(self.clock_ns())
        finally:
            for t in (*tasks, waiter, full):
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            self.sink.close()
        self.done_reason = self.done_reason or "stopped"
        return self.done_reason

    async def _venue(self, venue: str, url: str, messages: list[str], halt: asyncio.Event) -> None:
        st = self.stats.venues[venue]
        classify = upbit_stream if venue == UPBIT else binance_stream
        attempt = 0
        while True:
            try:
                async with connect(url, open_timeout=self.open_timeout_s, max_size=1 << 22,
                                   ping_interval=20.0, ping_timeout=20.0, proxy=None) as ws:
                    for m in messages:
                        await ws.send(m)
                    st.connects += 1
                    st.connected = True
                    log.info("recording %s from %s", venue, url)
                    async for msg in ws:
                        now = self.clock_ns()
                        binary = isinstance(msg, bytes)
                        data = msg if binary else msg.encode()
                        self.sink.add(Frame(now, venue, classify(data), data, binary))
                        st.frames += 1
                        st.bytes += len(data)
                        attempt = 0
                        if self.sink.full:
                            self.done_reason = "record.max_mb reached"
                            halt.set()
                            return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: back off and reconnect, the gap stays on tape
                st.last_error = f"{type(exc).__name__}: {str(exc)[:160]}"
                log.warning("recorder %s: %s", venue, st.last_error)
            finally:
                st.connected = False
            delay = min(self.backoff_max_s, 0.5 * 2 ** min(attempt, 10)) * (0.5 + 0.5 * random.random())
            attempt += 1
            await asyncio.sleep(delay)
