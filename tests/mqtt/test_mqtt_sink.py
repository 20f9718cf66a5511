"""MqttSink against a real broker: discovery, availability, states, problems, legacy topics, fleet stream."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiomqtt
import pytest

from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.homeassistant import LEGACY_POWER_TOPIC, LEGACY_TOTAL_TOPIC, NUMERIC_VALUE_TEMPLATE
from meterbridge.sinks.mqtt import MqttSettings
from meterbridge.sinks.mqtt_topics import decode_reading_payload
from meterbridge.sinks.store import MeterInfo, QualityEvent

from .conftest import collecting, running_sink  # type: ignore[import-not-found]

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def obis(
    meter: str, code: str, value: object, unit: str | None, i: int = 0, q: Quality = Quality.OK
) -> Reading:
    return Reading(meter, ObisCode.parse(code), value, unit, T0 + timedelta(seconds=i), q)  # type: ignore[arg-type]


async def until(predicate, what: str, timeout: float = 30.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(loop(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def settings_for(broker) -> MqttSettings:
    # the embedded fallback broker (amqtt) only speaks 3.1.1: skip the MQTT 5 attempt there
    return MqttSettings(host=broker.host, port=broker.port, protocol="auto" if broker.mqtt5 else "3.1.1")


async def test_discovery_availability_removal_and_republish_on_ha_online(
    mqtt_broker, mqtt_topics, gateway_id, store
) -> None:
    gw = gateway_id
    mb, ha = mqtt_topics.base_topic, mqtt_topics.discovery_prefix
    store.register_sink("mqtt")
    store.upsert_meter(MeterInfo(id="e450", name="Flat", kind="electricity", protocol="push", serial="42"))
    store.upsert_meter(MeterInfo(id="gone", kind="electricity"))  # in the inventory, no longer configured
    store.add(
        [
            obis("e450", "1.8.0", Decimal("1234567"), "Wh"),
            obis("e450", "1.7.0", 1500, "W"),
            obis("e450", "3.8.0", Decimal("5000"), "varh"),
            obis("e450", "9.8.0", Decimal("7000"), "VAh"),
            obis("e450", "32.7.0", Decimal("231.2"), "V"),
        ]
    )
    async with (
        collecting(
            mqtt_broker.host,
            mqtt_broker.port,
            f"{mb}/{gw}/#",
            f"{ha}/device/meterbridge_{gw}/config",
            f"{ha}/device/meterbridge_{gw}_e450/config",
            f"{ha}/device/meterbridge_{gw}_gone/config",
        ) as col,
        running_sink(
            store,
            settings_for(mqtt_broker),
            **mqtt_topics.sink_options,
            gateway_id=gw,
            configured_meters=["e450"],
            expire_after=900,
        ) as run,
    ):
        await run.drained()
        meter_topic = f"{ha}/device/meterbridge_{gw}_e450/config"
        await col.wait_for(lambda: col.on(meter_topic), "meter discovery")
        await col.wait_for(lambda: col.on(f"{mb}/{gw}/status"), "availability")
        assert col.on(f"{mb}/{gw}/status")[0] == b"online"

        config = json.loads(col.on(meter_topic)[-1])
        assert config["device"]["identifiers"] == [f"meterbridge_{gw}_e450"]
        assert config["device"]["via_device"] == f"meterbridge_{gw}"
        assert config["device"]["name"] == "Flat"
        assert config["device"]["serial_number"] == "42"
        assert config["origin"]["name"] == "meterbridge"
        assert config["availability"][0]["topic"] == f"{mb}/{gw}/status"
        comps = config["components"]
        expected = {
            "energy_import": ("energy", "total_increasing", "kWh"),
            "power_import": ("power", "measurement", "W"),
            "reactive_energy_import": ("reactive_energy", "total_increasing", "kvarh"),
            "apparent_energy_import": (None, "total_increasing", "kVAh"),
            "voltage_l1": ("voltage", "measurement", "V"),
        }
        for object_id, (device_class, state_class, unit) in expected.items():
            c = comps[object_id]
            assert c["platform"] == "sensor"
            assert c.get("device_class") == device_class, object_id
            assert c["state_class"] == state_class
            assert c["unit_of_measurement"] == unit
            assert c["expire_after"] == 900
            assert c["unique_id"] == f"meterbridge_{gw}_e450_{object_id}"
            assert c["default_entity_id"] == f"sensor.e450_{object_id}"
            assert c["state_topic"] == f"{mb}/{gw}/meter/e450/state/{object_id}"
            assert c["value_template"] == NUMERIC_VALUE_TEMPLATE
        for kind in ("voltage", "frequency", "power_factor", "thd", "not_answering"):
            assert comps[f"problem_{kind}"]["device_class"] == "problem"

        gateway = json.loads(col.on(f"{ha}/device/meterbridge_{gw}/config")[-1])
        assert gateway["device"]["identifiers"] == [f"meterbridge_{gw}"]
        assert gateway["components"]["connectivity"]["state_topic"] == f"{mb}/{gw}/status"
        assert gateway["components"]["problem_bus_collisions"]["device_class"] == "problem"

        # the meter deleted from the config: an empty retained config removes the device in Home Assistant
        assert col.on(f"{ha}/device/meterbridge_{gw}_gone/config") == [b""]

        energy_state = json.loads(col.on(f"{mb}/{gw}/meter/e450/state/energy_import")[-1])
        assert energy_state["value"] == 1234.567
        assert energy_state["unit"] == "kWh"
        assert energy_state["valid"] is True

        # Home Assistant restarts and says so: discovery (and the retained states) are sent again
        before = len(col.on(meter_topic))
        announcements = run.sink.announcements
        await col.client.publish(f"{ha}/status", b"online", qos=1)
        await col.wait_for(lambda: len(col.on(meter_topic)) > before, "discovery re-sent after HA online")
        assert json.loads(col.on(meter_topic)[-1]) == config
        await until(lambda: run.sink.announcements == announcements + 1, "announcement counted")
        await col.wait_for(
            lambda: len(col.on(f"{mb}/{gw}/meter/e450/state/energy_import")) >= 2, "states re-sent"
        )
        # "offline" from Home Assistant is not a reason to re-send
        await col.client.publish(f"{ha}/status", b"offline", qos=1)
        await col.client.publish(f"{mb}/{gw}/probe", b"x", qos=1)
        await col.wait_for(lambda: col.on(f"{mb}/{gw}/probe"), "probe")
        await asyncio.sleep(0.2)
        assert run.sink.announcements == announcements + 1

    # a clean stop says offline
    assert col.on(f"{mb}/{gw}/status")[-1] == b"offline"


async def test_states_never_show_flagged_or_lower_counter_values(
    mosquitto_factory, gateway_id, store
) -> None:
    """The E450 guide's legacy topics are fixed under the real ``homeassistant/``: a private broker."""
    broker = mosquitto_factory(persistence=False)
    gw = gateway_id
    store.register_sink("mqtt")
    store.upsert_meter(MeterInfo(id="e450", kind="electricity"))
    sequence = [
        obis("e450", "1.8.0", Decimal(1_000_000), "Wh", 0),
        obis("e450", "1.8.0", Decimal(0), "Wh", 1, Quality.NOT_MONOTONIC),  # flagged by validation
        obis("e450", "1.8.0", Decimal(999_000), "Wh", 2),  # lower, but not flagged: the sink refuses it
        obis("e450", "1.8.0", Decimal(9_999_999_999), "Wh", 3, Quality.OUT_OF_RANGE),
        obis("e450", "1.8.0", Decimal(1_000_500), "Wh", 4),
        obis("e450", "1.7.0", Decimal("2.5"), "kW", 5),
    ]
    state_topic = f"meterbridge/{gw}/meter/e450/state/energy_import"
    async with (
        collecting(
            broker.host, broker.port, f"meterbridge/{gw}/#", "homeassistant/sensor/compteur_e450/#"
        ) as col,
        running_sink(
            store, MqttSettings(host=broker.host, port=broker.port), gateway_id=gw, legacy_topics=True
        ) as run,
    ):
        await run.drained()
        ids = []
        for reading in sequence:  # one at a time: each state is published, none coalesced
            ids += store.add([reading])
            await run.drained()
        await col.wait_for(lambda: len(col.on(state_topic)) >= 5, "five energy states")
        await col.wait_for(lambda: len(col.on(f"meterbridge/{gw}/readings/e450")) >= 6, "fleet stream")
        await col.wait_for(lambda: col.on(LEGACY_POWER_TOPIC), "legacy power")

    states = [json.loads(p) for p in col.on(state_topic)]
    shown = [s["value"] for s in states if s["valid"]]
    assert shown == [1000.0, 1000.5]
    assert all(s["value"] is None for s in states if not s["valid"])
    assert [s["quality"] for s in states] == [[], ["not_monotonic"], ["not_monotonic"], ["out_of_range"], []]
    assert [s.get("raw_value") for s in states] == [None, "0", "999000", "9999999999", None]

    # the fleet stream carries every reading once, flagged ones included, with their stable ids
    stream = [decode_reading_payload(p) for p in col.on(f"meterbridge/{gw}/readings/e450")]
    assert [f.seq for f in stream] == ids
    assert [f.reading for f in stream] == sequence
    assert {f.gateway for f in stream} == {gw}

    # the E450 guide's topics: only good values, in its units
    assert [json.loads(p)["energy_kwh"] for p in col.on(LEGACY_TOTAL_TOPIC) if p] == [1000, 1000.5]
    assert [json.loads(p)["power_w"] for p in col.on(LEGACY_POWER_TOPIC) if p] == [2500]


