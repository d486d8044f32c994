"""live_trading against the embedded exchange: the ledger and the exchange
agree on every order, also across ``kill -9`` of the executor mid-send.

One daemon for the module: ``mode: live_trading``, enabled and armed
(``arbctl arm --confirm live_trading``), API keys in the environment (the
embedded exchange's test keys under the four variable names). Each test arms,
trades, halts and waits until the ledger has nothing unresolved, then compares
the ledger with ``GET /_sim/orders`` (fetched while the daemon still runs: the
exchange dies with it) by the rules in ``tests/support/ledger_check.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage.ledger import UNRESOLVED
from tests.support.daemon import pid_gone, wait_until
from tests.support.ledger_check import check_all, read_ledger, report
from tests.support.run_daemon import LIVE_TRADING, SimDaemon, config, sim_runs, with_keys

MAX_EXPOSURE_KRW = 200_000.0  # binds: a pair is ~80,000 KRW, three coins could open three
# Up to eight executor kills a few seconds apart: more than the shipped
# intensity (5 in 30 s) would allow before escalating.
CFG = config(LIVE_TRADING, {"position_adv": {"base_position_size_krw": 100_000,
                                             "max_exposure_krw": MAX_EXPOSURE_KRW},
                            "supervision": {"intensity": 50}})

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimDaemon]:
    with sim_runs(tmp_path_factory.mktemp("live")) as runs:
        yield runs.make(CFG, env=with_keys())


def wait_sim_orders(run: SimDaemon, n: int, timeout: float) -> list[dict]:
    """Wait until the exchange has seen ``n`` orders; status exposure stays capped meanwhile."""
    def probe() -> list[dict] | None:
        st = run.safe_status()
        if st is not None:
            assert st["exposure_krw"] <= MAX_EXPOSURE_KRW + 1.0, st["exposure_krw"]
        orders = run.sim_orders()
        return orders if len(orders) >= n else None

    return wait_until(probe, timeout, f"{n} orders at the exchange", interval=0.25)


def assert_ledger_matches_exchange(run: SimDaemon) -> tuple[list[dict], int]:
    run.quiesce()
    orders = run.sim_orders()
    data = read_ledger(run.ledger())
    problems = check_all(orders, data, MAX_EXPOSURE_KRW)
    assert not problems, report(problems)
    return orders, len(data.rows)


def test_every_order_the_exchange_saw_is_in_the_ledger_and_vice_versa(live: SimDaemon) -> None:
    live.arm_live()

    wait_sim_orders(live, 12, timeout=60)
    orders, rows = assert_ledger_matches_exchange(live)

    wait_until(lambda: live.status()["orders"]["open"] == 0, 5, "status to count no open order")
    st = live.status_cli()  # the operator's view agrees
    assert st["mode"] == "live_trading" and st["trading_state"] == "halted"
    assert st["exposure_krw"] <= MAX_EXPOSURE_KRW + 1.0
    assert sum(1 for o in orders if o["status"] == "filled") >= 6
    assert {o["venue"] for o in orders} == {"upbit", "binance"}
    assert rows >= len(orders)
    assert len(live.events("trade")) >= 6


def reconcile_events(run: SimDaemon) -> list[dict]:
    """The executor's own ``restart`` events: it found unresolved legs and reconciled them."""
    return [e for e in run.events("restart") if "reconcile_orders" in e]


