"""A private Mosquitto is stopped and restarted while the gateway publishes: not one reading is lost.

The system broker on 1883 is never touched: ``mosquitto_factory`` runs a separate process on a free port,
with persistence, which this test stops (SIGTERM: Mosquitto saves its sessions) and starts again.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.mqtt import MqttSettings
from meterbridge.sinks.mqtt_topics import decode_reading_payload

from .conftest import running_sink  # type: ignore[import-not-found]

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
TOTAL = 3000
CHUNK = 25


class SessionSubscriber:
    """A paho MQTT 5 subscriber with a persistent session (what a real consumer of the stream runs)."""

    def __init__(self, port: int, topic: str) -> None:
        self.seqs: list[int] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="restart-subscriber",
            protocol=paho.MQTTv5,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self.lock:
            self.seqs.append(decode_reading_payload(message.payload).seq)

    def count(self) -> int:
        with self.lock:
            return len(self.seqs)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def wait_until(predicate, what: str, timeout: float = 60.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_broker_stopped_and_restarted_under_load_loses_nothing(mosquitto_factory, store) -> None:
    broker = mosquitto_factory(persistence=True)
    subscriber = SessionSubscriber(broker.port, "meterbridge/restart/readings/#")
    assert subscriber.subscribed.wait(10)
    store.register_sink("mqtt")
    ids: list[int] = []
    outage_backlog: list[int] = []
    try:
        async with running_sink(
            store, MqttSettings(host="127.0.0.1", port=broker.port), gateway_id="restart"
        ) as run:
            run.sink.retry_delay = 0.1
            run.sink.max_retry_delay = 1.0

            async def produce() -> None:
                for start in range(0, TOTAL, CHUNK):
                    batch = [
                        Reading("e450", ObisCode(1, 0, 1, 8, 0), i, "Wh", T0 + timedelta(seconds=i))
                        for i in range(start, start + CHUNK)
                    ]
                    ids.extend(await asyncio.to_thread(store.add, batch))
                    run.sink.wake()
                    await asyncio.sleep(0.01)

            producer = asyncio.create_task(produce())
            await wait_until(lambda: subscriber.count() >= TOTAL // 5, "the first fifth of the stream")
            await asyncio.to_thread(broker.stop)  # SIGTERM: Mosquitto saves sessions and queues
            await wait_until(lambda: not run.sink.connected, "the sink to notice the outage")
            await asyncio.sleep(0.5)  # readings keep arriving in the store meanwhile
            outage_backlog.append(store.outbox_depth("mqtt"))
            await asyncio.to_thread(broker.start)
            await producer
            await run.drained(timeout=120)
            await wait_until(lambda: subscriber.count() >= TOTAL, "every reading at the subscriber", 120)
            await wait_until(lambda: set(subscriber.seqs) >= set(ids), "every id", 30)
            assert run.sink.connections >= 2
    finally:
        subscriber.close()

    assert len(ids) == TOTAL
    with subscriber.lock:
        received = Counter(subscriber.seqs)
    missing = set(ids) - set(received)
    assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:5]}"
    assert set(received) == set(ids)
    assert outage_backlog[0] > 0  # the broker really was down while readings were being stored
    # delivery is at-least-once: a reading whose PUBACK was lost in the outage may arrive twice (the fleet
    # ingest dedupes by id); nothing else may repeat
    assert sum(n - 1 for n in received.values()) <= outage_backlog[0] + run.sink.batch_size
