"""The SQLite back end of ``meterbridge.sinks.store.Store``: one file, WAL mode, the embedded default.

One connection does all writes under a lock (SQLite has one writer anyway); every write is one
transaction begun with ``BEGIN IMMEDIATE``, so a crash (even ``kill -9``) leaves either all of an
``add()`` -- readings and their outbox entries -- or none of it. ``read_connection()`` opens a separate
connection so that long read queries (export, dashboard) run alongside the writer.

The schema is migrated with ``PRAGMA user_version``; ``MIGRATIONS[n]`` takes version n-1 to n.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from meterbridge.readings import Reading
from meterbridge.sinks.sql_store import SqlStore, event_row
from meterbridge.sinks.store import (
    SCHEMA_VERSION,
    QualityEvent,
    StoreError,
    id_runs,
    reading_row,
)

log = logging.getLogger(__name__)

__all__ = ["MIGRATIONS", "SqliteStore"]

MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE readings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            meter_id TEXT NOT NULL,
            key TEXT NOT NULL,
            ts INTEGER NOT NULL,
            value TEXT,
            value_real REAL,
            value_type TEXT NOT NULL,
            unit TEXT,
            quality INTEGER NOT NULL DEFAULT 0,
            name TEXT
        )""",
        "CREATE INDEX readings_meter_key_ts ON readings (meter_id, key, ts)",
        "CREATE INDEX readings_ts ON readings (ts)",
        "CREATE TABLE sinks (name TEXT PRIMARY KEY, registered_ms INTEGER NOT NULL)",
        """CREATE TABLE outbox (
            sink TEXT NOT NULL,
            reading_id INTEGER NOT NULL,
            PRIMARY KEY (sink, reading_id)
        ) WITHOUT ROWID""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            meter_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            key TEXT,
            value TEXT,
            threshold TEXT,
            message TEXT NOT NULL,
            ts INTEGER NOT NULL,
            active INTEGER NOT NULL
        )""",
        "CREATE INDEX events_ts ON events (ts)",
        "CREATE INDEX events_meter_ts ON events (meter_id, ts)",
        """CREATE TABLE meters (
            id TEXT PRIMARY KEY,
            name TEXT,
            kind TEXT,
            protocol TEXT,
            address TEXT,
            serial TEXT,
            manufacturer TEXT,
            firmware TEXT,
            last_seen INTEGER
        )""",
    ),
    2: (  # the plot's aggregate from the index alone (value_real and quality in it); id right after ts
        # keeps "newest by ts, then id" an index walk
        "DROP INDEX readings_meter_key_ts",
        "CREATE INDEX readings_meter_key_ts ON readings (meter_id, key, ts, id, value_real, quality)",
    ),
}
assert max(MIGRATIONS) == SCHEMA_VERSION

_LATEST_TEMPLATE: Final = (
    "WITH RECURSIVE k(key) AS (SELECT min(key) FROM readings WHERE meter_id = ? "
    "UNION ALL SELECT (SELECT min(r.key) FROM readings r WHERE r.meter_id = ? AND r.key > k.key) "
    "FROM k WHERE k.key IS NOT NULL) "
    "SELECT r.meter_id, r.key, r.ts, r.value, r.value_type, r.unit, r.quality, r.name "
    "FROM k JOIN readings r ON r.id = (SELECT l.id FROM readings l WHERE l.meter_id = ? AND l.key = k.key{ok} "
    "ORDER BY l.ts DESC, l.id DESC LIMIT 1) ORDER BY r.key"
)
_LATEST_SQL: Final = _LATEST_TEMPLATE.format(ok="")
_LATEST_OK_SQL: Final = _LATEST_TEMPLATE.format(ok=" AND l.quality = 0")


#: rows per INSERT statement: 9 parameters each, at most 32,766 parameters since SQLite 3.32, 999 before
_INSERT_CHUNK: Final = 500 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999 // 9


