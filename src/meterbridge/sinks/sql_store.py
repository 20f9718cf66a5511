"""What the SQL back ends of ``meterbridge.sinks.store.Store`` share: one schema, the same queries.

``SqliteStore`` and ``PostgresStore`` bring the connection (``_transaction``, ``_query``,
``read_connection``), their migrations and the few statements their dialects write differently (inserting
readings, confirming, the newest reading per register, the later of two ``last_seen``). Every statement
here is written with ``?`` placeholders; ``Store.statement`` turns it into what the driver takes.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.store import (
    MeterInfo,
    QualityEvent,
    Store,
    from_epoch_ms,
    reading_from_row,
    to_epoch_ms,
)

__all__ = ["METER_FIELDS", "READING_COLUMNS", "SqlStore", "event_from_row", "event_row"]

READING_COLUMNS: Final = "meter_id, key, ts, value, value_type, unit, quality, name"
METER_FIELDS: Final = ("name", "kind", "protocol", "address", "serial", "manufacturer", "firmware")
_EVENT_COLUMNS: Final = "meter_id, kind, key, value, threshold, message, ts, active"


def event_row(event: QualityEvent) -> tuple[Any, ...]:
    """The columns ``_EVENT_COLUMNS`` of one event, for an INSERT."""
    return (
        event.meter_id,
        event.kind,
        event.key,
        None if event.value is None else str(event.value),
        None if event.threshold is None else str(event.threshold),
        event.message,
        to_epoch_ms(event.timestamp),
        int(event.active),
    )


def event_from_row(row: Sequence[Any]) -> QualityEvent:
    meter_id, kind, key, value, threshold, message, ts, active = row
    return QualityEvent(
        meter_id=meter_id,
        kind=kind,
        key=key,
        value=value,
        threshold=threshold,
        message=message,
        timestamp=from_epoch_ms(ts),
        active=bool(active),
    )


class SqlStore(Store):
    """The queries of a ``Store`` on SQL tables (see the module docstring)."""

    #: the later of the stored and the new ``last_seen`` (``excluded``: the row being upserted)
    LAST_SEEN_SQL: ClassVar[str]
    #: the newest reading of each register of a meter (three parameters: the meter id thrice; written in
    #: the back end's own placeholders, as its tests run it directly)
    LATEST_SQL: ClassVar[str]
    #: the same, of readings without any quality flag
    LATEST_OK_SQL: ClassVar[str]

    # -- what a back end provides
    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]:
        """A cursor in one transaction (committed on leaving, rolled back on an exception)."""

    @abc.abstractmethod
    def _query(self, statement: Any, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one statement (as ``statement`` made it)."""

    def _rows(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._query(self.statement(text), params)

    # -- sinks and outbox
    def register_sink(self, name: str) -> None:
        if not name:
            raise ValueError("sink name must not be empty")
        with self._transaction() as cur:
            cur.execute(
                self.statement(
                    "INSERT INTO sinks (name, registered_ms) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
                ),
                (name, to_epoch_ms(datetime.now(UTC))),
            )

    def sinks(self) -> list[str]:
        return [row[0] for row in self._rows("SELECT name FROM sinks ORDER BY name")]

    def pending(self, sink: str, limit: int = 500, after: int = 0) -> list[tuple[int, Reading]]:
        rows = self._rows(
            f"SELECT r.id, {', '.join('r.' + c.strip() for c in READING_COLUMNS.split(','))}"
            " FROM outbox o JOIN readings r ON r.id = o.reading_id"
            " WHERE o.sink = ? AND o.reading_id > ? ORDER BY o.reading_id LIMIT ?",
            (sink, after, limit),
        )
        return [(int(row[0]), reading_from_row(*row[1:])) for row in rows]

    def outbox_depth(self, sink: str | None = None) -> int:
        if sink is None:
            return int(self._rows("SELECT count(*) FROM outbox")[0][0])
        return int(self._rows("SELECT count(*) FROM outbox WHERE sink = ?", (sink,))[0][0])

    # -- events
    def events(
        self,
        since: datetime | None = None,
        meter: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        active: bool | None = None,
    ) -> list[QualityEvent]:
        clause, params = _where(
            ("ts >= ?", None if since is None else to_epoch_ms(since)),
            ("meter_id = ?", meter),
            ("kind = ?", kind),
            ("active = ?", None if active is None else int(active)),
        )
        rows = self._rows(
            f"SELECT {_EVENT_COLUMNS} FROM events{clause} ORDER BY ts DESC, id DESC LIMIT ?", (*params, limit)
        )
        return [event_from_row(row) for row in rows]

    # -- inventory
    def upsert_meters(self, meters: Sequence[MeterInfo]) -> None:
        if not meters:
            return
        rows = [
            (
                meter.id,
                *(getattr(meter, f) for f in METER_FIELDS),
                None if meter.last_seen is None else to_epoch_ms(meter.last_seen),
            )
            for meter in meters
        ]
        statement = self.statement(
            f"INSERT INTO meters (id, {', '.join(METER_FIELDS)}, last_seen)"
            f" VALUES (?, {', '.join('?' for _ in METER_FIELDS)}, ?)"
            " ON CONFLICT (id) DO UPDATE SET "
            + ", ".join(f"{f} = coalesce(excluded.{f}, meters.{f})" for f in METER_FIELDS)
            + f", last_seen = {self.LAST_SEEN_SQL}"
        )
        with self._transaction() as cur:
            cur.executemany(statement, rows)

    def meters(self) -> list[MeterInfo]:
        rows = self._rows(f"SELECT id, {', '.join(METER_FIELDS)}, last_seen FROM meters ORDER BY id")
        return [
            MeterInfo(
                id=row[0],
                **dict(zip(METER_FIELDS, row[1:-1], strict=True)),
                last_seen=None if not row[-1] else from_epoch_ms(row[-1]),
            )
            for row in rows
        ]

    # -- readings
    def latest(self, meter_id: str, *, ok_only: bool = False) -> dict[str, Reading]:
        # index seeks only, however long the history: the meter's keys by skipping through the
        # (meter_id, key, ts) index, then per key its newest row
        rows = self._rows(self.LATEST_OK_SQL if ok_only else self.LATEST_SQL, (meter_id, meter_id, meter_id))
        return {row[1]: reading_from_row(*row) for row in rows}

    @staticmethod
    def _reading_filter(
        meter_id: str | None, key: ObisCode | str | None, start: datetime | None, end: datetime | None
    ) -> tuple[str, list[Any]]:
        return _where(
            ("meter_id = ?", meter_id),
            ("key = ?", None if key is None else str(key)),
            ("ts >= ?", None if start is None else to_epoch_ms(start)),
            ("ts < ?", None if end is None else to_epoch_ms(end)),
        )

    def readings(
        self,
        meter_id: str | None = None,
        key: ObisCode | str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Reading]:
        clause, params = self._reading_filter(meter_id, key, start, end)
        text = f"SELECT {READING_COLUMNS} FROM readings{clause} ORDER BY ts, id"
        if limit is not None:
            text += " LIMIT ?"
            params.append(limit)
        return [reading_from_row(*row) for row in self._rows(text, params)]

    def iter_readings(
        self,
        meter_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Iterator[Reading]:
        clause, params = self._reading_filter(meter_id, None, start, end)
        for row in self._stream(f"SELECT {READING_COLUMNS} FROM readings{clause} ORDER BY ts, id", params):
            yield reading_from_row(*row)

    @abc.abstractmethod
    def _stream(self, text: str, params: Sequence[Any]) -> Iterator[Sequence[Any]]:
        """The rows of a long query, a batch at a time, on a read connection."""

    def prune(self, before: datetime) -> int:
        cutoff = to_epoch_ms(before)
        with self._transaction() as cur:
            cur.execute(
                self.statement(
                    "DELETE FROM readings WHERE ts < ? AND NOT EXISTS"
                    " (SELECT 1 FROM outbox o WHERE o.reading_id = readings.id)"
                ),
                (cutoff,),
            )
            removed = cur.rowcount
            cur.execute(self.statement("DELETE FROM events WHERE ts < ?"), (cutoff,))
        return int(removed)


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a AND b`` of the conditions whose parameter is not None, and those parameters."""
    used = [(condition, value) for condition, value in conditions if value is not None]
    clause = f" WHERE {' AND '.join(c for c, _ in used)}" if used else ""
    return clause, [value for _, value in used]
