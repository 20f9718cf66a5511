"""Read-side history queries on the store: downsampled series, counter energy per period, events, bus figures.

Everything here reads the schema documented in ``meterbridge.sinks.store`` through
``Store.read_connection()`` and never writes. The SQL is plain enough for SQLite and PostgreSQL alike
(integer ``ts`` in epoch milliseconds, integer division for time buckets, ``?`` placeholders turned into
``%s`` for psycopg).

- ``series``: at most ``max_points`` points for one register over ``[start_ms, end_ms)``. When the range
  holds no more rows than that, the points are the stored rows themselves (``raw``); otherwise one point per
  time bucket of equal width with min / avg / max / count, aggregated in SQL (one row per bucket).
- ``energy``: consumption per calendar day or month (in a given time zone), per tariff, as the difference of
  the counter between the bucket boundaries, never as a sum of readings.
- ``events``, ``active_events``, ``event_counts``: the quality events table filtered, the events still raised,
  and counts per meter and kind (the bus view's collisions and errors).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.store import Store, decode_value, reading_from_row

__all__ = [
    "BAD_COUNTER_QUALITY",
    "MAX_POINTS",
    "CounterValue",
    "EnergyBucket",
    "EnergyReport",
    "EventRow",
    "History",
    "RawRow",
    "Series",
    "period_boundaries",
    "tariff_keys",
]

#: Upper bound on the points of one series (what a wide screen can show; keeps a payload well under 200 kB).
MAX_POINTS: Final = 2000

#: Counter readings carrying any of these flags are not used as bucket boundaries (a garbled 0 or a
#: decoding error must not turn into a spike of consumption).
BAD_COUNTER_QUALITY: Final = int(Quality.NOT_MONOTONIC | Quality.OUT_OF_RANGE | Quality.METER_ERROR)


@dataclass(frozen=True, slots=True)
class RawRow:
    """One stored row of a register, as the store holds it (``value`` is the exact text)."""

    ts: int
    value: str | None
    value_real: float | None
    unit: str | None
    quality: int


@dataclass(frozen=True, slots=True)
class Series:
    """Points of one register over ``[start_ms, end_ms)``.

    ``raw`` is True when every stored numeric row of the range is a point (``t`` are the rows' timestamps and
    ``vmin == vavg == vmax`` are their values, ``rows`` the rows themselves). Otherwise ``t[i]`` is the start of
    bucket ``i`` of width ``bucket_ms`` and the other lists hold that bucket's aggregates; empty buckets are
    left out.
    """

    meter_id: str
    key: str
    start_ms: int
    end_ms: int
    bucket_ms: int
    raw: bool
    unit: str | None
    t: list[int] = field(default_factory=list)
    vmin: list[float] = field(default_factory=list)
    vavg: list[float] = field(default_factory=list)
    vmax: list[float] = field(default_factory=list)
    count: list[int] = field(default_factory=list)
    rows: list[RawRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Stored rows the points stand for."""
        return sum(self.count)


@dataclass(frozen=True, slots=True)
class CounterValue:
    """A counter reading used at a bucket boundary."""

    ts: int
    value: Decimal


@dataclass(frozen=True, slots=True)
class EnergyBucket:
    """Consumption in ``[start_ms, end_ms)`` per tariff register: ``end - start`` of the counter.

    ``by_key`` maps each register's key to its difference (``None`` when the counter has no reading that
    brackets the bucket). ``boundaries`` keeps the readings used (for the commissioning report and tests).
    """

    label: str
    start_ms: int
    end_ms: int
    by_key: dict[str, Decimal | None]
    boundaries: dict[str, tuple[CounterValue | None, CounterValue | None]]


@dataclass(frozen=True, slots=True)
class EnergyReport:
    meter_id: str
    period: str
    tz: str
    unit: str | None
    keys: dict[str, str]  # role ("t1", "t2", "total") -> stored key
    buckets: list[EnergyBucket]


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    meter_id: str
    kind: str
    key: str | None
    value: str | None
    threshold: str | None
    message: str
    ts: int
    active: bool


