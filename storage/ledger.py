"""The order ledger: SQLite in WAL mode.

Every order leg is written here, with its client order id, durably (fsync,
synchronous=FULL) *before* it is sent; every state change after that is
appended as an ``OrderEvent`` (synchronous=NORMAL: safe against a killed
process, see :meth:`Ledger.apply`). A
restarted executor reconciles the unresolved rows with the venue; position
and guard rebuild exposure, PnL and daily loss from the event history, so
restarting anything resets no limit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from messages import OrderEvent, OrderIntent, clock  # times are market time (a replay's tape)

UNRESOLVED = ("pending", "sent", "open", "partially_filled", "unknown")
WAL_PRIME_BYTES = 4 << 20  # ~1,000 pages: SQLite's usual checkpoint size

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
  intent_id TEXT PRIMARY KEY, pair_id TEXT NOT NULL, action TEXT NOT NULL,
  symbol TEXT NOT NULL, direction TEXT NOT NULL, notional_krw REAL NOT NULL,
  scale REAL NOT NULL, created_ns INTEGER NOT NULL, origin_ts_ns INTEGER NOT NULL
);
-- When the guard approved an intent (0.4.2). A table of its own, not a column
-- of intents: an older arbd's writer (INSERT INTO intents VALUES with nine
-- values) keeps working on a ledger this version has opened, and back.
CREATE TABLE IF NOT EXISTS decisions (
  intent_id TEXT PRIMARY KEY, decided_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  client_order_id TEXT PRIMARY KEY, intent_id TEXT NOT NULL, pair_id TEXT NOT NULL,
  action TEXT NOT NULL, venue TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
  qty REAL NOT NULL, price REAL NOT NULL, status TEXT NOT NULL,
  filled_qty REAL NOT NULL DEFAULT 0, avg_price REAL NOT NULL DEFAULT 0,
  fee_krw REAL NOT NULL DEFAULT 0, venue_order_id TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '', created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_status ON orders(status);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ns INTEGER NOT NULL, intent_id TEXT NOT NULL,
  pair_id TEXT NOT NULL, action TEXT NOT NULL, client_order_id TEXT NOT NULL,
  venue TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, status TEXT NOT NULL,
  qty REAL NOT NULL, price REAL NOT NULL, filled_qty REAL NOT NULL, avg_price REAL NOT NULL,
  fee_krw REAL NOT NULL, reason TEXT NOT NULL, origin_ts_ns INTEGER NOT NULL,
  fx REAL NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True, slots=True)
class OrderRow:
    client_order_id: str
    intent_id: str
    pair_id: str
    action: str
    venue: str
    symbol: str
    side: str
    qty: float
    price: float
    status: str
    filled_qty: float
    avg_price: float
    fee_krw: float
    venue_order_id: str
    reason: str
    created_ns: int
    updated_ns: int


class Ledger:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(str(path), isolation_level=None, timeout=10.0,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Durability per write (see record_intent and apply): FULL by default.
        self.db.execute("PRAGMA synchronous=FULL")
        self._sync = "FULL"
        self.db.executescript(_SCHEMA)  # harmless if present; lets readers start first
        if not readonly:
            # Checkpoints run from checkpoint() (the executor's tick), never
            # inside the write that precedes a send.
            self.db.execute("PRAGMA wal_autocheckpoint=0")
            self._prime_wal()

    @classmethod
    def reader(cls, path: Path) -> Ledger:
        """A connection that can only read (SQLite ``mode=ro``): for people's
        reports, with or without a daemon writing. Unlike ``readonly=True``
        (which an actor uses and which may create the schema) it creates and
        changes nothing; a missing file is ``FileNotFoundError``."""
        if not path.is_file():
            raise FileNotFoundError(f"no ledger at {path}")
        self = cls.__new__(cls)
        self.path = path
        self.db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                                  isolation_level=None, timeout=10.0, check_same_thread=False)
        self._sync = ""
        return self

    def close(self) -> None:
        self.db.close()

    def _prime_wal(self) -> None:
        """Give the WAL file its working size before the first order.

        The fsync before each send is cheap when the WAL overwrites blocks
        the file already has, and dear when it grows the file: every growing
        fsync is also a file-system journal commit, shared with every other
        writer on the disk. Measured here, one FULL commit: growing p50
        0.48 ms / p99 3.6 ms; reused p50 0.19-0.25 ms / p99 0.5-0.9 ms.

        SQLite deletes the WAL when its last connection closes, so each
        executor start primes it again, without changing any data: with a
        tiny page cache, a 4 MiB insert spills its pages into the WAL before
        it commits, and the rollback leaves them there as space the next
        commits overwrite (~10 ms; the database file does not grow).
        """
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size >= WAL_PRIME_BYTES:
            return
        cache = self.db.execute("PRAGMA cache_size").fetchone()[0]
        self.db.execute("CREATE TABLE IF NOT EXISTS wal_prime (b BLOB)")
        self.db.execute("PRAGMA cache_size=-64")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            # A little over the size: the spilled frames are not all blob pages.
            self.db.execute("INSERT INTO wal_prime VALUES (zeroblob(?))", (WAL_PRIME_BYTES + (256 << 10),))
        finally:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.db.execute(f"PRAGMA cache_size={int(cache)}")

    def checkpoint(self) -> None:
        """Copy the WAL into the database, so that the next write starts the
        WAL again at its beginning (over blocks it already has). PASSIVE: it
        never waits for a reader; one that holds the WAL only delays the
        restart to a later checkpoint."""
        self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _synchronous(self, level: str) -> None:
        if level != self._sync:
            self.db.execute(f"PRAGMA synchronous={level}")
            self._sync = level

    # -- writes (executor only) ------------------------------------------------
    def record_intent(self, intent: OrderIntent, scale: float, legs: list[tuple[str, str, str, float, float]],
                      decided_ns: int = 0) -> bool:
        """Record an intent and its legs ``(client_order_id, venue, side, qty, price)``
        as pending, atomically; ``decided_ns`` is when the guard approved it.
        False if the intent was recorded before."""
        now = clock.time_ns()
        self._synchronous("FULL")  # on disk before the order it records is sent
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:  # the primary key says whether it was recorded before (no SELECT first)
                self.db.execute(
                    "INSERT INTO intents VALUES (?,?,?,?,?,?,?,?,?)",
                    (intent.id, intent.pair_id, intent.action, intent.symbol, intent.direction,
                     intent.notional_krw, scale, now, intent.origin_ts_ns))
            except sqlite3.IntegrityError:
                self.db.execute("ROLLBACK")
                return False
            if decided_ns:  # same commit, same fsync: no cost on the order path but a row
                self.db.execute("INSERT INTO decisions VALUES (?,?)", (intent.id, decided_ns))
            for cid, venue, side, qty, price in legs:
                self.db.execute(
                    "INSERT INTO orders (client_order_id, intent_id, pair_id, action, venue, symbol, side,"
                    " qty, price, status, created_ns, updated_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (cid, intent.id, intent.pair_id, intent.action, venue, intent.symbol, side,
                     qty, price, "pending", now, now))
            self.db.execute("COMMIT")
            return True
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def apply(self, evt: OrderEvent, venue_order_id: str = "") -> None:
        """Append the event and update the order row, in one transaction.

        Committed without waiting for the disk (WAL, synchronous=NORMAL: the
        fsync of record_intent costs ~0.3 ms, and a trade has four or more
        outcomes to record while the next decision waits). A killed process
        loses nothing (the OS has the write); a power cut can lose the last
        outcomes, never the intent and legs recorded before the send, and
        the executor re-reads unresolved legs from the venue by client id on
        start. The next FULL commit makes everything before it durable.
        """
        self._synchronous("NORMAL")
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute(
                "INSERT INTO events (ts_ns, intent_id, pair_id, action, client_order_id, venue, symbol,"
                " side, status, qty, price, filled_qty, avg_price, fee_krw, reason, origin_ts_ns, fx)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (evt.ts_ns, evt.intent_id, evt.pair_id, evt.action, evt.client_order_id, evt.venue,
                 evt.symbol, evt.side, evt.status, evt.qty, evt.price, evt.filled_qty, evt.avg_price,
                 evt.fee_krw, evt.reason, evt.origin_ts_ns, evt.fx))
            self.db.execute(
                "UPDATE orders SET status=?, filled_qty=?, avg_price=?, fee_krw=?, reason=?,"
                " venue_order_id=CASE WHEN ?='' THEN venue_order_id ELSE ? END, updated_ns=?"
                " WHERE client_order_id=?",
                (evt.status, evt.filled_qty, evt.avg_price, evt.fee_krw, evt.reason,
                 venue_order_id, venue_order_id, clock.time_ns(), evt.client_order_id))
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    # -- reads -----------------------------------------------------------------
    def has_intent(self, intent_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM intents WHERE intent_id=?", (intent_id,)).fetchone() is not None

    def orders(self, where: str = "", args: tuple[object, ...] = ()) -> list[OrderRow]:
        sql = ("SELECT client_order_id, intent_id, pair_id, action, venue, symbol, side, qty, price,"
               " status, filled_qty, avg_price, fee_krw, venue_order_id, reason, created_ns, updated_ns"
               " FROM orders" + (f" WHERE {where}" if where else "") + " ORDER BY created_ns, client_order_id")
        return [OrderRow(*r) for r in self.db.execute(sql, args)]

    def unresolved(self) -> list[OrderRow]:
        marks = ",".join("?" * len(UNRESOLVED))
        return self.orders(f"status IN ({marks})", UNRESOLVED)

    def decisions(self) -> dict[str, int]:
        """When the guard approved each intent, where known: intents an older
        arbd recorded have none, and neither has a file without the table
        (``reader`` creates nothing)."""
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='decisions'").fetchone() is None:
            return {}
        return dict(self.db.execute("SELECT intent_id, decided_ns FROM decisions").fetchall())

    def orders_for_intent(self, intent_id: str) -> list[OrderRow]:
        return self.orders("intent_id=?", (intent_id,))

    def events(self) -> Iterator[OrderEvent]:
        for r in self.db.execute(
                "SELECT ts_ns, intent_id, pair_id, action, client_order_id, venue, symbol, side, status,"
                " qty, price, filled_qty, avg_price, fee_krw, reason, origin_ts_ns, fx FROM events ORDER BY seq"):
            yield OrderEvent(ts_ns=r[0], intent_id=r[1], pair_id=r[2], action=r[3], client_order_id=r[4],
                             venue=r[5], symbol=r[6], side=r[7], status=r[8], qty=r[9], price=r[10],
                             filled_qty=r[11], avg_price=r[12], fee_krw=r[13], reason=r[14],
                             origin_ts_ns=r[15], fx=r[16])

    def pending_events(self) -> list[OrderEvent]:
        """Unresolved legs as 'sent' events: a restarted position actor counts
        them as in flight (exposure) until reconcile resolves them."""
        return [OrderEvent(ts_ns=r.created_ns, intent_id=r.intent_id, pair_id=r.pair_id, action=r.action,
                           client_order_id=r.client_order_id, venue=r.venue, symbol=r.symbol, side=r.side,
                           status="sent", qty=r.qty, price=r.price) for r in self.unresolved()]

    def status_counts(self) -> dict[str, int]:
        return {s: n for s, n in self.db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status")}
