"""``arbd backtest TAPE``: replay a tape through the whole daemon and say what it traded.

The daemon runs as ``arbd start`` would (every actor in its own process, the
config's mode and strategy) with the replay exchange as its market
(``venues.sim.replay``); this process hosts it and a controller thread that
waits until every actor runs and the executor is warm, arms a live_trading
config (``arm --confirm live_trading``, which its own ``live_trading.enabled``
must allow), starts the replay and stops the daemon when the tape is done.
The daemon's logs go to ``<run>/logs/daemon.log``; the run directory is a
temporary one unless ``--run-dir`` names it. Results come from the ledger
(``supervisors.backtest_result``).

``--sweep KEY=V1,V2`` (repeatable) runs every combination as a backtest of
its own, ``--jobs`` at a time in separate processes, and prints a table (or,
with ``--json``, a list of objects).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from supervisors.cliutil import config_or_exit, fail
from supervisors.config import ArbdConfig

STARTUP_TIMEOUT_S = 120.0
# A replay is the market: nothing may reconnect or restart on a wall-clock timer
# (the same tape must give the same trades at any speed); quote staleness is still
# judged, in tape time, by the watchdog. Metrics off: sweeps run side by side.
FORCED = ("venues.source=sim", "metrics.enabled=false", "bus.transport=ipc", "record.enabled=false",
          "longrun.enabled=false", "feeds.stale_after_s=1000000", "watchdog.restart_after_s=1000000",
          "trading.arm_on_start=true")


def parse_speed(text: str) -> float:
    if text == "max":
        return 0.0
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not speed > 0 or speed != speed or speed == float("inf"):
        fail("arbd", f"--speed {text!r}: expected max or a number > 0", 2)
    return speed


def check_tape(path: Path) -> dict[str, Any]:
    """The tape's metadata and span; one line and exit 1 if it cannot be replayed."""
    from storage.tape import TapeError, TapeReader

    try:
        reader = TapeReader(path)
        chunks = reader.scan()
    except TapeError as e:
        fail("arbd", f"tape {path}: {e}")
    if not chunks:
        fail("arbd", f"tape {path}: no whole chunk to replay (cut at byte {reader.truncated_at or reader.size})")
    if reader.truncated_at is not None:
        sys.stderr.write(f"arbd: warning: tape {path} is cut at byte {reader.truncated_at} (a partly written "
                         f"chunk): replaying the {len(chunks)} whole chunk(s) before it\n")
    return {"path": str(path), "start_ns": chunks[0].first_ns, "end_ns": chunks[-1].last_ns,
            "seconds": round((chunks[-1].last_ns - chunks[0].first_ns) / 1e9, 3),
            "frames": sum(c.frames for c in chunks), "bytes": reader.size, "truncated_at": reader.truncated_at,
            "symbols": list(reader.meta.get("symbols") or []), "source": reader.meta.get("source", "?")}


def _config(args: Any, tape: dict[str, Any], speed: float) -> ArbdConfig:
    defaults = ["log_level=WARNING"]
    if tape["symbols"]:
        defaults.append(f"venues.symbols=[{','.join(tape['symbols'])}]")
    forced = [*FORCED, f"backtest.tape={json.dumps(tape['path'])}", f"backtest.speed={speed}"]
    cfg = config_or_exit(args.config, [*defaults, *args.overrides, *forced])
    missing = [s for s in cfg.venues.symbols if tape["symbols"] and s not in tape["symbols"]]
    if missing:
        fail("arbd", f"the tape has no {', '.join(missing)} (it has {', '.join(tape['symbols'])})", 2)
    return cfg


def _get(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read().decode())


