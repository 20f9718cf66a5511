"""``Store.latest``: the newest reading of each register, found by index seeks (not a scan of the meter's
history), identical to the newest row per key of ``readings()`` (ties in time: the later stored)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from meterbridge.readings import Quality, Reading
from meterbridge.sinks.store import Store, open_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)
KEYS = ["1-0:1.8.0.255", "1-0:2.8.0.255", "1-0:32.7.0.255", "mbus/0/volume/instantaneous/s0/t0/u0"]


def _expected(store: Store, meter: str, ok_only: bool) -> dict[str, Reading]:
    newest: dict[str, Reading] = {}
    for reading in store.readings(meter):  # ordered by time, then by storing order
        if not ok_only or reading.quality == Quality.OK:
            newest[reading.key_text] = reading
    return newest


@pytest.mark.parametrize("seed", range(4))
def test_latest_is_the_newest_row_per_register(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    batch = [
        Reading(
            rng.choice(["m1", "m2", "m10"]),
            rng.choice(KEYS[: rng.randint(1, len(KEYS))]),
            rng.randint(0, 10**6),
            "Wh",
            T0 + timedelta(minutes=rng.randint(0, 20)),  # many ties in time
            rng.choice([Quality.OK, Quality.OK, Quality.NOT_MONOTONIC, Quality.OUT_OF_RANGE]),
        )
        for _ in range(300)
    ]
    for i in range(0, len(batch), 37):
        store.add(batch[i : i + 37])
    for meter in ("m1", "m2", "m10", "m"):
        for ok_only in (False, True):
            assert store.latest(meter, ok_only=ok_only) == _expected(store, meter, ok_only), (meter, ok_only)


def _plan_sqlite(store: Any, sql: str) -> list[str]:
    return [row[3] for row in store._conn.execute("EXPLAIN QUERY PLAN " + sql, ("m", "m", "m"))]


def test_sqlite_latest_never_scans_the_readings_table(tmp_path: Path) -> None:
    from meterbridge.sinks import sqlite_store

    store = open_store(str(tmp_path / "plan.sqlite"))
    try:
        store.add([Reading("m", k, i, "Wh", T0 + timedelta(seconds=i)) for i in range(200) for k in KEYS])
        store._conn.execute("ANALYZE")  # type: ignore[attr-defined]
        for sql in (sqlite_store._LATEST_SQL, sqlite_store._LATEST_OK_SQL):
            plan = _plan_sqlite(store, sql)
            # the table is only searched (index range / rowid); the one scan is of the few keys found
            assert [line for line in plan if line.startswith("SCAN")] == ["SCAN k", "SCAN k"], plan
            searches = [line for line in plan if line.startswith("SEARCH")]
            assert len(searches) == 4 and all("INDEX" in line or "PRIMARY KEY" in line for line in searches)
    finally:
        store.close()


def test_postgres_latest_uses_the_index(postgres_dsn: str) -> None:
    import psycopg

    from meterbridge.sinks import postgres_store

    store = open_store(postgres_dsn)
    try:
        rows = [
            Reading(f"m{j}", k, i, "Wh", T0 + timedelta(seconds=i))
            for j in range(20)
            for i in range(150)
            for k in KEYS
        ]
        for i in range(0, len(rows), 2000):
            store.add(rows[i : i + 2000])
    finally:
        store.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE readings")
        for sql in (postgres_store._LATEST_SQL, postgres_store._LATEST_OK_SQL):
            plan = "\n".join(
                row[0] for row in conn.execute(("EXPLAIN " + sql).encode(), ("m3", "m3", "m3")).fetchall()
            )
            assert "Seq Scan on readings" not in plan, plan
            assert "readings_meter_key_ts" in plan, plan
