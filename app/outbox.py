"""The durable outbox: usage events wait here, on local disk, until Supabase has them.

One SQLite file in WAL mode, shared by every worker process. A row is claimed
by moving its `next_attempt_at` one lease into the future in a single UPDATE,
so two workers never hold the same row, and a crashed worker's rows become due
again when the lease runs out. A row leaves the table only when delivered
(deleted) or refused for good (moved to `dead_letter`).

The hot path (`put`) is one INSERT on the event loop with no busy wait; if
another process holds the write lock, the write moves to a helper thread that
waits for it, so the loop never blocks on a lock. `synchronous=NORMAL` in WAL
mode makes a committed row survive a killed process (not a power cut).

`MemoryOutbox` has the same interface for when the file cannot be used: the
proxy keeps serving and metering, only durability is lost (and reported).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE,
    body            BLOB    NOT NULL,
    created_at      REAL    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL    NOT NULL,
    lease_owner     TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at, seq);
CREATE TABLE IF NOT EXISTS outbox_depth (id INTEGER PRIMARY KEY CHECK (id = 1), depth INTEGER NOT NULL);
INSERT OR IGNORE INTO outbox_depth (id, depth) SELECT 1, COUNT(*) FROM outbox;
CREATE TRIGGER IF NOT EXISTS outbox_depth_ins AFTER INSERT ON outbox
    BEGIN UPDATE outbox_depth SET depth = depth + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS outbox_depth_del AFTER DELETE ON outbox
    BEGIN UPDATE outbox_depth SET depth = depth - 1 WHERE id = 1; END;
CREATE TABLE IF NOT EXISTS delivery_counts (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT OR IGNORE INTO delivery_counts (name, n) VALUES ('sent', 0), ('retried', 0), ('dead_lettered', 0);
CREATE TABLE IF NOT EXISTS dead_letter (
    event_id      TEXT PRIMARY KEY,
    body          BLOB    NOT NULL,
    created_at    REAL    NOT NULL,
    failed_at     REAL    NOT NULL,
    attempts      INTEGER NOT NULL,
    http_status   INTEGER,
    reason        TEXT
);
"""


class PutResult(Enum):
    WRITTEN = "written"
    DUPLICATE = "duplicate"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    event_id: str
    body: bytes
    created_at: float
    attempts: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    oldest_created_at: float | None
    next_due_at: float | None
    dead_letters: int
    # Delivery outcomes, counted by whichever process delivered: shared by all workers, kept across restarts.
    sent: int = 0
    retried: int = 0
    dead_lettered: int = 0


class Outbox(Protocol):
    """What the logger and the sender need from an outbox."""

    path: str
    durable: bool

    async def put(self, event_id: str, body: bytes) -> PutResult: ...
    async def has_due(self) -> bool: ...
    async def claim(self, limit: int, owner: str, lease_s: float) -> list[OutboxRow]: ...
    async def ack(self, row: OutboxRow) -> None: ...
    async def retry(self, row: OutboxRow, delay_s: float) -> None: ...
    async def dead_letter(self, row: OutboxRow, http_status: int | None, reason: str) -> None: ...
    async def release(self, rows: list[OutboxRow]) -> None: ...
    async def stats(self) -> OutboxStats: ...
    async def maintain(self) -> None: ...
    def close(self) -> None: ...


_COUNT = "UPDATE delivery_counts SET n = n + 1 WHERE name = ?"


class OutboxUnavailableError(RuntimeError):
    """The outbox file cannot be opened or written; the message names path and cause."""


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


