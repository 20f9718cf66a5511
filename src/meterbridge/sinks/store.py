"""The gateway's own store: readings, the per-sink outbox, quality events and the meter inventory.

Interface (stable; the MQTT, fleet and web code is written against it)
======================================================================

``open_store(url) -> Store``
    ``"var/meterbridge.sqlite"`` or ``"sqlite:///var/meterbridge.sqlite"`` (``sqlite:////abs/path`` for an
    absolute path, ``sqlite://:memory:`` for a throw-away store) opens SQLite in WAL mode;
    ``"postgresql://user@host/db"`` (or a libpq keyword DSN ``"host=... dbname=..."``) opens PostgreSQL
    through psycopg 3. A PostgreSQL URL may carry ``?schema=NAME``: the tables then live in that schema
    (created when missing).

``Store`` is synchronous and thread-safe: the asyncio side calls it through ``asyncio.to_thread``.

====================================================  ==================================================
``register_sink(name)``                               a sink's outbox exists from now on (idempotent)
``sinks() -> list[str]``                              registered sink names
``add(readings) -> list[int]``                        stores the readings and enqueues each in the outbox
                                                      of every registered sink, in one transaction; the
                                                      ids rise in the order given
``pending(sink, limit=500, after=0)``                 ``list[(id, Reading)]`` not yet confirmed by ``sink``,
                                                      oldest id first, ids above ``after`` only
``confirm(sink, ids)``                                ``sink``'s peer accepted these; they leave its outbox
``outbox_depth(sink=None) -> int``                    entries waiting for ``sink`` (for all sinks: None)
``add_event(event) -> int``                           stores a ``QualityEvent``
``events(since, meter, kind, limit, active)``         newest first
``upsert_meter(meter)`` / ``meters()``                the inventory of ``MeterInfo`` (a ``None`` field in
                                                      an upsert keeps the stored value)
``touch_meter(meter_id, when)``                       updates ``last_seen`` (creates a bare entry)
``upsert_meters(meters)``                              many ``upsert_meter`` in one transaction
``latest(meter_id, *, ok_only=False)``                ``dict[key_text, Reading]``: the newest reading of
                                                      each register of one meter
``readings(meter_id, key, start, end, limit)``        ``list[Reading]`` in time order; ``start`` inclusive,
                                                      ``end`` exclusive, every filter optional
``iter_readings(meter_id, start, end)``               the same, streamed (for export)
``prune(before) -> int``                              deletes readings older than ``before`` that no sink
                                                      still waits for; events too
``read_connection()``                                 context manager: a DB-API connection for read-only
                                                      queries (SQLite: its own connection, so WAL lets it
                                                      read while the gateway writes); see ``dialect``
``dialect``                                           ``"sqlite"`` or ``"postgresql"`` (placeholders ``?``
                                                      or ``%s``)
``close()``                                           flushes and closes; idempotent
====================================================  ==================================================

Schema (version ``SCHEMA_VERSION``; SQLite keeps it in ``PRAGMA user_version``, PostgreSQL in the table
``meterbridge_schema``). Column names and meanings are the same on both back ends:

``readings``
    ``id`` (integer, rising, never reused), ``meter_id`` text, ``key`` text (``str(ObisCode)`` in the canonical
    ``A-B:C.D.E.F`` form, or the driver's string key such as ``mbus/0/energy/instantaneous/s0/t0/u0``),
    ``ts`` integer: epoch **milliseconds** UTC, ``value`` text: the exact value (see ``VALUE_TYPES``),
    ``value_real`` real: the numeric value as a float for aggregation, NULL when not numeric,
    ``value_type`` text (one of ``VALUE_TYPES``), ``unit`` text, ``quality`` integer (``readings.Quality``
    flags; 0 is good), ``name`` text. Index ``readings_meter_key_ts`` on ``(meter_id, key, ts)`` that also
    holds ``value_real`` and ``quality`` (since schema 2: a plot's aggregate reads the index alone); index
    ``readings_ts`` on ``(ts)``.
``outbox``
    ``(sink, reading_id)`` primary key: one row per reading not yet confirmed by that sink.
``sinks``
    ``name`` primary key, ``registered_ms``.
``events``
    ``id``, ``meter_id``, ``kind``, ``key``, ``value`` (text), ``threshold`` (text), ``message``, ``ts`` (epoch
    ms), ``active`` (1 raised, 0 cleared). Index on ``(ts)`` and ``(meter_id, ts)``.
``meters``
    ``id`` primary key, ``name``, ``kind``, ``protocol``, ``address``, ``serial``, ``manufacturer``,
    ``firmware``, ``last_seen`` (epoch ms or NULL).

Readers (the dashboard's history queries) aggregate with e.g.
``SELECT ts / 3600000 * 3600000 AS bucket, avg(value_real), min(value_real), max(value_real) FROM readings
WHERE meter_id = ? AND key = ? AND ts >= ? AND ts < ? GROUP BY bucket`` which the index serves.
"""

from __future__ import annotations

import abc
import functools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from meterbridge.errors import ConfigError, MeterbridgeError
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading, Value

