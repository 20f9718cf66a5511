"""The Store contract, run on SQLite and on PostgreSQL (the same tests for both back ends)."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meterbridge.errors import ConfigError
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.store import (
    SCHEMA_VERSION,
    MeterInfo,
    QualityEvent,
    Store,
    StoreError,
    decode_value,
    encode_value,
    from_epoch_ms,
    id_runs,
    open_store,
    redact_url,
    to_epoch_ms,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
E_IMPORT = ObisCode.parse("1-0:1.8.0.255")
VOLT = ObisCode.parse("1-0:32.7.0.255")


def r(meter: str, key: ObisCode | str, value: object, minutes: int = 0, q: Quality = Quality.OK) -> Reading:
    return Reading(meter, key, value, "Wh", T0 + timedelta(minutes=minutes), q)  # type: ignore[arg-type]


VALUES = [
    None,
    True,
    False,
    0,
    -(2**63),
    2**80,
    Decimal("123456789.000123"),
    Decimal("-0.001"),
    Decimal("1E+3"),
    1.5,
    -2.5e-300,
    "text with ünïcode",
    "",
    b"\x00\xff\x10",
    datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=1))),
]


def test_values_and_keys_round_trip_exactly(store: Store) -> None:
    readings = [
        r("m1", E_IMPORT if i % 2 else f"mbus/{i}/volume/instantaneous/s0/t0/u0", v, i)
        for i, v in enumerate(VALUES)
    ]
    store.add(readings)
    back = store.readings("m1")
    assert back == readings
    for a, b in zip(back, readings, strict=True):
        assert type(a.value) is type(b.value)
        assert a.key == b.key and type(a.key) is type(b.key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.integers(),
        st.decimals(allow_nan=False, allow_infinity=False),
        st.floats(allow_nan=False),
        st.text(),
        st.binary(),
        st.booleans(),
    )
)
def test_encode_decode_value_round_trip(value: object) -> None:
    value_type, text, real = encode_value(value)  # type: ignore[arg-type]
    back = decode_value(value_type, text)
    assert back == value and type(back) is type(value)
    if isinstance(value, int | Decimal | float):
        assert real is None or isinstance(real, float)


def test_epoch_ms_is_exact() -> None:
    when = datetime(2030, 5, 6, 7, 8, 9, 999_000, tzinfo=UTC)
    assert from_epoch_ms(to_epoch_ms(when)) == when
    assert to_epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        to_epoch_ms(datetime(2026, 1, 1))


def test_add_enqueues_for_every_registered_sink_and_confirm_is_per_sink(store: Store) -> None:
    store.add([r("m1", E_IMPORT, 1)])  # before any sink: stored, in no outbox
    store.register_sink("mqtt")
    store.register_sink("fleet")
    store.register_sink("mqtt")  # idempotent
    assert store.sinks() == ["fleet", "mqtt"]
    ids = store.add([r("m1", E_IMPORT, n, n) for n in range(2, 7)])
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert store.outbox_depth("mqtt") == 5 and store.outbox_depth("fleet") == 5 and store.outbox_depth() == 10
    pending = store.pending("mqtt", limit=3)
    assert [i for i, _ in pending] == ids[:3]
    assert [x.value for _, x in pending] == [2, 3, 4]
    assert [i for i, _ in store.pending("mqtt", limit=2, after=ids[1])] == ids[2:4]
    store.confirm("mqtt", [i for i, _ in pending])
    assert [i for i, _ in store.pending("mqtt")] == ids[3:]
    assert store.outbox_depth("fleet") == 5
    store.confirm("mqtt", ids[3:])
    store.confirm("mqtt", ids[3:])  # confirming twice is harmless
    assert store.pending("mqtt") == []
    assert store.outbox_depth() == 5


def test_large_adds_and_confirms_of_scattered_ids(store: Store) -> None:
    store.register_sink("mqtt")
    batch = [r(f"m{n % 7}", E_IMPORT, n, n) for n in range(1234)]  # more rows than one INSERT statement
    ids = store.add(batch)
    assert ids == list(range(ids[0], ids[0] + 1234))
    by_id = dict(store.pending("mqtt", limit=2000))
    assert [by_id[i] for i in ids] == batch  # the i-th id is the i-th reading's (sinks rely on it)
    stored = store.readings(limit=2000)
    assert sorted(x.value for x in stored) == list(range(1234))  # type: ignore[type-var]
    scattered = [i for i in ids if i % 3 and i % 101]  # many runs, some of one id
    store.confirm("mqtt", list(reversed(scattered)))
    assert [i for i, _ in store.pending("mqtt", limit=2000)] == [i for i in ids if i not in set(scattered)]


def test_id_runs() -> None:
    assert id_runs([]) == []
    assert id_runs([7, 3, 1, 2, 2, 8, 10]) == [(1, 3), (7, 8), (10, 10)]


def test_add_is_all_or_nothing(store: Store) -> None:
    store.register_sink("mqtt")
    bad = [r("m1", E_IMPORT, 1), r("m1", E_IMPORT, object())]
    with pytest.raises(TypeError, match="cannot store"):
        store.add(bad)
    assert store.readings() == [] and store.outbox_depth() == 0
    assert store.add([]) == []


def test_latest_per_register_and_ok_only(store: Store) -> None:
    store.add(
        [
            r("m1", E_IMPORT, 10, 0),
            r("m1", E_IMPORT, 20, 1),
            r("m1", E_IMPORT, 5, 2, Quality.NOT_MONOTONIC),
            r("m1", VOLT, Decimal("230.1"), 1),
            r("m2", E_IMPORT, 99, 5),
        ]
    )
    latest = store.latest("m1")
    assert latest[str(E_IMPORT)].value == 5 and latest[str(VOLT)].value == Decimal("230.1")
    assert store.latest("m1", ok_only=True)[str(E_IMPORT)].value == 20
    assert store.latest("nobody") == {}


def test_readings_filters_start_inclusive_end_exclusive(store: Store) -> None:
    store.add(
        [r("m1", E_IMPORT, n, n) for n in range(10)] + [r("m2", E_IMPORT, 100 + n, n) for n in range(3)]
    )
    got = store.readings("m1", E_IMPORT, T0 + timedelta(minutes=2), T0 + timedelta(minutes=5))
    assert [x.value for x in got] == [2, 3, 4]
    assert [x.value for x in store.readings("m1", str(E_IMPORT), limit=2)] == [0, 1]
    assert len(store.readings()) == 13
    assert [x.value for x in store.iter_readings("m2")] == [100, 101, 102]
    assert [x.value for x in store.iter_readings(None, T0 + timedelta(minutes=9))] == [9]


def test_events_round_trip_and_filter(store: Store) -> None:
    ev = QualityEvent(
        meter_id="m1",
        kind="voltage",
        key=str(VOLT),
        value=Decimal("254.2"),
        threshold=Decimal("253"),
        message="voltage L1 254.2 V above 253 V",
        timestamp=T0,
    )
    cleared = QualityEvent(
        meter_id="m1",
        kind="voltage",
        key=str(VOLT),
        message="back",
        timestamp=T0 + timedelta(minutes=1),
        active=False,
    )
    other = QualityEvent(
        meter_id="bus", kind="bus_collisions", message="x", timestamp=T0 + timedelta(minutes=2), value=3
    )  # type: ignore[arg-type]
    for e in (ev, cleared, other):
        store.add_event(e)
    assert store.events() == [other, cleared, ev]
    assert store.events(meter="m1") == [cleared, ev]
    assert store.events(kind="bus_collisions") == [other]
    assert store.events(since=T0 + timedelta(minutes=1)) == [other, cleared]
    assert store.events(active=True) == [other, ev]
    assert store.events(limit=1) == [other]
    assert other.value == Decimal(3)


def test_quality_event_rejects_unknown_kind_and_naive_time() -> None:
    with pytest.raises(ValueError, match="kind"):
        QualityEvent(meter_id="m", kind="nonsense", message="", timestamp=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        QualityEvent(meter_id="m", kind="voltage", message="", timestamp=datetime(2026, 1, 1))


def test_upsert_meter_keeps_known_fields_and_latest_last_seen(store: Store) -> None:
    store.upsert_meter(
        MeterInfo(id="m1", name="E450", protocol="optical", address="/dev/ttyUSB0", last_seen=T0)
    )
    store.upsert_meter(MeterInfo(id="m1", serial="12345678", last_seen=T0 - timedelta(days=1)))
    store.touch_meter("m2", T0)
    m1, m2 = store.meters()
    assert (m1.name, m1.protocol, m1.address, m1.serial) == ("E450", "optical", "/dev/ttyUSB0", "12345678")
    assert m1.last_seen == T0
    assert m2.id == "m2" and m2.last_seen == T0 and m2.name is None


def test_upsert_meters_is_upsert_meter_of_each_in_order(store: Store) -> None:
    store.upsert_meters(
        [
            MeterInfo(id="m1", name="first", last_seen=T0),
            MeterInfo(id="m2", protocol="mbus"),
            MeterInfo(id="m1", name="second", serial="42", last_seen=T0 - timedelta(hours=1)),
        ]
    )
    store.upsert_meters([])
    m1, m2 = store.meters()
    assert (m1.name, m1.serial, m1.last_seen) == ("second", "42", T0)
    assert (m2.protocol, m2.last_seen) == ("mbus", None)


def test_prune_keeps_what_a_sink_still_waits_for(store: Store) -> None:
    store.register_sink("mqtt")
    ids = store.add([r("m1", E_IMPORT, n, n) for n in range(4)])
    store.confirm("mqtt", ids[:3])
    store.add_event(QualityEvent(meter_id="m1", kind="voltage", message="old", timestamp=T0))
    removed = store.prune(T0 + timedelta(minutes=10))
    assert removed == 3
    assert [x.value for x in store.readings()] == [3]
    assert store.events() == []
    assert [i for i, _ in store.pending("mqtt")] == ids[3:]


def test_ids_keep_rising_after_prune(store: Store) -> None:
    store.register_sink("s")
    first = store.add([r("m1", E_IMPORT, 1)])
    store.confirm("s", first)
    store.prune(T0 + timedelta(days=1))
    second = store.add([r("m1", E_IMPORT, 2)])
    assert second[0] > first[0]


def test_concurrent_adds_from_threads(store: Store) -> None:
    store.register_sink("mqtt")
    results: list[list[int]] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for k in range(10):
            got = store.add([r(f"m{n}", E_IMPORT, k, k), r(f"m{n}", VOLT, k, k)])
            with lock:
                results.append(got)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for got in results for i in got]
    assert len(ids) == len(set(ids)) == 80
    assert store.outbox_depth("mqtt") == 80
    pending = store.pending("mqtt", 1000)
    assert [i for i, _ in pending] == sorted(ids)
    for got in results:  # each add() got consecutive, rising ids for its two readings
        assert got[1] == got[0] + 1 or got[1] > got[0]


def test_read_connection_sees_committed_rows(store: Store) -> None:
    store.add([r("m1", E_IMPORT, 7)])
    with store.read_connection() as conn:
        mark = "?" if store.dialect == "sqlite" else "%s"
        row = conn.execute(
            f"SELECT value, value_real, ts FROM readings WHERE meter_id = {mark}", ("m1",)
        ).fetchone()
    assert tuple(row) == ("7", 7.0, to_epoch_ms(T0))


def test_sqlite_file_survives_reopen_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "s.sqlite"
    with open_store(f"sqlite:///{path}") as s:
        s.register_sink("mqtt")
        s.add([r("m1", E_IMPORT, 1)])
    with open_store(str(path)) as s:
        assert s.outbox_depth("mqtt") == 1
        assert [x.value for x in s.readings()] == [1]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(readings)")}
    assert "readings_meter_key_ts" in indexes
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        open_store(str(path))


def test_open_store_urls(tmp_path: Path) -> None:
    with open_store("sqlite://:memory:") as s:
        s.add([r("m1", E_IMPORT, 1)])
        assert len(s.readings()) == 1
    with pytest.raises(ConfigError, match="not supported"):
        open_store("mysql://x/y")
    with pytest.raises(ConfigError, match="empty"):
        open_store("  ")


def test_postgres_schema_in_url(postgres_dsn: str) -> None:
    import uuid

    import psycopg

    schema = f"mb_{uuid.uuid4().hex[:12]}"
    url = f"postgresql://postgres@127.0.0.1:5432/test?schema={schema}"
    try:
        with open_store(url) as s:
            s.add([r("m1", E_IMPORT, 1)])
        with open_store(url) as s:  # reopen: migration already done
            assert [x.value for x in s.readings()] == [1]
            assert "schema=" not in repr(s) or schema in repr(s)
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    with pytest.raises(ConfigError, match="plain identifier"):
        open_store("postgresql://postgres@127.0.0.1/test?schema=a;drop")


def test_redact_url() -> None:
    assert redact_url("postgresql://u:secret@h/db?x=1") == "postgresql://u:***@h/db?x=1"
    assert redact_url("mqtt://user:pw@host:1883") == "mqtt://user:***@host:1883"
    assert redact_url("host=h password=abc dbname=x") == "host=h password=*** dbname=x"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact_url("var/x.sqlite") == "var/x.sqlite"


def test_a_schema_1_sqlite_store_is_migrated_with_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from meterbridge.sinks.sqlite_store import MIGRATIONS

    path = tmp_path / "v1.sqlite"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO readings (meter_id, key, ts, value, value_real, value_type, unit, quality)"
        " VALUES ('m1', '1-0:1.8.0.255', 1000, '7', 7.0, 'int', 'Wh', 0)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with caplog.at_level("INFO", logger="meterbridge.sinks.sqlite_store"), open_store(str(path)) as s:
        assert [(x.meter_id, x.value) for x in s.readings()] == [("m1", 7)]
        assert "migrating schema 1 to 2" in caplog.text  # why this start takes longer
        s.add([r("m1", E_IMPORT, 8, 1)])
        plan = " ".join(
            row[3]
            for row in s._conn.execute(  # type: ignore[attr-defined]
                "EXPLAIN QUERY PLAN SELECT count(value_real), avg(value_real) FROM readings"
                " WHERE meter_id = 'm1' AND key = '1-0:1.8.0.255' AND ts >= 0 AND (quality & 7) = 0"
            )
        )
    assert "COVERING INDEX readings_meter_key_ts" in plan  # the aggregate never touches the table
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    columns = [row[2] for row in conn.execute("PRAGMA index_info(readings_meter_key_ts)")]
    assert columns == ["meter_id", "key", "ts", "id", "value_real", "quality"]
    conn.close()


def test_a_schema_1_postgres_store_is_migrated_with_its_rows(postgres_dsn: str) -> None:
    import psycopg

    from meterbridge.sinks.postgres_store import MIGRATIONS

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for statement in MIGRATIONS[1]:
            conn.execute(statement.encode())
        conn.execute("CREATE TABLE meterbridge_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO meterbridge_schema (version) VALUES (1)")
        conn.execute(
            "INSERT INTO readings (meter_id, key, ts, value, value_real, value_type, unit, quality)"
            " VALUES ('m1', '1-0:1.8.0.255', 1000, '7', 7.0, 'int', 'Wh', 0)"
        )
    with open_store(postgres_dsn) as s:
        assert [(x.meter_id, x.value) for x in s.readings()] == [("m1", 7)]
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT max(version) FROM meterbridge_schema").fetchone() == (2,)
        definition = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'readings_meter_key_ts' AND schemaname = current_schema()"
        ).fetchone()
    assert definition is not None and "INCLUDE (value_real, quality)" in definition[0]