class SqliteOutbox:
    """The SQLite outbox; safe to share between processes, one instance per process."""

    durable = True

    def __init__(self, path: Path, max_rows: int, *, wait_timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self._max_rows = max_rows
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Loop connection: never waits for a lock (busy_timeout=0).
            self._fast = self._connect(path, busy_timeout_ms=0)
            # Helper-thread connection: waits for the lock, off the loop.
            self._slow = self._connect(path, busy_timeout_ms=int(wait_timeout_s * 1000))
            with self._slow:
                self._slow.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise OutboxUnavailableError(f"cannot open usage outbox at {self.path}: {exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-outbox")
        self._slow_lock = threading.Lock()

    @staticmethod
    def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run from `maintain` on the helper thread, not inside a request's commit.
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    async def _run(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """Run `op` on the loop if the lock is free right now, else on the helper thread."""
        try:
            return op(self._fast)
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc):
                raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run_slow, op)

    def _run_slow(self, op: Callable[[sqlite3.Connection], T]) -> T:
        with self._slow_lock:
            return op(self._slow)

    # -- writes ---------------------------------------------------------------

    async def put(self, event_id: str, body: bytes) -> PutResult:
        max_rows = self._max_rows

        def op(conn: sqlite3.Connection) -> PutResult:
            now = time.time()
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (event_id, body, created_at, next_attempt_at) "
                "SELECT ?, ?, ?, ? WHERE (SELECT depth FROM outbox_depth WHERE id = 1) < ?",
                (event_id, body, now, now, max_rows),
            )
            if cursor.rowcount == 1:
                return PutResult.WRITTEN
            exists = conn.execute("SELECT 1 FROM outbox WHERE event_id = ?", (event_id,)).fetchone()
            return PutResult.DUPLICATE if exists else PutResult.FULL

        try:
            return await self._run(op)
        except sqlite3.Error as exc:
            raise OutboxUnavailableError(f"cannot write usage outbox at {self.path}: {exc}") from exc

    async def claim(self, limit: int, owner: str, lease_s: float) -> list[OutboxRow]:
        def op(conn: sqlite3.Connection) -> list[OutboxRow]:
            now = time.time()
            rows = conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, lease_owner = ? WHERE seq IN ("
                " SELECT seq FROM outbox WHERE next_attempt_at <= ? ORDER BY next_attempt_at, seq LIMIT ?)"
                " RETURNING seq, event_id, body, created_at, attempts",
                (now + lease_s, owner, now, limit),
            ).fetchall()
            return sorted((OutboxRow(*row) for row in rows), key=lambda r: r.seq)

        return await self._run(op)

    async def _transaction(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    conn.execute(sql, params)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        await self._run(op)

    async def has_due(self) -> bool:
        """A read (no write lock in WAL mode): cheap enough to poll often."""
        now = time.time()
        return await self._run(
            lambda conn: (
                conn.execute("SELECT 1 FROM outbox WHERE next_attempt_at <= ? LIMIT 1", (now,)).fetchone() is not None
            )
        )

    async def ack(self, row: OutboxRow) -> None:
        await self._transaction(
            [
                ("DELETE FROM outbox WHERE seq = ?", (row.seq,)),
                (_COUNT, ("sent",)),
            ]
        )

    async def retry(self, row: OutboxRow, delay_s: float) -> None:
        await self._transaction(
            [
                (
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, lease_owner = NULL WHERE seq = ?",
                    (time.time() + delay_s, row.seq),
                ),
                (_COUNT, ("retried",)),
            ]
        )

    async def dead_letter(self, row: OutboxRow, http_status: int | None, reason: str) -> None:
        await self._transaction(
            [
                (
                    "INSERT OR REPLACE INTO dead_letter "
                    "(event_id, body, created_at, failed_at, attempts, http_status, reason) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (row.event_id, row.body, row.created_at, time.time(), row.attempts + 1, http_status, reason),
                ),
                ("DELETE FROM outbox WHERE seq = ?", (row.seq,)),
                (_COUNT, ("dead_lettered",)),
            ]
        )

    async def release(self, rows: list[OutboxRow]) -> None:
        """Give back claimed rows unsent (shutdown), so a restart sends them at once."""
        if not rows:
            return
        params = [(row.seq,) for row in rows]
        await self._run(
            lambda conn: conn.executemany(
                "UPDATE outbox SET next_attempt_at = 0, lease_owner = NULL WHERE seq = ?", params
            )
        )

    # -- reads and upkeep -----------------------------------------------------

    async def stats(self) -> OutboxStats:
        def op(conn: sqlite3.Connection) -> OutboxStats:
            depth = conn.execute("SELECT depth FROM outbox_depth WHERE id = 1").fetchone()[0]
            oldest = conn.execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1").fetchone()
            due = conn.execute("SELECT MIN(next_attempt_at) FROM outbox").fetchone()
            dead = conn.execute("SELECT COUNT(*) FROM dead_letter").fetchone()[0]
            counts = dict(conn.execute("SELECT name, n FROM delivery_counts").fetchall())
            return OutboxStats(
                depth,
                oldest[0] if oldest else None,
                due[0] if due else None,
                dead,
                sent=counts.get("sent", 0),
                retried=counts.get("retried", 0),
                dead_lettered=counts.get("dead_lettered", 0),
            )

        return await self._run(op)

    async def maintain(self) -> None:
        """Fold the WAL back into the database file, off the loop."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._executor, self._run_slow, lambda conn: conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for conn in (self._fast, self._slow):
            with contextlib.suppress(sqlite3.Error):
                conn.close()


class MemoryOutbox:
    """In-process stand-in used when the file cannot be: same behaviour, not durable."""

    durable = False

    def __init__(self, max_rows: int, path: str = ":memory:") -> None:
        self.path = path
        self._max_rows = max_rows
        self._rows: OrderedDict[str, tuple[OutboxRow, float]] = OrderedDict()
        self._dead = 0
        self._seq = 0
        self._counts = {"sent": 0, "retried": 0, "dead_lettered": 0}

    async def put(self, event_id: str, body: bytes) -> PutResult:
        if event_id in self._rows:
            return PutResult.DUPLICATE
        if len(self._rows) >= self._max_rows:
            return PutResult.FULL
        self._seq += 1
        now = time.time()
        self._rows[event_id] = (OutboxRow(self._seq, event_id, body, now, 0), now)
        return PutResult.WRITTEN

    async def claim(self, limit: int, owner: str, lease_s: float) -> list[OutboxRow]:
        now = time.time()
        due = sorted(((at, row.seq, row) for row, at in self._rows.values() if at <= now), key=lambda t: (t[0], t[1]))[
            :limit
        ]
        for _, _, row in due:
            self._rows[row.event_id] = (row, now + lease_s)
        return [row for _, _, row in due]

    async def has_due(self) -> bool:
        now = time.time()
        return any(at <= now for _, at in self._rows.values())

    async def ack(self, row: OutboxRow) -> None:
        if self._rows.pop(row.event_id, None) is not None:
            self._counts["sent"] += 1

    async def retry(self, row: OutboxRow, delay_s: float) -> None:
        self._counts["retried"] += 1
        if row.event_id in self._rows:
            bumped = OutboxRow(row.seq, row.event_id, row.body, row.created_at, row.attempts + 1)
            self._rows[row.event_id] = (bumped, time.time() + delay_s)

    async def dead_letter(self, row: OutboxRow, http_status: int | None, reason: str) -> None:
        if self._rows.pop(row.event_id, None) is not None:
            self._dead += 1
            self._counts["dead_lettered"] += 1

    async def release(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            if row.event_id in self._rows:
                self._rows[row.event_id] = (self._rows[row.event_id][0], 0.0)

    async def stats(self) -> OutboxStats:
        oldest = min((row.created_at for row, _ in self._rows.values()), default=None)
        due = min((at for _, at in self._rows.values()), default=None)
        return OutboxStats(len(self._rows), oldest, due, self._dead, **self._counts)

    async def maintain(self) -> None:
        return None

    def close(self) -> None:
        return None


def open_outbox(path: Path, max_rows: int) -> tuple[Outbox, str | None]:
    """The durable outbox, or the in-memory one and the reason it had to be used."""
    try:
        outbox = SqliteOutbox(path, max_rows)
    except OutboxUnavailableError as exc:
        return MemoryOutbox(max_rows, path=str(path)), str(exc)
    return outbox, None
