"""EN 13757-3 records and data types: round trips, exact values, fuzz."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from meterbridge.errors import FramingError, MeterbridgeError, ProtocolError, UnsupportedError
from meterbridge.protocols.mbus import (
    FixedDataResponse,
    RecordSpec,
    VariableDataResponse,
    decode_records,
    decode_response,
    decode_telegram,
    encode_fixed_response,
    encode_record,
    encode_variable_response,
    to_readings,
)
from meterbridge.protocols.mbus import datatypes as dt
from meterbridge.protocols.mbus.tables import PRIMARY_VIF, manufacturer_code, manufacturer_id
from meterbridge.readings import Quality

# ------------------------------------------------------------------ data types

dates = st.dates(min_value=date(1981, 1, 1), max_value=date(2080, 12, 31))
minutes = st.datetimes(min_value=datetime(1981, 1, 1), max_value=datetime(2080, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)
)
seconds = st.datetimes(min_value=datetime(1981, 1, 1), max_value=datetime(2080, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**11) + 1, 10**12 - 1), st.sampled_from([1, 2, 3, 4, 6]))
def test_bcd_round_trip(value: int, length: int) -> None:
    width = length * 2 - (1 if value < 0 else 0)
    assume(len(str(abs(value))) <= width)
    assert dt.decode_bcd(dt.encode_bcd(value, length)) == value


def test_bcd_negative_and_invalid_digits() -> None:
    assert dt.decode_bcd(bytes.fromhex("2301F0")) == -123  # top nibble F = negative
    assert dt.decode_bcd(bytes.fromhex("BDEBDD")) == "DDEBBD"  # not digits: text, never a number
    assert dt.decode_bcd(bytes.fromhex("12FA")) == "FA12"


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1), st.sampled_from([1, 2, 3, 4, 6, 8]))
def test_int_round_trip(value: int, length: int) -> None:
    assume(-(2 ** (8 * length - 1)) <= value < 2 ** (8 * length - 1))
    assert dt.decode_int(dt.encode_int(value, length)) == value


@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False))
def test_real32_round_trip(value: float) -> None:
    assert dt.decode_real32(dt.encode_real32(value)) == value


@settings(max_examples=200, deadline=None)
@given(dates)
def test_type_g_round_trip(value: date) -> None:
    assert dt.decode_type_g(dt.encode_type_g(value)) == value


@settings(max_examples=200, deadline=None)
@given(minutes)
def test_type_f_round_trip(value: datetime) -> None:
    assert dt.decode_type_f(dt.encode_type_f(value)) == value


@settings(max_examples=200, deadline=None)
@given(seconds)
def test_type_i_round_trip(value: datetime) -> None:
    assert dt.decode_type_i(dt.encode_type_i(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.times().map(lambda t: t.replace(microsecond=0)))
def test_type_j_round_trip(value: time) -> None:
    assert dt.decode_type_j(dt.encode_type_j(value)) == value


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        dt.DaylightSaving,
        st.integers(0, 23),
        st.integers(1, 31),
        st.integers(1, 12),
        st.integers(1, 31),
        st.integers(1, 12),
        st.integers(-3, 3),
    )
)
def test_type_k_round_trip(value: dt.DaylightSaving) -> None:
    assert dt.decode_type_k(dt.encode_type_k(value)) == value


def test_invalid_dates_are_none() -> None:
    assert dt.decode_type_g(b"\x00\x00") is None  # day 0, month 0: not a date
    assert dt.decode_type_f(bytes.fromhex("A115E917")) is None  # IV bit set
    assert dt.decode_type_f(bytes.fromhex("100905C5")) == datetime(1996, 5, 5, 9, 16)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_text_round_trip(value: str) -> None:
    assert dt.decode_text(dt.encode_text(value)) == value


def test_manufacturer_codes() -> None:
    assert manufacturer_code(0x30E2) == "LGB"
    assert manufacturer_id("KAM") == 0x2C2D
    with pytest.raises(ValueError):
        manufacturer_id("K1")


# ------------------------------------------------------------------ records

NUMBER_VIFS = [info.code for info in PRIMARY_VIF if info.kind == "number" and info.code not in (0x6F, 0x7C)]


@st.composite
def record_specs(draw: st.DrawFn) -> RecordSpec:
    kind = draw(st.sampled_from(["int", "bcd", "real", "date", "datetime", "text", "fd", "none", "binary"]))
    common = {
        "function": draw(st.integers(0, 3)),
        "storage": draw(st.integers(0, 2**20)),
        "tariff": draw(st.integers(0, 2**6)),
        "subunit": draw(st.integers(0, 7)),
    }
    if kind == "int":
        field = draw(st.sampled_from([1, 2, 3, 4, 6, 7]))
        length = {1: 1, 2: 2, 3: 3, 4: 4, 6: 6, 7: 8}[field]
        value = draw(st.integers(-(2 ** (8 * length - 1)), 2 ** (8 * length - 1) - 1))
        vif = draw(st.sampled_from(NUMBER_VIFS))
        vife = draw(st.sampled_from([(), (0x22,), (0x73,), (0x7D,), (0x3B,), (0x40,)]))
        return RecordSpec(field, vif, value, vife=vife, **common)
    if kind == "bcd":
        field, length = draw(st.sampled_from([(9, 1), (0xA, 2), (0xB, 3), (0xC, 4), (0xE, 6)]))
        value = draw(st.integers(-(10 ** (2 * length - 1)) + 1, 10 ** (2 * length) - 1))
        return RecordSpec(field, draw(st.sampled_from(NUMBER_VIFS)), value, **common)
    if kind == "real":
        value = draw(st.floats(width=32, allow_nan=False, allow_infinity=False))
        return RecordSpec(5, draw(st.sampled_from([0x2B, 0x13, 0x5B])), value, **common)
    if kind == "date":
        return RecordSpec(2, 0x6C, draw(dates), **common)
    if kind == "datetime":
        if draw(st.booleans()):
            return RecordSpec(4, 0x6D, draw(minutes), **common)
        return RecordSpec(6, 0x6D, draw(seconds), **common)
    if kind == "text":
        text = draw(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=20))
        if draw(st.booleans()):
            return RecordSpec(
                0xD, 0x7C, draw(st.integers(0, 1000)).__str__(), text_unit=text or "x", **common
            )
        return RecordSpec(0xD, 0x7D, text, vife=(0x10,), **common)
    if kind == "fd":
        code = draw(st.integers(0x40, 0x5F))
        return RecordSpec(4, 0x7D, draw(st.integers(0, 2**31 - 1)), vife=(code,), **common)
    if kind == "binary":
        return RecordSpec(0xD, 0x7F, draw(st.binary(max_size=15)), **common)
    return RecordSpec(0, draw(st.sampled_from(NUMBER_VIFS)), None, **common)


@settings(max_examples=200, deadline=None)
@given(record_specs())
def test_record_round_trip(spec: RecordSpec) -> None:
    wire = encode_record(spec)
    records, tail, more = decode_records(wire, 0, len(wire))
    assert tail == b"" and not more
    (record,) = records
    assert (record.storage, record.tariff, record.subunit) == (spec.storage, spec.tariff, spec.subunit)
    assert record.function == ("instantaneous", "maximum", "minimum", "error")[spec.function]
    if isinstance(spec.value, float):
        assert record.raw == spec.value
    else:
        assert spec.value in (record.raw, record.value)
    if spec.text_unit is not None:
        assert record.text_unit == spec.text_unit
    if isinstance(spec.value, int) and not spec.vife and record.info.kind == "number":
        info = record.info
        expected = Decimal(spec.value) * info.factor * Decimal(10) ** info.exponent
        assert Decimal(record.value) == expected  # type: ignore[arg-type]
        assert isinstance(record.value, (int, Decimal))


def test_exact_value_after_exponent() -> None:
    # 0x13: volume 1e-3 m^3; 10834092 -> 10834.092 exactly, no binary float involved
    wire = encode_record(RecordSpec(4, 0x13, 10834092))
    (record,), _, _ = decode_records(wire, 0, len(wire))
    assert record.value == Decimal("10834.092") and isinstance(record.value, Decimal)
    assert (record.quantity, record.unit) == ("volume", "m³")


def test_multiplicative_correction_vife() -> None:
    # energy Wh (0x03) with VIFE 0x73: x 1e-3 -> mWh resolution
    wire = encode_record(RecordSpec(4, 0x03, 1234, vife=(0x73,)))
    (record,), _, _ = decode_records(wire, 0, len(wire))
    assert record.value == Decimal("1.234")
    assert record.extensions[0].name == "multiplicative correction factor 1e-3"


def test_daylight_saving_type_k_record() -> None:
    dst = dt.DaylightSaving(begin_hour=2, begin_day=29, begin_month=3, end_day=25, end_month=10, deviation=1)
    wire = encode_record(RecordSpec(4, 0x7D, dst, vife=(0x72,)))
    (record,), _, _ = decode_records(wire, 0, len(wire))
    assert record.quantity == "daylight_saving" and record.value == dst
    assert record.to_dict()["value"] == {"begin": "29.03 02:00", "end": "25.10", "deviation_hours": 1}


def test_real32_nan_is_no_value() -> None:
    wire = bytes((0x05, 0x2B)) + dt.encode_real32(float("nan"))
    (record,), _, _ = decode_records(wire, 0, len(wire))
    assert record.value is None and record.raw != record.raw


def test_header_memo_gives_the_same_records() -> None:
    from meterbridge.protocols.mbus import records as records_module

    frame = encode_variable_response(
        1,
        [RecordSpec(4, 0x7D, 2301, vife=(0x48,), subunit=1), RecordSpec(0x84, 0x03, 5, tariff=2, storage=3)],
    )
    records_module._HEADER_CACHE.clear()
    cold = decode_telegram(frame.encode())
    warm = decode_telegram(frame.encode())
    assert cold == warm and len(records_module._HEADER_CACHE) == 2


def test_on_time_hours_are_seconds() -> None:
    wire = encode_record(RecordSpec(2, 0x22, 985))
    (record,), _, _ = decode_records(wire, 0, len(wire))
    assert (record.quantity, record.unit, record.value) == ("on_time", "s", 985 * 3600)


@settings(max_examples=200, deadline=None)
@given(st.lists(record_specs(), max_size=8), st.booleans(), st.binary(max_size=10))
def test_variable_response_round_trip(specs: list[RecordSpec], more: bool, tail: bytes) -> None:
    try:
        frame = encode_variable_response(
            7,
            specs,
            identification="12082058",
            manufacturer="LGB",
            version=64,
            medium=3,
            access_number=64,
            more_records_follow=more,
            manufacturer_data=tail,
        )
    except ValueError:
        assume(False)
        raise
    response = decode_telegram(frame.encode())
    assert isinstance(response, VariableDataResponse)
    assert (response.identification, response.manufacturer, response.medium_name) == (
        "12082058",
        "LGB",
        "gas",
    )
    assert response.more_records_follow is more
    assert response.manufacturer_data == (tail if (more or tail) else b"")
    data_records = [
        r for r in response.records if r.function not in ("more_records_follow", "manufacturer_specific")
    ]
    assert len(data_records) == len(specs)
    assert str(response.secondary_address) == "12082058" + "30E2" + "40" + "03"


def test_fixed_response_round_trip() -> None:
    frame = encode_fixed_response(
        1,
        identification="90919293",
        access_number=16,
        status=0,
        medium=4,
        units=(0x05, 0x29),
        counters=(6531, 69),
    )
    assert frame.encode() == bytes.fromhex(
        "68 13 13 68 08 01 73 93 92 91 90 10 00 05 69 31 65 00 00 69 00 00 00 3F 16"
    )
    response = decode_telegram(frame.encode())
    assert isinstance(response, FixedDataResponse)
    assert [c.value for c in response.counters] == [6531000, Decimal("0.069")]
    assert [c.unit for c in response.counters] == ["Wh", "m³"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([0x72, 0x7A, 0x78, 0x73, 0x76, 0x70]))
@example(b"\x0d\x13\xc0", 0x78)
@example(b"\x0d\x13\xd0", 0x78)
@example(b"\x0d\x6d\xe0", 0x78)
@example(b"\x0d\x6c\x00", 0x78)
def test_fuzz_records_only_our_errors(data: bytes, ci: int) -> None:
    from meterbridge.protocols.mbus import LongFrame

    assume(data)
    try:
        response = decode_response(LongFrame(0x08, 1, ci, data))
    except ProtocolError:
        return
    for reading in to_readings(response, meter="fuzz"):
        assert reading.meter_id == "fuzz"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_telegram_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(MeterbridgeError):
        decode_telegram(data)


def test_reserved_special_dif_and_lvar() -> None:
    with pytest.raises(UnsupportedError, match="reserved special function DIF 0x3F"):
        decode_records(b"\x3f", 0, 1)
    with pytest.raises(UnsupportedError, match="reserved LVAR 0xF7"):
        decode_records(b"\x0d\x13\xf7", 0, 3)
    with pytest.raises(FramingError, match="expected VIF"):
        decode_records(b"\x04", 0, 1)


def test_readings_keys_values_quality() -> None:
    frame = encode_variable_response(
        1,
        [
            RecordSpec(4, 0x13, 10834092, storage=1),
            RecordSpec(4, 0x06, 5, function=3),
            RecordSpec(2, 0x6C, date(2024, 1, 31)),
        ],
        identification="12082058",
        manufacturer="LGB",
        medium=3,
        status=0x00,
        manufacturer_data=b"\x01\x02",
    )
    response = decode_telegram(frame.encode())

    when = datetime(2026, 1, 1, tzinfo=UTC)
    readings = to_readings(response, timestamp=when)
    assert [r.key for r in readings] == [
        "mbus/0/volume/instantaneous/s1/t0/u0",
        "mbus/1/energy/error/s0/t0/u0",
        "mbus/2/date/instantaneous/s0/t0/u0",
    ]
    assert readings[0].meter_id == "LGB-12082058"
    assert readings[0].value == Decimal("10834.092") and readings[0].unit == "m³"
    assert readings[1].quality == Quality.METER_ERROR
    assert readings[2].value == "2024-01-31"
