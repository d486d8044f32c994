"""The backtest board: the tape clock every process reads, each actor's work
counters, and the rule that says the daemon is quiet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from supervisors.progress import (
    ATTACHED,
    DIRECT_RECV,
    DONE,
    FRAMES,
    NEVER,
    NEXT_TICK,
    PENDING,
    RECV,
    STREAM_SENT,
    Board,
    Progress,
    board_path,
    wake_path,
)
from venues.sim.replay_sync import busy, next_tick, unattached

NAMES = ["sim", "feed.upbit", "feed.binance", "engine", "position", "executor"]
T0 = 1_800_000_000_000_000_000


def board(tmp_path: Path) -> Board:
    return Board.create(board_path(tmp_path), NAMES, T0)


def test_the_clock_is_one_word_every_process_reads(tmp_path: Path) -> None:
    b = board(tmp_path)
    b.clock_ns = T0 + 5
    code = ("from messages import clock; import sys; clock.attach(sys.argv[1]); "
            "print(clock.time_ns(), clock.monotonic_ns(), clock.time())")
    out = subprocess.run([sys.executable, "-c", code, str(board_path(tmp_path))], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}, check=True)
    ns, mono, secs = out.stdout.split()
    assert int(ns) == int(mono) == T0 + 5
    assert abs(float(secs) - (T0 + 5) / 1e9) < 1e-3


def test_a_process_writes_its_slot_and_pokes_the_wake_pipe_once_it_has_nothing_to_do(
        tmp_path: Path) -> None:
    b = board(tmp_path)
    reader = os.open(wake_path(tmp_path), os.O_RDWR | os.O_NONBLOCK)
    p = Progress(tmp_path, "engine")
    os.read(reader, 100)  # the first (idle) write
    p.add(recv=3, direct_recv=3)
    p.update({"done": 2}, {"next_tick": T0 + 500})
    slot = b.snapshot()[NAMES.index("engine")]
    assert (slot[RECV], slot[DONE], slot[DIRECT_RECV], slot[NEXT_TICK]) == (3, 2, 3, T0 + 500)
    assert slot[0] % 2 == 0  # the sequence word is even between writes
    with pytest.raises(BlockingIOError):  # still busy: nothing to look at yet
        os.read(reader, 100)
    p.add(done=1)
    assert len(os.read(reader, 100)) == 1
    os.close(reader)


def test_a_restarted_process_carries_on_from_its_slots_counters(tmp_path: Path) -> None:
    board(tmp_path)
    Progress(tmp_path, "engine").add(recv=4, done=4)
    again = Progress(tmp_path, "engine")
    again.add(recv=1)
    slot = Board(board_path(tmp_path)).snapshot()[NAMES.index("engine")]
    assert (slot[RECV], slot[DONE]) == (5, 4)


def quiet_board(tmp_path: Path) -> tuple[Board, dict[str, Progress]]:
    b = board(tmp_path)
    ps = {n: Progress(tmp_path, n) for n in NAMES[1:]}
    for p in ps.values():
        p.set(attached=1, next_tick=T0 + 250_000_000)
    ps["engine"].set(direct_mask=ps["engine"].mask_of(["feed.upbit", "feed.binance"]))
    ps["position"].set(direct_mask=ps["position"].mask_of(["engine"]))
    return b, ps


def why(b: Board, parked: int = 0, frames: dict[str, int] | None = None) -> str:
    return busy(b.snapshot(), b.names, b.clock_ns, parked, frames or {"upbit": 0, "binance": 0})


def test_a_daemon_with_nothing_to_do_is_quiet(tmp_path: Path) -> None:
    b, _ = quiet_board(tmp_path)
    assert why(b) == ""
    assert next_tick(b.snapshot(), b.names, NEVER) == T0 + 250_000_000
    assert unattached(b.snapshot(), b.names) == []


def test_a_frame_is_followed_down_the_direct_streams_until_it_is_handled(tmp_path: Path) -> None:
    b, ps = quiet_board(tmp_path)
    assert "feed.upbit: 1 frame(s)" in why(b, frames={"upbit": 1, "binance": 0})
    ps["feed.upbit"].set(frames=1, stream_sent=1)
    assert "engine: 1 stream message(s)" in why(b, frames={"upbit": 1, "binance": 0})
    ps["engine"].add(recv=1, direct_recv=1)
    assert "engine: 1 message(s) to handle" in why(b, frames={"upbit": 1, "binance": 0})
    ps["engine"].add(done=1, out_put=1)
    assert "engine: 1 item(s) to send" in why(b, frames={"upbit": 1, "binance": 0})
    ps["engine"].update({"out_sent": 1}, {"stream_sent": 1})
    assert "position: 1 stream message(s)" in why(b, frames={"upbit": 1, "binance": 0})
    ps["position"].add(recv=1, direct_recv=1, done=1)
    assert why(b, frames={"upbit": 1, "binance": 0}) == ""


def test_unacknowledged_sends_due_ticks_and_legs_not_parked_are_not_quiet(tmp_path: Path) -> None:
    b, ps = quiet_board(tmp_path)
    ps["position"].set(unacked=1)
    assert "unacknowledged" in why(b)
    ps["position"].set(unacked=0)
    b.clock_ns = T0 + 250_000_000
    assert "tick due" in why(b)
    for p in ps.values():
        p.set(next_tick=T0 + 500_000_000)
    ps["executor"].set(pending=2)
    assert "2 leg(s) in flight, 1 parked" in why(b, parked=1)
    assert why(b, parked=2) == ""


def test_the_replays_own_slot_and_actors_not_yet_started_do_not_count(tmp_path: Path) -> None:
    b, ps = quiet_board(tmp_path)
    Progress(tmp_path, "sim").add(recv=7)
    assert why(b) == ""
    assert unattached(b.snapshot(), b.names) == []
    ps["engine"].set(attached=0)
    assert unattached(b.snapshot(), b.names) == ["engine"]
    assert b.snapshot()[NAMES.index("feed.upbit")][ATTACHED] == 1
    assert b.snapshot()[NAMES.index("engine")][FRAMES] == 0
    assert b.snapshot()[NAMES.index("engine")][PENDING] == 0
    assert b.snapshot()[NAMES.index("engine")][STREAM_SENT] == 0


def test_bus_messages_are_counted_per_subscriber_from_when_the_replay_says_so(tmp_path: Path) -> None:
    b, ps = quiet_board(tmp_path)
    ps["position"].subscribe(["state", "venue."])
    ps["executor"].subscribe(["book.upbit.USDT", "state"])
    ps["engine"].bus_sent("state")  # before counting starts: not counted
    b.count_bus()
    base = b.snapshot()
    ps["engine"].bus_sent("state")  # both read it
    ps["engine"].bus_sent("book.upbit.BTC")  # nobody reads it
    ps["engine"].add(out_put=0)  # the counts go out with the process's next write
    assert "bus message(s) from engine" in busy(b.snapshot(), b.names, b.clock_ns, 0,
                                                  {"upbit": 0, "binance": 0}, base)
    ps["position"].bus_received("engine", 0)
    ps["executor"].bus_received("engine", 0)
    ps["position"].add(done=1)
    ps["executor"].add(done=1)
    assert busy(b.snapshot(), b.names, b.clock_ns, 0, {"upbit": 0, "binance": 0}, base) == ""
    ps["executor"].bus_received("supervisor", 0)  # a sender off the board is not counted as bus
    assert b.snapshot()[NAMES.index("executor")][RECV] == 2