def tariff_keys(keys: Sequence[str], register: Literal["1.8", "2.8"] = "1.8") -> dict[str, str]:
    """The stored keys of the tariff counters among ``keys``: roles ``t1`` (C.D.1), ``t2`` (C.D.2) and
    ``total`` (C.D.0), for import (``1.8``) or export (``2.8``). Channel B and F are ignored (the E450 push
    uses ``1-1:1.8.1``); where several match, the one with B = 0 and F = 255 wins."""
    c, d = (int(x) for x in register.split("."))
    found: dict[str, tuple[tuple[int, int], str]] = {}
    for text in keys:
        try:
            code = ObisCode.parse(text)
        except ValueError:
            continue
        if code.a != 1 or code.c != c or code.d != d or code.e not in (0, 1, 2):
            continue
        role = ("total", "t1", "t2")[code.e]
        rank = (code.b != 0, code.f != 255)
        rank_i = (int(rank[0]), int(rank[1]))
        if role not in found or rank_i < found[role][0]:
            found[role] = (rank_i, text)
    return {role: text for role, (_, text) in sorted(found.items())}


def period_boundaries(
    start: date, end: date, period: Literal["day", "month"], tz: ZoneInfo
) -> list[tuple[str, int, int]]:
    """(label, start_ms, end_ms) of every local day or month that overlaps ``[start, end]`` (dates inclusive),
    with boundaries at local midnight in ``tz`` (DST changes give 23 or 25 hour days)."""
    if end < start:
        raise ValueError(f"period end {end} is before its start {start}")
    out: list[tuple[str, int, int]] = []
    if period == "day":
        day = start
        while day <= end:
            nxt = day + timedelta(days=1)
            out.append((day.isoformat(), _local_midnight_ms(day, tz), _local_midnight_ms(nxt, tz)))
            day = nxt
    elif period == "month":
        month = date(start.year, start.month, 1)
        while month <= end:
            nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            out.append((month.strftime("%Y-%m"), _local_midnight_ms(month, tz), _local_midnight_ms(nxt, tz)))
            month = nxt
    else:
        raise ValueError(f"period must be 'day' or 'month', got {period!r}")
    return out


def _local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp() * 1000)


