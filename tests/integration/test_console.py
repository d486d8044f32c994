"""``arbd start`` as a person sees it on a terminal, and as a pipe sees it.

Each daemon here runs with its stderr on a pseudo-terminal (what a person's
terminal is to a program), its stdout (the run summary) in a file:

- a paper run that trades, under ``NO_COLOR``: readable lines, a line per
  pair opened and closed, the status line, a restart and a halt told once
  each, no raw JSON, no escape code; it also takes
  ``--set live_trading.max_daily_loss=1e12``;
- ``--quiet`` on a colour terminal: coloured, and no status line or info log;
- ``--log-format json`` on the terminal: one JSON object a line, as before.

Config numbers that are not numbers, or negative where they must not be,
stop ``arbd start`` with one line naming the key.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import ARBD, run_cli, wait_until
from tests.support.run_daemon import PAPER, SimDaemon, SimRuns, config, sim_runs

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO |WARN |ERROR|CRIT ) (\S+) +(.*)$")
OPEN = re.compile(r"OPEN +(BTC|ETH|XRP)  (sell|buy) upbit / (buy|sell) binance  [\d.,]+  premium [+-]\d+\.\d\d%")
CLOSE = re.compile(r"CLOSE +(BTC|ETH|XRP)  .*premium [+-]\d+\.\d\d% -> [+-]\d+\.\d\d%  PnL ([+-][\d,]+) KRW")
# Each run waits for what it must show, then stops (SIGTERM: exit 0 and the
# summary); --max-runtime-seconds is only a cap, so a loaded machine's slow
# start can't end a run before its lines were printed.
RUNTIME_CAP_S = 150
# The quick baseline warms up in 5 s; pairs open and close within seconds after.
OPEN_WITHIN_S = 60
CLOSE_WITHIN_S = 20  # the halt waits this long for a close to be told, if one comes
STATUS_EVERY_S = 5.0  # supervisors/console.py's status line period


class TerminalTap:
    """Reads a pseudo-terminal's master side until every writer has closed it."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: the last process holding the terminal is gone
                return
            if not chunk:
                return
            self.data += chunk

    def so_far(self) -> str:
        return bytes(self.data).decode(errors="replace").replace("\r\n", "\n")

    def text(self, timeout: float = 10.0) -> str:
        self._thread.join(timeout)
        if not self._thread.is_alive():  # else it still reads: a closed number could be reused under it
            with contextlib.suppress(OSError):
                os.close(self.master)
        return self.data.decode(errors="replace").replace("\r\n", "\n")


def start_on_terminal(run: SimDaemon, *args: str, max_runtime_s: float, env: dict[str, str]) -> TerminalTap:
    """``arbd start`` with stderr on a pseudo-terminal; ``run`` owns the process (and its cleanup)."""
    master, slave = pty.openpty()
    run.env.update(env)
    run.started_at = time.time()
    try:
        with run.stdout_path.open("ab") as out:
            run.proc = subprocess.Popen(run.command(*args, max_runtime_s=max_runtime_s), stdout=out,
                                        stderr=slave, stdin=subprocess.DEVNULL, env=run.env, cwd=str(run.root))
    finally:
        os.close(slave)  # the daemon and its actors hold it now
    return TerminalTap(master)


def summary_int(stdout: str, name: str) -> int:
    m = re.search(rf"^{re.escape(name)}:\s+(-?[\d,]+)", stdout, re.MULTILINE)
    assert m, f"no {name!r} in the run summary:\n{stdout}"
    return int(m.group(1).replace(",", ""))


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[SimRuns]:
    with sim_runs(tmp_path) as r:
        yield r


HALTED = re.compile(r" HALTED +console test; orders stop until `arbctl arm`$", re.MULTILINE)
RESTARTED = re.compile(r" RESTART +watchdog \(restart requested\): restart #1$", re.MULTILINE)
STATUS = re.compile(r"STATUS +BTC [+-]\d+\.\d\d%  ETH [+-]\d+\.\d\d%  XRP [+-]\d+\.\d\d% \| trades \d+ opened, "
                    r"\d+ closed, \d+ open \| PnL [+-][\d,]+ KRW \| exposure [\d,]+ KRW \| (armed|halted)")


def on_screen(tap: TerminalTap, *patterns: re.Pattern[str], timeout: float, what: str) -> None:
    wait_until(lambda: all(p.search(ANSI.sub("", tap.so_far())) for p in patterns), timeout, what, interval=0.1)


