"""DSMR 5 P1 telegrams: the same data-line reader, CRC-16/ARC, timestamps, hex ids, M-Bus channels."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import ChecksumError, FramingError, ProtocolError
from meterbridge.obis import ObisCode
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import DataSet, DataValue
from meterbridge.protocols.p1 import P1Reader, Telegram, crc16_arc, to_readings
from meterbridge.readings import Quality

# A DSMR 5.0.2 telegram as an Iskra AM550 sends it (values made up, layout as the companion standard).
BODY = (
    "/ISK5\\2M550T-1012\r\n"
    "\r\n"
    "1-3:0.2.8(50)\r\n"
    "0-0:1.0.0(231128104512W)\r\n"
    "0-0:96.1.1(4530303434303037313331363530323137)\r\n"
    "1-0:1.8.1(012345.678*kWh)\r\n"
    "1-0:1.8.2(009876.543*kWh)\r\n"
    "1-0:2.8.1(000123.456*kWh)\r\n"
    "1-0:2.8.2(000045.678*kWh)\r\n"
    "0-0:96.14.0(0002)\r\n"
    "1-0:1.7.0(01.193*kW)\r\n"
    "1-0:2.7.0(00.000*kW)\r\n"
    "0-0:96.7.21(00010)\r\n"
    "0-0:96.7.9(00003)\r\n"
    "1-0:99.97.0(2)(0-0:96.7.19)(230101120000W)(0000000240*s)(230315083000W)(0000000301*s)\r\n"
    "1-0:32.32.0(00002)\r\n"
    "1-0:32.36.0(00000)\r\n"
    "0-0:96.13.0()\r\n"
    "1-0:32.7.0(236.1*V)\r\n"
    "1-0:31.7.0(005*A)\r\n"
    "1-0:21.7.0(01.193*kW)\r\n"
    "1-0:22.7.0(00.000*kW)\r\n"
    "0-1:24.1.0(003)\r\n"
    "0-1:96.1.0(4730303339303031373030343930333137)\r\n"
    "0-1:24.2.1(231128104005W)(04321.987*m3)\r\n"
    "!"
).encode("ascii")


def crc_bit_loop(data: bytes) -> int:
    """CRC-16/ARC written out bit by bit, independent of the codec's table."""
    crc = 0x0000
    for byte in data:
        crc ^= byte
        for _ in range(8):
            if crc & 0x0001:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


CRC = crc_bit_loop(BODY)
TELEGRAM = BODY + f"{CRC:04X}\r\n".encode()
CET = timezone(timedelta(hours=1))


def test_crc_reference_values() -> None:
    assert crc_bit_loop(b"123456789") == 0xBB3D  # the catalogue check value of CRC-16/ARC
    assert crc16_arc(b"123456789") == 0xBB3D
    assert crc16_arc(BODY) == CRC


def check(telegram: Telegram) -> None:
    assert telegram.header == "ISK5\\2M550T-1012"
    assert telegram.manufacturer == "ISK" and telegram.identification == "M550T-1012"
    assert telegram.crc == CRC
    assert len(telegram.lines) == 23
    by = {s.address: s for s in telegram.data_sets}
    assert by["1-0:1.8.1"].value == Decimal("12345.678") and by["1-0:1.8.1"].unit == "kWh"
    assert by["1-0:31.7.0"].value == 5 and by["1-0:31.7.0"].unit == "A"
    assert by["0-0:96.14.0"].value == "0002"
    assert by["0-0:96.13.0"].value == ""
    assert telegram.timestamp == datetime(2023, 11, 28, 10, 45, 12, tzinfo=CET)
    assert by["0-1:24.2.1"].parsed == (datetime(2023, 11, 28, 10, 40, 5, tzinfo=CET), Decimal("4321.987"))
    assert len(by["1-0:99.97.0"].values) == 6


def test_decode_whole() -> None:
    check(Telegram.decode(TELEGRAM))


