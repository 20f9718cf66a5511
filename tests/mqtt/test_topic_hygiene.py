"""Tests leave nothing on the session broker (on a home owner's machine, their Home Assistant's broker): a
sink publishing through ``mqtt_topics`` never writes under the real ``homeassistant/`` or ``meterbridge/``,
and the clean-up clears what is retained under a test's root."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import paho.mqtt.client as paho

from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.mqtt import MqttSettings
from meterbridge.sinks.store import MeterInfo

from ..conftest import clear_retained_under, retained_under  # type: ignore[import-not-found]
from .conftest import collecting, running_sink  # type: ignore[import-not-found]

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def ours(topics: dict[str, bytes], gw: str) -> list[str]:
    """Retained topics naming the test's gateway in their topic or payload."""
    return sorted(t for t, p in topics.items() if gw in t or gw.encode() in p)


async def test_sink_with_test_topics_leaves_nothing_under_the_real_prefixes(
    mqtt_broker, mqtt_topics, gateway_id, store
) -> None:
    gw = gateway_id
    ha = mqtt_topics.discovery_prefix
    assert not ha.startswith("homeassistant/") and not mqtt_topics.base_topic.startswith("meterbridge/")
    store.register_sink("mqtt")
    store.upsert_meter(MeterInfo(id="e450", kind="electricity"))
    store.add([Reading("e450", ObisCode.parse("1.8.0"), Decimal(1_000_000), "Wh", T0)])
    protocol = "auto" if mqtt_broker.mqtt5 else "3.1.1"
    settings = MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port, protocol=protocol)
    meter_config = f"{ha}/device/meterbridge_{gw}_e450/config"
    async with (
        collecting(mqtt_broker.host, mqtt_broker.port, f"{mqtt_topics.root}/#") as col,
        running_sink(store, settings, gateway_id=gw, **mqtt_topics.sink_options) as run,
    ):
        await run.drained()
        # the sink did publish discovery and states, retained, under the test's own root
        await col.wait_for(lambda: col.on(meter_config), "discovery under the test's prefix")
        assert json.loads(col.on(meter_config)[-1])["device"]["identifiers"] == [f"meterbridge_{gw}_e450"]

    mine = await asyncio.to_thread(
        retained_under, mqtt_broker.host, mqtt_broker.port, f"{mqtt_topics.root}/#"
    )
    assert meter_config in mine  # what the session clean-up will clear: the check below can see retained ones
    for real in ("homeassistant/#", "meterbridge/#"):
        seen = await asyncio.to_thread(retained_under, mqtt_broker.host, mqtt_broker.port, real)
        assert ours(seen, gw) == [], f"retained under {real} naming this test's gateway"


def test_clear_retained_under_clears_only_that_root(mqtt_broker, mqtt_topics) -> None:
    host, port = mqtt_broker.host, mqtt_broker.port
    root, other = mqtt_topics.root, f"{mqtt_topics.root}-other-{uuid.uuid4().hex[:6]}"
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"mbtest-pub-{uuid.uuid4().hex[:8]}")
    client.connect(host, port)
    client.loop_start()
    try:
        for topic in (f"{root}/a", f"{root}/b/c", f"{other}/a"):
            client.publish(topic, b"x", qos=1, retain=True).wait_for_publish(10)
        assert set(retained_under(host, port, f"{root}/#")) == {f"{root}/a", f"{root}/b/c"}
        assert clear_retained_under(host, port, f"{root}/#") == 2
        assert retained_under(host, port, f"{root}/#") == {}
        assert retained_under(host, port, f"{other}/#") == {f"{other}/a": b"x"}
    finally:
        client.publish(f"{other}/a", b"", qos=1, retain=True).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
    assert retained_under(host, port, f"{other}/#") == {}
