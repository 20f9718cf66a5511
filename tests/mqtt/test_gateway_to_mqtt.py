"""The real gateway pipeline (validator, store, sinks) feeding MqttSink: what Home Assistant sees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from meterbridge.gateway.pipeline import Gateway
from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.mqtt import MqttSettings, MqttSink
from meterbridge.sinks.mqtt_topics import decode_reading_payload
from meterbridge.sinks.store import MeterInfo

from .conftest import collecting  # type: ignore[import-not-found]

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


class ScriptedSource:
    """Yields a fixed list of items once, then waits (a source whose stream ends would be restarted)."""

    name = "scripted"

    def __init__(self, items: list[object]) -> None:
        self.items = items

    async def stream(self) -> AsyncIterator[object]:
        for item in self.items:
            yield item
        await asyncio.Event().wait()


def r(code: str, value: Decimal, unit: str, i: int) -> Reading:
    return Reading("e450", ObisCode.parse(code), value, unit, T0 + timedelta(seconds=i))


async def test_validated_readings_and_events_reach_home_assistant(
    mqtt_broker, mqtt_topics, gateway_id, store
) -> None:
    gw = gateway_id
    mb = mqtt_topics.base_topic
    items: list[object] = [
        MeterInfo(id="e450", name="House", kind="electricity", protocol="push"),
        r("1.8.0", Decimal(5_000_000), "Wh", 0),
        r("32.7.0", Decimal("231.0"), "V", 0),
        r("1.8.0", Decimal(4_000_000), "Wh", 1),  # backwards: the validator flags it
        r("32.7.0", Decimal("262.0"), "V", 1),  # outside 207-253 V: THRESHOLD + a voltage event
        r("1.8.0", Decimal(5_000_100), "Wh", 2),
        r("32.7.0", Decimal("230.0"), "V", 2),  # back in the band: the event is cleared
    ]
    protocol = "auto" if mqtt_broker.mqtt5 else "3.1.1"
    sink = MqttSink(
        MqttSettings(host=mqtt_broker.host, port=mqtt_broker.port, protocol=protocol),
        gateway_id=gw,
        **mqtt_topics.sink_options,
    )
    sink.poll_interval = 0.05
    gateway = Gateway(store, [ScriptedSource(items)], [sink], batch_window=0.01)  # type: ignore[list-item]
    energy = f"{mb}/{gw}/meter/e450/state/energy_import"
    volt_problem = f"{mb}/{gw}/meter/e450/problem/voltage"
    stop = asyncio.Event()
    async with collecting(mqtt_broker.host, mqtt_broker.port, f"{mb}/{gw}/#") as col:
        task = asyncio.create_task(gateway.run(stop))
        try:
            await col.wait_for(lambda: len(col.on(f"{mb}/{gw}/readings/e450")) >= 6, "all six readings")
            await col.wait_for(
                lambda: any(not json.loads(p)["problem"] for p in col.on(volt_problem)),
                "voltage event cleared",
            )
            await col.wait_for(lambda: len(col.on(f"{mb}/{gw}/event")) >= 4, "the event stream")
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    stream = [decode_reading_payload(p).reading for p in col.on(f"{mb}/{gw}/readings/e450")]
    flags = {(str(x.key), str(x.value)): x.quality.names for x in stream}
    assert flags[("1-0:1.8.0.255", "4000000")] == ["not_monotonic"]
    assert flags[("1-0:32.7.0.255", "262.0")] == ["threshold"]
    shown = [json.loads(p)["value"] for p in col.on(energy) if json.loads(p)["valid"]]
    assert shown == sorted(shown) and 4000 not in shown
    assert shown[-1] == 5000.1
    # the problem sensor ends cleared; the event stream has the raise and the clear, in order
    assert json.loads(col.on(volt_problem)[-1])["problem"] is False
    events = [json.loads(p) for p in col.on(f"{mb}/{gw}/event")]
    voltage_events = [(e["active"], e["value"]) for e in events if e["kind"] == "voltage"]
    assert voltage_events == [(True, "262.0"), (False, "230.0")]
    assert [e["active"] for e in events if e["kind"] == "not_monotonic"] == [True, False]
    assert json.loads(col.on(f"{mb}/{gw}/meter/e450/problem/bad_readings")[-1])["problem"] is False
    voltages = [json.loads(p) for p in col.on(f"{mb}/{gw}/meter/e450/state/voltage_l1")]
    # states are the latest value per entity (a batch may coalesce); a THRESHOLD value is a real value
    assert all(v["valid"] for v in voltages)
    assert voltages[-1]["value"] == 230
