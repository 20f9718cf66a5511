"""Topic layout and the JSON payloads of the MQTT wire contract (pure, no broker)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import ProtocolError
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.mqtt_topics import (
    READING_SCHEMA,
    TopicLayout,
    decode_reading_payload,
    json_number,
    reading_payload,
    slug,
    state_payload,
)
from meterbridge.sinks.store import encode_value

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_slug_makes_topic_and_entity_safe_identifiers() -> None:
    assert slug("E450 / Flat 2") == "e450_flat_2"
    assert slug("mbus/0/energy/instantaneous/s0/t0/u0") == "mbus_0_energy_instantaneous_s0_t0_u0"
    assert slug("a+b#c") == "a_b_c"
    with pytest.raises(ValueError, match="no letters or digits"):
        slug("/// ")


def test_topic_layout() -> None:
    layout = TopicLayout("Gateway-1")
    assert layout.gateway_id == "gateway_1"
    assert layout.status == "meterbridge/gateway_1/status"
    assert layout.state("E450", "energy_import") == "meterbridge/gateway_1/meter/e450/state/energy_import"
    assert layout.meter_problem("E450", "voltage") == "meterbridge/gateway_1/meter/e450/problem/voltage"
    assert layout.gateway_problem("bus_collisions") == "meterbridge/gateway_1/problem/bus_collisions"
    assert layout.readings("E450") == "meterbridge/gateway_1/readings/e450"
    assert layout.readings_filter("Ingest A") == "$share/ingest_a/meterbridge/+/readings/#"
    assert layout.readings_filter(None, all_gateways=False) == "meterbridge/gateway_1/readings/#"
    assert layout.discovery(layout.meter_device_id("E450")) == (
        "homeassistant/device/meterbridge_gateway_1_e450/config"
    )
    assert layout.ha_status == "homeassistant/status"
    assert layout.gateway_device_id == "meterbridge_gateway_1"


@pytest.mark.parametrize("prefix", ["", "a/+/b", "x/#", "/lead", "trail/"])
def test_topic_layout_refuses_wildcards_and_edge_slashes(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        TopicLayout("gw", prefix=prefix)


def test_state_payload_valid_and_withheld() -> None:
    r = Reading("m", ObisCode.parse("1.8.0"), Decimal("1234567"), "Wh", T0)
    good = json.loads(state_payload(r, 1234.567, "kWh", valid=True))
    assert good == {
        "value": 1234.567,
        "unit": "kWh",
        "timestamp": "2026-11-28T10:00:00+00:00",
        "quality": [],
        "valid": True,
    }
    bad = json.loads(state_payload(r.flagged(Quality.NOT_MONOTONIC), 1.0, "kWh", valid=False))
    assert bad["value"] is None
    assert bad["valid"] is False
    assert bad["raw_value"] == "1234567"
    assert bad["raw_unit"] == "Wh"
    assert bad["quality"] == ["not_monotonic"]


def test_json_number() -> None:
    assert json_number(Decimal("12.50")) == 12.5
    assert json_number(Decimal("12")) == 12
    assert isinstance(json_number(Decimal("12.0")), int)
    assert json_number(Decimal("NaN")) is None
    assert json_number(float("inf")) is None
    assert json_number(True) is None
    assert json_number("12") is None


def test_reading_payload_fields() -> None:
    r = Reading("e450", ObisCode.parse("1.8.0"), Decimal("1234567.8"), "Wh", T0, Quality.UNAUTHENTICATED, "E")
    body = json.loads(reading_payload("gw1", 42, r))
    assert body == {
        "v": READING_SCHEMA,
        "id": "gw1:42",
        "gateway": "gw1",
        "seq": 42,
        "meter": "e450",
        "key": "1-0:1.8.0.255",
        "name": "E",
        "type": "decimal",
        "value": "1234567.8",
        "unit": "Wh",
        "timestamp": "2026-11-28T10:00:00+00:00",
        "quality": 1,
        "flags": ["unauthenticated"],
    }


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.datetimes(timezones=st.just(timezone(timedelta(hours=2)))),
)
_keys = st.one_of(
    st.builds(ObisCode, *(st.integers(0, 255) for _ in range(6))),
    st.text(min_size=1, max_size=30).map(lambda t: "mbus/" + t),
)


#: the fields of a reading of the fleet stream, for the property tests below
_READING_FIELDS = {
    "value": _values,
    "key": _keys,
    "seq": st.integers(0, 2**62),
    "quality": st.integers(0, 127),
    "meter": st.text(min_size=1, max_size=12),
    "unit": st.none() | st.sampled_from(["Wh", "kWh", "V", "m³", "°C"]),
    "when": st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)),
}


@settings(max_examples=200, deadline=None)
@given(**_READING_FIELDS)
def test_reading_payload_is_the_compact_json_of_its_fields(
    value, key, seq, quality, meter, unit, when
) -> None:
    r = Reading(meter, key, value, unit, when, Quality(quality), meter[::-1] or None)
    value_type, text, _ = encode_value(value)
    fields = {
        "v": READING_SCHEMA,
        "id": f'gw\u00e9"/:{seq}',
        "gateway": 'gw\u00e9"/',
        "seq": seq,
        "meter": meter,
        "key": r.key_text,
        "name": r.name,
        "type": value_type,
        "value": text,
        "unit": unit,
        "timestamp": when.isoformat(),
        "quality": quality,
        "flags": Quality(quality).names,
    }
    expected = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    assert reading_payload('gw\u00e9"/', seq, r) == expected


@settings(max_examples=200, deadline=None)
@given(**_READING_FIELDS)
def test_reading_payload_round_trip(value, key, seq, quality, meter, unit, when) -> None:
    r = Reading(meter, key, value, unit, when, Quality(quality), "n")
    fleet = decode_reading_payload(reading_payload("gw", seq, r))
    assert fleet.gateway == "gw"
    assert fleet.seq == seq
    assert fleet.id == f"gw:{seq}"
    assert fleet.reading == r
    assert type(fleet.reading.value) is type(value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"v": 2}', "version 2"),
        (b'{"v": 1, "seq": 1}', "no 'gateway'"),
        (b'{"v": 1, "gateway": "g", "seq": "1"}', "'seq' is str"),
        (b'{"v": 1, "gateway": "g", "seq": true}', "'seq' is bool"),
        (b'{"v": 1, "gateway": "g", "seq": -1, "key": "k", "type": "int"}', "negative"),
        (
            b'{"v":1,"gateway":"g","seq":1,"meter":"m","key":"k","type":"int","value":"x1",'
            b'"unit":null,"timestamp":"2026-01-01T00:00:00+00:00","quality":0}',
            "inconsistent",
        ),
        (
            b'{"v":1,"gateway":"g","seq":1,"meter":"m","key":"k","type":"int","value":"1",'
            b'"unit":null,"timestamp":"2026-01-01T00:00:00","quality":0}',
            "timezone-aware",
        ),
        (
            b'{"v":1,"gateway":"g","seq":1,"meter":"m","key":"k","type":"weird","value":"1",'
            b'"unit":null,"timestamp":"2026-01-01T00:00:00+00:00","quality":0}',
            "value_type",
        ),
    ],
)
def test_decode_reading_payload_refuses_malformed_input(payload: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as info:
        decode_reading_payload(payload)
    assert info.value.layer == "mqtt-reading"


def test_decode_names_the_byte_offset_of_bad_json() -> None:
    with pytest.raises(ProtocolError) as info:
        decode_reading_payload(b'{"v": 1, "gateway": ')
    assert info.value.offset == 20


def test_decode_ignores_trailing_garbage_only_by_refusing_it() -> None:
    good = reading_payload("gw", 1, Reading("m", "k", 1, None, T0))
    assert decode_reading_payload(good).seq == 1
    with pytest.raises(ProtocolError, match="not JSON"):
        decode_reading_payload(good + b"garbage")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_fuzz_decode_raises_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_reading_payload(data)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["v", "gateway", "seq", "meter", "key", "type", "value", "unit", "timestamp", "quality"]
        ),
        st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.floats(),
    )
)
def test_fuzz_decode_of_wrongly_typed_objects(body: dict[str, object]) -> None:
    body.setdefault("v", 1)
    with contextlib.suppress(ProtocolError):
        decode_reading_payload(json.dumps(body).encode())