async def test_counter_floor_survives_a_restart(mqtt_broker, mqtt_topics, gateway_id, store) -> None:
    """A new sink reads back the retained states, so it still refuses a counter below what HA last saw."""
    gw = gateway_id
    mb = mqtt_topics.base_topic
    store.register_sink("mqtt")
    store.upsert_meter(MeterInfo(id="e450", kind="electricity"))
    state_topic = f"{mb}/{gw}/meter/e450/state/energy_import"
    async with running_sink(
        store, settings_for(mqtt_broker), **mqtt_topics.sink_options, gateway_id=gw
    ) as run:
        store.add([obis("e450", "1.8.0", Decimal(2_000_000), "Wh", 0)])
        await run.drained()
    # the store's newest unflagged value is lower than what Home Assistant saw (a validation miss)
    store.add([obis("e450", "1.8.0", Decimal(1_500_000), "Wh", 1)])
    async with (
        collecting(mqtt_broker.host, mqtt_broker.port, state_topic) as col,
        running_sink(store, settings_for(mqtt_broker), **mqtt_topics.sink_options, gateway_id=gw) as run,
    ):
        await col.wait_for(lambda: col.on(state_topic), "retained state")
        await run.drained()
        await col.wait_for(lambda: b'"valid":false' in col.on(state_topic)[-1], "the withheld state")
    states = [json.loads(p) for p in col.on(state_topic)]
    assert (states[0]["value"], states[0]["valid"]) == (2000, True)  # retained from the first run
    assert {s["value"] for s in states if s["valid"]} == {2000}
    assert (states[-1]["value"], states[-1]["quality"]) == (None, ["not_monotonic"])


