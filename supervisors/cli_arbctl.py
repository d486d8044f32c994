"""`arbctl`: the operator's control CLI (status, halt, arm, restart, events,
keys) and its reports for people (trades, report), which read the run
directory and need no running daemon."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from supervisors.cliutil import OneLineParser, fail
from supervisors.control import COMMANDS, ControlClient, ControlError
from supervisors.endpoints import Endpoints
from supervisors.runfiles import RunDir


def _parser() -> OneLineParser:
    p = OneLineParser(prog="arbctl", description="Control a running arbd, and read its run directory (trades, report).")
    p.add_argument("--run-dir", default="run", help="the daemon's run directory (default ./run)")
    p.add_argument("--timeout", type=float, default=8.0, help="seconds to wait for a reply")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=OneLineParser)
    s = sub.add_parser("status", help=COMMANDS["status"].help)
    s.add_argument("--json", action="store_true", help="print the status object as JSON")
    s.add_argument("--watch", nargs="?", type=float, const=1.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 1) until Ctrl-C")
    h = sub.add_parser("halt", help=COMMANDS["halt"].help)
    h.add_argument("--reason", default="operator halt")
    a = sub.add_parser("arm", help=COMMANDS["arm"].help)
    a.add_argument("--confirm", metavar="MODE", default="", help="required in live_trading: live_trading")
    r = sub.add_parser("restart", help=COMMANDS["restart"].help)
    r.add_argument("actor")
    e = sub.add_parser("events", help="print the event log (JSONL), optionally filtered and followed")
    e.add_argument("--type", dest="event_type", help="only this event_type (trade, risk_block, ...)")
    e.add_argument("--follow", action="store_true", help="keep printing new events")
    t = sub.add_parser("trades", help="list the ledger's pairs (opened, closed, legs, fills, PnL); "
                                      "needs no running daemon")
    t.add_argument("--since", metavar="WHEN", help="only pairs opened or closed since WHEN (or still open): "
                                                  "an ISO time (local unless it has an offset) or 30m, 1h, 2d")
    t.add_argument("--json", action="store_true", help="one JSON document: totals and every pair with its legs")
    rp = sub.add_parser("report", help="write one self-contained HTML page with plots (premium, PnL, "
                                       "exposure, orders); needs no running daemon")
    rp.add_argument("--out", required=True, metavar="FILE.html", help="the page to write")
    rp.add_argument("--since", metavar="WHEN", help="only what happened since WHEN (as for trades)")
    k = sub.add_parser("keys", help="CURVE keys for tcp between hosts")
    ksub = k.add_subparsers(dest="keys_cmd", required=True, parser_class=OneLineParser)
    kn = ksub.add_parser("new", help="make NAME.key (public) and NAME.key_secret (mode 0600) for host NAME")
    kn.add_argument("name", help="the host's name (main, or a node's cluster.host)")
    kn.add_argument("--dir", default="keys", help="where to write them (default ./keys)")
    return p


def _client(run: RunDir, timeout: float) -> ControlClient:
    if not run.is_running():
        fail("arbctl", f"arbd is not running (run dir {run.root})")
    try:
        ep = Endpoints.from_json(run.endpoints_file.read_text())
    except (OSError, ValueError, KeyError):
        fail("arbctl", f"arbd in {run.root} has not published its endpoints yet")
    return ControlClient(ep.control, timeout_s=timeout)


def _call(client: ControlClient, command: str, **args: Any) -> Any:
    try:
        reply = client.call(command, **args)
    except ControlError as e:
        fail("arbctl", e.reason)
    if not reply.ok:
        fail("arbctl", f"{command} refused: {reply.error_reason}")
    return reply.result


def cmd_status(args: Any, run: RunDir) -> int:
    from supervisors.status_table import render

    client = _client(run, args.timeout)
    while True:
        st = _call(client, "status")
        if args.json:
            print(json.dumps(st, sort_keys=True))
        else:
            if args.watch:
                sys.stdout.write("\033[H\033[2J")
            print(render(st, color=sys.stdout.isatty()))
        if not args.watch:
            return 0
        sys.stdout.flush()
        time.sleep(args.watch)


def cmd_halt(args: Any, run: RunDir) -> int:
    res = _call(_client(run, args.timeout), "halt", reason=args.reason)
    print(f"halted: {res.get('halt_reason', args.reason) if isinstance(res, dict) else args.reason}")
    return 0


def cmd_arm(args: Any, run: RunDir) -> int:
    res = _call(_client(run, args.timeout), "arm", confirm=args.confirm)
    print(f"armed ({res.get('mode', '') if isinstance(res, dict) else ''})".replace(" ()", ""))
    return 0


def cmd_restart(args: Any, run: RunDir) -> int:
    _call(_client(run, args.timeout), "restart", actor=args.actor)
    print(f"restarting {args.actor}")
    return 0


def _event_files(run: RunDir) -> list[Path]:
    return sorted(run.events_dir.glob("longrun_events_*.jsonl"))


def cmd_events(args: Any, run: RunDir) -> int:
    if not run.events_dir.is_dir():
        fail("arbctl", f"no event log in {run.root}")
    want = args.event_type
    offsets: dict[Path, int] = {}

    def emit_new() -> None:
        for f in _event_files(run):
            with f.open("rb") as fh:
                fh.seek(offsets.get(f, 0))
                data = fh.read()
                complete = data[: data.rfind(b"\n") + 1]
                offsets[f] = offsets.get(f, 0) + len(complete)
            for line in complete.decode(errors="replace").splitlines():
                if not line.strip():
                    continue
                if want:
                    try:
                        if json.loads(line).get("event_type") != want:
                            continue
                    except ValueError:
                        continue
                print(line, flush=True)

    emit_new()
    while args.follow:
        time.sleep(0.5)
        emit_new()
    return 0


def _since_ns(text: str | None) -> int:
    from supervisors.since import parse_since

    if text is None:
        return 0
    try:
        return parse_since(text, time.time_ns())
    except ValueError as e:
        fail("arbctl", str(e), 2)


def _existing_run_dir(run: RunDir) -> None:
    if not run.root.is_dir():
        fail("arbctl", f"no run directory at {run.root}")


def cmd_trades(args: Any, run: RunDir) -> int:
    from supervisors.trades import LedgerUnreadable, document, read_history, render_table

    since_ns = _since_ns(args.since)
    _existing_run_dir(run)
    try:
        history = read_history(run.ledger_path)
    except FileNotFoundError:
        fail("arbctl", f"no ledger in {run.root} (state/ledger.sqlite): arbd has not traded there")
    except LedgerUnreadable as e:
        fail("arbctl", str(e))
    now = time.time()
    if args.json:
        print(json.dumps(document(history, since_ns, now), sort_keys=True))
    else:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        print(render_table(history, since_ns, now, color=color))
    return 0


def cmd_report(args: Any, run: RunDir) -> int:
    from supervisors.report import ReportError, write_report

    since_ns = _since_ns(args.since)
    _existing_run_dir(run)
    out = Path(args.out)
    try:
        write_report(run.root, out, since_ns)
    except ReportError as e:
        fail("arbctl", str(e))
    print(f"wrote {out.resolve()} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def cmd_keys(args: Any, run: RunDir) -> int:
    from supervisors.curve import AUTHORIZED, CurveError, new_keys

    try:
        pub, sec, public = new_keys(args.dir, args.name)
    except CurveError as e:
        fail("arbctl", f"keys: {e}")
    except OSError as e:
        fail("arbctl", f"keys: cannot write in {args.dir}: {e.strerror or e}")
    print(f"{sec}  (secret: stays on host {args.name}; bus.curve.keys_dir: {sec.parent})")
    print(f"{pub}  (public {public}: copy to {AUTHORIZED}/ on every host that talks to {args.name})")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    run = RunDir.at(args.run_dir)
    handlers = {"status": cmd_status, "halt": cmd_halt, "arm": cmd_arm, "restart": cmd_restart,
                "events": cmd_events, "trades": cmd_trades, "report": cmd_report, "keys": cmd_keys}
    try:
        return handlers[args.cmd](args, run)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
