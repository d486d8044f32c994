"""The terminal: log lines a person reads, and the daemon's narration.

With ``log_format: text`` (``arbd start`` on a terminal, or ``--log-format
text``) every process formats its log records with :class:`TextFormatter`
- time, level, actor, message, fields - rendered by rich: coloured when
the stream is a terminal that can show colour, plain under ``NO_COLOR``, a
dumb terminal or a pipe. Every record is one ``write`` of one line, so the
processes sharing the terminal never split each other's lines (which is
also why there is no live status bar: a redrawn region and eight writers do
not mix).

Trade, trading-state and restart lines and the status line are the
supervisor's alone: :class:`DaemonConsole` feeds the pure
:class:`supervisors.narrator.Narrator` what the daemon already receives (the
bus proxy's capture of every ``OrderEvent`` and ``TradingState``, its own
supervisor events, the last-value cache for the status line) and logs what
it returns. No actor writes to the terminal for it, and with JSON logs the
daemon has no console at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from messages import DecodeError, Opportunity, OrderEvent, PositionState, TradingState, decode
from supervisors.logjson import SECRETISH, redact
from supervisors.narrator import (
    BAD,
    GOOD,
    NARRATED_RESTART_EVENTS,
    NOTE,
    QUIET,
    WARN,
    Line,
    Narrator,
    status_line,
)

if TYPE_CHECKING:
    from supervisors.daemon import Daemon

STATUS_EVERY_S = 5.0

_LEVELS = {logging.DEBUG: ("DEBUG", "dim"), logging.INFO: ("INFO", "green"),
           logging.WARNING: ("WARN", "yellow"), logging.ERROR: ("ERROR", "bold red"),
           logging.CRITICAL: ("CRIT", "bold white on red")}
_TONES = {GOOD: "bold green", BAD: "bold red", WARN: "bold yellow", NOTE: "bold cyan", QUIET: "dim"}
_PLANNED = frozenset({"start", "exit", "stop"})
_ACTOR_WIDTH = 12  # "feed.binance"
_TAG_WIDTH = 11  # "FAIL-CLOSED"


def make_console() -> Console:
    """A rich console on stderr. Colour follows the terminal (rich reads TERM,
    COLORTERM, FORCE_COLOR); under NO_COLOR there is no escape code at all
    (rich alone would still send bold and dim)."""
    no_color = os.environ.get("NO_COLOR", "") != ""
    return Console(stderr=True, color_system=None if no_color else "auto", highlight=False,
                   markup=False, emoji=False, soft_wrap=True)


class TextFormatter(logging.Formatter):
    """One readable line per record: ``HH:MM:SS.mmm LEVEL actor [TAG] message  key=value``.

    A record logged by :class:`DaemonConsole` carries its :class:`Line` (actor,
    tag, tone) in ``record.console_line``. Secrets are redacted as in the JSON logs."""

    def __init__(self, actor: str, console: Console | None = None) -> None:
        super().__init__()
        self._actor = actor
        self._console = console or make_console()

    def format(self, record: logging.LogRecord) -> str:
        line: Line | None = getattr(record, "console_line", None)
        name, style = _LEVELS.get(record.levelno, (record.levelname, ""))
        t = Text()
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        t.append(f"{stamp}.{int(record.msecs):03d} ", style="dim")
        t.append(f"{name:<5} ", style=style)
        t.append(f"{(line.actor if line else self._actor):<{_ACTOR_WIDTH}} ", style="cyan")
        if line is not None:
            t.append(f"{line.tag:<{_TAG_WIDTH}} ", style=_TONES.get(line.tone, ""))
        t.append(redact(record.getMessage()), style="dim" if line is not None and line.tone == QUIET else "")
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields:
            t.append("  " + " ".join(f"{k}={'***' if SECRETISH.search(k) else v}" for k, v in fields.items()),
                     style="dim")
        if record.exc_info:
            t.append("\n" + redact(self.formatException(record.exc_info)), style="red")
        with self._console.capture() as cap:
            self._console.print(t, end="", soft_wrap=True)  # one record, one line, however long
        return cap.get()


class DaemonConsole:
    """The supervisor's narration on a terminal (see the module docstring).

    ``status_every_s`` None (``--quiet``) prints no status line."""

    def __init__(self, status_every_s: float | None = STATUS_EVERY_S,
                 now: Callable[[], float] = time.time) -> None:
        self.status_every_s = status_every_s
        self.now = now
        self.narrator = Narrator(now)
        self.log = logging.getLogger("arbd.console")
        # Its own level: trade and state lines are the console's point, and
        # show even when --quiet or --log-level raise the level of the logs.
        self.log.setLevel(logging.INFO)
        self._next_status = now() + (status_every_s or 0.0)
        # The supervisor logs every restart-log record; the ones narrated here
        # (with their restart count and backoff) would otherwise show twice.
        # A logger's filter does not reach records of its child loggers: this is
        # exactly the supervisor's own.
        logging.getLogger("arbd.supervisor").addFilter(self._not_narrated)

    @staticmethod
    def _not_narrated(record: logging.LogRecord) -> bool:
        event = getattr(record, "restart_event", None)
        if event in NARRATED_RESTART_EVENTS:
            return False
        # Planned starts and stops (INFO; an unexpected exit is a WARNING) are
        # eight lines each way: the restart log keeps them, the terminal need not.
        return not (event in _PLANNED and record.levelno <= logging.INFO)

    def start(self, ledger_path: Path) -> None:
        """Learn the pairs earlier runs left open, so their close reads as a close."""
        if not ledger_path.exists():
            return
        from storage.ledger import Ledger

        try:
            ledger = Ledger(ledger_path, readonly=True)
            try:
                history = list(ledger.events()) + ledger.pending_events()
            finally:
                ledger.close()
        except sqlite3.Error as e:
            self.log.warning("console: cannot read the ledger's history (%s); pairs opened before "
                             "this start are news to it", e)
            return
        self.narrator = Narrator(self.now, history)

    def on_frames(self, frames: list[tuple[bytes, bytes]]) -> None:
        """Bus frames the daemon drained from the proxy's capture."""
        for topic, frame in frames:
            if topic.startswith(b"order.") or topic == b"state":
                with contextlib.suppress(DecodeError):
                    msg = decode(frame).msg
                    if type(msg) is OrderEvent:
                        self._emit(self.narrator.order_event(msg))
                    elif type(msg) is TradingState:
                        self.narrator.trading_state(msg)

    def on_supervisor_event(self, kind: str, data: dict[str, object]) -> None:
        self._emit(self.narrator.supervisor_event(kind, data))

    def tick(self, daemon: Daemon) -> None:
        """Settled trading-state lines now; the status line when it is due."""
        self._emit(self.narrator.poll())
        if self.status_every_s is None:
            return
        now = self.now()
        if now < self._next_status:
            return
        self._next_status = now + self.status_every_s
        premiums = {}
        for topic, frame in list(daemon.bus.last.items()):
            if topic.startswith(b"opp."):
                with contextlib.suppress(DecodeError):
                    m = decode(frame).msg
                    if type(m) is Opportunity:
                        premiums[m.symbol] = m.premium_pct
        pos, ts = daemon.bus.latest("position"), daemon.bus.latest("state")
        self._emit([status_line(premiums, pos if isinstance(pos, PositionState) else None,
                                ts if isinstance(ts, TradingState) else None)])

    def _emit(self, lines: list[Line]) -> None:
        for ln in lines:
            self.log.log(ln.level, ln.text, extra={"console_line": ln})


__all__ = ["STATUS_EVERY_S", "DaemonConsole", "TextFormatter", "make_console"]
