"""A tape's frames reach the feeds byte for byte: the replay exchange serves
the shipped tape on its real WebSocket protocols and the feeds' own client
(``FeedClient``, with the feeds' adapters and subscriptions) receives every
recorded book frame of its venue, in order, as the recorder received it -
the same bytes, the same kind of WebSocket message (Upbit's binary, Binance's
text)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from storage.tape import TapeReader
from tests.support.backtest import TAPE
from venues import make_adapter
from venues.feed_client import FeedClient
from venues.sim.config import SimConfig
from venues.sim.replay import ReplayExchange, ReplayOptions
from venues.sim.replay_books import route_of
from venues.sim.testing import sim_thread

pytestmark = pytest.mark.timeout(120)


class Capture:
    """The feed's adapter, keeping every frame it is handed (what the feed saw)."""

    def __init__(self, venue: str, symbols: Sequence[str]) -> None:
        self.inner = make_adapter(venue, symbols)
        self.name = self.inner.name
        self.frames: list[bytes | str] = []

    def ws_url(self, base: str, symbols: Sequence[str]) -> str:
        return self.inner.ws_url(base, symbols)

    def subscribe_messages(self, symbols: Sequence[str]) -> list[str | bytes]:
        return self.inner.subscribe_messages(symbols)

    def reset(self) -> None:
        self.inner.reset()

    def parse(self, frame: bytes | str, recv_ts_ns: int) -> Any:
        self.frames.append(frame)
        return None  # what the feed makes of it is tested elsewhere; here: what it received


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read().decode())


def test_the_feeds_receive_the_tapes_frames_byte_for_byte(tmp_path: Path) -> None:
    reader = TapeReader(TAPE)
    symbols = tuple(reader.meta["symbols"])
    options = ReplayOptions(tape=TAPE, auto_start=True)
    sim = sim_thread(SimConfig(symbols=symbols), factory=lambda c: ReplayExchange(c, options))
    urls = sim.start()
    feeds: dict[str, tuple[Capture, FeedClient]] = {}
    try:
        for venue in ("upbit", "binance"):
            cap = Capture(venue, symbols)
            client = FeedClient(cap, urls[venue]["ws"], symbols, lambda _t: None, stale_after_s=60.0)  # type: ignore[arg-type]
            client.run_in_thread()
            feeds[venue] = (cap, client)
        deadline = time.monotonic() + 60
        while get(urls["admin"] + "/_sim/replay")["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline, "the replay did not finish"
            time.sleep(0.1)
        status = get(urls["admin"] + "/_sim/replay")
        assert status["state"] == "done", status
        expected = {v: [f for f in reader.frames() if f.venue == v and route_of(v, f.stream).kind == "book"]
                    for v in ("upbit", "binance")}
        deadline = time.monotonic() + 10
        while any(len(feeds[v][0].frames) < len(expected[v]) for v in feeds) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for _, client in feeds.values():
            client.stop()
        sim.stop()

    for venue, (cap, _) in feeds.items():
        want = expected[venue]
        assert len(want) > 200
        got = cap.frames
        assert len(got) == len(want), venue
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert isinstance(g, bytes if w.binary else str), (venue, i)
            assert (g if isinstance(g, bytes) else g.encode()) == w.data, (venue, i)