@pytest.mark.parametrize("how", ["whole", "byte_by_byte", "noise"])
def test_reader(how: str) -> None:
    reader = P1Reader()
    stream = TELEGRAM * 2
    if how == "noise":
        stream = b"\x00\xffgarbage" + TELEGRAM + b"\r\n\x00 x" + TELEGRAM + b"\xfe"
    step = 1 if how == "byte_by_byte" else len(stream)
    telegrams = []
    for i in range(0, len(stream), step):
        reader.receive_data(stream[i : i + step])
        while (event := reader.next_event()) is not NEED_DATA:
            telegrams.append(event)
    assert len(telegrams) == 2
    for t in telegrams:
        check(t)


def test_crc_mismatch_names_both_crcs() -> None:
    broken = TELEGRAM.replace(b"012345.678", b"012345.679")
    wrong = crc_bit_loop(broken[: broken.index(b"!") + 1])
    with pytest.raises(ChecksumError) as info:
        Telegram.decode(broken)
    assert f"computed {wrong:04X}" in str(info.value) and f"carries {CRC:04X}" in str(info.value)
    assert info.value.layer == "p1"
    reader = P1Reader()
    reader.receive_data(broken + TELEGRAM)
    with pytest.raises(ChecksumError):
        reader.next_event()
    check(reader.next_event())  # type: ignore[arg-type]


def test_without_crc_and_bad_crc_text() -> None:
    old = Telegram.decode(BODY + b"\r\n")
    assert old.crc is None and len(old.lines) == 23
    with pytest.raises(FramingError, match="4 hex digits"):
        Telegram.decode(BODY + b"12G4\r\n")
    with pytest.raises(FramingError):
        Telegram.decode(b"ISK5 no slash\r\n!")


def test_readings() -> None:
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    readings = to_readings(Telegram.decode(TELEGRAM), received_at=now)
    by = {(r.meter_id, str(r.key)): r for r in readings}
    main = "E0044007131650217"
    gas = by[("G0039001700490317", "0-1:24.2.1.255")]
    assert gas.value == Decimal("4321.987") and gas.unit == "m3"
    assert gas.timestamp == datetime(2023, 11, 28, 10, 40, 5, tzinfo=CET)
    power = by[(main, "1-0:1.7.0.255")]
    assert power.value == Decimal("1.193") and power.unit == "kW"
    assert power.timestamp == datetime(2023, 11, 28, 10, 45, 12, tzinfo=CET)
    assert by[(main, "0-0:96.1.1.255")].value == main
    assert all(r.quality is Quality.OK for r in readings)
    assert power.key == ObisCode(1, 0, 1, 7, 0)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            DataSet,
            st.sampled_from(["1-0:1.8.1", "0-0:96.1.1", "0-1:24.2.1", "1-0:32.7.0"]),
            st.lists(
                st.builds(
                    DataValue,
                    st.text(st.sampled_from("0123456789.ABCDEF"), max_size=12),
                    st.none() | st.sampled_from(["kWh", "V", "m3"]),
                ),
                min_size=1,
                max_size=3,
            ).map(tuple),
        ).map(lambda s: (s,)),
        max_size=10,
    ).map(tuple)
)
def test_round_trip(lines: tuple[tuple[DataSet, ...], ...]) -> None:
    telegram = Telegram("XYZ5\\2TEST", lines, None)
    wire = telegram.encode()
    decoded = Telegram.decode(wire)
    assert decoded.lines == lines
    assert decoded.crc == crc_bit_loop(wire[: wire.index(b"!") + 1])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.sampled_from([TELEGRAM[:n] for n in range(0, len(TELEGRAM), 37)]))
def test_fuzz(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        Telegram.decode(data)
    reader = P1Reader()
    reader.receive_data(data)
    try:
        while reader.next_event() is not NEED_DATA:
            pass
    except ProtocolError:
        pass
