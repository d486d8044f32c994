"""`arbd start|stop|sim|node|record|backtest`: run the daemon, stop it, run the
embedded exchange alone, run a node supervisor for the actors placed on this
host, record the venues to a tape, or replay a tape through the daemon."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from dataclasses import replace

import zmq

from supervisors import logjson
from supervisors.cliutil import OneLineParser, config_or_exit, fail
from supervisors.config import MODES
from supervisors.control import ControlClient, ControlError
from supervisors.curve import MAIN, CurveError
from supervisors.endpoints import Endpoints
from supervisors.runfiles import AlreadyRunning, RunDir

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"--longrun {text!r}: expected a duration like 30m, 6h or 72h")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _parser() -> OneLineParser:
    p = OneLineParser(prog="arbd", description="Supervised Upbit <-> Binance arbitrage daemon.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)
    s = sub.add_parser("start", help="run the daemon in the foreground (Ctrl-C or `arbd stop` ends it)")
    s.add_argument("--config", help="YAML config (default configs/paper.yaml)")
    s.add_argument("--mode", choices=MODES, help="override the config's mode")
    s.add_argument("--venue", choices=("sim", "live"), help="sim: the embedded exchange; live: real URLs")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key by dotted path (YAML value syntax); repeatable")
    s.add_argument("--max-runtime-seconds", type=float, metavar="N", help="stop after N seconds")
    s.add_argument("--longrun", metavar="DURATION", help="long-run mode for 30m, 6h, 72h, ...")
    s.add_argument("--run-dir", default="run", help="run directory (default ./run)")
    loud = s.add_mutually_exclusive_group()
    loud.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level")
    loud.add_argument("--quiet", action="store_true",
                      help="only warnings, errors and the trade, trading-state and restart lines; no status line")
    s.add_argument("--log-format", choices=logjson.LOG_FORMATS,
                   help="text: readable lines for a person; json: one JSON object a line; "
                        "auto (default): text on a terminal, JSON when piped")
    st = sub.add_parser("stop", help="stop the daemon running in a run directory")
    st.add_argument("--run-dir", default="run")
    st.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to exit")
    sm = sub.add_parser("sim", help="run the embedded exchange alone until SIGTERM")
    sm.add_argument("--port", type=int, default=0, help="upbit on N, binance on N+1, admin on N+2 (0: any)")
    sm.add_argument("--seed", type=int, default=1)
    n = sub.add_parser("node", help="run a node supervisor for the actors the main daemon places on this "
                                    "host (cluster.host names it, cluster.main says where main is)")
    n.add_argument("--config", required=True, help="this node's YAML config (cluster:, bus.curve:)")
    n.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key by dotted path (YAML value syntax); repeatable")
    n.add_argument("--run-dir", default="run", help="run directory (default ./run)")
    n.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), help="log level")
    _tape_parsers(sub)
    return p


def _tape_parsers(sub) -> None:
    """``record`` and ``backtest`` (supervisors/cli_record.py, cli_backtest.py)."""
    r = sub.add_parser("record", help="record both venues' public streams to a tape")
    r.add_argument("--venue", choices=("sim", "live"), help="sim: the embedded exchange (default); live: real")
    r.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds (default: Ctrl-C)")
    r.add_argument("--out", required=True, metavar="PATH", help="the tape file to create")
    r.add_argument("--config", help="YAML config (symbols, record.*; default configs/paper.yaml)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (YAML value syntax); repeatable")
    b = sub.add_parser("backtest", help="replay a tape through the daemon and report what it traded")
    b.add_argument("tape", metavar="TAPE", help="a tape made by `arbd record`")
    b.add_argument("--config", help="YAML config (default configs/paper.yaml)")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (YAML value syntax); repeatable")
    b.add_argument("--speed", default="max", metavar="max|N",
                   help="max: as fast as the daemon keeps up (default); N: N times real time")
    b.add_argument("--json", action="store_true", help="print one JSON object (a list with --sweep)")
    b.add_argument("--report", metavar="FILE.html", help="write the HTML report of the run")
    b.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="run every combination of these values in parallel processes; repeatable")
    b.add_argument("--jobs", type=int, default=2, metavar="N", help="parallel runs for --sweep (default 2)")
    b.add_argument("--run-dir", metavar="DIR", help="keep the run directory here (default: a temporary one)")


def cmd_start(args) -> int:
    overrides = list(args.overrides)
    max_runtime = args.max_runtime_seconds
    if max_runtime is not None and max_runtime <= 0:
        fail("arbd", "--max-runtime-seconds must be > 0", 2)
    if args.venue:
        overrides.append(f"venues.source={args.venue}")
    if args.log_level:
        overrides.append(f"log_level={args.log_level}")
    if args.quiet:
        overrides.append("log_level=WARNING")
    if args.log_format:
        overrides.append(f"log_format={args.log_format}")
    if args.longrun:
        try:
            max_runtime = parse_duration(args.longrun)
        except ValueError as e:
            fail("arbd", str(e), 2)
        overrides.append("longrun.enabled=true")
    cfg = config_or_exit(args.config, overrides, args.mode)
    run = RunDir.at(args.run_dir)
    pid = run.is_running()
    if pid:
        fail("arbd", f"already running (pid {pid})")
    # Decided once, here, and handed to every actor: they share this stderr.
    cfg = replace(cfg, log_format=logjson.resolve_format(cfg.log_format, sys.stderr))
    logjson.setup("supervisor", cfg.log_level, cfg.log_format)
    from supervisors.daemon import Daemon  # heavy imports only when starting
    from supervisors.status import format_summary

    console = None
    if cfg.log_format == "text":
        from supervisors.console import STATUS_EVERY_S, DaemonConsole

        console = DaemonConsole(None if args.quiet else STATUS_EVERY_S)
    daemon = Daemon(cfg, run, max_runtime, console=console)
    try:
        code = daemon.run_forever()
    except AlreadyRunning as e:
        fail("arbd", str(e))
    except (CurveError, zmq.ZMQError, OSError) as e:  # keys, or an endpoint that cannot be bound
        fail("arbd", f"cannot start: {e}", 2)
    summary = getattr(daemon, "summary", None)
    if summary:
        print(format_summary(summary), flush=True)
    return code


def cmd_stop(args) -> int:
    run = RunDir.at(args.run_dir)
    pid = run.is_running()
    if not pid:
        fail("arbd", f"not running (run dir {run.root})")
    try:
        ep = Endpoints.from_json(run.endpoints_file.read_text())
        ControlClient(ep.control, timeout_s=3).call("shutdown")
    except (OSError, ValueError, KeyError, ControlError):
        if pid > 0:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if not run.is_running():
            print(f"arbd stopped (pid {pid})")
            return 0
        time.sleep(0.1)
    fail("arbd", f"pid {pid} did not stop within {args.timeout:g}s")


def cmd_node(args) -> int:
    overrides = list(args.overrides)
    if args.log_level:
        overrides.append(f"log_level={args.log_level}")
    cfg = config_or_exit(args.config, overrides)
    if cfg.cluster.host == MAIN:
        fail("arbd", f"node: cluster.host must name this node ({MAIN!r} is the main daemon's name)", 2)
    if not cfg.cluster.main:
        fail("arbd", "node: cluster.main must say where the main daemon's node channel is "
                     "(tcp://ADDRESS:PORT)", 2)
    run = RunDir.at(args.run_dir)
    pid = run.is_running()
    if pid:
        fail("arbd", f"already running (pid {pid})")
    logjson.setup(f"node.{cfg.cluster.host}", cfg.log_level)
    from supervisors.node import NodeDaemon  # heavy imports only when starting

    try:
        return NodeDaemon(cfg, run).run_forever()
    except AlreadyRunning as e:
        fail("arbd", str(e))
    except (CurveError, zmq.ZMQError, OSError) as e:
        fail("arbd", f"node: cannot start: {e}", 2)


def cmd_sim(args) -> int:
    from venues.sim.server import run_standalone

    return run_standalone(args.port, args.seed)


def cmd_record(args) -> int:
    from supervisors.cli_record import cmd_record as run

    return run(args)


def cmd_backtest(args) -> int:
    from supervisors.cli_backtest import cmd_backtest as run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"start": cmd_start, "stop": cmd_stop, "sim": cmd_sim, "node": cmd_node, "record": cmd_record,
                "backtest": cmd_backtest}[args.cmd](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