__all__ = [
    "EVENT_KINDS",
    "SCHEMA_VERSION",
    "VALUE_TYPES",
    "MeterInfo",
    "QualityEvent",
    "Store",
    "StoreError",
    "decode_value",
    "encode_value",
    "from_epoch_ms",
    "open_store",
    "redact_url",
    "to_epoch_ms",
]

SCHEMA_VERSION: Final = 2

#: ``value_type`` column: how ``value`` (text) turns back into the Python value.
VALUE_TYPES: Final = ("none", "bool", "int", "decimal", "float", "str", "bytes", "datetime")

#: Kinds of quality events the gateway raises (sinks show them, e.g. as Home Assistant problem sensors).
EVENT_KINDS: Final = {
    "voltage": "voltage outside the expected band (EN 50160: 230 V +/- 10 %)",
    "frequency": "frequency outside 50 +/- 1 Hz",
    "power_factor": "power factor below 0.9",
    "thd": "total harmonic distortion above 8 %",
    "implausible": "a value outside the plausible range of its quantity",
    "not_monotonic": "a total_increasing counter went backwards",
    "unit_mismatch": "a unit differs from the catalogue's or the previous reading's",
    "meter_silent": "a meter stopped answering",
    "bus_collisions": "collisions or garbled replies on a bus",
    "meter_error": "the meter flagged a value or the driver could not decode it",
}


class StoreError(MeterbridgeError):
    """The store could not do what was asked (database unreachable, schema newer than this code, ...)."""


def _exact(value: Decimal | int | float | str | None) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityEvent:
    """A quality event: raised (``active``) when a threshold is crossed, cleared when it holds again.

    ``kind`` is one of ``EVENT_KINDS``; ``key`` the register (text) it concerns, or None for a meter or bus;
    ``value`` and ``threshold`` are exact numbers where they apply.
    """

    meter_id: str
    kind: str
    message: str
    timestamp: datetime
    key: str | None = None
    value: Decimal | None = None
    threshold: Decimal | None = None
    active: bool = True

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"QualityEvent.kind {self.kind!r} is not one of {sorted(EVENT_KINDS)}")
        if self.timestamp.tzinfo is None:
            raise ValueError("QualityEvent.timestamp must be timezone-aware")
        object.__setattr__(self, "value", _exact(self.value))
        object.__setattr__(self, "threshold", _exact(self.threshold))


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterInfo:
    """One meter of the inventory. ``kind`` is the medium (``electricity``, ``heat``, ``water``, ``gas``...),
    ``protocol`` how it is read (``mbus``, ``optical``, ``dlms``, ``push``), ``address`` where (primary or
    secondary M-Bus address, HDLC address, transport URL)."""

    id: str
    name: str | None = None
    kind: str | None = None
    protocol: str | None = None
    address: str | None = None
    serial: str | None = None
    manufacturer: str | None = None
    firmware: str | None = None
    last_seen: datetime | None = field(default=None, compare=False)


# ---------------------------------------------------------------- value and time encoding


def to_epoch_ms(when: datetime) -> int:
    """Aware datetime -> integer epoch milliseconds (UTC)."""
    if when.tzinfo is None:
        raise ValueError(f"timestamp must be timezone-aware, got {when!r}")
    delta = when - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_epoch_ms(ms: int) -> datetime:
    """Integer epoch milliseconds -> aware UTC datetime (exact)."""
    return _EPOCH + timedelta(milliseconds=ms)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def encode_value(value: Value) -> tuple[str, str | None, float | None]:
    """A reading's value -> (value_type, exact text, float for aggregation)."""
    if value is None:
        return "none", None, None
    if isinstance(value, bool):
        return "bool", "1" if value else "0", float(value)
    if isinstance(value, int):
        return "int", str(value), float(value)
    if isinstance(value, Decimal):
        real = float(value) if value.is_finite() else None
        return "decimal", str(value), real
    if isinstance(value, float):
        return "float", repr(value), value if math.isfinite(value) else None
    if isinstance(value, str):
        return "str", value, None
    if isinstance(value, bytes):
        return "bytes", value.hex(), None
    if isinstance(value, datetime):
        return "datetime", value.isoformat(), None
    raise TypeError(f"cannot store a reading value of type {type(value).__name__}")


def decode_value(value_type: str, text: str | None) -> Value:
    """Inverse of ``encode_value``."""
    if value_type == "none" or text is None:
        return None
    decoder = _DECODERS.get(value_type)
    if decoder is None:
        raise StoreError(f"stored value_type {value_type!r} is not one of {VALUE_TYPES}")
    decoded: Value = decoder(text)
    return decoded


_DECODERS: Final[dict[str, Any]] = {
    "bool": lambda t: t == "1",
    "int": int,
    "decimal": Decimal,
    "float": float,
    "str": str,
    "bytes": bytes.fromhex,
    "datetime": datetime.fromisoformat,
}