async def test_quality_events_drive_problem_binary_sensors(
    mqtt_broker, mqtt_topics, gateway_id, store
) -> None:
    gw = gateway_id
    mb = mqtt_topics.base_topic
    store.register_sink("mqtt")
    store.upsert_meter(MeterInfo(id="e450", kind="electricity"))
    volt = f"{mb}/{gw}/meter/e450/problem/voltage"
    silent = f"{mb}/{gw}/meter/e450/problem/not_answering"
    bus = f"{mb}/{gw}/problem/bus_collisions"

    def event(kind: str, key: str | None, active: bool, meter: str = "e450", i: int = 0) -> QualityEvent:
        return QualityEvent(
            meter_id=meter,
            kind=kind,
            key=key,
            message=f"{kind} {key}",
            timestamp=T0 + timedelta(seconds=i),
            active=active,
            value=Decimal("262.5") if kind == "voltage" else None,
            threshold=Decimal("253") if kind == "voltage" else None,
        )

    async with (
        collecting(mqtt_broker.host, mqtt_broker.port, f"{mb}/{gw}/#") as col,
        running_sink(store, settings_for(mqtt_broker), **mqtt_topics.sink_options, gateway_id=gw) as run,
    ):
        await run.drained()
        steps = [
            (event("voltage", "1-0:32.7.0.255", True, i=1), volt, True),
            (event("voltage", "1-0:52.7.0.255", True, i=2), volt, True),
            (event("voltage", "1-0:32.7.0.255", False, i=3), volt, True),  # L2 still out of range
            (event("voltage", "1-0:52.7.0.255", False, i=4), volt, False),
            (event("meter_silent", None, True, i=5), silent, True),
            (event("bus_collisions", None, True, meter="bus1", i=6), bus, True),
            (event("bus_collisions", None, True, meter="bus2", i=7), bus, True),
            (event("bus_collisions", None, False, meter="bus1", i=8), bus, True),
            (event("bus_collisions", None, False, meter="bus2", i=9), bus, False),
        ]
        for n, (ev, topic, expected) in enumerate(steps):
            count = len(col.on(topic))
            await run.sink.on_event(ev)
            await col.wait_for(lambda t=topic, c=count: len(col.on(t)) > c, f"problem state {n}")
            state = json.loads(col.on(topic)[-1])
            assert state["problem"] is expected, (n, state)
        first = json.loads(col.on(volt)[0])
        assert first["value"] == "262.5"
        assert first["threshold"] == "253"
        assert first["active"] == ["1-0:32.7.0.255"]
        await col.wait_for(lambda: len(col.on(f"{mb}/{gw}/event")) >= len(steps), "event stream")
        kinds = [json.loads(p)["kind"] for p in col.on(f"{mb}/{gw}/event")]
        assert kinds == [ev.kind for ev, _, _ in steps]


