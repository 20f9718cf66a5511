"""IEC 62056-21 (the optical port, formerly IEC 1107): modes A to E, both roles, sans-IO.

- ``datasets``: data lines ``address(value*unit)`` shared with DSMR/P1 telegrams.
- ``messages``: the wire messages (sign-on, identification, option select, data
  message with BCC, programming commands P/R/W/B, ACK/NAK) and the baud tables.
- ``session``: ``Iec62056Client`` and ``Iec62056Meter`` state machines (tables
  ``CLIENT_TRANSITIONS`` / ``METER_TRANSITIONS``), line switch and HDLC hand-over events.
- ``conversion``: data sets to ``Reading`` values.

``decode_readout(data)`` decodes a captured readout (identification line and/or
``STX ... ETX BCC``, noise around it allowed) in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

from meterbridge.errors import FramingError
from meterbridge.protocols.iec62056_21.conversion import (
    meter_id_of,
    reading_of,
    readout_readings,
    to_readings,
)
from meterbridge.protocols.iec62056_21.datasets import (
    LAYER,
    DataLine,
    DataSet,
    DataValue,
    encode_data_block,
    encode_data_line,
    obis_of,
    parse_data_block,
    parse_data_line,
    parse_dsmr_timestamp,
)
from meterbridge.protocols.iec62056_21.messages import (
    BAUD_MODE_B,
    BAUD_MODE_C,
    INITIAL_LINE,
    MODE_D_BAUD,
    Ack,
    Break,
    DataMessage,
    Identification,
    LineSettings,
    Nak,
    OptionSelect,
    Password,
    PasswordOperand,
    ProtocolMode,
    ReadRequest,
    SignOn,
    WriteRequest,
    baud_char_for,
    baud_for,
    bcc,
    decode_command,
    hdlc_line,
    readout_values,
)
from meterbridge.protocols.iec62056_21.session import (
    CLIENT_TRANSITIONS,
    METER_TRANSITIONS,
    CapturedMessage,
    CaptureReader,
    ClientEvent,
    ClientState,
    HdlcHandOver,
    Iec62056Client,
    Iec62056Meter,
    MeterState,
    RegisterWritten,
    SwitchLine,
    Transmit,
)

__all__ = [
    "BAUD_MODE_B",
    "BAUD_MODE_C",
    "CLIENT_TRANSITIONS",
    "INITIAL_LINE",
    "METER_TRANSITIONS",
    "MODE_D_BAUD",
    "Ack",
    "Break",
    "CaptureReader",
    "CapturedMessage",
    "CapturedReadout",
    "ClientEvent",
    "ClientState",
    "DataLine",
    "DataMessage",
    "DataSet",
    "DataValue",
    "HdlcHandOver",
    "Identification",
    "Iec62056Client",
    "Iec62056Meter",
    "LineSettings",
    "MeterState",
    "Nak",
    "OptionSelect",
    "Password",
    "PasswordOperand",
    "ProtocolMode",
    "ReadRequest",
    "RegisterWritten",
    "SignOn",
    "SwitchLine",
    "Transmit",
    "WriteRequest",
    "baud_char_for",
    "baud_for",
    "bcc",
    "decode_command",
    "decode_readout",
    "encode_data_block",
    "encode_data_line",
    "hdlc_line",
    "meter_id_of",
    "obis_of",
    "parse_data_block",
    "parse_data_line",
    "parse_dsmr_timestamp",
    "reading_of",
    "readout_readings",
    "readout_values",
    "to_readings",
]


@dataclass(frozen=True, slots=True)
class CapturedReadout:
    """A readout as captured from the line: the identification (if it was captured) and the data."""

    identification: Identification | None
    message: DataMessage
    bcc: int


# identification line -> its decoded (frozen) form: a meter sends the same line with every readout
_IDENTIFICATIONS: dict[bytes, Identification] = {}


def decode_readout(data: bytes | bytearray | memoryview) -> CapturedReadout:
    """Decode one captured readout: ``[/ident CR LF] STX ... ! CR LF ETX BCC``.

    Bytes before the identification (or before STX when there is none) and after
    the BCC are line noise and ignored. Raise ``FramingError`` when no complete
    readout is found and ``ChecksumError`` when the BCC is wrong.
    """
    raw = bytes(data)
    slash, stx = raw.find(b"/"), raw.find(b"\x02")
    identification = None
    if slash >= 0 and (stx < 0 or slash < stx):
        end = raw.find(b"\n", slash)
        if end < 0:
            raise FramingError("identification line without CR LF", offset=slash, layer=LAYER)
        line = raw[slash : end + 1]
        identification = _IDENTIFICATIONS.get(line)
        if identification is None:
            identification = Identification.decode(line)
            if len(_IDENTIFICATIONS) < 256:
                _IDENTIFICATIONS[line] = identification
        stx = raw.find(b"\x02", end + 1)
    if stx < 0:
        raise FramingError("no STX: the data readout is missing", offset=len(raw), layer=LAYER)
    etx = raw.find(b"\x03", stx)
    if etx < 0 or etx + 1 >= len(raw):
        raise FramingError("readout ends before ETX BCC", offset=len(raw), layer=LAYER)
    frame = raw[stx : etx + 2]
    message = DataMessage.decode(frame)
    if not message.readout:
        raise FramingError("data block does not end with '!' CR LF", offset=etx - 3, layer=LAYER)
    return CapturedReadout(identification, message, frame[-1])