_CANONICAL_OBIS: Final = re.compile(r"^\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


@functools.lru_cache(maxsize=4096)
def key_from_text(text: str) -> ObisCode | str:
    """A stored key back to the reading's key: canonical OBIS text -> ``ObisCode``, anything else a string."""
    if _CANONICAL_OBIS.match(text):
        return ObisCode.parse(text)
    return text


def id_runs(ids: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, distinct ids as inclusive runs of consecutive ids: ``[3, 1, 2, 7] -> [(1, 3), (7, 7)]``."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(map(int, ids))):
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def reading_row(
    reading: Reading,
) -> tuple[str, str, int, str | None, float | None, str, str | None, int, str | None]:
    """(meter_id, key, ts, value, value_real, value_type, unit, quality, name) for an INSERT."""
    value_type, text, real = encode_value(reading.value)
    return (
        reading.meter_id,
        reading.key_text,
        to_epoch_ms(reading.timestamp),
        text,
        real,
        value_type,
        reading.unit,
        int(reading.quality),
        reading.name,
    )


def reading_from_row(
    meter_id: str,
    key: str,
    ts: int,
    value: str | None,
    value_type: str,
    unit: str | None,
    quality: int,
    name: str | None,
) -> Reading:
    return Reading(
        meter_id=meter_id,
        key=key_from_text(key),
        value=decode_value(value_type, value),
        unit=unit,
        timestamp=from_epoch_ms(ts),
        quality=Quality(quality),
        name=name,
    )


# ---------------------------------------------------------------- the interface


class Store(abc.ABC):
    """What every store back end provides. See the module docstring for the contract of each method."""

    dialect: str = ""

    def statement(self, text: str) -> Any:
        """SQL ``text`` written with ``?`` placeholders, as this store's driver takes it (for
        ``read_connection`` cursors and the back ends' own queries)."""
        return text

    @abc.abstractmethod
    def register_sink(self, name: str) -> None: ...

    @abc.abstractmethod
    def sinks(self) -> list[str]: ...

    @abc.abstractmethod
    def add(self, readings: Sequence[Reading]) -> list[int]: ...

    @abc.abstractmethod
    def pending(self, sink: str, limit: int = 500, after: int = 0) -> list[tuple[int, Reading]]: ...

    @abc.abstractmethod
    def confirm(self, sink: str, ids: Sequence[int]) -> None: ...

    @abc.abstractmethod
    def outbox_depth(self, sink: str | None = None) -> int: ...

    @abc.abstractmethod
    def add_event(self, event: QualityEvent) -> int: ...

    @abc.abstractmethod
    def events(
        self,
        since: datetime | None = None,
        meter: str | None = None,
        kind: str | None = None,
        limit: int = 100,
        active: bool | None = None,
    ) -> list[QualityEvent]: ...

    @abc.abstractmethod
    def upsert_meters(self, meters: Sequence[MeterInfo]) -> None:
        """``upsert_meter`` of each, in order, in one transaction."""

    def upsert_meter(self, meter: MeterInfo) -> None:
        self.upsert_meters([meter])

    def touch_meter(self, meter_id: str, when: datetime) -> None:
        self.upsert_meters([MeterInfo(id=meter_id, last_seen=when)])

    @abc.abstractmethod
    def meters(self) -> list[MeterInfo]: ...

    @abc.abstractmethod
    def latest(self, meter_id: str, *, ok_only: bool = False) -> dict[str, Reading]: ...

    @abc.abstractmethod
    def readings(
        self,
        meter_id: str | None = None,
        key: ObisCode | str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[Reading]: ...

    @abc.abstractmethod
    def prune(self, before: datetime) -> int: ...

    @abc.abstractmethod
    def read_connection(self) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def iter_readings(
        self,
        meter_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> Iterator[Reading]:
        """All readings (optionally of one meter, in ``[start, end)``) in time order, streamed."""
        yield from self.readings(meter_id, None, start, end, None)


def redact_url(url: str) -> str:
    """``scheme://user:secret@host/...`` -> ``scheme://user:***@host/...``; ``password=secret`` -> ``password=***``."""
    text = re.sub(r"(password\s*=\s*)[^\s&]+", r"\1***", url)
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@/\s]*@", r"\1:***@", text)


_KEYWORD_DSN: Final = re.compile(r"^(host|hostaddr|dbname|user|port|service)\s*=")


def open_store(url: str) -> Store:
    """Open (and create or migrate) the store named by ``url``; see the module docstring."""
    text = url.strip()
    if not text:
        raise ConfigError("store URL is empty", where="sinks.store")
    if text.startswith(("postgresql://", "postgres://")) or _KEYWORD_DSN.match(text):
        from meterbridge.sinks.postgres_store import PostgresStore

        return PostgresStore(text)
    if text.startswith("sqlite://"):
        path = text[len("sqlite://") :]
        if path.startswith("/"):
            path = path[1:]  # sqlite:///rel -> rel ; sqlite:////abs -> /abs
        text = path or ":memory:"
    elif "://" in text:
        raise ConfigError(
            f"store URL scheme {text.split('://', 1)[0]!r} is not supported; "
            "expected a file path, sqlite:///path or postgresql://...",
            where="sinks.store",
        )
    from meterbridge.sinks.sqlite_store import SqliteStore

    return SqliteStore(text)
