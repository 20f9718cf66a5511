"""M-Bus (EN 13757-2 link layer, EN 13757-3 application layer), sans-IO, both roles.

* :mod:`.link` - frames (E5, short, control, long), master requests, ``MBusLink`` stream.
* :mod:`.records` - data records (DIF/DIFE/VIF/VIFE/data), decoding and encoding.
* :mod:`.application` - variable and fixed data responses, application errors.
* :mod:`.datatypes` - BCD, integers, real32, text, date/time types F, G, I, J, K.
* :mod:`.tables` - VIF/VIFE/DIF/medium/unit tables built at import.
* :mod:`.readings` - records to ``Reading`` values for the gateway.
"""

from __future__ import annotations

from meterbridge.protocols.mbus.application import (
    ApplicationErrorResponse,
    FixedCounter,
    FixedDataResponse,
    Response,
    SlaveApplicationError,
    VariableDataResponse,
    decode_data_send,
    decode_response,
    encode_fixed_response,
    encode_variable_response,
)
from meterbridge.protocols.mbus.link import (
    ACK,
    ADDRESS_BROADCAST_NO_REPLY,
    ADDRESS_BROADCAST_REPLY,
    ADDRESS_NETWORK_LAYER,
    ApplicationReset,
    ControlFrame,
    Frame,
    LinkNoise,
    LongFrame,
    MBusLink,
    ReqUd1,
    ReqUd2,
    Request,
    SecondaryAddress,
    SelectSecondary,
    SendUserData,
    SetBaudRate,
    SetPrimaryAddress,
    ShortFrame,
    SingleCharacter,
    SndNke,
    decode_frame,
    decode_request,
)
from meterbridge.protocols.mbus.readings import record_key, to_readings
from meterbridge.protocols.mbus.records import DataRecord, RecordSpec, decode_records, encode_record

__all__ = [
    "ACK",
    "ADDRESS_BROADCAST_NO_REPLY",
    "ADDRESS_BROADCAST_REPLY",
    "ADDRESS_NETWORK_LAYER",
    "ApplicationErrorResponse",
    "ApplicationReset",
    "ControlFrame",
    "DataRecord",
    "FixedCounter",
    "FixedDataResponse",
    "Frame",
    "LinkNoise",
    "LongFrame",
    "MBusLink",
    "RecordSpec",
    "ReqUd1",
    "ReqUd2",
    "Request",
    "Response",
    "SecondaryAddress",
    "SelectSecondary",
    "SendUserData",
    "SetBaudRate",
    "SetPrimaryAddress",
    "ShortFrame",
    "SingleCharacter",
    "SlaveApplicationError",
    "SndNke",
    "VariableDataResponse",
    "decode_data_send",
    "decode_frame",
    "decode_records",
    "decode_request",
    "decode_response",
    "decode_telegram",
    "encode_fixed_response",
    "encode_record",
    "encode_variable_response",
    "record_key",
    "to_readings",
]


def decode_telegram(data: bytes) -> Response:
    """Decode one complete RSP_UD long frame (bytes after its stop byte are ignored)."""
    return decode_response(decode_frame(data))