async def test_last_will_and_reconnect_lose_nothing(mqtt_broker, mqtt_topics, gateway_id, store) -> None:
    gw = gateway_id
    mb = mqtt_topics.base_topic
    store.register_sink("mqtt")
    status = f"{mb}/{gw}/status"
    stream = f"{mb}/{gw}/readings/e450"
    async with (
        collecting(mqtt_broker.host, mqtt_broker.port, status, stream) as col,
        running_sink(store, settings_for(mqtt_broker), **mqtt_topics.sink_options, gateway_id=gw) as run,
    ):
        ids = store.add([obis("e450", "1.7.0", i, "W", i) for i in range(50)])
        await run.drained()
        await col.wait_for(lambda: col.on(status) == [b"online"], "online")
        # the TCP connection dies without DISCONNECT: the broker publishes the last will
        client = run.sink._client
        assert client is not None
        sock = client._client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        ids += store.add([obis("e450", "1.7.0", i, "W", i) for i in range(50, 100)])
        run.sink.wake()
        await col.wait_for(lambda: b"offline" in col.on(status), "last will")
        await col.wait_for(lambda: col.on(status)[-1] == b"online", "online again after reconnect")
        await run.drained()
        await col.wait_for(
            lambda: {decode_reading_payload(p).seq for p in col.on(stream)} >= set(ids), "every reading"
        )
        assert run.sink.connections >= 2


async def test_username_password_and_tls(mosquitto_factory, tmp_path, store) -> None:
    cert, key = make_self_signed(tmp_path)
    broker = mosquitto_factory(users={"gateway": "s3cret pass"}, tls=(cert, key))
    store.register_sink("mqtt")
    ids = store.add([obis("e450", "1.7.0", i, "W", i) for i in range(5)])
    settings = MqttSettings.from_url(
        f"mqtts://gateway:s3cret%20pass@127.0.0.1:{broker.tls_port}", ca_file=str(cert)
    )
    assert settings.tls and settings.password == "s3cret pass"
    assert "s3cret" not in repr(settings)
    async with aiomqtt.Client("127.0.0.1", broker.port, username="gateway", password="s3cret pass") as sub:
        await sub.subscribe("meterbridge/tls/readings/#", qos=1)
        async with running_sink(store, settings, gateway_id="tls") as run:
            await run.drained()
            ids += store.add([obis("e450", "1.7.0", 99, "W", 99)])
            await run.drained()
            seen: list[int] = []
            async with asyncio.timeout(30):
                async for message in sub.messages:
                    assert isinstance(message.payload, bytes)
                    seen.append(decode_reading_payload(message.payload).seq)
                    if len(seen) == len(ids):
                        break
            assert seen == ids
            assert run.sink.connected

    # a wrong password is refused: the sink keeps retrying and publishes nothing
    bad = MqttSettings(host="127.0.0.1", port=broker.port, username="gateway", password="wrong")
    async with running_sink(store, bad, gateway_id="tls2") as run:
        store.add([obis("e450", "1.7.0", 1, "W", 1)])
        for _ in range(100):
            if run.sink.last_error:
                break
            await asyncio.sleep(0.05)
        assert run.sink.last_error is not None and "wrong" not in run.sink.last_error
        assert not run.sink.connected


def make_self_signed(directory) -> tuple:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "mqtt://host:notaport"])
def test_settings_refuse_bad_urls(url: str) -> None:
    from meterbridge.errors import ConfigError

    with pytest.raises(ConfigError):
        MqttSettings.from_url(url)