@pytest.mark.timeout(180)
def test_a_terminal_run_shows_readable_trade_lines_and_no_raw_json(runs: SimRuns) -> None:
    run = runs.make(config(PAPER), start=False)

    tap = start_on_terminal(run, "--set", "live_trading.max_daily_loss=1e12", max_runtime_s=RUNTIME_CAP_S,
                            env={"NO_COLOR": "1", "TERM": "xterm-256color"})
    on_screen(tap, OPEN, timeout=OPEN_WITHIN_S, what="a pair-opened line on the terminal")
    assert run.arbctl("restart", "watchdog").returncode == 0  # not on the trade path: trading goes on
    # The halt ends trading: let a pair close first, if one will.
    with contextlib.suppress(AssertionError):
        on_screen(tap, CLOSE, timeout=CLOSE_WITHIN_S, what="a pair-closed line")
    assert run.arbctl("halt", "--reason", "console test").returncode == 0
    on_screen(tap, HALTED, RESTARTED, STATUS, timeout=30, what="the halt, the restart and a status line")
    code = run.stop(timeout=40)
    screen = tap.text()

    print(screen[-4000:])  # what the person saw (pytest -s)
    assert code == 0, screen[-3000:]
    assert "\x1b" not in screen, "NO_COLOR, yet escape codes reached the terminal"
    lines = [ln for ln in screen.splitlines() if ln.strip()]
    assert not [ln for ln in lines if ln.lstrip().startswith("{") or '"ts":' in ln], "raw JSON on the terminal"
    unreadable = [ln for ln in lines if not LINE.match(ln)]
    assert not unreadable, f"lines without time, level and actor: {unreadable[:5]}"
    assert any("arbd started" in ln for ln in lines)
    opens = [ln for ln in lines if OPEN.search(ln)]
    # A close whose IOC legs found nothing is told too ("not done ... stays open"): not a closed pair.
    closes = [CLOSE.search(ln) for ln in lines if " CLOSE " in ln and "not done" not in ln]
    statuses = [ln for ln in lines if " STATUS " in ln]
    assert opens, "no pair-opened line in a trading run:\n" + "\n".join(lines[-40:])
    assert all(closes), [ln for ln in lines if " CLOSE " in ln and "not done" not in ln]
    assert any(STATUS.search(s) for s in statuses), statuses
    assert [ln for ln in lines if HALTED.search(ln)]
    assert len([ln for ln in lines if RESTARTED.search(ln)]) == 1
    assert not [ln for ln in lines if re.search(r"supervisor +watchdog restart ", ln)], "a restart told twice"
    out = run.stdout()
    opened, closed = summary_int(out, "Trades Opened"), summary_int(out, "Trades Closed")
    # Every pair the run summary counts was told once, except one whose last
    # fill may race the shutdown; never one that did not happen.
    assert opened - 1 <= len(opens) <= opened, (len(opens), out)
    assert closed - 1 <= len(closes) <= closed, (len(closes), out)
    if len(closes) == closed:
        told = sum(int(m.group(2).replace(",", "")) for m in closes if m)
        assert abs(told - summary_int(out, "Total PnL")) <= len(closes), (told, out)


@pytest.mark.timeout(120)
def test_quiet_on_a_colour_terminal_is_coloured_without_status_or_info_logs(runs: SimRuns) -> None:
    run = runs.make(config(PAPER), start=False)
    env = {"TERM": "xterm-256color"}
    run.env.pop("NO_COLOR", None)

    tap = start_on_terminal(run, "--quiet", max_runtime_s=RUNTIME_CAP_S, env=env)
    on_screen(tap, re.compile(r" ARMED +paper: orders may flow"), timeout=40, what="the ARMED line")
    time.sleep(STATUS_EVERY_S + 1.0)  # long enough for a status line, were one printed
    code = run.stop(timeout=40)
    screen = tap.text()

    assert code == 0, screen[-3000:]
    assert ANSI.search(screen), "a colour terminal got no colour"
    plain = [ANSI.sub("", ln) for ln in screen.splitlines() if ln.strip()]
    assert all(LINE.match(ln) for ln in plain), plain
    assert not any(" STATUS " in ln for ln in plain)
    narrated = re.compile(r"^\S+ INFO  \S+ +(ARMED|OPEN|CLOSE|UNWIND|RESUMED|RESTART|RECYCLE|NO FILL|HEDGED) ")
    assert not [ln for ln in plain if " INFO " in ln and not narrated.match(ln)], plain
    assert any(re.search(r" ARMED +paper: orders may flow", ln) for ln in plain), plain


@pytest.mark.timeout(120)
def test_log_format_json_on_a_terminal_is_one_json_object_a_line(runs: SimRuns) -> None:
    run = runs.make(config(PAPER), start=False)

    tap = start_on_terminal(run, "--log-format", "json", max_runtime_s=RUNTIME_CAP_S, env={"TERM": "xterm-256color"})
    for actor in ("supervisor", "executor", "engine"):
        on_screen(tap, re.compile(rf'"actor": ?"{actor}"'), timeout=40, what=f"a JSON line from {actor}")
    code = run.stop(timeout=40)
    screen = tap.text()

    assert code == 0, screen[-3000:]
    lines = [ln for ln in screen.splitlines() if ln.strip()]
    assert len(lines) > 10
    records = [json.loads(ln) for ln in lines]
    assert all({"ts", "level", "actor", "logger", "msg"} <= r.keys() for r in records)
    assert {r["actor"] for r in records} >= {"supervisor", "executor", "engine"}
    assert "\x1b" not in screen


# -- numbers on the command line -----------------------------------------------------------

@pytest.mark.parametrize("value,expected", [
    ("-5", "arbd: config: live_trading.max_daily_loss: must be a number >= 0 (USDT), got -5.0"),
    ("abc", "arbd: config: live_trading.max_daily_loss: expected a number, got 'abc'"),
])
def test_a_bad_number_stops_arbd_start_with_one_line_naming_the_key(tmp_path: Path, value: str,
                                                                    expected: str) -> None:
    res = run_cli(ARBD, "start", "--run-dir", str(tmp_path / "run"), "--max-runtime-seconds", "5",
                  "--set", f"live_trading.max_daily_loss={value}")

    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "run" / "arbd.pid").exists()


def test_quiet_and_a_log_level_together_are_one_usage_line(tmp_path: Path) -> None:
    res = run_cli(ARBD, "start", "--run-dir", str(tmp_path / "run"), "--quiet", "--log-level", "DEBUG")

    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "not allowed with argument" in res.stderr and "Traceback" not in res.stderr
