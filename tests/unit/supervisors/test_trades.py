"""arbctl trades on a ledger written through storage.ledger.Ledger (tests/support/sample_run.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from storage.ledger import Ledger
from supervisors import cli_arbctl
from supervisors.trades import LedgerUnreadable, document, read_history, render_table, select
from tests.support.sample_run import P1_PNL_KRW, P2_EXPOSURE_KRW, T0, make_run

NOW = T0 + 3600


def _ns(t: float) -> int:
    return int(t * 1e9)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path).root


def test_every_pair_of_the_ledger_is_listed_with_its_state_legs_and_pnl(run_dir: Path) -> None:
    h = read_history(run_dir / "state" / "ledger.sqlite")
    by_id = {t.pair.pair_id: t for t in h.trades}
    assert {k: t.pair.state for k, t in by_id.items()} == {
        "p1": "closed", "p2": "open", "p3": "failed", "p4": "opening"}
    assert by_id["p1"].pair.realized_pnl_krw == pytest.approx(P1_PNL_KRW)
    assert (len(by_id["p1"].legs), by_id["p1"].filled_legs, by_id["p1"].traded_qty) == (4, 4, 0.001)
    assert by_id["p3"].note == "nothing filled: insufficient funds"
    assert by_id["p4"].note == "open in flight"  # recorded, never answered: counted as in flight
    assert h.realized_pnl_krw == pytest.approx(P1_PNL_KRW)
    assert h.exposure_krw == pytest.approx(P2_EXPOSURE_KRW)


def test_the_history_ends_at_the_ledgers_pnl_and_exposure_and_never_goes_back_in_time(run_dir: Path) -> None:
    h = read_history(run_dir / "state" / "ledger.sqlite")
    assert [p.ts for p in h.points] == sorted(p.ts for p in h.points)
    assert h.points[-1].realized_pnl_krw == pytest.approx(P1_PNL_KRW)
    assert max(p.exposure_krw for p in h.points) >= P2_EXPOSURE_KRW - 1


@pytest.mark.parametrize(("since", "listed"), [
    (0.0, ["p1", "p2", "p3", "p4"]),
    (T0 + 30, ["p1", "p2", "p3", "p4"]),  # p1 closed after it
    (T0 + 100, ["p2", "p3", "p4"]),
    (T0 + 190, ["p2", "p4"]),  # p3 failed before it; p2 and p4 are not closed
])
def test_since_keeps_pairs_opened_or_closed_after_it_and_those_still_open(
        run_dir: Path, since: float, listed: list[str]) -> None:
    h = read_history(run_dir / "state" / "ledger.sqlite")
    assert [t.pair.pair_id for t in select(h.trades, _ns(since))] == listed


def test_the_json_document_has_totals_and_every_leg(run_dir: Path) -> None:
    doc = json.loads(json.dumps(document(read_history(run_dir / "state" / "ledger.sqlite"), _ns(T0 + 30), NOW)))
    assert doc["totals"] == {"pairs": 4, "by_state": {"closed": 1, "failed": 1, "open": 1, "opening": 1},
                             "realized_pnl_krw": P1_PNL_KRW, "exposure_krw": P2_EXPOSURE_KRW}
    p1 = doc["pairs"][0]
    assert (p1["pair_id"], p1["realized_pnl_krw"], p1["held_s"], p1["qty_traded"]) == ("p1", 1000.0, 60.2, 0.001)
    assert p1["opened_at"] == "2026-11-30T00:53:20.000+00:00" and p1["closed_at"] == "2026-11-30T00:54:20.200+00:00"
    assert [(lg["action"], lg["venue"], lg["status"]) for lg in p1["legs"]] == [
        ("open", "binance", "filled"), ("open", "upbit", "filled"),  # as the ledger orders them
        ("close", "binance", "filled"), ("close", "upbit", "filled")]


def test_the_table_has_a_row_per_pair_and_a_total_line(run_dir: Path) -> None:
    text = render_table(read_history(run_dir / "state" / "ledger.sqlite"), 0, NOW)
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["PAIR", "COIN", "DIRECTION"]
    assert [ln.split()[0] for ln in lines[1:5]] == ["p1", "p2", "p3", "p4"]
    assert "+1,000" in lines[1] and "1:00" in lines[1]
    assert lines[-1].startswith("4 pair(s) (1 closed, 1 failed, 1 open, 1 opening)")
    assert "realized PnL +1,000 KRW" in lines[-1] and "exposure 100,000 KRW" in lines[-1]
    assert "\033[" not in text


def test_no_pair_is_one_line(tmp_path: Path) -> None:
    Ledger(tmp_path / "ledger.sqlite").close()
    h = read_history(tmp_path / "ledger.sqlite")
    assert render_table(h, 0, NOW) == "no pairs in the ledger"
    assert render_table(h, _ns(T0), NOW).startswith("no pairs since 2026-11-30 ")


def test_the_ledger_is_read_without_being_created_or_changed(tmp_path: Path, run_dir: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_history(tmp_path / "nowhere" / "ledger.sqlite")
    assert not (tmp_path / "nowhere").exists()
    ledger = run_dir / "state" / "ledger.sqlite"
    before = ledger.read_bytes()
    read_history(ledger)
    assert ledger.read_bytes() == before


def test_a_file_that_is_not_a_ledger_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "ledger.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerUnreadable) as e:
        read_history(bad)
    assert "\n" not in str(e.value)


def test_a_ledger_without_tables_yet_has_no_pairs(tmp_path: Path) -> None:
    empty = tmp_path / "ledger.sqlite"
    sqlite3.connect(empty).close()
    assert read_history(empty).trades == []


# -- the CLI, in process (the integration tests run bin/arbctl on a real run) ---------------

def test_arbctl_trades_json_parses(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_arbctl.main(["--run-dir", str(run_dir), "trades", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["pair_id"] for p in doc["pairs"]] == ["p1", "p2", "p3", "p4"]


@pytest.mark.parametrize("since", ["yesterday", "5x", ""])
def test_arbctl_trades_bad_since_is_one_line_and_exit_2(run_dir: Path, since: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli_arbctl.main(["--run-dir", str(run_dir), "trades", "--since", since])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("arbctl: --since: ")


def test_arbctl_trades_without_a_ledger_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path, ledger=False)
    with pytest.raises(SystemExit) as e:
        cli_arbctl.main(["--run-dir", str(run.root), "trades"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.count("\n") == 1 and "no ledger" in err
