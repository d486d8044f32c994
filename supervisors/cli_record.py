"""``arbd record``: both venues' public streams to a tape file.

``--venue sim`` (the default with a sim config) starts the embedded exchange
in this process and records it; ``--venue live`` records the URLs in the
config's ``venues:`` section (the real venues by default). Progress goes to
stderr: a line rewritten every second on a terminal, a line every ten
seconds otherwise. Ends after ``--seconds``, on Ctrl-C / SIGTERM, or at
``record.max_mb``; the tape is readable up to its last whole chunk whatever
ends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Any

from supervisors.cliutil import config_or_exit, fail


def _progress(rec: Any, writer: Any, started: float) -> str:
    v = rec.stats.venues
    total = sum(s.frames for s in v.values())
    raw = sum(s.bytes for s in v.values())
    disk = writer.bytes_written
    ratio = f" ({raw / disk:.1f}x)" if disk > 200 else ""
    down = [name for name, s in v.items() if not s.connected]
    return (f"recording {time.monotonic() - started:7.1f}s  upbit {v['upbit'].frames:,}  "
            f"binance {v['binance'].frames:,}  frames {total:,}  on disk {disk / 1e6:.2f} MB{ratio}"
            + (f"  [not connected: {', '.join(down)}]" if down else ""))


def cmd_record(args: Any) -> int:
    overrides = list(args.overrides)
    if args.venue:
        overrides.append(f"venues.source={args.venue}")
    cfg = config_or_exit(args.config, overrides)
    if args.seconds is not None and args.seconds <= 0:
        fail("arbd", "--seconds must be > 0", 2)
    out = Path(args.out)
    if out.exists():
        fail("arbd", f"{out} exists: a tape is never appended to (choose another --out)")
    if not out.parent.is_dir():
        fail("arbd", f"{out.parent} is not a directory")
    from storage.tape import TapeWriter  # heavy imports only when recording
    from venues.recorder import Recorder, tape_meta

    source = cfg.venues.source
    sim = None
    extra: dict[str, Any] = {}
    if source == "sim":
        from actors.sim import sim_config
        from venues.sim.server import SimThread

        sim_cfg = sim_config(dict(cfg.sim), tuple(cfg.venues.symbols))
        sim = SimThread(sim_cfg)
        urls_obj = sim.start()
        urls = {"upbit": urls_obj["upbit"]["ws"], "binance": urls_obj["binance"]["ws"]}
        extra["sim"] = {"seed": sim_cfg.seed, "update_hz": sim_cfg.update_hz}
    else:
        urls = {"upbit": cfg.venues.upbit_ws, "binance": cfg.venues.binance_ws}
    rc = cfg.record
    try:
        meta = tape_meta(source, cfg.venues.symbols, urls, rc.trades, extra)
        writer = TapeWriter(out, meta, chunk_bytes=rc.chunk_kb << 10,
                            flush_s=rc.flush_s, max_bytes=int(rc.max_mb * 1e6))
    except OSError as e:
        if sim is not None:
            sim.stop()
        fail("arbd", f"cannot create {out}: {e.strerror or e}")
    rec = Recorder(urls, cfg.venues.symbols, writer, trades=rc.trades)
    tty = sys.stderr.isatty()
    started = time.monotonic()

    async def main() -> str:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.seconds is not None:
            loop.call_later(args.seconds, stop.set)

        async def progress() -> None:
            every = 1.0 if tty else 10.0
            while True:
                await asyncio.sleep(every)
                line = _progress(rec, writer, started)
                sys.stderr.write(f"\r{line}\033[K" if tty else line + "\n")
                sys.stderr.flush()

        ticker = asyncio.ensure_future(progress())
        try:
            return await rec.run(stop)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    try:
        reason = asyncio.run(main())
    finally:
        if sim is not None:
            sim.stop()
    if tty:
        sys.stderr.write("\r\033[K")
    frames = writer.frames_written
    secs = time.monotonic() - started
    print(f"recorded {secs:.1f}s ({reason}): {frames:,} frames in {writer.chunks} chunks, "
          f"{writer.bytes_written / 1e6:.2f} MB on disk"
          + (f" ({writer.raw_written / writer.bytes_written:.1f}x compressed)" if writer.bytes_written else "")
          + f" -> {out}", flush=True)
    if not frames:
        fail("arbd", "no frame was recorded: " + "; ".join(
            f"{v}: {s.last_error or 'no data'}" for v, s in rec.stats.venues.items()))
    return 0
