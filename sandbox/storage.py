"""SQLite storage for the sandbox services: one WAL database file per service.

Every check-then-write on money runs inside ``Database.tx()`` (``BEGIN IMMEDIATE``), so the
invariants hold even if a service is run in several processes over the same file."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sandbox.common import IDEMPOTENCY_SCHEMA

PAYMENT_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS merchants (id TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, merchant_id TEXT NOT NULL,
    customer_id TEXT, customer_email TEXT, customer_name TEXT,
    amount INTEGER NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL, description TEXT,
    card_brand TEXT, card_last4 TEXT, decline_code TEXT,
    refunded_amount INTEGER NOT NULL DEFAULT 0, pending_refund_amount INTEGER NOT NULL DEFAULT 0,
    authorization_id TEXT, capture_id TEXT, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS payments_by_merchant ON payments (merchant_id, seq);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY, payment_id TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,
    status TEXT NOT NULL, reason TEXT, bank_refund_id TEXT, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS refunds_by_payment ON refunds (payment_id, created_at);
"""
    + IDEMPOTENCY_SCHEMA
)

BANK_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS authorizations (
    id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL,
    card_brand TEXT, card_last4 TEXT, reference TEXT, status TEXT NOT NULL,
    captured_amount INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS captures (
    id TEXT PRIMARY KEY, authorization_id TEXT UNIQUE NOT NULL, merchant_id TEXT NOT NULL,
    amount INTEGER NOT NULL, currency TEXT NOT NULL, refunded_amount INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS captures_by_time ON captures (created_at);
CREATE TABLE IF NOT EXISTS refunds (
    id TEXT PRIMARY KEY, capture_id TEXT NOT NULL, merchant_id TEXT NOT NULL, amount INTEGER NOT NULL,
    currency TEXT NOT NULL, created_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS refunds_by_time ON refunds (created_at);
"""
    + IDEMPOTENCY_SCHEMA
)


# The background checkpointer's pace, and the WAL size (pages) at which a commit checkpoints
# by itself anyway (only if the background thread fell behind).
CHECKPOINT_INTERVAL_S = 0.5
FALLBACK_AUTOCHECKPOINT_PAGES = 20_000


class Database:
    """One sqlite connection, used from the service's single event-loop thread, plus a
    background thread that checkpoints the WAL.

    SQLite's default checkpoints run inside whichever commit crosses 1,000 WAL pages, fsync
    included: the event loop would stall for that long every few hundred payments, and every
    request in flight would wait (tens of ms at the tail). Checkpointing from a thread of its
    own (PASSIVE: never blocks the writer; sqlite releases the GIL while it works) keeps the
    loop free."""

    def __init__(self, path: Path, schema: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: durable across process crashes (the case a sandbox meets), fast commits.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_AUTOCHECKPOINT_PAGES}")
        self.conn.executescript(schema)
        self._depth = 0
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="wal-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=1.0)
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                # busy or closing: the next round (or the fallback) catches up
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()

    @contextmanager
    def tx(self) -> Iterator[None]:
        if self._depth:
            # Nested: a savepoint, so a failing inner step undoes only its own writes while the
            # outer transaction (e.g. the idempotency record around it) goes on.
            name = f"sp{self._depth}"
            self.conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {name}")
                raise
            finally:
                self._depth -= 1
                self.conn.execute(f"RELEASE {name}")
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0

    def exec(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: tuple = ()) -> tuple | None:
        return self.conn.execute(sql, params).fetchone()

    def all(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def healthy(self) -> bool:
        try:
            self.conn.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def close(self) -> None:
        self._stop.set()
        self._checkpointer.join(timeout=5)
        self.conn.close()


def reset(data_dir: Path) -> None:
    for name in ("payment.db", "bank.db"):
        for suffix in ("", "-wal", "-shm"):
            (data_dir / f"{name}{suffix}").unlink(missing_ok=True)
