"""The fleet ingest against the real broker and PostgreSQL: shared load, idempotence, ack after commit."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.ingest import IngestService, IngestSettings
from meterbridge.sinks.mqtt import MqttSettings, MqttSink
from meterbridge.sinks.mqtt_topics import TopicLayout, reading_payload
from meterbridge.sinks.store import open_store

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
WAIT = 60.0


@pytest.fixture
def broker5(mqtt_broker, mosquitto_factory) -> tuple[str, int]:
    """A broker that speaks MQTT 5 (shared subscriptions): the session broker, else a private mosquitto."""
    if mqtt_broker.mqtt5:
        return mqtt_broker.host, mqtt_broker.port
    private = mosquitto_factory()
    return private.host, private.port


@pytest.fixture
def prefix(topic_root) -> str:
    """A topic prefix of this test alone, under the run's topic root (never the real ``meterbridge/``):
    stale sessions of other tests never match its topics."""
    return f"{topic_root}/mbt{uuid.uuid4().hex[:10]}"


def token(prefix: str) -> str:
    """``prefix`` as a client id / shared-subscription group name (no ``/``)."""
    return prefix.replace("/", "_")


@pytest.fixture
def services(broker5) -> Iterator[Callable[..., IngestService]]:
    started: list[IngestService] = []

    def make(dsn: str, prefix: str, client_id: str, *, start: bool = True, **extra: Any) -> IngestService:
        host, port = broker5
        settings = IngestSettings(
            mqtt=MqttSettings(host=host, port=port),
            dsn=dsn,
            prefix=prefix,
            group=f"g{token(prefix)}",
            client_id=client_id,
            session_expiry=120,
            **extra,
        )
        service = IngestService(settings)
        started.append(service)
        return service.start() if start else service

    yield make
    for service in started:
        service.stop()
        purge_session(broker5, service.settings.client_id)


def purge_session(broker: tuple[str, int], client_id: str) -> None:
    """Connect with clean start and session expiry 0: the broker forgets the session and its queue."""
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
    )
    with contextlib.suppress(OSError):
        client.connect(broker[0], broker[1], clean_start=True)
        client.loop_start()
        time.sleep(0.2)
        client.disconnect()
        client.loop_stop()


def publisher(broker: tuple[str, int]) -> paho.Client:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5,
    )
    client.max_inflight_messages_set(200)
    client.connect(broker[0], broker[1])
    client.loop_start()
    return client


def rows(
    dsn: str,
    sql: str = "SELECT gateway, seq, meter_id, key, value, value_type, unit, quality, ingested_by "
    "FROM fleet_readings ORDER BY gateway, seq",
) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def count(dsn: str, table: str = "fleet_readings") -> int:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(f"SELECT to_regclass('{table}') IS NOT NULL").fetchone()
        if not found or not found[0]:
            return 0
        result = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(result[0]) if result else 0


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def reading(i: int, meter: str = "e450") -> Reading:
    return Reading(meter, ObisCode(1, 0, 1, 8, 0), Decimal(1000 + i) / 10, "Wh", T0 + timedelta(seconds=i))


async def test_two_copies_share_a_subscription_zero_lost_zero_duplicated(
    broker5, postgres_dsn, prefix, services, tmp_path
) -> None:
    n = 2000
    a = services(postgres_dsn, prefix, f"{token(prefix)}-a")
    b = services(postgres_dsn, prefix, f"{token(prefix)}-b")
    # two gateways publish through the real sink
    stores = [open_store(str(tmp_path / f"gw{k}.sqlite")) for k in range(2)]
    expected: dict[tuple[str, int], Reading] = {}
    for k, store in enumerate(stores):
        store.register_sink("mqtt")
        readings = [
            reading(i, meter=f"m{i % 7}") if i % 50 else reading(i).flagged(Quality.OUT_OF_RANGE)
            for i in range(n // 2)
        ]
        for seq, r in zip(store.add(readings), readings, strict=True):
            expected[(f"gw{k}", seq)] = r
    host, port = broker5
    sinks = [
        MqttSink(MqttSettings(host=host, port=port), gateway_id=f"gw{k}", prefix=prefix, discovery=False)
        for k in range(2)
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(st, stop)) for s, st in zip(sinks, stores, strict=True)]
    try:
        await asyncio.to_thread(wait_for, lambda: count(postgres_dsn) >= n, f"{n} rows")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for store in stores:
            store.close()
    # every message again, as a broker would redeliver it: still one row each
    pub = publisher(broker5)
    layout = {k: TopicLayout(f"gw{k}", prefix) for k in range(2)}
    infos = [
        pub.publish(layout[int(gw[2:])].readings(r.meter_id), reading_payload(gw, seq, r), qos=1)
        for (gw, seq), r in list(expected.items())[:300]
    ]
    for info in infos:
        info.wait_for_publish(10)
    await asyncio.to_thread(
        wait_for, lambda: a.stats.duplicates + b.stats.duplicates >= 300, "the redelivered messages"
    )
    pub.disconnect()
    pub.loop_stop()

    found = rows(postgres_dsn)
    assert len(found) == n  # zero lost
    assert len({(g, s) for g, s, *_ in found}) == n  # zero duplicated (and the key is the reading's id)
    for gateway, seq, meter, key, value, value_type, unit, quality, _by in found:
        r = expected[(gateway, seq)]
        assert (meter, key, unit, quality) == (r.meter_id, "1-0:1.8.0.255", "Wh", int(r.quality))
        assert (value_type, Decimal(value)) == ("decimal", r.value)
    by_copy = {by for *_, by in found}
    assert by_copy == {f"{token(prefix)}-a", f"{token(prefix)}-b"}, "both copies took part of the stream"
    assert a.stats.inserted + b.stats.inserted == n  # no copy inserted what the other had
    assert a.stats.acked + b.stats.acked == a.stats.received + b.stats.received
    assert rows(postgres_dsn, "SELECT count(*) FROM fleet_readings WHERE value_num IS NULL") == [(0,)]


def test_poison_message_is_kept_and_does_not_block(broker5, postgres_dsn, prefix, services) -> None:
    service = services(postgres_dsn, prefix, f"{token(prefix)}-p")
    pub = publisher(broker5)
    topic = f"{prefix}/gw/readings/m"
    pub.publish(topic, b"{not json", qos=1).wait_for_publish(10)
    pub.publish(topic, reading_payload("gw", 1, reading(1)), qos=1).wait_for_publish(10)
    wait_for(lambda: count(postgres_dsn) == 1 and count(postgres_dsn, "fleet_rejects") == 1, "row and reject")
    pub.disconnect()
    pub.loop_stop()
    reject = rows(postgres_dsn, "SELECT topic, payload, error FROM fleet_rejects")
    assert reject[0][0] == topic
    assert bytes(reject[0][1]) == b"{not json"
    assert "not JSON" in reject[0][2]
    assert service.stats.rejected == 1
    assert service.stats.acked == 2


def test_nothing_is_acknowledged_before_commit(broker5, postgres_dsn, prefix, services) -> None:
    """PostgreSQL fails: the copy holds its messages unacknowledged; after it stops, the broker gives them
    to the same client id again and they are written."""
    failing = services(postgres_dsn, prefix, f"{token(prefix)}-f")

    def broken() -> psycopg.Connection[Any]:
        raise psycopg.OperationalError("simulated outage")

    failing._connection = broken  # type: ignore[method-assign]
    pub = publisher(broker5)
    for i in range(20):
        pub.publish(f"{prefix}/gw/readings/m", reading_payload("gw", i, reading(i)), qos=1).wait_for_publish(
            10
        )
    wait_for(lambda: failing.stats.received == 20 and failing.stats.db_errors >= 2, "receipt and failures")
    assert failing.stats.acked == 0
    failing.stop()
    assert count(postgres_dsn) == 0
    again = services(postgres_dsn, prefix, f"{token(prefix)}-f")  # same client id: same session
    wait_for(lambda: count(postgres_dsn) == 20, "the unacknowledged messages, re-sent")
    pub.disconnect()
    pub.loop_stop()
    assert again.stats.inserted == 20
    assert sorted(s for _, s, *_ in rows(postgres_dsn)) == list(range(20))


class CliCopy:
    """`meterbridge ingest -v` in a subprocess; its log lines are collected by a thread."""

    def __init__(self, cmd: list[str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_subscribed(self) -> None:
        wait_for(
            lambda: any("subscribed to $share/" in line for line in self.lines), "the CLI copy's subscription"
        )

    def _reap(self, sig: int, timeout: float) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def kill(self) -> None:
        self._reap(signal.SIGKILL, 10)

    def terminate(self) -> tuple[int, str]:
        return self._reap(signal.SIGTERM, 30), "".join(self.lines)


def test_a_killed_cli_copy_loses_nothing(broker5, postgres_dsn, prefix, services) -> None:
    """`meterbridge ingest` copies: one is killed (SIGKILL) mid-stream and restarted; every row, once."""
    host, port = broker5
    other = services(postgres_dsn, prefix, f"{token(prefix)}-b")
    cli_id = f"{token(prefix)}-cli"
    cmd = [
        *(sys.executable, "-m", "meterbridge", "ingest", "-v"),
        *("--mqtt", f"mqtt://{host}:{port}", "--postgres", postgres_dsn),
        *(
            "--group",
            f"g{token(prefix)}",
            "--prefix",
            prefix,
            "--client-id",
            cli_id,
            "--session-expiry",
            "120",
        ),
    ]
    copy = CliCopy(cmd)
    n = 3000
    try:
        copy.wait_subscribed()
        pub = publisher(broker5)
        for i in range(n):
            pub.publish(f"{prefix}/gw/readings/m{i % 3}", reading_payload("gw", i, reading(i)), qos=1)
            if i == n // 3:
                wait_for(lambda: count(postgres_dsn) > 0, "first rows")
                copy.kill()  # no DISCONNECT, no final ack: whatever it had not committed is still the broker's
                killed_lines = list(copy.lines)
                copy = CliCopy(cmd)
                copy.wait_subscribed()
        wait_for(lambda: count(postgres_dsn) >= n, f"{n} rows", 120)
        pub.disconnect()
        pub.loop_stop()
    finally:
        code, out = copy.terminate()
        purge_session(broker5, cli_id)
    assert code == 0, out
    assert "received" in out.splitlines()[-1]
    assert any("subscribed to" in line for line in killed_lines)
    found = rows(postgres_dsn)
    assert sorted(s for _, s, *_ in found) == list(range(n))
    by_copy = {by for *_, by in found}
    assert by_copy == {cli_id, f"{token(prefix)}-b"}
    assert other.stats.inserted > 0


async def test_gateway_to_postgres_through_a_broker_restart(
    mosquitto_factory, postgres_dsn, tmp_path
) -> None:
    """Gateway store -> MqttSink -> private Mosquitto (stopped and restarted under load) -> two ingest copies
    -> PostgreSQL: every stored reading is one row, also those published before the copies were back."""
    broker = mosquitto_factory(persistence=True)
    prefix = f"mbr{uuid.uuid4().hex[:8]}"
    copies = [
        IngestService(
            IngestSettings(
                mqtt=MqttSettings(host=broker.host, port=broker.port),
                dsn=postgres_dsn,
                prefix=prefix,
                group="restart",
                client_id=f"{token(prefix)}-{k}",
                session_expiry=120,
            )
        ).start()
        for k in range(2)
    ]
    store = open_store(str(tmp_path / "gw.sqlite"))
    store.register_sink("mqtt")
    # after a restart Mosquitto 2.0 routes nothing to a shared subscription until its members are back
    # (PUBACK "no matching subscribers"): require_subscriber keeps such readings in the outbox
    sink = MqttSink(
        MqttSettings(host=broker.host, port=broker.port),
        gateway_id="gw",
        prefix=prefix,
        discovery=False,
        require_subscriber=True,
    )
    sink.poll_interval = 0.05
    sink.retry_delay = 0.1
    sink.max_retry_delay = 1.0
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(store, stop))
    ids: list[int] = []
    try:
        for start in range(0, 2000, 50):
            ids += await asyncio.to_thread(store.add, [reading(i) for i in range(start, start + 50)])
            sink.wake()
            await asyncio.sleep(0.01)
            if start == 600:
                await asyncio.to_thread(wait_for, lambda: count(postgres_dsn) > 0, "first rows")
                await asyncio.to_thread(broker.stop)
            if start == 1000:
                await asyncio.to_thread(broker.start)
        await asyncio.to_thread(
            wait_for, lambda: count(postgres_dsn) >= len(ids), "every reading as a row", 120
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        store.close()
        for copy in copies:
            copy.stop()
    found = rows(postgres_dsn)
    assert sorted(s for _, s, *_ in found) == ids
    assert sink.connections >= 2
    assert all(c.stats.connects >= 2 for c in copies)  # both copies came back after the restart


async def test_require_subscriber_keeps_readings_nobody_received(
    broker5, postgres_dsn, prefix, tmp_path
) -> None:
    store = open_store(str(tmp_path / "gw.sqlite"))
    store.register_sink("mqtt")
    host, port = broker5
    sink = MqttSink(
        MqttSettings(host=host, port=port),
        gateway_id="gw",
        prefix=prefix,
        discovery=False,
        require_subscriber=True,
    )
    sink.poll_interval = 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(store, stop))
    copy = None
    try:
        ids = store.add([reading(i) for i in range(30)])
        sink.wake()
        await asyncio.to_thread(wait_for, lambda: sink.unrouted >= 30, "the broker to say nobody subscribed")
        assert store.outbox_depth("mqtt") == 30  # published, acknowledged, and still kept
        copy = IngestService(
            IngestSettings(
                mqtt=MqttSettings(host=host, port=port),
                dsn=postgres_dsn,
                prefix=prefix,
                group=f"g{token(prefix)}",
                client_id=f"{token(prefix)}-late",
                session_expiry=0,
            )
        ).start()
        await asyncio.to_thread(
            wait_for, lambda: count(postgres_dsn) == 30, "the readings, once a copy subscribed"
        )
        await asyncio.to_thread(wait_for, lambda: store.outbox_depth("mqtt") == 0, "an empty outbox")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        store.close()
        if copy is not None:
            copy.stop()
    assert sorted(s for _, s, *_ in rows(postgres_dsn)) == ids
