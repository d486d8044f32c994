"""Record and backtest (issue 15): a tape replays through the whole daemon with
the same trades every time and at every speed; a cut tape replays what is
whole, a damaged one is one error naming the offset; a sweep runs its grid.

Every run is a real ``bin/arbd record`` / ``bin/arbd backtest`` (tests/support/
backtest.py); comparisons are on the fill log (tape time of each fill, pair,
action, venue, symbol, side, quantity, price, fee), not only on totals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from storage.tape import TapeReader
from tests.support.backtest import QUICK, TAPE, arbd, backtest, cut, leftovers

pytestmark = pytest.mark.timeout(240)

TOTALS = ("trades_opened", "trades_closed", "open_pairs", "pnl_krw", "orders", "fills", "fees_krw",
          "max_drawdown_krw")


def same_trades(a: dict, b: dict) -> None:
    assert a["fill_log"] == b["fill_log"]
    assert {k: a[k] for k in TOTALS} == {k: b[k] for k in TOTALS}


def test_sixty_seconds_recorded_from_the_embedded_exchange_replay_to_the_same_trades_twice(
        tmp_path: Path) -> None:
    tape = tmp_path / "sixty.arbt"
    out, marker = arbd("record", "--venue", "sim", "--seconds", "60", "--out", str(tape), timeout=120)
    assert out.returncode == 0, out.stderr
    assert not leftovers(marker)
    assert "recorded" in out.stdout and str(tape) in out.stdout
    reader = TapeReader(tape)
    chunks = reader.scan()
    assert (chunks[-1].last_ns - chunks[0].first_ns) / 1e9 == pytest.approx(60, abs=1.5)
    assert {f.stream for f in reader.frames()} >= {"orderbook:KRW-BTC", "orderbook:KRW-USDT",
                                                  "btcusdt@depth20@100ms", "xrpusdt@trade"}

    first = backtest(tape)
    second = backtest(tape)

    assert first["trades_opened"] >= 2 and first["fills"] >= 4, first
    same_trades(first, second)
    assert first["settle_timeouts"] == second["settle_timeouts"] == 0


def test_a_replay_at_max_speed_trades_exactly_as_one_in_real_time(tmp_path: Path) -> None:
    short = tmp_path / "short.arbt"
    cut(TAPE, short, 12.0)

    fast = backtest(short, *QUICK)
    real = backtest(short, *QUICK, "--speed", "1")

    assert fast["fills"] >= 2, fast
    same_trades(fast, real)
    assert real["replay_speedup"] == pytest.approx(1.0, abs=0.1)
    assert fast["replay_speedup"] > 3 * real["replay_speedup"]


def test_a_cut_tape_replays_its_whole_chunks_and_says_where_it_was_cut(tmp_path: Path) -> None:
    cut_tape = tmp_path / "cut.arbt"
    shutil.copy(TAPE, cut_tape)
    last = TapeReader(cut_tape).scan()[-1]
    with cut_tape.open("r+b") as f:  # what a kill during the recorder's last write leaves
        f.truncate(last.offset + last.comp_len // 2)

    out, _ = arbd("backtest", str(cut_tape), "--json", timeout=120)

    assert out.returncode == 0, out.stderr
    assert f"cut at byte {last.offset}" in out.stderr
    result = json.loads(out.stdout)
    assert result["tape"]["truncated_at"] == last.offset
    assert result["tape"]["end_ns"] < last.last_ns
    assert result["frames_replayed"] > 0


def test_a_damaged_tape_is_one_error_naming_the_damaged_chunk(tmp_path: Path) -> None:
    bad = tmp_path / "bad.arbt"
    shutil.copy(TAPE, bad)
    chunk = TapeReader(bad).scan()[3]
    data = bytearray(bad.read_bytes())
    data[chunk.offset + 100] ^= 0x40
    bad.write_bytes(bytes(data))
    not_a_tape = tmp_path / "notes.txt"
    not_a_tape.write_text("not a tape\n")

    for path, where in ((bad, chunk.offset), (not_a_tape, 0)):
        out, marker = arbd("backtest", str(path), timeout=30)
        assert out.returncode == 1
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert f"at byte {where}" in out.stderr and str(path) in out.stderr
        assert out.stdout == "" and not leftovers(marker)


def test_a_sweep_runs_every_combination_in_its_own_process(tmp_path: Path) -> None:
    short = tmp_path / "short.arbt"
    cut(TAPE, short, 8.0)

    out, marker = arbd("backtest", str(short), *QUICK, "--sweep", "engine.entry_threshold_pct=0.05,5",
                       "--json", timeout=180)

    assert out.returncode == 0, out.stderr
    assert not leftovers(marker)
    runs = json.loads(out.stdout)
    assert [r["params"] for r in runs] == [{"engine.entry_threshold_pct": "0.05"},
                                           {"engine.entry_threshold_pct": "5"}]
    assert all(k in r for r in runs for k in (*TOTALS, "replay_speedup"))
    assert runs[1]["trades_opened"] == 0  # a 5 % edge never shows on this tape
    assert runs[0]["trades_opened"] > 0


@pytest.mark.parametrize(("args", "code", "says"), [
    (("--speed", "fast"), 2, "--speed 'fast'"),
    (("--set", "venues.symbols=[SOL]"), 2, "the tape has no SOL"),
    (("--sweep", "engine.entry_threshold_pct"), 2, "expected KEY=V1,V2"),
    (("--set", "engine.entry_threshold=1"), 2, "did you mean"),
])
def test_bad_backtest_input_is_one_line_and_a_nonzero_exit(args: tuple[str, ...], code: int, says: str) -> None:
    out, marker = arbd("backtest", str(TAPE), *args, timeout=30)
    assert out.returncode == code
    assert says in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert not leftovers(marker)


def test_a_missing_tape_and_an_existing_record_target_are_refused(tmp_path: Path) -> None:
    out, _ = arbd("backtest", str(tmp_path / "nope.arbt"), timeout=30)
    assert out.returncode == 1 and "cannot read the tape" in out.stderr
    out, _ = arbd("record", "--seconds", "1", "--out", str(TAPE), timeout=30)
    assert out.returncode == 1 and "exists" in out.stderr and out.stderr.count("\n") == 1


def test_report_writes_the_run_report_with_the_replays_premium(tmp_path: Path) -> None:
    short = tmp_path / "short.arbt"
    cut(TAPE, short, 5.0)
    page = tmp_path / "report.html"

    out, _ = arbd("backtest", str(short), "--report", str(page), timeout=120)

    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert html.lstrip().lower().startswith(("<!doctype html", "<html"))
    assert 'id="premium"' in html
    assert "=== arbd backtest ===" in out.stdout
    out, _ = arbd("backtest", str(short), "--report", str(tmp_path / "no" / "such" / "dir.html"), timeout=30)
    assert out.returncode == 2 and "no directory" in out.stderr and len(out.stderr.strip().splitlines()) == 1