@functools.lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    return (
        "INSERT INTO readings (meter_id, key, ts, value, value_real, value_type, unit, quality, name) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    )


class SqliteStore(SqlStore):
    """``Store`` on one SQLite file (or ``":memory:"``)."""

    dialect = "sqlite"
    LAST_SEEN_SQL = "max(coalesce(excluded.last_seen, 0), coalesce(meters.last_seen, 0))"
    # the newest row per key: ts, then id (the index ends in the rowid)
    LATEST_SQL = _LATEST_SQL
    LATEST_OK_SQL = _LATEST_OK_SQL

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        self._closed = False
        conn = self._conn
        conn.execute("PRAGMA busy_timeout = 10000")
        if self.path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"SQLite store {self.path!r} could not switch to WAL mode (got {mode})")
        # NORMAL in WAL mode: a committed transaction survives a process crash (kill -9); FULL also a power cut.
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        self._migrate()

    # ------------------------------------------------------------ plumbing

    def _migrate(self) -> None:
        with self._lock:
            version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"SQLite store {self.path!r} has schema version {version}; this meterbridge knows up to "
                    f"{SCHEMA_VERSION} (upgrade meterbridge)"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                if version:  # a new file is made at the newest version at once; say why a start takes long
                    log.info("SQLite store %s: migrating schema %d to %d", self.path, target - 1, target)
                with self._transaction() as cur:
                    for statement in MIGRATIONS[target]:
                        cur.execute(statement)
                    cur.execute(f"PRAGMA user_version = {target}")

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            if self._closed:
                raise StoreError(f"SQLite store {self.path!r} is closed")
            cur = self._conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield cur
                except BaseException:
                    if self._conn.in_transaction:
                        cur.execute("ROLLBACK")
                    raise
                else:
                    cur.execute("COMMIT")
            except sqlite3.Error as exc:  # disk full, I/O error, locked beyond busy_timeout ...
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
            finally:
                cur.close()

    def _query(self, statement: Any, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self._closed:
                raise StoreError(f"SQLite store {self.path!r} is closed")
            return self._conn.execute(statement, params).fetchall()

    # ------------------------------------------------------------ sinks and outbox

    def add(self, readings: Sequence[Reading]) -> list[int]:
        if not readings:
            return []
        rows = [reading_row(r) for r in readings]
        with self._transaction() as cur:
            # many rows per statement: one sqlite3_step (one release of the GIL) per chunk, not per row
            for start in range(0, len(rows), _INSERT_CHUNK):
                chunk = rows[start : start + _INSERT_CHUNK]
                cur.execute(_insert_sql(len(chunk)), [v for row in chunk for v in row])
            last = int(cur.execute("SELECT seq FROM sqlite_sequence WHERE name = 'readings'").fetchone()[0])
            first = last - len(rows) + 1
            cur.execute(
                "INSERT INTO outbox (sink, reading_id) SELECT s.name, r.id FROM sinks s, readings r"
                " WHERE r.id BETWEEN ? AND ?",
                (first, last),
            )
        return list(range(first, last + 1))

    def confirm(self, sink: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._transaction() as cur:  # a batch of ids is mostly one run: one statement per run
            cur.executemany(
                "DELETE FROM outbox WHERE sink = ? AND reading_id BETWEEN ? AND ?",
                [(sink, first, last) for first, last in id_runs(ids)],
            )

    # ------------------------------------------------------------ events

    def add_event(self, event: QualityEvent) -> int:
        with self._transaction() as cur:
            cur.execute(
                "INSERT INTO events (meter_id, kind, key, value, threshold, message, ts, active)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                event_row(event),
            )
            return int(cur.lastrowid or 0)

    # ------------------------------------------------------------ lifecycle

    @contextmanager
    def read_connection(self) -> Iterator[sqlite3.Connection]:
        if self.path == ":memory:":
            with self._lock:
                yield self._conn
            return
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA query_only = 1")
            yield conn
        finally:
            conn.close()

    def _stream(self, text: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        with self.read_connection() as conn:
            cursor = conn.execute(text, params)
            while batch := cursor.fetchmany(2000):
                yield from batch

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"
