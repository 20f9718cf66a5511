"""The Landis+Gyr E350 mode C readout (a real capture) decodes to the values its file lists.

Fed whole, one byte at a time through the client session, and with line noise around it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from meterbridge.errors import ChecksumError, FramingError
from meterbridge.obis import ObisCode
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import (
    ClientState,
    DataMessage,
    Identification,
    Iec62056Client,
    LineSettings,
    OptionSelect,
    SignOn,
    SwitchLine,
    decode_readout,
    readout_values,
    to_readings,
)
from meterbridge.readings import Quality

VECTOR = json.loads(
    (Path(__file__).parents[1] / "vectors" / "iec62056-21" / "lgz_e350_mode_c_readout.json").read_text()
)
RAW = bytes.fromhex(VECTOR["telegram_hex"])
EXPECTED = VECTOR["expected"]
SPLIT = RAW.index(b"\x02")
IDENT_LINE, READOUT = RAW[:SPLIT], RAW[SPLIT:]
NOISE = b"\x00\xff\x7f\x13noise\x11 \x18"


def _expected(value: float | int | str) -> object:
    if isinstance(value, float):
        return Decimal(str(value))
    return value


def check_values(message: DataMessage) -> None:
    assert len(message.lines) == EXPECTED["data_lines"]
    by_address = {s.address: s for s in message.data_sets}
    for address, (value, unit) in EXPECTED["values"].items():
        data_set = by_address[address]
        assert data_set.value == _expected(value), address
        assert type(data_set.value) is type(_expected(value)), address
        assert data_set.unit == unit, address
    assert by_address["0.0"].values[0].text == "          120858"  # value with spaces, kept as sent
    assert by_address["0.0"].value == "120858"
    assert by_address["C.1.1"].value == ""  # value of blanks only
    assert by_address["C.7.0"].value == "0008"  # identifier-like register keeps its digits
    assert by_address["1.8.0"].obis == ObisCode(1, 0, 1, 8, 0)
    assert by_address["C.1.0"].obis == ObisCode(0, 0, 96, 1, 0)
    assert by_address["F.F"].obis == ObisCode(0, 0, 97, 97, 0)


def check_identification(ident: Identification) -> None:
    assert ident.manufacturer == EXPECTED["manufacturer"]
    assert ident.baud_char == EXPECTED["baud_char"]
    assert ident.text == EXPECTED["identification"]
    assert not ident.mode_e


def test_whole() -> None:
    captured = decode_readout(RAW)
    assert captured.identification is not None
    check_identification(captured.identification)
    assert captured.bcc == int(EXPECTED["bcc"], 16)
    check_values(captured.message)


def test_with_noise_around() -> None:
    captured = decode_readout(NOISE + RAW + NOISE)
    assert captured.bcc == int(EXPECTED["bcc"], 16)
    check_values(captured.message)


def test_fast_path_gives_the_same_values() -> None:
    values = readout_values(READOUT)
    assert len(values) == 22
    message = DataMessage.decode(READOUT)
    assert values == [(s.address, s.value, s.unit) for s in message.data_sets]


def _session(chunks: list[bytes]) -> tuple[Identification, DataMessage, list[SwitchLine]]:
    client = Iec62056Client("C")
    assert client.send(SignOn()) == b"/?!\r\n"
    switches: list[SwitchLine] = []
    ident = message = None
    for chunk in chunks:
        client.receive_data(chunk)
        while (event := client.next_event()) is not NEED_DATA:
            if isinstance(event, Identification):
                ident = event
                client.send(OptionSelect(baud_char=event.baud_char))
            elif isinstance(event, DataMessage):
                message = event
            elif isinstance(event, SwitchLine):
                switches.append(event)
    assert ident is not None and message is not None
    assert client.state is ClientState.COMPLETE
    return ident, message, switches


@pytest.mark.parametrize("how", ["whole", "byte_by_byte", "noise"])
def test_client_session(how: str) -> None:
    if how == "whole":
        chunks = [IDENT_LINE, READOUT]
    elif how == "byte_by_byte":
        chunks = [RAW[i : i + 1] for i in range(len(RAW))]
    else:  # noise before the identification, at the baud switch, and after the BCC
        chunks = [NOISE, IDENT_LINE, NOISE, READOUT, NOISE]
    ident, message, switches = _session(chunks)
    check_identification(ident)
    check_values(message)
    assert switches == [SwitchLine(LineSettings(4800)), SwitchLine(LineSettings(300))]


def test_readings() -> None:
    captured = decode_readout(RAW)
    now = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    readings = to_readings(
        captured.message.data_sets, received_at=now, identification=captured.identification
    )
    assert len(readings) == 22
    assert {r.meter_id for r in readings} == {"13647123"}
    energy = next(r for r in readings if r.key == ObisCode.parse("1-0:1.8.0"))
    assert energy.value == Decimal("61561.289") and energy.unit == "kWh"
    assert energy.name == "Active energy import"
    assert all(r.quality is Quality.OK for r in readings)


def test_meter_id_falls_back_to_the_identification() -> None:
    captured = decode_readout(RAW)
    sets = [s for s in captured.message.data_sets if s.address not in ("C.1.0", "0.0")]
    now = datetime(2026, 11, 28, tzinfo=UTC)
    readings = to_readings(sets, received_at=now, identification=captured.identification)
    assert readings[0].meter_id == "LGZ4ZMF100AC.M26"


def test_bcc_flip_is_a_checksum_error_never_a_value() -> None:
    broken = bytearray(READOUT)
    broken[broken.index(b"61561")] ^= 0x01  # '6' -> '7' in 1.8.0
    with pytest.raises(ChecksumError, match="BCC mismatch: computed 0x00, message carries 0x01"):
        DataMessage.decode(bytes(broken))
    with pytest.raises(ChecksumError):
        readout_values(bytes(broken))
    client = Iec62056Client("C")
    client.send(SignOn())
    client.receive_data(IDENT_LINE)
    client.next_event()
    client.send(OptionSelect("4"))
    client.next_event()  # SwitchLine
    client.receive_data(bytes(broken))
    with pytest.raises(ChecksumError):
        client.next_event()
    assert client.state is ClientState.ERROR


def test_truncated() -> None:
    with pytest.raises(FramingError):
        decode_readout(RAW[:-2])
    with pytest.raises(FramingError, match="no STX"):
        decode_readout(IDENT_LINE)
