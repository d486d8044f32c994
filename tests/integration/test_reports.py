"""Reports for people on a real run: ``arbctl trades`` and ``arbctl report``.

One paper run of the daemon on the embedded exchange (premium samples every
0.5 s) trades until a few pairs have closed; ``arbctl trades --json`` is read
while it runs, then it stops and everything is read again from its run
directory alone. The PnL the commands print is the ledger's replayed through
the accounting, checked against ``tests.support.ledger_check.replayed_pnl``.

The HTML report is opened in a real headless Chromium (Debian's package,
installed by ``scripts/chromium.sh install``; the tests fail, not skip, when
it cannot be had) over the DevTools protocol: no exception, console error or
browser error, no request for anything but the page itself, and every plot
drawn. The full-page screenshot is saved in the test's tmp dir and its path
printed. A page built to fail first shows that the harness does see errors.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisors.report import PLOTS
from tests.support import chromium
from tests.support.ledger_check import read_ledger, replayed_pnl
from tests.support.run_daemon import PAPER, SimDaemon, SimRuns, config, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "chromium.sh"
SYMBOLS = ("BTC", "ETH", "XRP")
CLOSED_PAIRS = 3


def _one_line_error(out: subprocess.CompletedProcess[str], code: int) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith("arbctl: ") and out.stderr.count("\n") == 1, out.stderr
    assert "Traceback" not in out.stderr and out.stdout == ""
    return out.stderr


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimDaemon, dict[str, Any]]]:
    """A stopped paper run that closed pairs, and ``trades --json`` read while it
    ran (a report is written while it runs too)."""
    runs = SimRuns(tmp_path_factory.mktemp("reports"))
    try:
        run = runs.make(config(PAPER, {"report": {"premium_sample_s": 0.5}}), max_runtime_s=180)
        wait_until(lambda: len(run.events("trade_closed")) >= CLOSED_PAIRS or None, 90,
                   f"{CLOSED_PAIRS} closed pairs", interval=0.5)
        live = run.arbctl("trades", "--json")
        assert live.returncode == 0, live.stderr
        page = run.arbctl("report", "--out", str(run.root / "while-running.html"))
        assert page.returncode == 0 and (run.root / "while-running.html").stat().st_size > 1e6, page.stderr
        assert run.stop() == 0, run.stderr()[-3000:]
        yield run, json.loads(live.stdout)
    finally:
        runs.teardown()


@pytest.mark.timeout(240)
def test_trades_json_while_running_and_after_agrees_with_the_replayed_ledger(
        paper_run: tuple[SimDaemon, dict[str, Any]]) -> None:
    run, live = paper_run
    assert live["totals"]["by_state"].get("closed", 0) >= CLOSED_PAIRS

    out = run.arbctl("trades", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    data = read_ledger(run.ledger())
    replay = replayed_pnl(data.events)
    assert {p["pair_id"] for p in doc["pairs"]} == {r.pair_id for r in data.rows}
    assert doc["totals"]["realized_pnl_krw"] == pytest.approx(replay.realized_pnl_krw, abs=0.01)
    assert doc["totals"]["by_state"].get("closed", 0) == replay.trades_closed
    for p in doc["pairs"]:
        rows = [r for r in data.rows if r.pair_id == p["pair_id"]]
        assert sorted(lg["client_order_id"] for lg in p["legs"]) == sorted(r.client_order_id for r in rows)
        if p["state"] == "closed":
            assert p["closed_at"] >= p["opened_at"] and p["realized_pnl_krw"] is not None
    # what it read while the daemon ran is a prefix of the ledger's pairs
    assert {p["pair_id"] for p in live["pairs"]} <= {p["pair_id"] for p in doc["pairs"]}


def test_trades_table_lists_the_pairs_and_the_total(paper_run: tuple[SimDaemon, dict[str, Any]]) -> None:
    run, _ = paper_run
    out = run.arbctl("trades")
    assert out.returncode == 0, out.stderr
    doc = json.loads(run.arbctl("trades", "--json").stdout)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("PAIR") and "PNL KRW" in lines[0]
    assert [ln.split()[0] for ln in lines[1:-2]] == [p["pair_id"] for p in doc["pairs"]]
    assert lines[-1].startswith(f"{len(doc['pairs'])} pair(s)")
    assert f"realized PnL {doc['totals']['realized_pnl_krw']:+,.0f} KRW" in lines[-1]
    assert "\033[" not in out.stdout  # piped: no colour

    recent = run.arbctl("trades", "--since", "1h", "--json")
    assert json.loads(recent.stdout)["totals"]["pairs"] == len(doc["pairs"])
    future = run.arbctl("trades", "--since", "2999-01-01T00:00Z")
    open_pairs = [p for p in doc["pairs"] if p["state"] not in ("closed", "failed")]
    assert future.returncode == 0 and (open_pairs or future.stdout.startswith("no pairs since"))


@pytest.mark.parametrize("since", ["yesterday", "1y", "2026-02-30", "5 minutes"])
def test_a_bad_since_is_one_line_and_exit_2(paper_run: tuple[SimDaemon, dict[str, Any]], since: str) -> None:
    run, _ = paper_run
    for cmd in (("trades", "--since", since), ("report", "--out", str(run.root / "x.html"), "--since", since)):
        err = _one_line_error(run.arbctl(*cmd), 2)
        assert "--since" in err and "ISO time" in err
    assert not (run.root / "x.html").exists()


def test_the_event_log_has_premium_samples_for_every_coin(paper_run: tuple[SimDaemon, dict[str, Any]]) -> None:
    run, _ = paper_run
    samples = run.events("premium")
    assert len(samples) >= 5
    # a sample names the coins quoted since the one before: over a few, every coin
    assert set().union(*(s["premium_pct"] for s in samples[-4:])) == set(SYMBOLS)
    last = samples[-1]
    assert last["premium_pct"] and set(last["baseline_pct"]) == set(last["premium_pct"])
    assert all(v is not None for v in last["baseline_pct"].values())  # warm by the time pairs closed
    assert not [e for e in run.events() if e["event_type"] == "premium" and e["actor"] != "engine"]


# -- the page in a real browser ------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium_installed() -> str:
    try:
        r = subprocess.run([str(SCRIPT), "install"], capture_output=True, text=True, timeout=900,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("scripts/chromium.sh install did not finish within 15 minutes", pytrace=False)
    if r.returncode != 0:
        pytest.fail("these tests need a real Chromium and `scripts/chromium.sh install` could not provide "
                    f"one (no apt-get, no network or no root?):\n{r.stdout}{r.stderr}", pytrace=False)
    exe = chromium.binary()
    assert exe, f"install reported success but chromium is not on PATH:\n{r.stdout}{r.stderr}"
    return exe


@pytest.mark.needs_chromium
@pytest.mark.timeout(300)
def test_the_harness_sees_exceptions_console_errors_and_requests_off_the_page(
        chromium_installed: str, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8">'
                    '<script src="https://cdn.plot.ly/plotly-3.0.0.min.js"></script></head><body>'
                    '<script>console.error("drawn badly");</script>'
                    '<script>throw new Error("boom");</script><p>x</p></body></html>')
    res = chromium.open_page(page, tmp_path / "bad.png")
    joined = "\n".join(res.errors)
    assert "boom" in joined and "console.error: drawn badly" in joined, joined
    assert "request off the page: https://cdn.plot.ly/" in joined, joined


@pytest.mark.needs_chromium
@pytest.mark.timeout(300)
def test_the_report_opens_in_headless_chromium_with_no_error_and_every_plot_drawn(
        chromium_installed: str, paper_run: tuple[SimDaemon, dict[str, Any]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    run, _ = paper_run
    out = tmp_path / "report.html"
    r = run.arbctl("report", "--out", str(out))
    assert r.returncode == 0 and r.stdout.startswith(f"wrote {out}"), r.stderr

    res = chromium.open_page(out, tmp_path / "report.png")
    with capsys.disabled():
        print(f"\nreport screenshot: {res.screenshot} ({res.screenshot.stat().st_size:,} bytes); page: {out}")
    assert res.errors == [], "\n".join(res.errors)
    assert res.requests == [out.resolve().as_uri()]  # the page itself and nothing else
    assert [p["id"] for p in res.plots] == list(PLOTS)
    for p in res.plots:
        assert p["traces"] > 0 and p["drawn"] > 0 and not p["empty_note"], p
    premium = next(p for p in res.plots if p["id"] == "premium")
    assert premium["traces"] >= 2 * len(SYMBOLS)  # a premium and a baseline line per coin
    assert "Realized PnL" in res.text and "Orders per venue" in res.text
    assert res.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and res.screenshot.stat().st_size > 50_000
