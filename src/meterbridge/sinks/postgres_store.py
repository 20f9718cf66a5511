"""The PostgreSQL back end of ``meterbridge.sinks.store.Store`` (psycopg 3), for a gateway whose own store is
PostgreSQL. Same tables and columns as the SQLite store (see ``meterbridge.sinks.store``).

The URL is a libpq URL; ``?schema=NAME`` (removed before connecting) puts the tables in that schema, which
is created when missing. The version of the schema is kept in ``meterbridge_schema``; ``MIGRATIONS[n]``
takes version n-1 to n. One connection serves the gateway under a lock; ``read_connection()`` opens a
separate one for long read queries.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from meterbridge.errors import ConfigError
from meterbridge.readings import Reading
from meterbridge.sinks.sql_store import SqlStore, event_row
from meterbridge.sinks.store import (
    SCHEMA_VERSION,
    QualityEvent,
    StoreError,
    reading_row,
    redact_url,
)

log = logging.getLogger(__name__)

__all__ = ["MIGRATIONS", "PostgresStore", "split_schema"]

MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (
        """CREATE TABLE readings (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            meter_id TEXT NOT NULL,
            key TEXT NOT NULL,
            ts BIGINT NOT NULL,
            value TEXT,
            value_real DOUBLE PRECISION,
            value_type TEXT NOT NULL,
            unit TEXT,
            quality INTEGER NOT NULL DEFAULT 0,
            name TEXT
        )""",
        "CREATE INDEX readings_meter_key_ts ON readings (meter_id, key, ts)",
        "CREATE INDEX readings_ts ON readings (ts)",
        "CREATE TABLE sinks (name TEXT PRIMARY KEY, registered_ms BIGINT NOT NULL)",
        """CREATE TABLE outbox (
            sink TEXT NOT NULL,
            reading_id BIGINT NOT NULL,
            PRIMARY KEY (sink, reading_id)
        )""",
        """CREATE TABLE events (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            meter_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            key TEXT,
            value TEXT,
            threshold TEXT,
            message TEXT NOT NULL,
            ts BIGINT NOT NULL,
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
            last_seen BIGINT
        )""",
    ),
    2: (  # the plot's aggregate from the index alone (an index-only scan)
        "DROP INDEX readings_meter_key_ts",
        "CREATE INDEX readings_meter_key_ts ON readings (meter_id, key, ts) INCLUDE (value_real, quality)",
    ),
}
assert max(MIGRATIONS) == SCHEMA_VERSION

_LATEST_TEMPLATE: Final = (
    "WITH RECURSIVE k(key) AS (SELECT min(key) FROM readings WHERE meter_id = %s "
    "UNION ALL SELECT (SELECT min(r.key) FROM readings r WHERE r.meter_id = %s AND r.key > k.key) "
    "FROM k WHERE k.key IS NOT NULL) "
    "SELECT l.meter_id, l.key, l.ts, l.value, l.value_type, l.unit, l.quality, l.name FROM k "
    "CROSS JOIN LATERAL (SELECT * FROM readings x WHERE x.meter_id = %s AND x.key = k.key{ok} "
    "ORDER BY x.ts DESC, x.id DESC LIMIT 1) l ORDER BY l.key"
)
_LATEST_SQL: Final = _LATEST_TEMPLATE.format(ok="")
_LATEST_OK_SQL: Final = _LATEST_TEMPLATE.format(ok=" AND x.quality = 0")
_SCHEMA_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def split_schema(url: str) -> tuple[str, str | None]:
    """``postgresql://...?schema=x&sslmode=y`` -> (``postgresql://...?sslmode=y``, ``"x"``).

    A libpq keyword DSN (``host=... dbname=...``) is returned unchanged (its ``options`` may set search_path).
    """
    if not url.startswith(("postgresql://", "postgres://")):
        return url, None
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    rest = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            rest.append((name, value))
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ConfigError(
            f"PostgreSQL schema name {schema!r} must be a plain identifier (letters, digits, _)",
            where="sinks.store",
        )
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _redacted(url: str) -> str:
    return redact_url(url)


class PostgresStore(SqlStore):
    """``Store`` on PostgreSQL."""

    dialect = "postgresql"
    LAST_SEEN_SQL = "nullif(greatest(coalesce(excluded.last_seen, 0), coalesce(meters.last_seen, 0)), 0)"
    LATEST_SQL = _LATEST_SQL
    LATEST_OK_SQL = _LATEST_OK_SQL

    def __init__(self, url: str) -> None:
        self._dsn, self.schema = split_schema(url)
        self.url = _redacted(url)
        self._lock = threading.RLock()
        self._closed = False
        self._conn = self._connect()
        self._migrate()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to PostgreSQL store {self.url}: {exc}") from exc
        if self.schema:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn

    def _migrate(self) -> None:
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(727274)")
            cur.execute("CREATE TABLE IF NOT EXISTS meterbridge_schema (version INTEGER NOT NULL)")
            row = cur.execute("SELECT max(version) FROM meterbridge_schema").fetchone()
            version = int(row[0]) if row and row[0] is not None else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"PostgreSQL store {self.url} has schema version {version}; this meterbridge knows up to "
                    f"{SCHEMA_VERSION} (upgrade meterbridge)"
                )
            for target in range(version + 1, SCHEMA_VERSION + 1):
                if version:  # a new schema is made at the newest version at once; say why a start takes long
                    log.info("PostgreSQL store %s: migrating schema %d to %d", self.url, target - 1, target)
                for statement in MIGRATIONS[target]:
                    cur.execute(statement.encode())
                cur.execute("INSERT INTO meterbridge_schema (version) VALUES (%s)", (target,))

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._lock:
            if self._closed:
                raise StoreError(f"PostgreSQL store {self.url} is closed")
            try:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
            except psycopg.OperationalError as exc:
                raise StoreError(f"PostgreSQL store {self.url}: {exc}") from exc

    def statement(self, text: str) -> bytes:
        return text.replace("?", "%s").encode()  # bytes: a query psycopg takes as it is

    def _query(self, statement: Any, params: Sequence[Any] = ()) -> list[Any]:
        with self._transaction() as cur:
            return cur.execute(statement, params).fetchall()

    # ------------------------------------------------------------ sinks and outbox

    def add(self, readings: Sequence[Reading]) -> list[int]:
        if not readings:
            return []
        columns: list[list[Any]] = [[] for _ in range(9)]
        for row in (reading_row(r) for r in readings):
            for column, value in zip(columns, row, strict=True):
                column.append(value)
        with self._transaction() as cur:
            # the ids first, then the rows with them: the i-th reading gets the i-th id for certain (the order
            # of RETURNING is not defined), which the sinks rely on when they take a batch from memory
            cur.execute(
                "SELECT nextval(pg_get_serial_sequence('readings', 'id')) FROM generate_series(1, %s)",
                (len(readings),),
            )
            ids = sorted(int(r[0]) for r in cur.fetchall())
            cur.execute(
                "INSERT INTO readings (id, meter_id, key, ts, value, value_real, value_type, unit, quality, name)"
                " OVERRIDING SYSTEM VALUE SELECT * FROM unnest(%s::bigint[],"
                " %s::text[], %s::text[], %s::bigint[], %s::text[], %s::float8[], %s::text[], %s::text[],"
                " %s::int[], %s::text[])",
                (ids, *columns),
            )
            cur.execute(
                "INSERT INTO outbox (sink, reading_id) SELECT s.name, r.id FROM sinks s"
                " CROSS JOIN unnest(%s::bigint[]) AS r(id)",
                (ids,),
            )
        return ids

    def confirm(self, sink: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._transaction() as cur:
            cur.execute(
                "DELETE FROM outbox WHERE sink = %s AND reading_id = ANY(%s::bigint[])",
                (sink, [int(i) for i in ids]),
            )

    # ------------------------------------------------------------ events

    def add_event(self, event: QualityEvent) -> int:
        with self._transaction() as cur:
            row = cur.execute(
                "INSERT INTO events (meter_id, kind, key, value, threshold, message, ts, active)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                event_row(event),
            ).fetchone()
        return int(row[0]) if row else 0

    # ------------------------------------------------------------ lifecycle

    @contextmanager
    def read_connection(self) -> Iterator[psycopg.Connection[Any]]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def _stream(self, text: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        with (
            self.read_connection() as conn,
            conn.transaction(),
            conn.cursor(name="meterbridge_export") as cur,
        ):
            cur.itersize = 2000
            cur.execute(self.statement(text), params)
            yield from cur

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._conn.close()

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, schema={self.schema!r})"
