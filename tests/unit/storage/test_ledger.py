import sqlite3
from pathlib import Path

import pytest

from messages import OrderEvent, OrderIntent
from storage.ledger import WAL_PRIME_BYTES, Ledger


def intent() -> OrderIntent:
    return OrderIntent(pair_id="p1", action="open", symbol="BTC", direction="sell_upbit", legs=(),
                       notional_krw=100_000.0, expires_ns=0)


def event(i: OrderIntent, cid: str, status: str) -> OrderEvent:
    return OrderEvent(intent_id=i.id, pair_id=i.pair_id, action=i.action, client_order_id=cid,
                      venue="upbit", symbol="BTC", side="sell", status=status, qty=0.001, price=1e8,
                      filled_qty=0.001 if status == "filled" else 0.0, avg_price=1e8)


def test_an_intent_is_recorded_once(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    i = intent()
    legs = [("c1", "upbit", "sell", 0.001, 1e8), ("c2", "binance", "buy", 0.001, 7e4)]
    assert led.record_intent(i, 1.0, legs) is True
    assert led.record_intent(i, 1.0, legs) is False
    assert [o.client_order_id for o in led.unresolved()] == ["c1", "c2"]


def test_the_guards_decision_time_is_kept_per_intent(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    decided, unknown = intent(), intent()
    led.record_intent(decided, 1.0, [("c1", "upbit", "sell", 0.001, 1e8)], decided_ns=1_700_000_000_123)
    led.record_intent(unknown, 1.0, [("c2", "upbit", "sell", 0.001, 1e8)])
    assert led.decisions() == {decided.id: 1_700_000_000_123}
    reader = Ledger.reader(tmp_path / "l.sqlite")
    assert reader.decisions() == {decided.id: 1_700_000_000_123}
    reader.close()
    led.close()


OLD_SCHEMA = """CREATE TABLE intents (
  intent_id TEXT PRIMARY KEY, pair_id TEXT NOT NULL, action TEXT NOT NULL,
  symbol TEXT NOT NULL, direction TEXT NOT NULL, notional_krw REAL NOT NULL,
  scale REAL NOT NULL, created_ns INTEGER NOT NULL, origin_ts_ns INTEGER NOT NULL
)"""
OLD_WRITE = "INSERT INTO intents VALUES ('{}','p','open','BTC','sell_upbit',1.0,1.0,5,0)"  # 0.4.1's insert


def test_a_ledger_from_before_decision_times_works_both_ways(tmp_path: Path) -> None:
    """0.4.2 opens an 0.4.1 ledger (a reader changes nothing), and 0.4.1's
    writer still works on it afterwards: the decision times have a table of
    their own, so intents keeps its nine columns."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute(OLD_SCHEMA)
    db.execute(OLD_WRITE.format("i-old"))
    db.commit()
    reader = Ledger.reader(path)
    assert reader.decisions() == {}
    reader.close()
    assert [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["intents"]

    led = Ledger(path)
    assert led.has_intent("i-old") and led.decisions() == {}
    i = intent()
    assert led.record_intent(i, 1.0, [("c1", "upbit", "sell", 0.001, 1e8)], decided_ns=42)
    assert led.decisions() == {i.id: 42}
    led.close()

    db.execute(OLD_WRITE.format("i-older-writer"))  # an 0.4.1 executor, after 0.4.2 opened the file
    db.commit()
    db.close()
    again = Ledger(path, readonly=True)
    assert again.has_intent("i-older-writer") and again.decisions() == {i.id: 42}
    again.close()


def test_events_resolve_orders_and_survive_reopening(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    i = intent()
    led.record_intent(i, 1.0, [("c1", "upbit", "sell", 0.001, 1e8)])
    led.apply(event(i, "c1", "filled"), venue_order_id="v-1")
    led.close()
    again = Ledger(tmp_path / "l.sqlite")
    assert again.unresolved() == []
    assert again.orders()[0].venue_order_id == "v-1"
    assert [e.status for e in again.events()] == ["filled"]
    assert again.status_counts() == {"filled": 1}


def test_a_reader_sees_the_writers_commits(tmp_path: Path) -> None:
    writer = Ledger(tmp_path / "l.sqlite")
    reader = Ledger(tmp_path / "l.sqlite", readonly=True)
    i = intent()
    writer.record_intent(i, 1.0, [("c1", "upbit", "sell", 0.001, 1e8)])
    assert reader.has_intent(i.id)


def test_legs_are_fsynced_before_sending_and_outcomes_are_not(tmp_path: Path) -> None:
    """record_intent commits with synchronous=FULL (2), apply with NORMAL (1),
    and the next intent is FULL again whatever came before."""
    led = Ledger(tmp_path / "l.sqlite")

    def level() -> int:
        return led.db.execute("PRAGMA synchronous").fetchone()[0]

    i = intent()
    led.record_intent(i, 1.0, [("c1", "upbit", "sell", 0.001, 1e8)])
    assert level() == 2
    led.apply(event(i, "c1", "filled"))
    assert level() == 1
    led.record_intent(intent(), 1.0, [("c2", "upbit", "sell", 0.001, 1e8)])
    assert level() == 2


def test_the_wal_is_primed_at_open_and_reused_not_grown(tmp_path: Path) -> None:
    """The fsync before a send overwrites WAL blocks the file already has
    (see Ledger._prime_wal): the writer's open gives the WAL its working size
    without changing any data, and with a checkpoint between bursts (the
    executor's tick) the file never grows past it."""
    path = tmp_path / "l.sqlite"
    led = Ledger(path)
    wal = Path(f"{path}-wal")
    primed = wal.stat().st_size
    assert primed >= WAL_PRIME_BYTES
    assert led.db.execute("SELECT count(*) FROM wal_prime").fetchone() == (0,)
    assert led.db.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)  # only checkpoint() does it
    for _burst in range(5):
        for _ in range(40):
            i = intent()
            led.record_intent(i, 1.0, [(f"c-{i.id}", "upbit", "sell", 0.001, 1e8)])
            led.apply(event(i, f"c-{i.id}", "filled"))
        led.checkpoint()
    assert wal.stat().st_size == primed
    assert len(led.orders()) == 200
    led.close()
    again = Ledger(path)  # the last close deleted the WAL; the next open primes it again
    assert len(again.orders()) == 200 and wal.stat().st_size >= WAL_PRIME_BYTES
    assert again.db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_reader_creates_nothing_and_cannot_write(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Ledger.reader(tmp_path / "missing.sqlite")
    assert list(tmp_path.iterdir()) == []
    writer = Ledger(tmp_path / "l.sqlite")
    reader = Ledger.reader(tmp_path / "l.sqlite")
    i = intent()
    writer.record_intent(i, 1.0, [("c1", "upbit", "sell", 0.001, 1e8)])
    assert [o.client_order_id for o in reader.orders()] == ["c1"]  # sees the writer's commits
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.db.execute("DELETE FROM orders")
