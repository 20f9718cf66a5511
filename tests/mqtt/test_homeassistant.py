"""Home Assistant discovery payloads and entity classes, checked against the conventions of FIELD_NOTES."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterbridge.obis import CATALOGUE, ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.homeassistant import (
    GATEWAY_PROBLEMS,
    LEGACY_POWER_TOPIC,
    LEGACY_TOTAL_TOPIC,
    METER_PROBLEMS,
    NUMERIC_VALUE_TEMPLATE,
    entity_for,
    gateway_discovery,
    ha_state,
    legacy_messages,
    meter_discovery,
    problem_for_event_kind,
)
from meterbridge.sinks.mqtt_topics import TopicLayout
from meterbridge.sinks.store import EVENT_KINDS, MeterInfo

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

# What Home Assistant accepts (FIELD_NOTES "Classes and units"): device class -> allowed units.
HA_UNITS = {
    "energy": {"Wh", "kWh", "MWh", "GJ"},
    "reactive_energy": {"varh", "kvarh"},
    "power": {"W", "kW"},
    "reactive_power": {"var", "kvar"},
    "apparent_power": {"VA"},
    "voltage": {"V"},
    "current": {"A"},
    "frequency": {"Hz"},
    "power_factor": {None, "%"},
    "timestamp": {None},
}


def reading(code: str, value: object, unit: str | None, quality: Quality = Quality.OK) -> Reading:
    return Reading("e450", ObisCode.parse(code), value, unit, T0, quality)  # type: ignore[arg-type]


@pytest.mark.parametrize("quantity", list(CATALOGUE.values()), ids=lambda q: q.key)
def test_every_catalogue_quantity_has_correct_ha_classes(quantity) -> None:
    numeric = quantity.unit is not None or quantity.state_class is not None
    value = Decimal("1") if numeric else "text"
    spec = entity_for(Reading("m", quantity.obis, value, quantity.unit, T0))
    assert spec.object_id == quantity.key
    assert spec.device_class == quantity.device_class
    assert spec.state_class == quantity.state_class
    if spec.device_class is not None:
        assert spec.unit in HA_UNITS[spec.device_class], (spec.device_class, spec.unit)
    if quantity.state_class == "total_increasing":
        assert spec.device_class in ("energy", "reactive_energy", None)
    # Wh, varh and VAh are shown as kWh, kvarh and kVAh
    assert spec.unit == {"Wh": "kWh", "varh": "kvarh", "VAh": "kVAh"}.get(quantity.unit, quantity.unit)


def test_reactive_and_apparent_energy_follow_field_notes() -> None:
    reactive = entity_for(reading("1-0:3.8.0", Decimal(5000), "varh"))
    assert (reactive.device_class, reactive.state_class, reactive.unit) == (
        "reactive_energy",
        "total_increasing",
        "kvarh",
    )
    apparent = entity_for(reading("1-0:9.8.0", Decimal(5000), "VAh"))
    assert (apparent.device_class, apparent.state_class, apparent.unit) == (None, "total_increasing", "kVAh")
    pf = entity_for(reading("1-0:13.7.0", Decimal("0.97"), None))
    assert (pf.device_class, pf.unit) == ("power_factor", None)


def test_billing_period_values_are_not_live_counters() -> None:
    spec = entity_for(reading("1-0:1.8.0*3", Decimal(100), "Wh"))
    assert spec.object_id == "obis_1_0_1_8_0_3"
    assert spec.state_class == "total"
    assert spec.device_class == "energy"


def test_mbus_records_get_classes_from_unit_and_medium() -> None:
    vol = Reading("w1", "mbus/0/volume/instantaneous/s0/t0/u0", Decimal("12.5"), "m^3", T0)
    spec = entity_for(vol, "water")
    assert (spec.device_class, spec.state_class, spec.unit) == ("water", "total_increasing", "m³")
    assert entity_for(vol, None).device_class == "volume"
    assert entity_for(vol, "gas").device_class == "gas"
    heat = Reading("h1", "mbus/1/energy/instantaneous/s0/t0/u0", 1234, "kWh", T0)
    assert entity_for(heat).device_class == "energy"
    due = Reading("h1", "mbus/2/energy/instantaneous/s1/t0/u0", 1000, "kWh", T0)
    assert entity_for(due).state_class == "total"
    flow = Reading("h1", "mbus/3/volume_flow/instantaneous/s0/t0/u0", Decimal("0.5"), "m3/h", T0)
    assert (entity_for(flow).device_class, entity_for(flow).state_class) == (
        "volume_flow_rate",
        "measurement",
    )
    temp_diff = Reading("h1", "mbus/4/temperature_difference/instantaneous/s0/t0/u0", Decimal(5), "K", T0)
    assert entity_for(temp_diff).device_class is None  # a difference is not a temperature
    text = Reading("h1", "mbus/5/fabrication_no/instantaneous/s0/t0/u0", "A1B2", None, T0)
    assert (entity_for(text).numeric, entity_for(text).entity_category) == (False, "diagnostic")


def test_ha_state_converts_units_exactly() -> None:
    r = reading("1.8.0", Decimal("1234567"), "Wh")
    assert ha_state(entity_for(r), r) == (1234.567, True)
    r_kwh = reading("1.8.0", Decimal("1234.5"), "kWh")
    assert ha_state(entity_for(r), r_kwh) == (1234.5, True)
    power_kw = reading("1.7.0", Decimal("1.5"), "kW")
    assert ha_state(entity_for(reading("1.7.0", 1, "W")), power_kw) == (1500, True)


@pytest.mark.parametrize(
    "flag",
    [Quality.OUT_OF_RANGE, Quality.NOT_MONOTONIC, Quality.UNIT_MISMATCH, Quality.METER_ERROR, Quality.STALE],
)
def test_flagged_readings_are_withheld(flag: Quality) -> None:
    r = reading("1.8.0", Decimal(1), "Wh", flag)
    assert ha_state(entity_for(r), r) == (None, False)


def test_unflagged_but_incompatible_unit_is_withheld() -> None:
    spec = entity_for(reading("1.8.0", Decimal(1), "Wh"))
    assert ha_state(spec, reading("1.8.0", Decimal(1), "V")) == (None, False)
    assert ha_state(spec, reading("1.8.0", Decimal(1), None)) == (None, False)
    assert ha_state(spec, reading("1.8.0", "garbled", "Wh")) == (None, False)


def test_publishable_flags_are_shown() -> None:
    r = reading("32.7.0", Decimal("255.1"), "V", Quality.THRESHOLD | Quality.UNAUTHENTICATED)
    assert ha_state(entity_for(r), r) == (255.1, True)


def test_meter_discovery_payload_field_by_field() -> None:
    layout = TopicLayout("gw1")
    meter = MeterInfo(
        id="E450",
        name="Flat",
        kind="electricity",
        protocol="push",
        serial="123",
        manufacturer="LGZ",
        firmware="2",
    )
    specs = [entity_for(reading("1.8.0", Decimal(1), "Wh")), entity_for(reading("1.7.0", 1, "W"))]
    topic, raw = meter_discovery(layout, meter, specs, sw_version="9.9", expire_after=600)
    assert topic == "homeassistant/device/meterbridge_gw1_e450/config"
    payload = json.loads(raw)
    assert set(payload) == {"device", "origin", "availability", "qos", "components"}
    assert payload["device"] == {
        "identifiers": ["meterbridge_gw1_e450"],
        "name": "Flat",
        "manufacturer": "LGZ",
        "model": "electricity meter (push)",
        "serial_number": "123",
        "sw_version": "2",
        "via_device": "meterbridge_gw1",
    }
    assert payload["origin"] == {"name": "meterbridge", "sw_version": "9.9"}
    assert payload["availability"] == [
        {"topic": "meterbridge/gw1/status", "payload_available": "online", "payload_not_available": "offline"}
    ]
    energy = payload["components"]["energy_import"]
    assert energy == {
        "platform": "sensor",
        "unique_id": "meterbridge_gw1_e450_energy_import",
        "default_entity_id": "sensor.e450_energy_import",
        "name": "Active energy import",
        "state_topic": "meterbridge/gw1/meter/e450/state/energy_import",
        "value_template": NUMERIC_VALUE_TEMPLATE,
        "json_attributes_topic": "meterbridge/gw1/meter/e450/state/energy_import",
        "device_class": "energy",
        "state_class": "total_increasing",
        "unit_of_measurement": "kWh",
        "expire_after": 600,
    }
    assert "object_id" not in json.dumps(payload)  # removed in Home Assistant 2026.4
    power = payload["components"]["power_import"]
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power",
        "measurement",
        "W",
    )
    for problem in METER_PROBLEMS:
        comp = payload["components"][f"problem_{problem.kind}"]
        assert comp["platform"] == "binary_sensor"
        assert comp["device_class"] == "problem"
        assert comp["state_topic"] == f"meterbridge/gw1/meter/e450/problem/{problem.kind}"
        assert comp["default_entity_id"] == f"binary_sensor.e450_problem_{problem.kind}"
        assert comp["unique_id"] == f"meterbridge_gw1_e450_problem_{problem.kind}"
        assert (comp["payload_on"], comp["payload_off"]) == ("ON", "OFF")
    unique = [c["unique_id"] for c in payload["components"].values()]
    assert len(unique) == len(set(unique))


def test_gateway_discovery_payload() -> None:
    topic, raw = gateway_discovery(TopicLayout("gw1"), name=None, sw_version="9.9")
    assert topic == "homeassistant/device/meterbridge_gw1/config"
    payload = json.loads(raw)
    assert payload["device"] == {
        "identifiers": ["meterbridge_gw1"],
        "name": "meterbridge gw1",
        "manufacturer": "meterbridge",
        "model": "gateway",
        "sw_version": "9.9",
    }
    conn = payload["components"]["connectivity"]
    assert (conn["platform"], conn["device_class"], conn["state_topic"]) == (
        "binary_sensor",
        "connectivity",
        "meterbridge/gw1/status",
    )
    assert (conn["payload_on"], conn["payload_off"]) == ("online", "offline")
    assert "availability" not in conn  # the connectivity sensor must show "off", not "unavailable"
    bus = payload["components"]["problem_bus_collisions"]
    assert (bus["device_class"], bus["state_topic"]) == ("problem", "meterbridge/gw1/problem/bus_collisions")


def test_every_event_kind_of_the_guide_has_a_problem_sensor() -> None:
    required = {"voltage", "frequency", "power_factor", "thd", "meter_silent", "bus_collisions"}
    assert required <= set(EVENT_KINDS)
    for kind in required:
        found = problem_for_event_kind(kind)
        assert found is not None, kind
        assert found[1] == (kind == "bus_collisions")
    assert problem_for_event_kind("no such kind") is None
    assert {p.kind for p in GATEWAY_PROBLEMS} == {"bus_collisions"}


def test_legacy_messages_match_the_e450_guide_yaml() -> None:
    total = legacy_messages(reading("1-1:1.8.0", Decimal("1234567"), "Wh"))
    assert total == [(LEGACY_TOTAL_TOPIC, total[0][1])]
    assert json.loads(total[0][1]) == {"energy_kwh": 1234.567, "timestamp": "2026-11-28T10:00:00+00:00"}
    power = legacy_messages(reading("1.7.0", Decimal("1.25"), "kW"))
    assert power[0][0] == LEGACY_POWER_TOPIC
    assert json.loads(power[0][1])["power_w"] == 1250
    assert legacy_messages(reading("1.8.0", Decimal(1), "Wh", Quality.NOT_MONOTONIC)) == []
    assert legacy_messages(reading("1.8.0*1", Decimal(1), "Wh")) == []
    assert legacy_messages(reading("32.7.0", Decimal(230), "V")) == []
