"""The terminal side: readable log lines (rich), colour only where it can be
shown and never under NO_COLOR, and the daemon's console fed with real bus
frames."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from rich.console import Console

from messages import (
    BUY_UPBIT,
    SELL_UPBIT,
    DirectionQuote,
    Message,
    Opportunity,
    OrderEvent,
    PositionState,
    TradingState,
    decode,
    encode,
)
from supervisors.console import DaemonConsole, TextFormatter, make_console
from supervisors.logjson import JsonFormatter, resolve_format

ESC = "\x1b["


def record(msg: str = "feed upbit: connected", level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("arbd.feed", level, __file__, 1, msg, None, None)
    rec.created = 1_800_000_000.25
    rec.msecs = 250.0
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def colour_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, color_system="standard", highlight=False,
                   markup=False, emoji=False, soft_wrap=True)


# -- formatting -------------------------------------------------------------------------

def test_a_text_line_has_time_level_actor_message_and_fields_and_no_json() -> None:
    out = TextFormatter("feed.upbit", Console(file=io.StringIO(), color_system=None)).format(
        record(fields={"url": "ws://127.0.0.1:1/websocket/v1", "reconnects": 2}))

    assert re.fullmatch(r"\d\d:\d\d:\d\d\.250 INFO  feed\.upbit   feed upbit: connected"
                        r"  url=ws://127\.0\.0\.1:1/websocket/v1 reconnects=2", out), out
    assert "\n" not in out and "{" not in out


def test_on_a_colour_terminal_the_line_is_coloured_by_rich() -> None:
    out = TextFormatter("engine", colour_console()).format(record(level=logging.WARNING))

    assert ESC in out
    assert re.sub(r"\x1b\[[0-9;]*m", "", out).endswith("WARN  engine       feed upbit: connected")


def test_no_color_means_no_escape_code_at_all_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich would treat stderr as a colour terminal
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")

    out = TextFormatter("guard", make_console()).format(record(level=logging.ERROR))

    assert ESC not in out and "\x1b" not in out
    assert "ERROR guard" in out


def test_a_terminal_without_no_color_gets_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.delenv("NO_COLOR", raising=False)

    assert ESC in TextFormatter("guard", make_console()).format(record())


def test_secrets_are_redacted_in_text_as_in_json() -> None:
    rec = record("signed with secret=abcdef0123456789", fields={"api_key": "sk-9f8e7d6c5b4a"})

    out = TextFormatter("executor", Console(file=io.StringIO(), color_system=None)).format(rec)

    assert "abcdef0123456789" not in out and "sk-9f8e7d6c5b4a" not in out
    assert "api_key=***" in out


def test_markup_like_text_is_printed_as_written() -> None:
    out = TextFormatter("engine", Console(file=io.StringIO(), color_system=None)).format(
        record("symbols=[BTC] [bold]x[/bold]"))

    assert out.endswith("symbols=[BTC] [bold]x[/bold]")


def test_auto_is_text_on_a_terminal_and_json_on_a_pipe() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert resolve_format("auto", Tty()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("json", Tty()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"


def test_the_json_formatter_is_unchanged_by_the_console() -> None:
    out = JsonFormatter("engine").format(record(fields={"n": 1}))

    assert json.loads(out) == {"ts": 1_800_000_000.25, "level": "info", "actor": "engine", "logger": "arbd.feed",
                               "msg": "feed upbit: connected", "n": 1}


# -- the daemon's console -----------------------------------------------------------------

class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, rec: logging.LogRecord) -> None:
        self.records.append(rec)

    def tags(self) -> list[str]:
        return [r.console_line.tag for r in self.records if hasattr(r, "console_line")]


@pytest.fixture
def captured() -> Iterator[Captured]:
    h = Captured()
    loggers = [logging.getLogger("arbd.console"), logging.getLogger("arbd.supervisor")]
    for lg in loggers:
        lg.addHandler(h)
    sup = loggers[1]
    level, filters = sup.level, list(sup.filters)
    sup.setLevel(logging.INFO)
    try:
        yield h
    finally:
        for lg in loggers:
            lg.removeHandler(h)
        sup.setLevel(level)
        sup.filters = filters


def frame(msg: Message) -> tuple[bytes, bytes]:
    return msg.topic().encode(), encode(msg, "executor", 1, 1)


def leg(cid: str, venue: str, side: str, status: str, price: float) -> OrderEvent:
    filled = status == "filled"
    return OrderEvent(intent_id="i1", pair_id="p1", action="open", client_order_id=cid, venue=venue,
                      symbol="ETH", side=side, status=status, qty=0.0159, price=price,
                      filled_qty=0.0159 if filled else 0.0, avg_price=price if filled else 0.0, fx=1399.25)


class FakeBus:
    def __init__(self, msgs: list[Message]) -> None:
        self.last = {m.topic().encode(): encode(m, "x", 1, 1) for m in msgs}

    def latest(self, topic: str) -> Message | None:
        f = self.last.get(topic.encode())
        return decode(f).msg if f is not None else None


class FakeDaemon:
    def __init__(self, msgs: list[Message]) -> None:
        self.bus = FakeBus(msgs)


def test_order_events_from_the_bus_become_one_open_line(captured: Captured) -> None:
    c = DaemonConsole(status_every_s=None)

    c.on_frames([frame(leg("i1-0", "upbit", "sell", "sent", 5_012_000.0)),
                 frame(leg("i1-1", "binance", "buy", "sent", 3_499.89)),
                 (b"book.upbit.BTC", b"not even msgpack"),
                 frame(leg("i1-0", "upbit", "sell", "filled", 5_012_000.0)),
                 frame(leg("i1-1", "binance", "buy", "filled", 3_499.89))])

    assert captured.tags() == ["OPEN"]
    assert captured.records[0].getMessage().startswith("ETH  sell upbit / buy binance  0.0159  premium +2.34%")


def test_a_garbled_order_frame_is_skipped(captured: Captured) -> None:
    DaemonConsole(status_every_s=None).on_frames([(b"order.upbit", b"\x93garbage")])

    assert captured.records == []


def test_the_status_line_comes_when_due_from_the_last_value_cache(captured: Captured) -> None:
    t = [1000.0]
    c = DaemonConsole(status_every_s=5.0, now=lambda: t[0])
    quote = DirectionQuote(direction=SELL_UPBIT, premium_pct=2.0, edge_pct=0.1, qty=1.0, upbit_price=1.0,
                           binance_price=1.0)
    opp = Opportunity(symbol="BTC", premium_pct=2.014, baseline_pct=1.9, fx=1400.0, sell_upbit=quote,
                      buy_upbit=dataclasses.replace(quote, direction=BUY_UPBIT), expires_ns=0)
    pos = PositionState(exposure_krw=80_000.0, open_pairs=1, trades_opened=3, trades_closed=2,
                        realized_pnl_krw=235.0, daily_pnl_krw=235.0)
    ts = TradingState(mode="paper", state="armed", fail_closed=False, reasons=(), allowed=3, blocked=0,
                      daily_pnl=0.1)
    d = FakeDaemon([opp, pos, ts])

    c.tick(d)  # type: ignore[arg-type]
    t[0] += 5.0
    c.tick(d)  # type: ignore[arg-type]
    c.tick(d)  # type: ignore[arg-type]

    assert captured.tags() == ["STATUS"]
    assert captured.records[0].getMessage() == ("BTC +2.01% | trades 3 opened, 2 closed, 1 open | "
                                                "PnL +235 KRW | exposure 80,000 KRW | armed")


def test_quiet_has_no_status_line(captured: Captured) -> None:
    t = [1000.0]
    c = DaemonConsole(status_every_s=None, now=lambda: t[0])
    t[0] += 60

    c.tick(FakeDaemon([]))  # type: ignore[arg-type]

    assert captured.records == []


def test_restarts_are_narrated_once_and_planned_starts_are_not_repeated(captured: Captured) -> None:
    c = DaemonConsole(status_every_s=None)
    sup = logging.getLogger("arbd.supervisor")

    sup.info("%s %s %s", "engine", "start", "initial start", extra={"restart_event": "start"})
    sup.warning("%s %s %s", "engine", "exit", "unexpected exit", extra={"restart_event": "exit"})
    sup.warning("%s %s %s", "engine", "restart", "unexpected exit", extra={"restart_event": "restart"})
    c.on_supervisor_event("restart", {"actor": "engine", "event": "restart", "reason": "unexpected exit",
                                      "restarts": 1, "backoff_s": 0.05})

    assert [r.getMessage() for r in captured.records] == ["engine exit unexpected exit",
                                                          "engine (unexpected exit): restart #1 in 0.05s"]
    assert captured.tags() == ["RESTART"]