class History:
    """Read-only aggregate queries on one store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._sql = store.statement

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._store.read_connection() as conn:
            cur = conn.cursor()
            try:
                yield cur
            finally:
                cur.close()

    # ------------------------------------------------------------ series

    def series(
        self, meter_id: str, key: str, start_ms: int, end_ms: int, max_points: int = 1000, *, exclude: int = 0
    ) -> Series:
        """At most ``max_points`` (capped at ``MAX_POINTS``) points of ``key`` over ``[start_ms, end_ms)``,
        leaving out readings that carry any quality flag of ``exclude`` (e.g. ``BAD_COUNTER_QUALITY``)."""
        if end_ms <= start_ms:
            raise ValueError(f"series range is empty: end {end_ms} <= start {start_ms}")
        max_points = max(1, min(int(max_points), MAX_POINTS))
        width = max(1, math.ceil((end_ms - start_ms) / max_points))
        with self._cursor() as cur:
            # an index-only probe decides: no row past the first max_points means the rows are the answer
            cur.execute(self._sql(_PROBE_SQL), (meter_id, key, start_ms, end_ms, max_points))
            if cur.fetchone() is None:
                cur.execute(self._sql(_RAW_SQL), (meter_id, key, start_ms, end_ms, exclude, max_points))
                fetched = cur.fetchall()
                rows = [RawRow(int(r[0]), r[1], float(r[2]), r[3], int(r[4])) for r in fetched]
                unit = rows[-1].unit if rows else self._unit(cur, meter_id, key)
                values = [r.value_real for r in rows if r.value_real is not None]
                return Series(
                    meter_id,
                    key,
                    start_ms,
                    end_ms,
                    0,
                    True,
                    unit,
                    t=[r.ts for r in rows],
                    vmin=values,
                    vavg=values,
                    vmax=values,
                    count=[1] * len(rows),
                    rows=rows,
                )
            cur.execute(
                self._sql(_AGGREGATE_SQL.format(avg=_AVG_SQL[self._store.dialect])),
                (start_ms, width, meter_id, key, start_ms, end_ms, exclude),
            )
            buckets = cur.fetchall()
            unit = self._unit(cur, meter_id, key)
        if not buckets:
            return Series(meter_id, key, start_ms, end_ms, width, False, unit)
        # columns at once (value_real is REAL: min/max/avg arrive as floats on both back ends)
        index, count, low, high, mean = zip(*buckets, strict=True)
        return Series(
            meter_id,
            key,
            start_ms,
            end_ms,
            width,
            False,
            unit,
            t=[start_ms + int(b) * width for b in index],
            vmin=list(map(float, low)),
            vavg=list(map(float, mean)),
            vmax=list(map(float, high)),
            count=list(map(int, count)),
        )

    def _unit(self, cur: Any, meter_id: str, key: str) -> str | None:
        cur.execute(self._sql(_UNIT_SQL), (meter_id, key))
        row = cur.fetchone()
        return None if row is None else row[0]

    def time_range(self, meter_id: str, key: str) -> tuple[int, int] | None:
        """(first ts, last ts) of one register, or None when it has none (two index seeks)."""
        with self._cursor() as cur:
            cur.execute(self._sql(_FIRST_TS_SQL), (meter_id, key))
            first = cur.fetchone()
            cur.execute(self._sql(_LAST_TS_SQL), (meter_id, key))
            last = cur.fetchone()
        if first is None or last is None:
            return None
        return int(first[0]), int(last[0])

    def keys(self, meter_id: str) -> list[str]:
        """The registers a meter has readings of, by skipping through the ``(meter_id, key, ts)`` index
        (one seek per key, however long the history)."""
        with self._cursor() as cur:
            cur.execute(self._sql(_KEYS_SQL), (meter_id, meter_id))
            return [row[0] for row in cur.fetchall() if row[0] is not None]

    def latest(self, meter_id: str) -> dict[str, Reading]:
        """The newest reading of each register of a meter: one index seek per register (the same answer
        as ``Store.latest``, without scanning a long history)."""
        out: dict[str, Reading] = {}
        keys = self.keys(meter_id)
        with self._cursor() as cur:
            for key in keys:
                cur.execute(self._sql(_LATEST_SQL), (meter_id, key))
                row = cur.fetchone()
                if row is not None:
                    out[key] = reading_from_row(meter_id, key, *row)
        return out

    def last_reading_id(self) -> int:
        """The highest reading id (0 for an empty store): cheap change detection for live updates."""
        with self._cursor() as cur:
            cur.execute("SELECT max(id) FROM readings")
            row = cur.fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

    # ------------------------------------------------------------ energy from counters

    def counter_at(self, meter_id: str, key: str, ts_ms: int) -> CounterValue | None:
        """The newest good reading of counter ``key`` at or before ``ts_ms``."""
        with self._cursor() as cur:
            return self._counter(cur, _COUNTER_BEFORE_SQL, meter_id, key, ts_ms)

    def _counter(self, cur: Any, sql: str, meter_id: str, key: str, *bounds: int) -> CounterValue | None:
        cur.execute(self._sql(sql), (meter_id, key, BAD_COUNTER_QUALITY, *bounds))
        row = cur.fetchone()
        if row is None:
            return None
        value = decode_value(row[2], row[1])
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return None
        return CounterValue(int(row[0]), value if isinstance(value, Decimal) else Decimal(repr(value)))

    def energy(
        self,
        meter_id: str,
        keys: dict[str, str],
        buckets: Sequence[tuple[str, int, int]],
        *,
        period: str = "day",
        tz: str = "UTC",
    ) -> EnergyReport:
        """Consumption per bucket for each counter in ``keys`` (role -> stored key).

        The counter at a boundary is its newest good reading at or before that instant. A bucket that
        starts before the first reading uses the first reading inside it (a partial first day); a bucket
        still running (today) ends at the newest reading so far; a bucket after the newest reading is
        ``None`` (unknown), while a gap between readings counts as no consumption until the next reading.
        """
        out: list[EnergyBucket] = []
        unit: str | None = None
        with self._cursor() as cur:
            for role_key in keys.values():
                unit = unit or self._unit(cur, meter_id, role_key)
            cache: dict[tuple[str, int], CounterValue | None] = {}
            for label, start_ms, end_ms in buckets:
                by_key: dict[str, Decimal | None] = {}
                bounds: dict[str, tuple[CounterValue | None, CounterValue | None]] = {}
                for key in keys.values():
                    first = cache.get((key, start_ms))
                    if (key, start_ms) not in cache:
                        first = self._counter(cur, _COUNTER_BEFORE_SQL, meter_id, key, start_ms)
                        cache[(key, start_ms)] = first
                    if first is None:
                        first = self._counter(cur, _COUNTER_AFTER_SQL, meter_id, key, start_ms, end_ms)
                    last = self._counter(cur, _COUNTER_BEFORE_SQL, meter_id, key, end_ms)
                    cache[(key, end_ms)] = last
                    if (
                        last is not None
                        and last.ts < start_ms
                        and self._counter(cur, _COUNTER_AFTER_SQL, meter_id, key, end_ms, _NEVER) is None
                    ):
                        last = None  # the bucket lies after the newest reading: not known yet
                    if first is None or last is None or last.ts < first.ts:
                        by_key[key] = None
                    else:
                        by_key[key] = last.value - first.value
                    bounds[key] = (first, last)
                out.append(EnergyBucket(label, start_ms, end_ms, by_key, bounds))
        return EnergyReport(meter_id, period, tz, unit, dict(keys), out)

    # ------------------------------------------------------------ events and the bus view

    def events(
        self,
        *,
        meter: str | None = None,
        kind: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        active: bool | None = None,
        limit: int = 200,
    ) -> list[EventRow]:
        """Quality events, newest first, filtered by meter, kind, time range ``[start_ms, end_ms)`` and
        whether they were raised (``active=True``) or cleared."""
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("meter_id = ?", meter),
            ("kind = ?", kind),
            ("ts >= ?", start_ms),
            ("ts < ?", end_ms),
            ("active = ?", None if active is None else int(active)),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = "SELECT id, meter_id, kind, key, value, threshold, message, ts, active FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        params.append(max(1, min(int(limit), 10_000)))
        with self._cursor() as cur:
            cur.execute(self._sql(sql), params)
            return [_event_row(r) for r in cur.fetchall()]

    def active_events(self) -> list[EventRow]:
        """Per (meter, kind, register), the newest event when it is a raised one: what is wrong now."""
        with self._cursor() as cur:
            cur.execute(_ACTIVE_SQL)
            return [_event_row(r) for r in cur.fetchall()]

    def event_counts(self, kinds: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """meter_id -> kind -> number of raised events (optionally only of ``kinds``)."""
        sql = "SELECT meter_id, kind, count(*) FROM events WHERE active = 1"
        params: list[Any] = []
        if kinds:
            sql += " AND kind IN (" + ", ".join("?" for _ in kinds) + ")"
            params.extend(kinds)
        sql += " GROUP BY meter_id, kind"
        out: dict[str, dict[str, int]] = {}
        with self._cursor() as cur:
            cur.execute(self._sql(sql), params)
            for meter_id, kind, n in cur.fetchall():
                out.setdefault(meter_id, {})[kind] = int(n)
        return out

    def reading_counts(self, since_ms: int) -> dict[str, int]:
        """meter_id -> readings stored since ``since_ms`` (served by the ``ts`` index)."""
        with self._cursor() as cur:
            cur.execute(
                self._sql("SELECT meter_id, count(*) FROM readings WHERE ts >= ? GROUP BY meter_id"),
                (since_ms,),
            )
            return {m: int(n) for m, n in cur.fetchall()}


def _event_row(r: Sequence[Any]) -> EventRow:
    return EventRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6] or "", int(r[7]), bool(r[8]))


#: averages to 6 decimal places, in the database: the float noise of avg is not information (and costs bytes)
_AVG_SQL: Final = {
    "sqlite": "round(avg(value_real), 6)",
    "postgresql": "round(avg(value_real)::numeric, 6)::float8",
}
_AGGREGATE_SQL: Final = (
    "SELECT (ts - ?) / ? AS bucket, count(value_real), min(value_real), max(value_real), {avg} "
    "FROM readings WHERE meter_id = ? AND key = ? AND ts >= ? AND ts < ? AND value_real IS NOT NULL "
    "AND (quality & ?) = 0 GROUP BY bucket ORDER BY bucket"
)
_RAW_SQL: Final = (
    "SELECT ts, value, value_real, unit, quality FROM readings "
    "WHERE meter_id = ? AND key = ? AND ts >= ? AND ts < ? AND value_real IS NOT NULL AND (quality & ?) = 0 "
    "ORDER BY ts, id LIMIT ?"
)
_PROBE_SQL: Final = "SELECT ts FROM readings WHERE meter_id = ? AND key = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT 1 OFFSET ?"
_UNIT_SQL: Final = "SELECT unit FROM readings WHERE meter_id = ? AND key = ? ORDER BY ts DESC LIMIT 1"
_KEYS_SQL: Final = (
    "WITH RECURSIVE k(key) AS (SELECT min(key) FROM readings WHERE meter_id = ? "
    "UNION ALL SELECT (SELECT min(r.key) FROM readings r WHERE r.meter_id = ? AND r.key > k.key) "
    "FROM k WHERE k.key IS NOT NULL) SELECT key FROM k"
)
_LATEST_SQL: Final = (
    "SELECT ts, value, value_type, unit, quality, name FROM readings "
    "WHERE meter_id = ? AND key = ? ORDER BY ts DESC, id DESC LIMIT 1"
)
_FIRST_TS_SQL: Final = "SELECT ts FROM readings WHERE meter_id = ? AND key = ? ORDER BY ts LIMIT 1"
_LAST_TS_SQL: Final = "SELECT ts FROM readings WHERE meter_id = ? AND key = ? ORDER BY ts DESC LIMIT 1"
_COUNTER_BEFORE_SQL: Final = (
    "SELECT ts, value, value_type FROM readings WHERE meter_id = ? AND key = ? AND (quality & ?) = 0 "
    "AND value_real IS NOT NULL AND ts <= ? ORDER BY ts DESC, id DESC LIMIT 1"
)
_COUNTER_AFTER_SQL: Final = (
    "SELECT ts, value, value_type FROM readings WHERE meter_id = ? AND key = ? AND (quality & ?) = 0 "
    "AND value_real IS NOT NULL AND ts >= ? AND ts < ? ORDER BY ts, id LIMIT 1"
)
_NEVER: Final = 2**62  # an end bound beyond any timestamp
_ACTIVE_SQL: Final = (
    "SELECT e.id, e.meter_id, e.kind, e.key, e.value, e.threshold, e.message, e.ts, e.active "
    "FROM events e JOIN (SELECT max(id) AS id FROM events GROUP BY meter_id, kind, key) n ON e.id = n.id "
    "WHERE e.active = 1 ORDER BY e.ts DESC"
)
