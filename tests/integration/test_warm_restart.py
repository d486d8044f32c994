"""Warm restart on a real paper daemon: the engine's baseline survives kill -9
(state file, checked against live samples), a broken state file is one log
line and a cold warm-up, and status says per actor whether it is warm and,
if not, what it waits for."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.support.daemon import wait_until
from tests.support.run_daemon import PAPER, SimDaemon, config, sim_runs

pytestmark = pytest.mark.timeout(150)
WARMUP_S = PAPER["baseline"]["warmup_s"]


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimDaemon]:
    # Six engine kills within a minute: more than the shipped intensity (5 in
    # 30 s) allows when the machine is quick. Escalation is tested elsewhere.
    with sim_runs(tmp_path_factory.mktemp("warm")) as runs:
        yield runs.make(config(PAPER, {"supervision": {"intensity": 50}}))


def engine(run: SimDaemon) -> dict:
    return run.actor("engine")


def state_file(run: SimDaemon):
    return run.run.state_dir / "engine_baseline.json"


def kill_engine(run: SimDaemon) -> int:
    """SIGKILL the engine; its replacement's pid once status shows it."""
    old = engine(run)["pid"]
    os.kill(old, signal.SIGKILL)
    run.wait_replaced("engine", old)
    return int(engine(run)["pid"])


def test_every_actor_reports_warmth_and_the_engine_waits_for_its_warm_up_at_first(paper: SimDaemon) -> None:
    st = paper.status()
    assert all({"warm", "waiting_for", "waiting_s"} <= set(a) for a in st["actors"]), st["actors"]
    wait_until(lambda: all(a["warm"] for a in paper.status()["actors"]), WARMUP_S + 20, "every actor warm")
    text = paper.arbctl("status").stdout
    assert "WARM" in text and "yes" in text


def test_a_killed_engine_comes_back_warm_from_its_state_file_within_seconds(paper: SimDaemon) -> None:
    wait_until(lambda: engine(paper)["warm"], WARMUP_S + 20, "the engine warm")
    wait_until(lambda: json.loads(state_file(paper).read_text())["symbols"], 5, "a saved baseline")
    new = kill_engine(paper)
    (started,) = [r["ts"] for r in paper.log_events("engine", "start") if r["pid"] == new]
    warm_by = wait_until(lambda: time.time() if engine(paper)["warm"] else None, WARMUP_S + 20,
                         "the restarted engine warm again")
    # A cold engine is warm WARMUP_S after its own start at the earliest: warm
    # sooner after the supervisor started it is a restored baseline. Timed from
    # the start, not the kill, and by the reply that said warm (at or after it
    # was), so a slow respawn on a loaded host can't fail it. (The 3 s kill ->
    # trading target is the chaos suite's, p95.)
    assert warm_by - started < WARMUP_S, f"warm {warm_by - started:.2f}s after its start"
    assert "baseline restored for" in paper.stderr()
    wait_until(lambda: "restored baseline BTC verified" in paper.stderr(), 3, "the verification's log line")


@pytest.mark.parametrize("content", ["{\"version\": 1, \"ts\": 17", "\x00\x01garbage",
                                     json.dumps({"version": 99, "ts": 0, "symbols": {}}),
                                     json.dumps({"version": 1, "ts": 1.0, "symbols": {"BTC": {"value": 2, "n": 9}}})])
def test_a_broken_or_old_state_file_is_one_log_line_and_a_cold_warm_up(paper: SimDaemon, content: str) -> None:
    wait_until(lambda: engine(paper)["warm"], WARMUP_S + 20, "the engine warm")
    lines_before = paper.stderr().count("baseline state unusable")
    old = engine(paper)["pid"]
    os.kill(old, signal.SIGSTOP)  # nothing rewrites the file while we break it
    try:
        state_file(paper).write_text(content)
    finally:
        os.kill(old, signal.SIGKILL)
    paper.wait_replaced("engine", old)
    def cold() -> dict | None:
        a = engine(paper)
        return a if not a["warm"] and "baseline warm-up" in a["waiting_for"] else None

    e = wait_until(cold, 5, "the cold engine to say it waits for its baseline warm-up")
    assert e["waiting_s"] < WARMUP_S and "checking restored" not in e["waiting_for"], e
    assert paper.stderr().count("baseline state unusable") == lines_before + 1
    wait_until(lambda: engine(paper)["warm"], WARMUP_S + 20, "the cold warm-up to finish")
    assert engine(paper)["restarts"] >= 1 and paper.alive()


def test_a_restored_baseline_the_market_disagrees_with_never_trades(paper: SimDaemon) -> None:
    """A fresh, well-formed state file whose baselines are far from the live
    premium: rejected against the first live samples, a cold warm-up, and no
    open or close decided on it in between (judged by the ledger)."""
    wait_until(lambda: engine(paper)["warm"], WARMUP_S + 20, "the engine warm")
    old = engine(paper)["pid"]
    os.kill(old, signal.SIGSTOP)
    try:
        wrong = {s: {"value": 25.0, "n": 500} for s in ("BTC", "ETH", "XRP")}  # the live premium is ~2 %
        state_file(paper).write_text(json.dumps({"version": 1, "ts": time.time(), "symbols": wrong}))
    finally:
        os.kill(old, signal.SIGKILL)
    killed_ns = time.time_ns()
    paper.wait_replaced("engine", old)
    # Decisions the stopped engine made before the stop may still be on their way
    # through position, guard and executor: the restored baseline can only be
    # used from the replacement's spawn on.
    spawned_ns = int(min(r["ts"] for r in paper.log_events("engine", "start") if r["ts"] >= killed_ns / 1e9)
                     * 1e9)
    wait_until(lambda: "restored baseline BTC disagreed" in paper.stderr(), 10, "the restored baseline rejected")
    wait_until(lambda: engine(paper)["warm"], WARMUP_S + 20, "the cold warm-up to finish")
    # A symbol's cold warm-up starts at its first live sample after the kill and
    # lasts warmup_s: nothing may be decided before that. (The engine reports
    # itself warm once every symbol is; one may trade earlier, rightly.)
    cold_until = killed_ns + int(WARMUP_S * 1e9)
    decided = paper.ledger_rows("action IN ('open','close') AND created_ns > ? AND created_ns < ?",
                                (spawned_ns, cold_until))
    assert not decided, [dict(r) for r in decided]
    err = paper.stderr()
    assert all(f"restored baseline {s} disagreed" in err for s in ("BTC", "ETH", "XRP")), err[-3000:]
