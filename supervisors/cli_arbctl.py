"""`arbctl`: the operator's control CLI (status, halt, arm, restart, events, keys)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from supervisors.cliutil import OneLineParser, fail
from supervisors.control import COMMANDS, ControlClient, ControlError
from supervisors.endpoints import Endpoints
from supervisors.runfiles import RunDir


def _parser() -> OneLineParser:
    p = OneLineParser(prog="arbctl", description="Control a running arbd.")
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
                "events": cmd_events, "keys": cmd_keys}
    try:
        return handlers[args.cmd](args, run)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
