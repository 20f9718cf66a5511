"""COSEM classes to readings: units, exact scaling, registers, clock, profile generic with selective access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from meterbridge.errors import FramingError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.axdr import ClockStatus, CosemDateTime, Data, DataType
from meterbridge.protocols.dlms.cosem import (
    CLOCK_OBIS,
    UNITS,
    CaptureObject,
    ClassId,
    ScalerUnit,
    clock_time,
    demand_register_readings,
    entry_descriptor,
    extended_register_reading,
    profile_readings,
    range_descriptor,
    register_reading,
    scale,
    select_profile,
    unit_code,
    value_of,
)
from meterbridge.readings import Quality

T0 = datetime(2026, 5, 4, 11, 0, tzinfo=UTC)
V = ObisCode.parse("1-0:32.7.0.255")


def test_unit_table_matches_the_blue_book() -> None:
    expected = {
        30: "Wh",
        32: "varh",
        31: "VAh",
        27: "W",
        29: "var",
        28: "VA",
        35: "V",
        33: "A",
        44: "Hz",
        56: "%",
    }
    for code, symbol in expected.items():
        assert UNITS[code] == symbol
        assert unit_code(symbol) == code
    assert UNITS[9] == "°C" and UNITS[13] == "m³" and UNITS[7] == "s" and UNITS[0] is None
    assert ScalerUnit(0, 255).symbol is None


@pytest.mark.parametrize(
    ("raw", "scaler", "expected"),
    [
        (9, -2, Decimal("0.09")),
        (0, -2, Decimal("0.00")),
        (2361, -1, Decimal("236.1")),
        (5, 3, 5000),
        (7, 0, 7),
    ],
)
def test_scale_is_exact(raw: int, scaler: int, expected: int | Decimal) -> None:
    value = scale(raw, scaler)
    assert value == expected and type(value) is type(expected)
    assert str(value) == str(expected)


def test_register_and_data() -> None:
    r = register_reading("m", V, Data.long_unsigned(2361), ScalerUnit(-1, 35), T0)
    assert (r.value, r.unit, r.timestamp, r.quality) == (Decimal("236.1"), "V", T0, Quality.OK)
    d = register_reading(
        "m", ObisCode.parse("0-0:42.0.0.255"), Data.octet_string(b"LGZ1030653520967"), None, T0
    )
    assert d.value == "LGZ1030653520967" and d.unit is None
    f = register_reading("m", V, Data(DataType.FLOAT32, 230.5), ScalerUnit(0, 35), T0)
    assert f.value == 230.5


def test_extended_register_uses_capture_time_and_status() -> None:
    captured = datetime(2026, 5, 1, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    r = extended_register_reading(
        "m",
        ObisCode.parse("1-0:1.6.0.255"),
        Data.double_long_unsigned(4200),
        ScalerUnit(0, 27),
        Data.unsigned(0),
        Data.octet_string(CosemDateTime.from_datetime(captured).encode()),
        T0,
    )
    assert r.timestamp == captured and r.value == 4200 and r.unit == "W" and r.quality is Quality.OK
    bad = extended_register_reading(
        "m", V, Data.long_unsigned(1), ScalerUnit(0, 35), Data.unsigned(1), Data.null(), T0
    )
    assert bad.timestamp == T0 and bad.quality is Quality.METER_ERROR


def test_demand_register() -> None:
    current, last = demand_register_readings(
        "m",
        ObisCode.parse("1-0:1.4.0.255"),
        Data.double_long_unsigned(512),
        Data.double_long_unsigned(498),
        ScalerUnit(0, 27),
        Data.date_time(T0 - timedelta(minutes=15)),
        T0,
    )
    assert (current.key, current.value, current.timestamp) == (ObisCode.parse("1-0:1.4.0.255"), 512, T0)
    assert (last.key, last.value, last.timestamp) == (
        ObisCode.parse("1-0:1.5.0.255"),
        498,
        T0 - timedelta(minutes=15),
    )


def test_clock() -> None:
    cet = datetime(2026, 1, 15, 12, 0, tzinfo=timezone(timedelta(hours=1)))
    assert clock_time(Data.date_time(cet)) == cet
    assert CosemDateTime.from_datetime(cet).deviation == -60
    assert CosemDateTime.from_datetime(cet).clock_status is ClockStatus.OK
    with pytest.raises(FramingError):
        clock_time(Data.null())
    assert value_of(Data.octet_string(bytes.fromhex("07EA0504010B2715FF800081"))) == datetime(
        2026, 5, 4, 11, 39, 21, tzinfo=UTC
    )


COLUMNS = (
    CaptureObject(ClassId.CLOCK, CLOCK_OBIS),
    CaptureObject(ClassId.REGISTER, ObisCode.parse("1-0:1.8.0.255")),
)


def _buffer(n: int, *, compressed: bool = False) -> Data:
    return Data.array(
        Data.structure(
            Data.null()
            if compressed and i
            else Data.octet_string(CosemDateTime.from_datetime(T0 + timedelta(minutes=15 * i)).encode()),
            Data.double_long_unsigned(100 + i),
        )
        for i in range(n)
    )


def test_profile_rows_to_readings_with_scaler() -> None:
    readings = profile_readings("m", _buffer(4), COLUMNS, {COLUMNS[1].obis: ScalerUnit(-3, 30)})
    assert [r.value for r in readings] == [
        Decimal("0.100"),
        Decimal("0.101"),
        Decimal("0.102"),
        Decimal("0.103"),
    ]
    assert [r.timestamp for r in readings] == [T0 + timedelta(minutes=15 * i) for i in range(4)]


def test_profile_with_null_clock_uses_the_capture_period() -> None:
    readings = profile_readings("m", _buffer(3, compressed=True), COLUMNS, {}, capture_period=900)
    assert [r.timestamp for r in readings] == [T0, T0 + timedelta(minutes=15), T0 + timedelta(minutes=30)]


def test_profile_row_width_must_match() -> None:
    with pytest.raises(FramingError, match="2 values for 3 capture objects"):
        profile_readings("m", _buffer(1), (*COLUMNS, COLUMNS[1]), {})


def test_range_and_entry_selection_meter_side() -> None:
    buffer = _buffer(10)
    access = range_descriptor(T0 + timedelta(minutes=30), T0 + timedelta(minutes=60))
    assert access.selector == 1
    part = select_profile(buffer, COLUMNS, access)
    assert [row.items[1].value for row in part.items] == [102, 103, 104]
    only_energy = select_profile(
        buffer, COLUMNS, range_descriptor(T0, T0 + timedelta(minutes=15), selected_values=[COLUMNS[1]])
    )
    assert [len(r.items) for r in only_energy.items] == [1, 1]
    entries = select_profile(buffer, COLUMNS, entry_descriptor(2, 3))
    assert [row.items[1].value for row in entries.items] == [101, 102]
    assert CaptureObject.list_from_data(Data.array(c.to_data() for c in COLUMNS)) == COLUMNS


def test_value_of_dates_times_and_bit_strings() -> None:
    from meterbridge.protocols.dlms.axdr import BitString, CosemDate, CosemTime

    assert value_of(Data(DataType.DATE, CosemDate(2026, 5, 4, None))) == "2026-05-04"
    assert value_of(Data(DataType.DATE, CosemDate(None, 0xFE, None, 7))) == "****-FE-**"
    assert value_of(Data(DataType.TIME, CosemTime(11, 39, 21, 0))) == "11:39:21"
    assert value_of(Data(DataType.BIT_STRING, BitString.from_bits("0101"))) == "0101"
    from meterbridge.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="STRUCTURE cannot be a reading value"):
        value_of(Data.structure(Data.null()))