class Ledgerwatch:
    """A read-only connection polled in a tight loop (WAL: never blocks the executor)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)

    def pending_since(self, since_ns: int) -> list[tuple[str, str, str]]:
        return self.db.execute("SELECT client_order_id, status, venue FROM orders WHERE status IN "
                               "('pending', 'sent') AND created_ns > ? ORDER BY created_ns",
                               (since_ns,)).fetchall()

    def status_of(self, cids: list[str]) -> dict[str, str]:
        marks = ",".join("?" * len(cids))
        return dict(self.db.execute(f"SELECT client_order_id, status FROM orders WHERE client_order_id IN "
                                    f"({marks})", cids).fetchall())

    def close(self) -> None:
        self.db.close()


def kill_executor_mid_send(run: SimDaemon, watch: Ledgerwatch, delayed: str | None,
                           timeout: float = 40.0) -> list[str]:
    """SIGKILL the executor while a leg it wrote is still pending (and, with a
    ``delayed`` venue, once that exchange has accepted it while its reply is
    held back). Returns the client ids that were still unresolved when it died."""
    pid = run.actor("executor")["pid"]
    at_exchange = delayed is not None
    if delayed:
        # Held back for the whole hunt, not a fixed window: under load a window
        # of a few seconds can pass without a pair being decided (a CI failure).
        run.fault(delayed, "delay", timeout, delay_s=1.5)
    since = time.time_ns()
    deadline = time.monotonic() + timeout
    victim: list[str] = []
    while not victim:
        assert time.monotonic() < deadline, "no order was caught in flight"
        rows = watch.pending_since(since)
        if rows and at_exchange:
            seen = {o["client_order_id"] for o in run.sim_orders()}
            rows = [r for r in rows if r[0] in seen]
        if rows:
            os.kill(pid, signal.SIGKILL)
            victim = [r[0] for r in rows]
        else:
            time.sleep(0.002 if not at_exchange else 0.02)
    run.clear_faults()
    wait_until(lambda: pid_gone(pid), 5, f"executor pid {pid} to die")
    caught = [cid for cid, st in watch.status_of(victim).items() if st in UNRESOLVED]
    run.wait_replaced("executor", pid, timeout=30)
    return caught


def test_kill_9_of_the_executor_mid_send_loses_no_order_and_sends_none_twice(live: SimDaemon) -> None:
    live.arm_live()
    wait_sim_orders(live, len(live.sim_orders()) + 2, timeout=40)  # trading again after the last test
    watch = Ledgerwatch(live.run.ledger_path)
    caught: list[str] = []
    reconciles_before = len(reconcile_events(live))
    try:
        kills = hits = 0
        # Alternate: a natural in-flight leg, and one the exchange has accepted
        # while its reply is held back (delay fault), until three kills caught
        # legs in flight (a leg may resolve between the poll and the kill) and
        # one of them had reached the exchange.
        while hits < 3 or not any(c in {o["client_order_id"] for o in live.sim_orders()} for c in caught):
            assert kills < 8, f"only {hits} of {kills} kills caught a leg in flight"
            delayed = None if kills % 2 == 0 else "upbit" if kills % 4 == 1 else "binance"
            got = kill_executor_mid_send(live, watch, delayed)
            caught += got
            hits += bool(got)
            kills += 1
            # Trading resumes after each restart (the guard's fail-closed clears).
            wait_sim_orders(live, len(live.sim_orders()) + 1, timeout=40)
        # Each caught leg was reconciled by a restarted executor, not left or resent.
        wait_until(lambda: not [c for c, s in watch.status_of(caught).items() if s in UNRESOLVED] or None,
                   30, "the legs caught in flight to be reconciled")
    finally:
        watch.close()
        with contextlib.suppress(Exception):
            live.clear_faults()

    orders, _ = assert_ledger_matches_exchange(live)

    reconciles = reconcile_events(live)
    assert len(reconciles) - reconciles_before >= 1 and all(e["reconcile_orders"] >= 1 for e in reconciles)
    kills = [r for r in live.log_events("executor", "exit") if r["signal"] == signal.SIGKILL]
    assert len(kills) >= 3
    seen = {o["client_order_id"]: o for o in orders}
    assert any(c in seen for c in caught), "no caught leg had reached the exchange"
    print(f"\n{len(kills)} kills; legs caught in flight: "
          + ", ".join(f"{c} ({seen[c]['status']} at the exchange)" if c in seen else f"{c} (never reached it)"
                      for c in caught))
