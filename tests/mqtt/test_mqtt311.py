"""A broker that only speaks MQTT 3.1.1 (amqtt): the sink falls back from MQTT 5 and still delivers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import aiomqtt

from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.mqtt import MqttSettings
from meterbridge.sinks.mqtt_topics import decode_reading_payload

from .conftest import running_sink  # type: ignore[import-not-found]

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


async def test_falls_back_to_mqtt_311(amqtt_broker, store) -> None:
    store.register_sink("mqtt")
    ids = store.add([Reading("e450", ObisCode(1, 0, 1, 7, 0), i, "W", T0) for i in range(10)])
    async with aiomqtt.Client(amqtt_broker.host, amqtt_broker.port) as sub:
        await sub.subscribe("meterbridge/old/readings/#", qos=1)
        settings = MqttSettings(host=amqtt_broker.host, port=amqtt_broker.port, protocol="auto", timeout=3)
        async with running_sink(store, settings, gateway_id="old") as run:
            await run.drained()
            seen: list[int] = []
            async with asyncio.timeout(30):
                async for message in sub.messages:
                    assert isinstance(message.payload, bytes)
                    seen.append(decode_reading_payload(message.payload).seq)
                    if len(seen) == len(ids):
                        break
            assert sorted(seen) == ids
            assert run.sink.protocol == aiomqtt.ProtocolVersion.V311
            # a later reconnection goes straight to 3.1.1
            run.sink.connected = False
            run.sink.wake()
            await run.drained()
            assert run.sink.connections == 2
            assert run.sink.protocol == aiomqtt.ProtocolVersion.V311