class Controller(threading.Thread):
    """Starts the replay once the daemon is ready and stops the daemon when it ends."""

    def __init__(self, daemon: Any, cfg: ArbdConfig, progress: TextIO | None, tape_s: float) -> None:
        super().__init__(name="backtest-controller", daemon=True)
        self.d = daemon
        self.cfg = cfg
        self.progress = progress
        self.tape_s = tape_s
        self.replay: dict[str, Any] = {}
        self.error = ""
        self.notes: list[str] = []

    def _wait(self, what: str, probe: Any, timeout: float = STARTUP_TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.d._stop_reason:
                raise RuntimeError(f"the daemon stopped while waiting for {what} ({self.d._stop_reason})")
            with contextlib.suppress(Exception):
                got = probe()
                if got:
                    return got
            time.sleep(0.1)
        raise RuntimeError(f"gave up waiting for {what} after {timeout:g}s")

    def run(self) -> None:
        from supervisors.control import ControlClient
        from supervisors.endpoints import Endpoints

        run = self.d.run
        try:
            sim = self._wait("the replay exchange", lambda: json.loads(run.sim_file.read_text()))
            admin = sim["admin"]
            ctl = ControlClient(Endpoints.from_json(run.endpoints_file.read_text()).control, timeout_s=5)

            def ready() -> bool:
                st = ctl.call("status").result
                actors = {a["name"]: a for a in st["actors"]}
                return all(a["state"] == "running" for a in actors.values()) and actors["executor"]["warm"]

            self._wait("every actor to run and the executor to be warm", ready)
            if self.cfg.mode == "live_trading":
                reply = ctl.call("arm", confirm="live_trading")
                if not reply.ok:
                    self.notes.append(f"trading not armed, nothing can trade: {reply.error_reason}")
            if not self.notes:
                try:
                    self._wait("trading to be armed",
                               lambda: ctl.call("status").result["trading_state"] == "armed", timeout=10.0)
                except RuntimeError as e:
                    self.notes.append(str(e))
            _get(admin + "/_sim/replay/start", "POST")
            while not self.d._stop_reason:
                st = _get(admin + "/_sim/replay")
                self.replay = st
                if st["state"] in ("done", "failed"):
                    break
                self._show(st)
                time.sleep(0.2)
            if self.replay.get("state") == "failed":
                self.error = self.replay.get("error") or "the replay failed"
        except Exception as e:  # the run must end either way
            self.error = str(e)
        finally:
            self._show(None)
            self.d.request_shutdown("backtest: tape replayed" if not self.error else f"backtest: {self.error}")

    def _show(self, st: dict[str, Any] | None) -> None:
        if self.progress is None:
            return
        if st is None:
            self.progress.write("\r\033[K")
        else:
            done = (st["clock_ns"] - st["tape_start_ns"]) / 1e9 if st["tape_start_ns"] else 0.0
            pct = 100 * done / self.tape_s if self.tape_s else 0.0
            rate = done / st["wall_s"] if st.get("wall_s") else 0.0
            self.progress.write(f"\rreplaying {done:8.1f} of {self.tape_s:.1f} s of tape ({pct:5.1f}%)  "
                                f"{rate:6.1f}x real time  orders {st['orders']}\033[K")
        self.progress.flush()


def run_one(args: Any, tape: dict[str, Any], speed: float, err: TextIO) -> tuple[int, dict[str, Any]]:
    """One backtest; returns (exit code, result)."""
    cfg = _config(args, tape, speed)
    from supervisors import logjson
    from supervisors.backtest_result import ledger_result
    from supervisors.daemon import Daemon
    from supervisors.runfiles import AlreadyRunning, RunDir

    keep = bool(args.run_dir)
    root = Path(args.run_dir) if keep else Path(tempfile.mkdtemp(prefix="arbd-bt-"))
    run = RunDir.at(root)
    if run.is_running():
        fail("arbd", f"{run.root} is in use by a running arbd (pid {run.is_running()})")
    run.create()
    (run.logs_dir).mkdir(parents=True, exist_ok=True)
    log_path = run.logs_dir / "daemon.log"
    # The terminal keeps a descriptor of its own: fd 2 goes to the log file below.
    progress = os.fdopen(os.dup(2), "w", buffering=1) if err.isatty() else None
    daemon = Daemon(cfg, run, None)
    ctl = Controller(daemon, cfg, progress, tape["seconds"])
    saved = os.dup(2)
    try:
        with log_path.open("ab") as log_file:
            os.dup2(log_file.fileno(), 2)  # the daemon's and its children's logs
        logjson.setup("supervisor", cfg.log_level)
        ctl.start()
        try:
            code = daemon.run_forever()
        except AlreadyRunning as e:
            fail("arbd", str(e))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    ctl.join(10)
    if progress is not None:
        progress.close()
    replay = ctl.replay
    result: dict[str, Any] = {**ledger_result(run.ledger_path)}
    wall = float(replay.get("wall_s") or 0.0)
    result.update({
        "replay_speedup": replay.get("speedup") or (round(tape["seconds"] / wall, 2) if wall else 0.0),
        "speed": "max" if speed == 0 else speed,
        "wall_s": wall,
        "mode": cfg.mode,
        "tape": {k: tape[k] for k in ("path", "start_ns", "end_ns", "seconds", "frames", "truncated_at")},
        "frames_replayed": replay.get("frames", 0),
        "settle_timeouts": replay.get("settle_timeouts", 0),
        "steps": replay.get("steps", 0),
        "waited_s": replay.get("waited_s", {}),  # what the replay waited for, per actor (bench.replay)
        "summary": getattr(daemon, "summary", {}),
        "run_dir": str(run.root) if keep else None,
        "logs": str(log_path) if keep else None,
        "notes": ctl.notes,
    })
    failed = ctl.error or (replay.get("state") != "done" and "the replay did not finish")
    if failed:
        result["error"] = failed
    if args.report and not failed:
        from supervisors.report import ReportError, write_report

        try:
            write_report(run.root, Path(args.report), since_ns=0)
        except ReportError as e:
            err.write(f"arbd: no report: {e}\n")
            code = code or 1
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    return (1 if failed else code), result


def format_result(r: dict[str, Any]) -> str:
    from supervisors.status import format_summary

    lines = [format_summary(r["summary"])] if r.get("summary") else []
    t = r["tape"]
    lines += [
        "=== arbd backtest ===",
        f"Tape:           {t['path']} ({t['seconds']:.1f}s, {t['frames']:,} frames)",
        f"Speed:          {r['speed']} ({r['replay_speedup']:.1f}x real time, {r['wall_s']:.1f}s)",
        f"Trades:         opened {r['trades_opened']}, closed {r['trades_closed']}, open {r['open_pairs']}",
        f"PnL:            {r['pnl_krw']:,.0f} KRW (fees {r['fees_krw']:,.0f} KRW)",
        f"Max Drawdown:   {r['max_drawdown_krw']:,.0f} KRW",
        f"Orders / Fills: {r['orders']} / {r['fills']}",
    ]
    if r.get("settle_timeouts"):
        lines.append(f"Warning:        the daemon did not go quiet {r['settle_timeouts']} time(s): "
                     "timing may have differed from a real-time run")
    for note in r.get("notes") or ():
        lines.append(f"Note:           {note}")
    if r.get("logs"):
        lines.append(f"Logs:           {r['logs']}")
    return "\n".join(lines)


def _combos(sweeps: list[str]) -> list[dict[str, str]]:
    axes: list[tuple[str, list[str]]] = []
    for s in sweeps:
        key, sep, values = s.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            fail("arbd", f"--sweep {s!r}: expected KEY=V1,V2,...", 2)
        axes.append((key.strip(), vals))
    return [dict(zip([k for k, _ in axes], vs, strict=True)) for vs in itertools.product(*(v for _, v in axes))]


def run_sweep(args: Any, tape: dict[str, Any], speed: float) -> int:
    combos = _combos(args.sweep)
    if args.jobs < 1:
        fail("arbd", "--jobs must be >= 1", 2)
    for combo in combos:  # every combination's config is checked before any runs
        _config(argparse_copy(args, [*args.overrides, *(f"{k}={v}" for k, v in combo.items())]), tape, speed)
    base = [sys.executable, "-m", "supervisors.cli_arbd", "backtest", tape["path"], "--json",
            "--speed", args.speed]
    if args.config:
        base += ["--config", args.config]
    for o in args.overrides:
        base += ["--set", o]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def one(combo: dict[str, str]) -> dict[str, Any]:
        cmd = base + [x for k, v in combo.items() for x in ("--set", f"{k}={v}")]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        try:
            res = json.loads(out.stdout)
        except ValueError:
            res = {"error": (out.stderr.strip().splitlines() or ["no output"])[-1]}
        if out.returncode and "error" not in res:
            res["error"] = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        res["params"] = combo
        if sys.stderr.isatty():
            sys.stderr.write(f"done {combo}: " + (res.get("error") or f"pnl {res.get('pnl_krw')} KRW") + "\n")
        return res

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, combos))
    if args.json:
        print(json.dumps(results, separators=(",", ":")))
    else:
        keys = list(combos[0]) if combos else []
        cols = ["trades_opened", "trades_closed", "pnl_krw", "fees_krw", "max_drawdown_krw", "orders", "fills",
                "replay_speedup"]
        header = [*keys, *cols]
        rows = [[r["params"][k] for k in keys] + ([r.get(c, "") for c in cols] if "error" not in r
                                                   else [f"error: {r['error']}"]) for r in results]
        widths = [max(len(str(x)) for x in col) for col in itertools.zip_longest(header, *rows, fillvalue="")]
        for row in [header, *rows]:
            print("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=False)))
    return 1 if any("error" in r for r in results) else 0


def argparse_copy(args: Any, overrides: list[str]) -> Any:
    import argparse

    return argparse.Namespace(**{**vars(args), "overrides": overrides})


def cmd_backtest(args: Any) -> int:
    speed = parse_speed(args.speed)
    tape = check_tape(Path(args.tape).resolve())
    if args.sweep:
        if args.report or args.run_dir:
            fail("arbd", "--report and --run-dir name one run: not with --sweep", 2)
        return run_sweep(args, tape, speed)
    if args.report and not Path(args.report).resolve().parent.is_dir():
        fail("arbd", f"--report {args.report}: no directory {Path(args.report).resolve().parent}", 2)
    err = sys.stderr
    code, result = run_one(args, tape, speed, err)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        print(format_result(result))
    if result.get("error"):
        err.write(f"arbd: backtest: {result['error']}\n")
    return code
