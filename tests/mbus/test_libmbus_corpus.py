"""The 76 real frames of libmbus's corpus decode to what libmbus's stored XML says.

For every frame: fed whole, byte by byte through ``MBusLink``, and with trailing garbage;
every record is compared with ``NAME.norm.xml`` (function, storage, tariff, device,
unit, normalised value) and ``NAME.xml`` (libmbus's unit text and raw value). Where
libmbus is wrong the deviation is listed in ``LIBMBUS_WRONG`` with the reason.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import pytest

from meterbridge.errors import ChecksumError, FramingError, ProtocolError, UnsupportedError
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.mbus import (
    DataRecord,
    FixedDataResponse,
    LinkNoise,
    LongFrame,
    MBusLink,
    SlaveApplicationError,
    VariableDataResponse,
    decode_data_send,
    decode_frame,
    decode_response,
    decode_telegram,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "mbus-libmbus"
FRAMES = sorted(p.stem for p in (VECTORS / "test-frames").glob("*.hex"))
GARBAGE = b"\x00\xff\x68\x05\x12\x16\xe4"

# (frame, record index, field) -> why libmbus's stored value is not what the standard says
_BCD_HEX = (
    "EN 13757-3 annex A: BCD digits are 0..9; a nibble A..F is not a digit (annex B uses them "
    "to flag errors), so the field has no numeric value. libmbus multiplies the nibbles out "
    "(D = 13) and publishes a number the meter never sent; we keep the digits as text."
)
LIBMBUS_WRONG: dict[tuple[str, int, str], str] = {
    ("ELS_Elster-F96-Plus", 4, "norm"): _BCD_HEX,
    ("ELS_Elster-F96-Plus", 5, "norm"): _BCD_HEX,
    ("abb_f95", 2, "norm"): _BCD_HEX,
    ("abb_f95", 3, "norm"): _BCD_HEX,
    ("sen_pollutherm", 2, "function"): (
        "DIF 0x0C: function bits 00 = instantaneous value (EN 13757-3 6.3.1). The VIF 0x7B lacks "
        "its extension bit, so no FB code follows; libmbus then drops the whole normalised record "
        "and prints an empty Function. We decode the data (BCD 302) under quantity 'unknown'."
    ),
}


def load_hex(path: Path) -> bytes:
    return bytes.fromhex(path.read_text())


@dataclass
class XmlRecord:
    function: str
    storage: str | None
    tariff: str | None
    device: str | None
    unit: str
    quantity: str | None
    value: str


def parse_xml(path: Path) -> tuple[dict[str, str], list[XmlRecord]]:
    # the files declare ISO-8859-1 but hold UTF-8 ("°C"): read them as UTF-8 text
    text = path.read_bytes().decode("utf-8")
    root = ET.fromstring(text.split("?>", 1)[1])
    slave = {child.tag: (child.text or "") for child in root.find("SlaveInformation") or []}
    records = []
    for rec in root.findall("DataRecord"):

        def text(tag: str, rec: ET.Element = rec) -> str | None:
            el = rec.find(tag)
            return None if el is None else (el.text or "")

        records.append(
            XmlRecord(
                function=text("Function") or "",
                storage=text("StorageNumber"),
                tariff=text("Tariff"),
                device=text("Device"),
                unit=text("Unit") or "",
                quantity=text("Quantity"),
                value=text("Value") or "",
            )
        )
    return slave, records


def libmbus_raw_text(value: object) -> str:
    """How libmbus's raw XML prints a decoded data field."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:f}"
    if isinstance(value, bytes):
        return " ".join(f"{b:02X}" for b in value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    if value is None:
        return ""
    return str(value)


def libmbus_date_text(data: bytes) -> str:
    """libmbus's ``mbus_data_tm_decode`` + strftime, re-done from the raw bytes."""
    if len(data) == 2:
        year = 2000 + (((data[0] & 0xE0) >> 5) | ((data[1] & 0xF0) >> 1))
        return f"{year:04d}-{data[1] & 0x0F:02d}-{data[0] & 0x1F:02d}"
    if len(data) == 4:
        if data[0] & 0x80:  # IV: libmbus leaves its struct tm zeroed
            return "1900-01-00T00:00:00"
        year = ((data[2] & 0xE0) >> 5) | ((data[3] & 0xF0) >> 1)
        year += 1900 if year > 80 else 2000
        return f"{year:04d}-{data[3] & 0x0F:02d}-{data[2] & 0x1F:02d}T{data[1] & 0x1F:02d}:{data[0] & 0x3F:02d}:00"
    year = 2000 + (((data[3] & 0xE0) >> 5) | ((data[4] & 0xF0) >> 1))
    return (
        f"{year:04d}-{data[4] & 0x0F:02d}-{data[3] & 0x1F:02d}"
        f"T{data[2] & 0x1F:02d}:{data[1] & 0x3F:02d}:{data[0] & 0x3F:02d}"
    )


def libmbus_date_is_invalid(data: bytes) -> bool:
    text = libmbus_date_text(data)
    month, day = int(text[5:7]), int(text[8:10])
    iv = (len(data) == 4 and data[0] & 0x80) or (len(data) == 6 and data[1] & 0x80)
    return bool(iv) or month == 0 or day == 0 or month > 12


NORM_UNIT = {"m^3": "m³", "m^3/h": "m³/h"}


def decode_whole(name: str) -> VariableDataResponse | FixedDataResponse:
    return decode_telegram(load_hex(VECTORS / "test-frames" / f"{name}.hex"))


def decode_bytewise(name: str, garbage: bytes = b"") -> VariableDataResponse | FixedDataResponse:
    data = load_hex(VECTORS / "test-frames" / f"{name}.hex") + garbage
    link = MBusLink()
    events = []
    for i in range(len(data)):
        link.receive_data(data[i : i + 1])
        while (event := link.next_event()) is not NEED_DATA:
            events.append(event)
    link.receive_data(b"")
    while (event := link.next_event()) is not NEED_DATA:
        events.append(event)
    frames = [e for e in events if not isinstance(e, LinkNoise)]
    assert len(frames) == 1, events
    assert isinstance(frames[0], LongFrame)
    if garbage:
        noise = b"".join(e.data for e in events if isinstance(e, LinkNoise))
        assert noise == garbage
    return decode_response(frames[0])


def check_against_libmbus(name: str, response: VariableDataResponse | FixedDataResponse) -> None:
    slave, raw_records = parse_xml(VECTORS / "test-frames" / f"{name}.xml")
    _, norm_records = parse_xml(VECTORS / "test-frames" / f"{name}.norm.xml")
    # libmbus prints the BCD identification without leading zeros (hex digits kept: "500023E")
    assert ((response.identification or "").lstrip("0") or "0") == slave["Id"]
    assert response.access_number == int(slave["AccessNumber"])
    assert f"{response.status:02X}" == slave["Status"].upper()
    assert response.medium_text == slave["Medium"], (response.medium_text, slave["Medium"])
    if isinstance(response, FixedDataResponse):
        assert len(raw_records) == 2
        for counter, raw, norm in zip(response.counters, raw_records, norm_records, strict=True):
            assert counter.function_text == raw.function == norm.function
            assert counter.description == raw.unit == norm.unit
            assert libmbus_raw_text(counter.raw) == raw.value == norm.value
        return
    assert response.manufacturer == slave["Manufacturer"]
    assert response.version == int(slave["Version"])
    assert f"{response.signature:04X}" == slave["Signature"].upper()
    assert len(response.records) == len(raw_records) == len(norm_records)
    for record, raw, norm in zip(response.records, raw_records, norm_records, strict=True):
        check_record(name, record, raw, norm)


def check_record(name: str, record: DataRecord, raw: XmlRecord, norm: XmlRecord) -> None:
    where = f"{name} record {record.index}"
    if (name, record.index, "function") in LIBMBUS_WRONG:
        assert record.function_text == raw.function and norm.function == "", where
        assert record.description == raw.unit and libmbus_raw_text(record.raw) == raw.value, where
        return
    assert record.function_text == raw.function == norm.function, where
    if record.function in ("manufacturer_specific", "more_records_follow"):
        assert libmbus_raw_text(record.data) == raw.value == norm.value, where
        return
    assert str(record.storage) == raw.storage == norm.storage, where
    if raw.tariff is not None:
        assert str(record.tariff) == raw.tariff == norm.tariff, where
        assert str(record.subunit) == raw.device == norm.device, where
    else:
        assert record.tariff == 0 and record.subunit == 0 and not record.dife, where
    key = (name, record.index, "unit")
    if key not in LIBMBUS_WRONG:
        assert record.description == raw.unit, where
    key = (name, record.index, "raw")
    if record.info.kind in ("date", "datetime") and isinstance(record.raw, int):
        # libmbus prints the fields of the date whether valid or not; we give None for a
        # date marked invalid or with day/month 0 (EN 13757-3 annex A, types F/G/I)
        # (libmbus appends a "Z" to some date-times although the meter's clock is local time)
        assert libmbus_date_text(record.data) == raw.value.rstrip("Z") == norm.value.rstrip("Z"), where
        if record.value is None:
            assert libmbus_date_is_invalid(record.data), where
        else:
            assert libmbus_raw_text(record.value) == raw.value.rstrip("Z"), where
        return
    if record.data_type == "variable length" and isinstance(record.raw, bytes):
        # a binary number (LVAR E0..EF): libmbus prints it most significant byte first
        assert libmbus_raw_text(record.raw[::-1]) == raw.value == norm.value, where
        return
    if key not in LIBMBUS_WRONG:
        assert libmbus_raw_text(record.raw) == raw.value, where
    key = (name, record.index, "norm")
    if key in LIBMBUS_WRONG:
        assert isinstance(record.value, str) and norm.value != record.value, where
        return
    if record.text_unit is not None:  # libmbus: quantity = the meter's text, unit "-"
        assert (norm.unit, norm.quantity) == ("-", record.text_unit), where
    check_norm_value(where, record, norm)


def check_norm_value(where: str, record: DataRecord, norm: XmlRecord) -> None:
    value = record.value
    if isinstance(value, (int, Decimal, float)) and not isinstance(value, bool):
        expected = Decimal(norm.value)
        ours = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        tolerance = max(Decimal("0.0000005"), abs(expected) * Decimal("1e-15"))
        if isinstance(value, float):
            tolerance = max(tolerance, abs(expected) * Decimal("1e-6"))
        assert abs(ours - expected) <= tolerance, (where, value, norm.value)
        unit = record.unit
        if record.text_unit is not None:
            return
        if record.info.kind in ("ident", "binary") or unit is None:
            assert norm.unit in ("", "-", record.description, "Reserved"), (where, norm.unit)
        else:
            assert NORM_UNIT.get(norm.unit, norm.unit) == unit, (where, norm.unit, unit)
    else:
        assert libmbus_raw_text(value) == norm.value, (where, value, norm.value)


@pytest.mark.parametrize("name", FRAMES)
def test_frame_whole(name: str) -> None:
    check_against_libmbus(name, decode_whole(name))


@pytest.mark.parametrize("name", FRAMES)
def test_frame_byte_by_byte(name: str) -> None:
    assert decode_bytewise(name) == decode_whole(name)


@pytest.mark.parametrize("name", FRAMES)
def test_frame_with_trailing_garbage(name: str) -> None:
    data = load_hex(VECTORS / "test-frames" / f"{name}.hex")
    assert decode_response(decode_frame(data + GARBAGE)) == decode_whole(name)
    assert decode_bytewise(name, GARBAGE) == decode_whole(name)


def test_corpus_has_76_frames() -> None:
    assert len(FRAMES) == 76


# ----------------------------------------------------------------- error frames

ERRORS: dict[str, tuple[type[ProtocolError], str]] = {
    "application_busy": (SlaveApplicationError, "Application busy"),
    "buffer_too_long": (SlaveApplicationError, "Buffer too long, truncated"),
    "error": (SlaveApplicationError, "Unspecified error"),
    "premature_end_of_data1": (FramingError, "expected 3 data bytes, 0 left"),
    "premature_end_of_data2": (FramingError, "expected 3 data bytes, 2 left"),
    "premature_end_of_dif1": (FramingError, "expected DIFE"),
    "premature_end_of_dif2": (FramingError, "expected DIFE"),
    "premature_end_of_record": (SlaveApplicationError, "Premature end of record"),
    "premature_end_of_var_vif1": (FramingError, "expected 19 characters of plain-text VIF"),
    "premature_end_of_vif1": (FramingError, "expected VIF"),
    "too_long_var_vif": (FramingError, "plain-text VIF of 243 characters"),
    "too_many_dife": (FramingError, "more than 10 DIFEs"),
    "too_many_difes": (SlaveApplicationError, "More than 10 DIFE´s"),
    "too_many_readouts": (SlaveApplicationError, "Too many readouts"),
    "too_many_records": (SlaveApplicationError, "Too many records"),
    "too_many_vife": (FramingError, "more than 10 VIFEs"),
    "too_many_vifes": (SlaveApplicationError, "More than 10 VIFE´s"),
    "too_short_header": (FramingError, "variable data header needs 12 bytes, got 5"),
    "unimplemented_ci": (SlaveApplicationError, "Unimplemented CI-Field"),
    "unspecified_error": (SlaveApplicationError, "Unspecified error"),
}


def test_every_error_frame_is_listed() -> None:
    assert sorted(ERRORS) == sorted(p.stem for p in (VECTORS / "error-frames").glob("*.hex"))


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_frame(name: str) -> None:
    error, text = ERRORS[name]
    data = load_hex(VECTORS / "error-frames" / f"{name}.hex")
    with pytest.raises(error) as info:
        decode_telegram(data)
    assert text in str(info.value)
    assert info.value.offset is not None
    assert info.value.layer == "mbus"
    xml = VECTORS / "error-frames" / f"{name}.xml"
    if xml.exists():  # libmbus names the slave's error the same way
        assert (
            ET.fromstring(xml.read_bytes().decode("utf-8").split("?>", 1)[1]).findtext(
                "SlaveInformation/Error"
            )
            == text
        )


# ----------------------------------------------------------------- unsupported frames


def test_unsupported_invalid_length_is_truncated() -> None:
    with pytest.raises(FramingError, match="length field 0x00 below 3"):
        decode_frame(load_hex(VECTORS / "unsupported-frames" / "invalid_length.hex"))


def test_unsupported_invalid_length2_fixed_structure_short() -> None:
    with pytest.raises(FramingError, match="fixed data structure is 16 bytes, got 15"):
        decode_telegram(load_hex(VECTORS / "unsupported-frames" / "invalid_length2.hex"))


def test_unsupported_manual_frame1_is_not_hex() -> None:
    with pytest.raises(ValueError, match="non-hexadecimal"):
        bytes.fromhex((VECTORS / "unsupported-frames" / "manual_frame1.hex").read_text())


def test_unsupported_manual_frame4_set_address() -> None:
    frame = decode_frame(load_hex(VECTORS / "unsupported-frames" / "manual_frame4.hex"))
    assert isinstance(frame, LongFrame)
    assert (frame.c, frame.address, frame.ci) == (0x53, 0xFE, 0x51)
    (record,) = decode_data_send(frame)
    assert (record.quantity, record.value) == ("bus_address", 8)


def test_unsupported_manual_frame5_enhanced_identification() -> None:
    frame = decode_frame(load_hex(VECTORS / "unsupported-frames" / "manual_frame5.hex"))
    assert isinstance(frame, LongFrame)
    (record,) = decode_data_send(frame)
    assert record.quantity == "enhanced_identification"
    assert record.value == 0x0401402401020304


def test_unsupported_manual_frame6_id_and_energy() -> None:
    frame = decode_frame(load_hex(VECTORS / "unsupported-frames" / "manual_frame6.hex"))
    assert isinstance(frame, LongFrame)
    ident, energy = decode_data_send(frame)
    assert (ident.quantity, ident.value) == ("enhanced_identification", 12345678)
    assert (energy.quantity, energy.unit, energy.value) == ("energy", "Wh", 107000)


def test_unsupported_svm_f22_telegram2_is_manufacturer_data() -> None:
    # DIF 0x1F right after the header: every byte after it is manufacturer specific
    # (EN 13757-3 6.3.1), and more records follow in the next telegram.
    data = load_hex(VECTORS / "unsupported-frames" / "svm_f22_telegram2.hex")
    response = decode_telegram(data)
    assert isinstance(response, VariableDataResponse)
    assert (response.manufacturer, response.identification) == ("SVM", "01006089")
    assert response.more_records_follow
    assert len(response.records) == 1 and response.records[0].function == "more_records_follow"
    assert response.manufacturer_data == data[7 + 12 + 1 : -2]


def test_checksum_error_is_precise() -> None:
    data = bytearray(load_hex(VECTORS / "test-frames" / "kamstrup_multical_601.hex"))
    data[-2] ^= 0x01
    with pytest.raises(ChecksumError) as info:
        decode_frame(bytes(data))
    assert info.value.offset == len(data) - 2


def test_unsupported_ci_is_unsupported_error() -> None:
    with pytest.raises(UnsupportedError, match="CI field 0x99"):
        decode_response(LongFrame(0x08, 1, 0x99, b"\x00"))
