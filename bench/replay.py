"""Replay benchmark: how fast a tape goes through the whole daemon at ``--speed max``.

The tape: three coins at the embedded exchange's default rate (10 books a
second per book, 20-level Binance depth every 100 ms, public trades), recorded
for ``--record-seconds`` with ``arbd record`` (or ``--tape PATH``). Then:

1. **floor** - reading the tape alone (``TapeReader.frames``: decompression and
   the frame table), frames and tape seconds per wall second: no replay can
   go faster than its tape is read;
2. **replay** - ``arbd backtest TAPE --speed max --json``, ``--runs`` times: the
   whole daemon (feeds, engine, position, guard, executor, watchdog as their
   own processes) on the replay exchange, which waits after every step until
   the daemon is quiet. Frames per second are the book frames handed to the
   feeds over the replay's wall time; tape seconds per wall second is the
   replay's speed-up (target >= 20x).

Also prints where the replay's waits went (summed over the runs). Prints a
table and, last, one JSON line. ``python -m bench.replay [--tape PATH |
--record-seconds N] [--runs N] [--json]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from storage.tape import TapeReader
from tests.support.backtest import arbd, backtest, leftovers

TARGET_SPEEDUP = 20.0


def record(seconds: float, out: Path) -> None:
    res, marker = arbd("record", "--venue", "sim", "--seconds", f"{seconds:g}", "--out", str(out),
                       timeout=seconds + 60)
    if res.returncode != 0 or leftovers(marker):
        raise SystemExit(f"bench.replay: recording failed: {res.stderr.strip()[-500:]}")


def floor(tape: Path, repeat: int = 3) -> dict[str, float]:
    """Best of ``repeat`` full reads."""
    best = float("inf")
    frames = 0
    span = 0.0
    for _ in range(repeat):
        reader = TapeReader(tape)
        t0 = time.perf_counter()
        first = last = 0
        n = 0
        for f in reader.frames():
            first = first or f.recv_ns
            last = f.recv_ns
            n += 1
        best = min(best, time.perf_counter() - t0)
        frames, span = n, (last - first) / 1e9
    return {"frames": frames, "tape_s": round(span, 3), "wall_s": round(best, 4),
            "frames_per_s": round(frames / best), "speedup": round(span / best, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tape", type=Path, help="replay this tape instead of recording one")
    ap.add_argument("--record-seconds", type=float, default=60.0, help="seconds to record (default 60)")
    ap.add_argument("--runs", type=int, default=3, help="backtests of the tape (default 3)")
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="arbd-bench-replay-") as tmp:
        tape = args.tape
        if tape is None:
            tape = Path(tmp) / "bench.arbt"
            record(args.record_seconds, tape)
        fl = floor(tape)
        runs = [backtest(tape, timeout=600) for _ in range(args.runs)]
    waited: dict[str, float] = {}
    for r in runs:
        for k, v in r.get("waited_s", {}).items():
            waited[k] = round(waited.get(k, 0.0) + v, 3)
    fps = [r["frames_replayed"] / r["wall_s"] for r in runs if r["wall_s"]]
    speed = [r["replay_speedup"] for r in runs]
    same = all(r["fill_log"] == runs[0]["fill_log"] for r in runs)
    out: dict[str, Any] = {
        "tape": {"path": str(args.tape) if args.tape else f"recorded {args.record_seconds:g}s",
                 "seconds": runs[0]["tape"]["seconds"], "frames": runs[0]["tape"]["frames"],
                 "book_frames": runs[0]["frames_replayed"]},
        "floor": fl,
        "replay": {"frames_per_s": [round(x) for x in fps], "speedup": speed,
                   "median_frames_per_s": round(statistics.median(fps)) if fps else 0,
                   "median_speedup": statistics.median(speed), "wall_s": [r["wall_s"] for r in runs],
                   "steps": runs[0].get("steps"), "trades_opened": runs[0]["trades_opened"],
                   "same_fills_every_run": same, "settle_timeouts": sum(r["settle_timeouts"] for r in runs)},
        "ratio_to_floor": round(statistics.median(speed) / fl["speedup"], 4) if fl["speedup"] else 0.0,
        "target_speedup": TARGET_SPEEDUP,
        "met": statistics.median(speed) >= TARGET_SPEEDUP,
        "waited_s": dict(sorted(waited.items(), key=lambda kv: -kv[1])[:8]),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if not args.json:
        r = out["replay"]
        print(f"tape: {out['tape']['path']}: {out['tape']['seconds']:.1f} s, {out['tape']['frames']:,} frames "
              f"({out['tape']['book_frames']:,} book frames to the feeds)")
        print(f"{'measurement':48} {'frames/s':>12} {'tape s / wall s':>16}")
        print(f"{'floor: read the tape (decompress + frame table)':48} {fl['frames_per_s']:>12,} "
              f"{fl['speedup']:>15.0f}x")
        for i, (f, s) in enumerate(zip(fps, speed, strict=True)):
            print(f"{f'replay through the whole daemon, run {i + 1}':48} {f:>12,.0f} {s:>15.1f}x")
        print(f"median {r['median_speedup']:.1f}x real time (target >= {TARGET_SPEEDUP:g}x: "
              f"{'met' if out['met'] else 'NOT met'}), {out['ratio_to_floor']:.2%} of the floor; "
              f"same fills every run: {same}; {r['steps']} steps, {r['trades_opened']} pairs opened")
        print("waited for: " + ", ".join(f"{k} {v:.2f}s" for k, v in out["waited_s"].items()))
    print(json.dumps(out, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
