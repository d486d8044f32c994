"""write_report on a run directory built by hand (tests/support/sample_run.py).

What a browser makes of the page (no console error, plots drawn, nothing
fetched) is tests/integration/test_reports.py, in a real headless Chromium.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from supervisors import cli_arbctl
from supervisors.report import PLOTS, ReportError, bucket_s, thin, write_report
from supervisors.report_data import PremiumSeries, collect, window_points
from supervisors.trades import Point
from tests.support.sample_run import P1_PNL_KRW, T0, make_run


def _ns(t: float) -> int:
    return int(t * 1e9)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("report")
    run = make_run(root)
    out = root / "report.html"
    write_report(run.root, out)
    return out.read_text()


def test_the_page_has_the_four_plots_and_plotly_inline_once(page: str) -> None:
    for div in PLOTS:
        assert f'id="{div}"' in page
    assert page.count("Plotly.newPlot(") == len(PLOTS)
    assert len(re.findall(r"plotly\.js v\d", page)) == 1  # the bundle's banner: embedded once
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page and "<iframe" not in page


def test_the_page_lists_pairs_pnl_and_events_worth_knowing(page: str) -> None:
    assert "+1,000 KRW" in page and "p1" in page and "nothing filled: insufficient funds" in page
    assert "operator test" in page  # the halt
    assert "age_s=3.5" in page and "age_s=0.0" not in page  # a lasting naked leg, not a momentary one
    assert "2 unreadable event-log line(s) skipped" in page


def test_premium_samples_and_entries_are_read_per_coin(tmp_path: Path) -> None:
    d = collect(make_run(tmp_path).root, 0, T0 + 3600)
    btc = d.events.premium["BTC"]
    assert len(btc.ts) == 24 and btc.ts == sorted(btc.ts)
    assert btc.baseline_pct[:3] == [None, None, None] and btc.baseline_pct[3] == 2.0  # warm from T0
    assert set(d.events.premium) == {"BTC", "ETH"}
    assert d.events.counts["premium"] == 24 and d.events.skipped_lines == 2


def test_since_cuts_samples_orders_and_pairs_and_pnl_starts_at_zero(tmp_path: Path) -> None:
    d = collect(make_run(tmp_path).root, _ns(T0 + 100), T0 + 3600)
    assert min(d.events.premium["BTC"].ts) >= T0 + 100
    assert [t.pair.pair_id for t in d.trades] == ["p2", "p3", "p4"]
    assert all(r.pair_id != "p1" for r in d.orders if r.created_ns < _ns(T0 + 100))
    assert d.points[0].realized_pnl_krw == 0.0 and d.points[-1].realized_pnl_krw == 0.0


def test_samples_that_stop_for_a_while_leave_a_gap_not_a_line() -> None:
    s = PremiumSeries(ts=[0.0, 10.0, 5.0, 15.0, 100.0, 105.0], premium_pct=[1.0, 3.0, 2.0, 4.0, 5.0, 6.0],
                      baseline_pct=[None, 2.0, None, 2.0, 2.0, 2.0])
    s.sort_and_mark_gaps()
    assert s.ts == [0.0, 5.0, 10.0, 15.0, 57.5, 100.0, 105.0]
    assert s.premium_pct == [1.0, 2.0, 3.0, 4.0, None, 5.0, 6.0]
    assert s.baseline_pct == [None, None, 2.0, 2.0, None, 2.0, 2.0]


@pytest.mark.parametrize(("span_s", "bucket"), [(0.0, 1), (45.0, 1), (600.0, 10), (3600.0, 60),
                                              (86_400.0, 1800), (30 * 86_400.0, 86_400)])
def test_orders_are_counted_in_round_buckets_of_about_sixty_bars(span_s: float, bucket: int) -> None:
    assert bucket_s(span_s) == bucket


def test_window_points_count_pnl_from_the_windows_start_and_keep_exposure() -> None:
    pts = [Point(10.0, 0.0, 5.0), Point(20.0, 100.0, 0.0), Point(30.0, 150.0, 7.0)]
    assert window_points(pts, 0) == pts
    assert window_points(pts, _ns(25.0)) == [Point(25.0, 0.0, 0.0), Point(30.0, 50.0, 7.0)]


def test_thinning_keeps_the_peaks_the_ends_and_the_gaps() -> None:
    xs = [float(i) for i in range(100_000)]
    ys: list[float | None] = [0.0] * 100_000
    ys[54_321] = 9.0
    ys[77_050:77_060] = [None] * 10  # not at a bucket's start
    tx, ty = thin(xs, ys, limit=3000)
    assert len(tx) <= 3300
    assert 9.0 in ty and tx[0] == 0.0 and tx[-1] == 99_999.0
    assert [x for x, y in zip(tx, ty, strict=True) if y is None] == [77_050.0]
    assert tx == sorted(tx)


def test_the_whole_run_pnl_ends_at_the_ledgers(tmp_path: Path) -> None:
    d = collect(make_run(tmp_path).root, 0, T0 + 3600)
    assert d.points[-1].realized_pnl_krw == pytest.approx(P1_PNL_KRW)


def test_a_run_with_only_an_event_log_still_gets_a_page_that_says_so(tmp_path: Path) -> None:
    run = make_run(tmp_path, ledger=False)
    write_report(run.root, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    assert "no ledger in this run directory" in text
    assert not run.ledger_path.exists()


@pytest.mark.parametrize(("setup", "why"), [
    ("no_run_dir", "no run directory"), ("no_out_dir", "no directory"), ("empty", "nothing to report")])
def test_no_report_is_one_line_and_leaves_no_file(tmp_path: Path, setup: str, why: str) -> None:
    run_dir = tmp_path / "run"
    out = tmp_path / "r.html"
    if setup == "no_out_dir":
        make_run(tmp_path)
        out = tmp_path / "missing" / "r.html"
    elif setup == "empty":
        run_dir.mkdir()
    with pytest.raises(ReportError) as e:
        write_report(run_dir, out)
    assert why in str(e.value) and "\n" not in str(e.value)
    assert not out.exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_arbctl_report_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = make_run(tmp_path)
    out = tmp_path / "page.html"
    assert cli_arbctl.main(["--run-dir", str(run.root), "report", "--out", str(out), "--since", "1h"]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out}")
    assert out.stat().st_size > 1_000_000  # plotly.js inside


def test_arbctl_report_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, code in ((["--run-dir", str(tmp_path / "none"), "report", "--out", str(tmp_path / "x.html")], 1),
                       (["--run-dir", str(tmp_path), "report", "--out", "x.html", "--since", "soon"], 2)):
        with pytest.raises(SystemExit) as e:
            cli_arbctl.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == code and err.count("\n") == 1 and err.startswith("arbctl: "), err
