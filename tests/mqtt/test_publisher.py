"""``Publisher``: in order, never more QoS 1 messages awaiting PUBACK than the broker's Receive Maximum.

MQTT 5 (3.2.2.3.3): a client must not have more unacknowledged QoS 1/2 PUBLISHes than the Receive Maximum
its server sent in CONNACK (Mosquitto: its ``max_inflight_messages``, 20 by default); paho 2.1 does not
look at it. These run against private Mosquitto processes whose setting the test chooses.
"""

from __future__ import annotations

import asyncio
import threading

import aiomqtt
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from meterbridge.sinks.mqtt import MqttSettings, Publisher, mqtt_client


class Collector:
    """A paho subscriber that keeps the payloads of one topic filter, in arrival order."""

    def __init__(self, port: int, topic: str, qos: int = 1) -> None:
        self.payloads: list[bytes] = []
        self.ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=qos)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda c, u, m: self.payloads.append(m.payload)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def open_publisher(port: int, limit: int = 100) -> tuple[aiomqtt.Client, Publisher]:
    client = mqtt_client(
        MqttSettings(host="127.0.0.1", port=port), client_id=None, protocol=aiomqtt.ProtocolVersion.V5
    )
    publisher = Publisher(client, limit=limit)
    await client.__aenter__()
    return client, publisher


async def wait_for(condition, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(("broker_maximum", "limit", "window"), [(5, 100, 5), (20, 3, 3)])
async def test_the_window_is_the_smaller_of_the_brokers_receive_maximum_and_the_limit(
    mosquitto_factory, broker_maximum: int, limit: int, window: int
) -> None:
    broker = mosquitto_factory(persistence=False, extra_config=f"max_inflight_messages {broker_maximum}\n")
    collector = Collector(broker.port, "pub/#")
    client, publisher = await open_publisher(broker.port, limit)
    try:
        assert publisher.receive_maximum == broker_maximum
        messages = [(f"pub/{i % 7}", str(i).encode(), 1, False) for i in range(300)]
        batches = [messages[i : i + 50] for i in range(0, 300, 50)]
        results = await asyncio.gather(*(publisher.publish_many(b) for b in batches))  # calls overlap
        assert results == [set()] * len(batches)  # every PUBACK a success (there is a subscriber)
        assert publisher.peak == window and publisher.in_flight == 0
        await wait_for(lambda: len(collector.payloads) == 300, "the subscriber to get all 300")
        assert collector.payloads == [str(i).encode() for i in range(300)]  # one order, on the wire too
    finally:
        collector.close()
        await client.__aexit__(None, None, None)


async def test_qos0_messages_pass_the_window_in_their_place(mosquitto_factory) -> None:
    broker = mosquitto_factory(persistence=False, extra_config="max_inflight_messages 2\n")
    # the subscription at QoS 0: the broker's own window towards it cannot reorder, so what arrives is
    # the order in which the broker received them
    collector = Collector(broker.port, "mix/#", qos=0)
    client, publisher = await open_publisher(broker.port)
    try:
        messages = [("mix/x", str(i).encode(), i % 2, False) for i in range(40)]
        await publisher.publish_many(messages)
        await wait_for(lambda: len(collector.payloads) == 40, "all 40")
        assert collector.payloads == [str(i).encode() for i in range(40)]
        assert publisher.peak == 2
    finally:
        collector.close()
        await client.__aexit__(None, None, None)


async def test_a_lost_connection_fails_the_call_and_drops_what_was_queued(mosquitto_factory) -> None:
    broker = mosquitto_factory(persistence=False, extra_config="max_inflight_messages 1\n")
    client, publisher = await open_publisher(broker.port)
    try:
        payload = b"x" * 20_000
        sending = asyncio.create_task(publisher.publish_many([("lost/x", payload, 1, False)] * 2000))
        await wait_for(lambda: publisher.peak == 1, "the first message on the wire")
        await asyncio.to_thread(broker.stop)
        with pytest.raises(aiomqtt.MqttError, match="not acknowledged"):
            await sending
        assert len(publisher._queue) == 0  # nothing of the failed call waits to go out later
    finally:
        await client.__aexit__(None, None, None)
