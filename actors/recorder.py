"""The recorder: a trading daemon's tape (``record.enabled``).

A thin shell around ``venues.recorder.Recorder`` on an event loop of its own,
writing segments under ``record.dir`` in the run directory (``tape-<UTC
start>.arbt``, each a tape ``arbd backtest`` replays alone) and deleting the
oldest to stay under ``record.max_mb``. Its own connections, subscribed as
the feeds are: a feed never waits for a disk, and a recorder that dies takes
no quote from trading (it is not on the trade path).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from actors.base import RoleActor
from storage.tape_segments import SegmentSink
from supervisors.metricnames import key
from venues.recorder import Recorder, tape_meta


class RecorderActor(RoleActor):
    role = "recorder"
    wants_snapshot = False
    tick_interval_s = 1.0

    def on_start(self) -> None:
        cfg = self.ctx.config
        rc = cfg.record
        urls = {"upbit": cfg.venues.upbit_ws, "binance": cfg.venues.binance_ws}
        self.sink = SegmentSink(self.ctx.run.root / rc.dir, tape_meta(cfg.venues.source, cfg.venues.symbols, urls,
                                                                      rc.trades),
                                segment_bytes=int(rc.segment_mb * 1e6), max_bytes=int(rc.max_mb * 1e6),
                                chunk_bytes=rc.chunk_kb << 10, flush_s=rc.flush_s)
        self.recorder = Recorder(urls, cfg.venues.symbols, self.sink, trades=rc.trades)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        ready = threading.Event()

        def run() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                ready.set()
                await self.recorder.run(self._stop)

            asyncio.run(main())

        self._thread = threading.Thread(target=run, name="recorder", daemon=True)
        self._thread.start()
        ready.wait(5.0)

    def on_stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5.0)  # the sink writes its last chunk on the way out

    def on_tick(self, now_ns: int) -> None:
        c = self.ctx.counters
        for venue, st in self.recorder.stats.venues.items():
            c[key("c", "arbd_recorder_frames_total", venue=venue)] = st.frames
            c[key("g", "arbd_recorder_connected", venue=venue)] = 1.0 if st.connected else 0.0
        c[key("c", "arbd_recorder_segments_deleted_total")] = self.sink.deleted

    def warmth(self) -> tuple[bool, str]:
        down = [v for v, st in self.recorder.stats.venues.items() if not st.connected]
        return (not down), ("connection to " + ", ".join(down) if down else "")

    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        if command == "recorder_stats":
            return {v: {"frames": st.frames, "bytes": st.bytes, "connected": st.connected}
                    for v, st in self.recorder.stats.venues.items()}
        return super().on_command(command, args)
