"""xDLMS and ACSE APDUs (DLMS UA Green Book 9.3 and 9.5), both ways.

Holds one frozen dataclass per APDU — association (``AARQ``, ``AARE``, ``RLRQ``, ``RLRE``
with ``InitiateRequest`` / ``InitiateResponse`` / ``ConfirmedServiceError`` or their
ciphered form in the user-information), GET / SET / ACTION requests and responses in their
normal, with-list and block forms, ``ExceptionResponse``, ``DataNotification``,
``EventNotificationRequest``, ``GeneralBlockTransfer``, glo-/ded-ciphered APDUs
(``CipheredApdu``), ``GeneralGloCiphering`` / ``GeneralDedCiphering`` and
``GeneralCiphering`` — the result enums with readable reasons (``DataAccessResult``,
``ActionResult``), and the one entry point ``decode_apdu`` that dispatches on the tag byte
through a table built at import.

Every ``encode()`` gives the APDU bytes; ``decode_apdu(data)`` reads exactly one APDU that
fills ``data`` and raises ``FramingError`` / ``UnsupportedError`` with the byte offset.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeAlias

from meterbridge.errors import FramingError, ProtocolError, UnsupportedError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.axdr import (
    CosemDateTime,
    Data,
    decode_data,
    decode_length,
    encode_data,
    encode_length,
)

__all__ = [
    "AARE",
    "AARQ",
    "CIPHERED_TAGS",
    "RLRE",
    "RLRQ",
    "AccessSelection",
    "ActionRequestNormal",
    "ActionResponseNormal",
    "ActionResult",
    "Apdu",
    "ApplicationContext",
    "AssociationResult",
    "AttributeDescriptor",
    "CipheredApdu",
    "ConfirmedServiceError",
    "Conformance",
    "DataAccessResult",
    "DataNotification",
    "EventNotificationRequest",
    "ExceptionResponse",
    "GeneralBlockTransfer",
    "GeneralCiphering",
    "GeneralDedCiphering",
    "GeneralGloCiphering",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "InitiateRequest",
    "InitiateResponse",
    "KeyInfo",
    "Mechanism",
    "MethodDescriptor",
    "SetRequestNormal",
    "SetRequestWithDatablock",
    "SetRequestWithFirstDatablock",
    "SetRequestWithList",
    "SetResponseDatablock",
    "SetResponseLastDatablock",
    "SetResponseNormal",
    "SetResponseWithList",
    "Tag",
    "decode_apdu",
    "decode_user_information",
]

LAYER = "dlms"
Buf: TypeAlias = bytes | memoryview


class Tag(enum.IntEnum):
    """APDU tags (first byte)."""

    INITIATE_REQUEST = 0x01
    INITIATE_RESPONSE = 0x08
    CONFIRMED_SERVICE_ERROR = 0x0E
    DATA_NOTIFICATION = 0x0F
    GLO_INITIATE_REQUEST = 0x21
    GLO_INITIATE_RESPONSE = 0x28
    GLO_CONFIRMED_SERVICE_ERROR = 0x2E
    DED_INITIATE_REQUEST = 0x41
    DED_INITIATE_RESPONSE = 0x48
    AARQ = 0x60
    AARE = 0x61
    RLRQ = 0x62
    RLRE = 0x63
    GET_REQUEST = 0xC0
    SET_REQUEST = 0xC1
    EVENT_NOTIFICATION_REQUEST = 0xC2
    ACTION_REQUEST = 0xC3
    GET_RESPONSE = 0xC4
    SET_RESPONSE = 0xC5
    ACTION_RESPONSE = 0xC7
    GLO_GET_REQUEST = 0xC8
    GLO_SET_REQUEST = 0xC9
    GLO_EVENT_NOTIFICATION_REQUEST = 0xCA
    GLO_ACTION_REQUEST = 0xCB
    GLO_GET_RESPONSE = 0xCC
    GLO_SET_RESPONSE = 0xCD
    GLO_ACTION_RESPONSE = 0xCF
    DED_GET_REQUEST = 0xD0
    DED_SET_REQUEST = 0xD1
    DED_EVENT_NOTIFICATION_REQUEST = 0xD2
    DED_ACTION_REQUEST = 0xD3
    DED_GET_RESPONSE = 0xD4
    DED_SET_RESPONSE = 0xD5
    DED_ACTION_RESPONSE = 0xD7
    EXCEPTION_RESPONSE = 0xD8
    GENERAL_GLO_CIPHERING = 0xDB
    GENERAL_DED_CIPHERING = 0xDC
    GENERAL_CIPHERING = 0xDD
    GENERAL_BLOCK_TRANSFER = 0xE0


# tags of glo-/ded-ciphered APDUs -> the plain tag they carry
CIPHERED_TAGS: dict[int, int] = {
    Tag.GLO_INITIATE_REQUEST: Tag.INITIATE_REQUEST,
    Tag.GLO_INITIATE_RESPONSE: Tag.INITIATE_RESPONSE,
    Tag.GLO_CONFIRMED_SERVICE_ERROR: Tag.CONFIRMED_SERVICE_ERROR,
    Tag.DED_INITIATE_REQUEST: Tag.INITIATE_REQUEST,
    Tag.DED_INITIATE_RESPONSE: Tag.INITIATE_RESPONSE,
    Tag.GLO_GET_REQUEST: Tag.GET_REQUEST,
    Tag.GLO_SET_REQUEST: Tag.SET_REQUEST,
    Tag.GLO_EVENT_NOTIFICATION_REQUEST: Tag.EVENT_NOTIFICATION_REQUEST,
    Tag.GLO_ACTION_REQUEST: Tag.ACTION_REQUEST,
    Tag.GLO_GET_RESPONSE: Tag.GET_RESPONSE,
    Tag.GLO_SET_RESPONSE: Tag.SET_RESPONSE,
    Tag.GLO_ACTION_RESPONSE: Tag.ACTION_RESPONSE,
    Tag.DED_GET_REQUEST: Tag.GET_REQUEST,
    Tag.DED_SET_REQUEST: Tag.SET_REQUEST,
    Tag.DED_EVENT_NOTIFICATION_REQUEST: Tag.EVENT_NOTIFICATION_REQUEST,
    Tag.DED_ACTION_REQUEST: Tag.ACTION_REQUEST,
    Tag.DED_GET_RESPONSE: Tag.GET_RESPONSE,
    Tag.DED_SET_RESPONSE: Tag.SET_RESPONSE,
    Tag.DED_ACTION_RESPONSE: Tag.ACTION_RESPONSE,
}


class _Reasoned(enum.IntEnum):
    @property
    def reason(self) -> str:
        return self.name.lower().replace("_", "-")


class DataAccessResult(_Reasoned):
    """Why a GET or SET of one attribute did not succeed (Green Book 9.3.9 Data-Access-Result)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_GET_ABORTED = 15
    NO_LONG_GET_IN_PROGRESS = 16
    LONG_SET_ABORTED = 17
    NO_LONG_SET_IN_PROGRESS = 18
    DATA_BLOCK_NUMBER_INVALID = 19
    OTHER_REASON = 250


class ActionResult(_Reasoned):
    """Result of an ACTION (Green Book 9.3.9 Action-Result)."""

    SUCCESS = 0
    HARDWARE_FAULT = 1
    TEMPORARY_FAILURE = 2
    READ_WRITE_DENIED = 3
    OBJECT_UNDEFINED = 4
    OBJECT_CLASS_INCONSISTENT = 9
    OBJECT_UNAVAILABLE = 11
    TYPE_UNMATCHED = 12
    SCOPE_OF_ACCESS_VIOLATED = 13
    DATA_BLOCK_UNAVAILABLE = 14
    LONG_ACTION_ABORTED = 15
    NO_LONG_ACTION_IN_PROGRESS = 16
    OTHER_REASON = 250


class AssociationResult(_Reasoned):
    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class ApplicationContext(_Reasoned):
    """Last arc of the application-context-name 2.16.756.5.8.1.x."""

    LOGICAL_NAME = 1
    SHORT_NAME = 2
    LOGICAL_NAME_CIPHERING = 3
    SHORT_NAME_CIPHERING = 4


class Mechanism(_Reasoned):
    """Last arc of the authentication mechanism name 2.16.756.5.8.2.x."""

    LOWEST = 0
    LOW = 1  # LLS: password
    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


class Conformance(enum.IntFlag):
    """The 24-bit conformance block (bit 0 of the Blue Book is the most significant bit)."""

    NONE = 0
    RESERVED_ZERO = 1 << 23
    GENERAL_PROTECTION = 1 << 22
    GENERAL_BLOCK_TRANSFER = 1 << 21
    READ = 1 << 20
    WRITE = 1 << 19
    UNCONFIRMED_WRITE = 1 << 18
    DELTA_VALUE_ENCODING = 1 << 17
    RESERVED_SEVEN = 1 << 16
    ATTRIBUTE0_SUPPORTED_WITH_SET = 1 << 15
    PRIORITY_MGMT_SUPPORTED = 1 << 14
    ATTRIBUTE0_SUPPORTED_WITH_GET = 1 << 13
    BLOCK_TRANSFER_WITH_GET_OR_READ = 1 << 12
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = 1 << 11
    BLOCK_TRANSFER_WITH_ACTION = 1 << 10
    MULTIPLE_REFERENCES = 1 << 9
    INFORMATION_REPORT = 1 << 8
    DATA_NOTIFICATION = 1 << 7
    ACCESS = 1 << 6
    PARAMETERIZED_ACCESS = 1 << 5
    GET = 1 << 4
    SET = 1 << 3
    SELECTIVE_ACCESS = 1 << 2
    EVENT_NOTIFICATION = 1 << 1
    ACTION = 1 << 0


# ---------------------------------------------------------------------------------------------------------------
# reading helpers (offsets are relative to the buffer given to decode_apdu)

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_ATTR = struct.Struct(">H6sb")
_METHOD = struct.Struct(">H6sb")


def _need(buf: Buf, pos: int, n: int, what: str) -> None:
    if pos + n > len(buf):
        raise FramingError(
            f"input ends inside {what}: {n} bytes needed, {len(buf) - pos} left", offset=pos, layer=LAYER
        )


def _byte(buf: Buf, pos: int, what: str) -> int:
    if pos >= len(buf):
        raise FramingError(f"input ends where {what} was expected", offset=pos, layer=LAYER)
    return buf[pos]


def _octets(buf: Buf, pos: int, what: str) -> tuple[bytes, int]:
    n, pos = decode_length(buf, pos)
    _need(buf, pos, n, what)
    return bytes(buf[pos : pos + n]), pos + n


def _enum(cls: type[_Reasoned], value: int, pos: int, what: str) -> _Reasoned:
    try:
        return cls(value)
    except ValueError:
        raise FramingError(f"{what} {value} is not defined", offset=pos, layer=LAYER) from None


def _dar(buf: Buf, pos: int) -> tuple[DataAccessResult, int]:
    value = _byte(buf, pos, "a data-access-result")
    result = _enum(DataAccessResult, value, pos, "data-access-result")
    assert isinstance(result, DataAccessResult)
    return result, pos + 1


def _data(buf: Buf, pos: int) -> tuple[Data, int]:
    return decode_data(buf, pos)


def _octet_string_data(value: bytes) -> bytes:
    return encode_length(len(value)) + value


# ---------------------------------------------------------------------------------------------------------------
# descriptors


@dataclass(frozen=True, slots=True)
class AttributeDescriptor:
    """cosem-attribute-descriptor: class id, logical name (OBIS) and attribute index."""

    class_id: int
    obis: ObisCode
    attribute: int = 2

    def encode(self) -> bytes:
        return _ATTR.pack(self.class_id, bytes(self.obis), self.attribute)

    @classmethod
    def decode(cls, buf: Buf, pos: int) -> tuple[AttributeDescriptor, int]:
        _need(buf, pos, 9, "an attribute descriptor")
        class_id, ln, attr = _ATTR.unpack_from(buf, pos)
        return cls(class_id, ObisCode.from_bytes(ln), attr), pos + 9


@dataclass(frozen=True, slots=True)
class MethodDescriptor:
    """cosem-method-descriptor: class id, logical name (OBIS) and method index."""

    class_id: int
    obis: ObisCode
    method: int = 1

    def encode(self) -> bytes:
        return _METHOD.pack(self.class_id, bytes(self.obis), self.method)

    @classmethod
    def decode(cls, buf: Buf, pos: int) -> tuple[MethodDescriptor, int]:
        _need(buf, pos, 9, "a method descriptor")
        class_id, ln, method = _METHOD.unpack_from(buf, pos)
        return cls(class_id, ObisCode.from_bytes(ln), method), pos + 9


@dataclass(frozen=True, slots=True)
class AccessSelection:
    """selective-access-descriptor: selector (1 = by range, 2 = by entry) and its parameters."""

    selector: int
    parameters: Data

    def encode(self) -> bytes:
        return bytes((self.selector,)) + encode_data(self.parameters)


def _encode_access(access: AccessSelection | None) -> bytes:
    return b"\x00" if access is None else b"\x01" + access.encode()


def _decode_access(buf: Buf, pos: int) -> tuple[AccessSelection | None, int]:
    flag = _byte(buf, pos, "the access-selection flag")
    if flag == 0:
        return None, pos + 1
    if flag != 1:
        raise FramingError(f"access-selection flag {flag} (expected 0 or 1)", offset=pos, layer=LAYER)
    selector = _byte(buf, pos + 1, "an access selector")
    params, end = _data(buf, pos + 2)
    return AccessSelection(selector, params), end


def _encode_result(result: Data | DataAccessResult) -> bytes:
    if isinstance(result, DataAccessResult):
        return bytes((1, result))
    return b"\x00" + encode_data(result)


def _decode_result(buf: Buf, pos: int) -> tuple[Data | DataAccessResult, int]:
    choice = _byte(buf, pos, "a get-data-result choice")
    if choice == 0:
        return _data(buf, pos + 1)
    if choice == 1:
        return _dar(buf, pos + 1)
    raise FramingError(
        f"get-data-result choice {choice} (expected 0 data or 1 result)", offset=pos, layer=LAYER
    )


# ---------------------------------------------------------------------------------------------------------------
# xDLMS initiate


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    """xDLMS InitiateRequest (carried in the AARQ's user-information)."""

    conformance: Conformance
    client_max_receive_pdu_size: int = 0xFFFF
    dlms_version: int = 6
    dedicated_key: bytes | None = field(default=None, repr=False)
    response_allowed: bool = True
    proposed_quality_of_service: int | None = None

    def encode(self) -> bytes:
        out = bytearray((Tag.INITIATE_REQUEST,))
        if self.dedicated_key is None:
            out.append(0)
        else:
            out += b"\x01" + _octet_string_data(self.dedicated_key)
        out += b"\x00" if self.response_allowed else b"\x01\x00"
        out += (
            b"\x00"
            if self.proposed_quality_of_service is None
            else bytes((1, self.proposed_quality_of_service))
        )
        out.append(self.dlms_version)
        out += b"\x5f\x1f\x04\x00" + int(self.conformance).to_bytes(3, "big")
        out += _U16.pack(self.client_max_receive_pdu_size)
        return bytes(out)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[InitiateRequest, int]:
        pos += 1
        key = None
        if _byte(buf, pos, "the dedicated-key flag"):
            key, pos = _octets(buf, pos + 1, "the dedicated key")
        else:
            pos += 1
        allowed = True
        if _byte(buf, pos, "the response-allowed flag"):
            allowed = bool(_byte(buf, pos + 1, "response-allowed"))
            pos += 2
        else:
            pos += 1
        qos = None
        if _byte(buf, pos, "the quality-of-service flag"):
            qos = _byte(buf, pos + 1, "quality-of-service")
            pos += 2
        else:
            pos += 1
        version = _byte(buf, pos, "the DLMS version")
        conformance, pos = _decode_conformance(buf, pos + 1)
        _need(buf, pos, 2, "client-max-receive-pdu-size")
        size = _U16.unpack_from(buf, pos)[0]
        return cls(conformance, size, version, key, allowed, qos), pos + 2


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """xDLMS InitiateResponse (carried in the AARE's user-information)."""

    conformance: Conformance
    server_max_receive_pdu_size: int
    dlms_version: int = 6
    vaa_name: int = 0x0007
    negotiated_quality_of_service: int | None = None

    def encode(self) -> bytes:
        out = bytearray((Tag.INITIATE_RESPONSE,))
        out += (
            b"\x00"
            if self.negotiated_quality_of_service is None
            else bytes((1, self.negotiated_quality_of_service))
        )
        out.append(self.dlms_version)
        out += b"\x5f\x1f\x04\x00" + int(self.conformance).to_bytes(3, "big")
        out += _U16.pack(self.server_max_receive_pdu_size) + _U16.pack(self.vaa_name)
        return bytes(out)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[InitiateResponse, int]:
        pos += 1
        qos = None
        if _byte(buf, pos, "the quality-of-service flag"):
            qos = _byte(buf, pos + 1, "quality-of-service")
            pos += 2
        else:
            pos += 1
        version = _byte(buf, pos, "the DLMS version")
        conformance, pos = _decode_conformance(buf, pos + 1)
        _need(buf, pos, 4, "server-max-receive-pdu-size and vaa-name")
        size, vaa = struct.unpack_from(">HH", buf, pos)
        return cls(conformance, size, version, vaa, qos), pos + 4


def _decode_conformance(buf: Buf, pos: int) -> tuple[Conformance, int]:
    _need(buf, pos, 7, "the conformance block")
    if bytes(buf[pos : pos + 4]) != b"\x5f\x1f\x04\x00":
        raise FramingError(
            f"conformance block starts {bytes(buf[pos : pos + 4]).hex().upper()} (expected 5F1F0400)",
            offset=pos,
            layer=LAYER,
        )
    return Conformance(int.from_bytes(buf[pos + 4 : pos + 7], "big")), pos + 7


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """confirmedServiceError: the service that failed (1 = initiate), the error kind and its value."""

    service: int
    error: int
    value: int

    def encode(self) -> bytes:
        return bytes((Tag.CONFIRMED_SERVICE_ERROR, self.service, self.error, self.value))

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[ConfirmedServiceError, int]:
        _need(buf, pos, 4, "a confirmed-service-error")
        return cls(buf[pos + 1], buf[pos + 2], buf[pos + 3]), pos + 4


# ---------------------------------------------------------------------------------------------------------------
# ciphered envelopes


@dataclass(frozen=True, slots=True)
class CipheredApdu:
    """A glo- or ded-ciphered APDU: its tag and ``SC || IC || ciphertext [|| tag]``."""

    tag: int
    ciphered: bytes

    def __post_init__(self) -> None:
        if self.tag not in CIPHERED_TAGS:
            raise ValueError(f"0x{self.tag:02X} is not a glo- or ded-ciphered APDU tag")

    @property
    def plain_tag(self) -> int:
        return CIPHERED_TAGS[self.tag]

    @property
    def dedicated(self) -> bool:
        return self.tag in (0x41, 0x48) or 0xD0 <= self.tag <= 0xD7

    def encode(self) -> bytes:
        return bytes((self.tag,)) + _octet_string_data(self.ciphered)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[CipheredApdu, int]:
        body, end = _octets(buf, pos + 1, "the ciphered content")
        return cls(buf[pos], body), end


@dataclass(frozen=True, slots=True)
class GeneralGloCiphering:
    """general-glo-ciphering (DB): the sender's system title and ``SC || IC || ciphertext [|| tag]``."""

    system_title: bytes
    ciphered: bytes

    TAG = Tag.GENERAL_GLO_CIPHERING

    def encode(self) -> bytes:
        return bytes((self.TAG,)) + _octet_string_data(self.system_title) + _octet_string_data(self.ciphered)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[GeneralGloCiphering, int]:
        title, pos = _octets(buf, pos + 1, "the system title")
        body, pos = _octets(buf, pos, "the ciphered content")
        return cls(title, body), pos


@dataclass(frozen=True, slots=True)
class GeneralDedCiphering(GeneralGloCiphering):
    """general-ded-ciphering (DC): as general-glo-ciphering, with the dedicated key."""

    TAG = Tag.GENERAL_DED_CIPHERING


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """key-info of general-ciphering: 0 identified key, 1 wrapped key, 2 agreed key."""

    kind: int
    key_id: int = 0
    key_parameters: bytes = b""
    key_ciphered_data: bytes = field(default=b"", repr=False)

    def encode(self) -> bytes:
        if self.kind == 0:
            return bytes((0, self.key_id))
        if self.kind == 1:
            return bytes((1, self.key_id)) + _octet_string_data(self.key_ciphered_data)
        return (
            bytes((2,)) + _octet_string_data(self.key_parameters) + _octet_string_data(self.key_ciphered_data)
        )

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[KeyInfo, int]:
        kind = _byte(buf, pos, "the key-info choice")
        if kind == 0:
            return cls(0, _byte(buf, pos + 1, "the key id")), pos + 2
        if kind == 1:
            kek = _byte(buf, pos + 1, "the kek id")
            data, end = _octets(buf, pos + 2, "the wrapped key")
            return cls(1, kek, b"", data), end
        if kind == 2:
            params, p = _octets(buf, pos + 1, "the key parameters")
            data, end = _octets(buf, p, "the agreed key data")
            return cls(2, 0, params, data), end
        raise FramingError(f"key-info choice {kind} (expected 0, 1 or 2)", offset=pos, layer=LAYER)


@dataclass(frozen=True, slots=True)
class GeneralCiphering:
    """general-ciphering (DD): transaction id, originator and recipient system titles, key info, content."""

    transaction_id: bytes
    originator_system_title: bytes
    recipient_system_title: bytes
    date_time: bytes
    other_information: bytes
    key_info: KeyInfo | None
    ciphered: bytes

    def encode(self) -> bytes:
        out = bytearray((Tag.GENERAL_CIPHERING,))
        for part in (
            self.transaction_id,
            self.originator_system_title,
            self.recipient_system_title,
            self.date_time,
            self.other_information,
        ):
            out += _octet_string_data(part)
        out += b"\x00" if self.key_info is None else b"\x01" + self.key_info.encode()
        out += _octet_string_data(self.ciphered)
        return bytes(out)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[GeneralCiphering, int]:
        pos += 1
        parts = []
        for what in (
            "transaction id",
            "originator system title",
            "recipient system title",
            "date-time",
            "other information",
        ):
            part, pos = _octets(buf, pos, f"the {what}")
            parts.append(part)
        key_info = None
        if _byte(buf, pos, "the key-info flag"):
            key_info, pos = KeyInfo.decode_at(buf, pos + 1)
        else:
            pos += 1
        body, pos = _octets(buf, pos, "the ciphered content")
        return cls(parts[0], parts[1], parts[2], parts[3], parts[4], key_info, body), pos


# ---------------------------------------------------------------------------------------------------------------
# ACSE (BER)

_CONTEXT_OID = bytes.fromhex("608574050801")
_MECHANISM_OID = bytes.fromhex("608574050802")

UserInformation: TypeAlias = InitiateRequest | InitiateResponse | ConfirmedServiceError | CipheredApdu


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag,)) + _ber_length(len(value)) + value


def _read_tlv(buf: Buf, pos: int, end: int) -> tuple[int, int, int]:
    """Return ``(tag, value_start, value_end)`` of the BER TLV at ``pos``."""
    if pos + 2 > end:
        raise FramingError("input ends inside a BER tag and length", offset=pos, layer=LAYER)
    tag = buf[pos]
    first = buf[pos + 1]
    p = pos + 2
    if first < 0x80:
        n = first
    else:
        size = first & 0x7F
        if size == 0 or size > 3 or p + size > end:
            raise FramingError(f"BER length of {size} bytes", offset=pos + 1, layer=LAYER)
        n = int.from_bytes(buf[p : p + size], "big")
        p += size
    if p + n > end:
        raise FramingError(
            f"BER element 0x{tag:02X} of {n} bytes runs past its container ({end - p} left)",
            offset=pos,
            layer=LAYER,
        )
    return tag, p, p + n


def _elements(buf: Buf, start: int, end: int) -> dict[int, tuple[int, int]]:
    found: dict[int, tuple[int, int]] = {}
    pos = start
    while pos < end:
        tag, vs, ve = _read_tlv(buf, pos, end)
        found[tag] = (vs, ve)
        pos = ve
    return found


def _inner(buf: Buf, span: tuple[int, int], tag: int, what: str) -> tuple[int, int]:
    t, vs, ve = _read_tlv(buf, span[0], span[1])
    if t != tag:
        raise FramingError(f"{what} holds tag 0x{t:02X} (expected 0x{tag:02X})", offset=span[0], layer=LAYER)
    return vs, ve


def _oid_arc(buf: Buf, span: tuple[int, int], prefix: bytes, what: str) -> int:
    value = bytes(buf[span[0] : span[1]])
    if len(value) != 7 or not value.startswith(prefix):
        raise UnsupportedError(
            f"{what} {value.hex().upper()} is not a DLMS UA name", offset=span[0], layer=LAYER
        )
    return value[6]


def _encode_user_information(info: UserInformation | None) -> bytes:
    if info is None:
        return b""
    return _tlv(0xBE, _tlv(0x04, info.encode()))


def decode_user_information(buf: Buf, pos: int = 0, end: int | None = None) -> UserInformation:
    """Decode the xDLMS APDU inside a user-information field (plain or ciphered)."""
    end = len(buf) if end is None else end
    tag = _byte(buf, pos, "an xDLMS initiate APDU")
    view = buf[:end]
    result: UserInformation
    if tag == Tag.INITIATE_REQUEST:
        result, p = InitiateRequest.decode_at(view, pos)
    elif tag == Tag.INITIATE_RESPONSE:
        result, p = InitiateResponse.decode_at(view, pos)
    elif tag == Tag.CONFIRMED_SERVICE_ERROR:
        result, p = ConfirmedServiceError.decode_at(view, pos)
    elif tag in CIPHERED_TAGS:
        result, p = CipheredApdu.decode_at(view, pos)
    else:
        raise UnsupportedError(f"user-information carries tag 0x{tag:02X}", offset=pos, layer=LAYER)
    if p != end:
        raise FramingError(f"{end - p} bytes after the user-information APDU", offset=p, layer=LAYER)
    return result


def _user_information(buf: Buf, found: dict[int, tuple[int, int]]) -> UserInformation | None:
    span = found.get(0xBE)
    if span is None:
        return None
    vs, ve = _inner(buf, span, 0x04, "user-information")
    return decode_user_information(buf, vs, ve)


def _ap_title(buf: Buf, found: dict[int, tuple[int, int]], tag: int) -> bytes | None:
    span = found.get(tag)
    if span is None:
        return None
    vs, ve = _inner(buf, span, 0x04, "AP title")
    return bytes(buf[vs:ve])


def _auth_value(buf: Buf, found: dict[int, tuple[int, int]], tag: int) -> bytes | None:
    span = found.get(tag)
    if span is None:
        return None
    vs, ve = _inner(buf, span, 0x80, "authentication value")
    return bytes(buf[vs:ve])


@dataclass(frozen=True, slots=True)
class AARQ:
    """A-ASSOCIATE request. ``authentication_value`` is the LLS password or the HLS challenge (CtoS)."""

    user_information: UserInformation | None
    application_context: ApplicationContext = ApplicationContext.LOGICAL_NAME
    mechanism: Mechanism | None = None
    authentication_value: bytes | None = field(default=None, repr=False)
    calling_ap_title: bytes | None = None

    def encode(self) -> bytes:
        body = _tlv(0xA1, _tlv(0x06, _CONTEXT_OID + bytes((self.application_context,))))
        if self.calling_ap_title is not None:
            body += _tlv(0xA6, _tlv(0x04, self.calling_ap_title))
        if self.mechanism is not None:
            body += b"\x8a\x02\x07\x80" + _tlv(0x8B, _MECHANISM_OID + bytes((self.mechanism,)))
        if self.authentication_value is not None:
            body += _tlv(0xAC, _tlv(0x80, self.authentication_value))
        body += _encode_user_information(self.user_information)
        return _tlv(Tag.AARQ, body)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[AARQ, int]:
        _, vs, ve = _read_tlv(buf, pos, len(buf))
        found = _elements(buf, vs, ve)
        if 0xA1 not in found:
            raise FramingError("AARQ has no application-context-name", offset=pos, layer=LAYER)
        ctx = _oid_arc(
            buf, _inner(buf, found[0xA1], 0x06, "application-context-name"), _CONTEXT_OID, "context"
        )
        mechanism = None
        if 0x8B in found:
            mechanism = _oid_arc(buf, found[0x8B], _MECHANISM_OID, "mechanism name")
        return (
            cls(
                _user_information(buf, found),
                _enum(ApplicationContext, ctx, pos, "application context"),  # type: ignore[arg-type]
                None if mechanism is None else _enum(Mechanism, mechanism, pos, "mechanism"),  # type: ignore[arg-type]
                _auth_value(buf, found, 0xAC),
                _ap_title(buf, found, 0xA6),
            ),
            ve,
        )


@dataclass(frozen=True, slots=True)
class AARE:
    """A-ASSOCIATE response. ``diagnostic_source`` is 1 (acse-service-user) or 2 (acse-service-provider)."""

    result: AssociationResult
    user_information: UserInformation | None
    application_context: ApplicationContext = ApplicationContext.LOGICAL_NAME
    diagnostic: int = 0
    diagnostic_source: int = 1
    responding_ap_title: bytes | None = None
    mechanism: Mechanism | None = None
    authentication_value: bytes | None = None

    def encode(self) -> bytes:
        body = _tlv(0xA1, _tlv(0x06, _CONTEXT_OID + bytes((self.application_context,))))
        body += _tlv(0xA2, _tlv(0x02, bytes((self.result,))))
        body += _tlv(0xA3, _tlv(0xA0 | self.diagnostic_source, _tlv(0x02, bytes((self.diagnostic,)))))
        if self.responding_ap_title is not None:
            body += _tlv(0xA4, _tlv(0x04, self.responding_ap_title))
        if self.mechanism is not None:
            body += b"\x88\x02\x07\x80" + _tlv(0x89, _MECHANISM_OID + bytes((self.mechanism,)))
        if self.authentication_value is not None:
            body += _tlv(0xAA, _tlv(0x80, self.authentication_value))
        body += _encode_user_information(self.user_information)
        return _tlv(Tag.AARE, body)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[AARE, int]:
        _, vs, ve = _read_tlv(buf, pos, len(buf))
        found = _elements(buf, vs, ve)
        for tag, what in ((0xA1, "application-context-name"), (0xA2, "result"), (0xA3, "diagnostic")):
            if tag not in found:
                raise FramingError(f"AARE has no {what}", offset=pos, layer=LAYER)
        ctx = _oid_arc(
            buf, _inner(buf, found[0xA1], 0x06, "application-context-name"), _CONTEXT_OID, "context"
        )
        rs, re_ = _inner(buf, found[0xA2], 0x02, "result")
        if re_ - rs != 1:
            raise FramingError("AARE result is not one byte", offset=rs, layer=LAYER)
        dtag, ds, de = _read_tlv(buf, found[0xA3][0], found[0xA3][1])
        if dtag not in (0xA1, 0xA2):
            raise FramingError(f"diagnostic source tag 0x{dtag:02X}", offset=found[0xA3][0], layer=LAYER)
        vs2, ve2 = _inner(buf, (ds, de), 0x02, "diagnostic")
        if ve2 - vs2 != 1:
            raise FramingError("AARE diagnostic is not one byte", offset=vs2, layer=LAYER)
        mechanism = None
        if 0x89 in found:
            mechanism = _oid_arc(buf, found[0x89], _MECHANISM_OID, "mechanism name")
        return (
            cls(
                _enum(AssociationResult, buf[rs], rs, "association result"),  # type: ignore[arg-type]
                _user_information(buf, found),
                _enum(ApplicationContext, ctx, pos, "application context"),  # type: ignore[arg-type]
                buf[vs2],
                dtag & 0x0F,
                _ap_title(buf, found, 0xA4),
                None if mechanism is None else _enum(Mechanism, mechanism, pos, "mechanism"),  # type: ignore[arg-type]
                _auth_value(buf, found, 0xAA),
            ),
            ve,
        )

    @property
    def accepted(self) -> bool:
        return self.result is AssociationResult.ACCEPTED


@dataclass(frozen=True, slots=True)
class RLRQ:
    """A-RELEASE request (reason 0 = normal)."""

    reason: int | None = 0
    user_information: UserInformation | None = None

    TAG = Tag.RLRQ

    def encode(self) -> bytes:
        body = b"" if self.reason is None else _tlv(0x80, bytes((self.reason,)))
        return _tlv(self.TAG, body + _encode_user_information(self.user_information))

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[RLRQ, int]:
        _, vs, ve = _read_tlv(buf, pos, len(buf))
        found = _elements(buf, vs, ve)
        reason = None
        if 0x80 in found:
            s, e = found[0x80]
            if e - s != 1:
                raise FramingError("release reason is not one byte", offset=s, layer=LAYER)
            reason = buf[s]
        return cls(reason, _user_information(buf, found)), ve


@dataclass(frozen=True, slots=True)
class RLRE(RLRQ):
    """A-RELEASE response (reason 0 = normal)."""

    TAG = Tag.RLRE


# ---------------------------------------------------------------------------------------------------------------
# GET


@dataclass(frozen=True, slots=True)
class GetRequestNormal:
    invoke_id: int
    attribute: AttributeDescriptor
    access: AccessSelection | None = None

    def encode(self) -> bytes:
        return (
            bytes((Tag.GET_REQUEST, 1, self.invoke_id))
            + self.attribute.encode()
            + _encode_access(self.access)
        )


@dataclass(frozen=True, slots=True)
class GetRequestNext:
    invoke_id: int
    block_number: int

    def encode(self) -> bytes:
        return bytes((Tag.GET_REQUEST, 2, self.invoke_id)) + _U32.pack(self.block_number)


@dataclass(frozen=True, slots=True)
class GetRequestWithList:
    invoke_id: int
    attributes: tuple[tuple[AttributeDescriptor, AccessSelection | None], ...]

    def encode(self) -> bytes:
        out = bytearray((Tag.GET_REQUEST, 3, self.invoke_id))
        out += encode_length(len(self.attributes))
        for attr, access in self.attributes:
            out += attr.encode() + _encode_access(access)
        return bytes(out)


def _decode_get_request(
    buf: Buf, pos: int
) -> tuple[GetRequestNormal | GetRequestNext | GetRequestWithList, int]:
    _need(buf, pos, 3, "a get-request header")
    choice, invoke = buf[pos + 1], buf[pos + 2]
    p = pos + 3
    if choice == 1:
        attr, p = AttributeDescriptor.decode(buf, p)
        access, p = _decode_access(buf, p)
        return GetRequestNormal(invoke, attr, access), p
    if choice == 2:
        _need(buf, p, 4, "a block number")
        return GetRequestNext(invoke, _U32.unpack_from(buf, p)[0]), p + 4
    if choice == 3:
        count, p = decode_length(buf, p)
        if count * 10 > len(buf) - p:
            raise FramingError(f"get-request-with-list of {count} attributes", offset=pos + 3, layer=LAYER)
        items = []
        for _ in range(count):
            attr, p = AttributeDescriptor.decode(buf, p)
            access, p = _decode_access(buf, p)
            items.append((attr, access))
        return GetRequestWithList(invoke, tuple(items)), p
    raise UnsupportedError(f"get-request choice {choice}", offset=pos + 1, layer=LAYER)


@dataclass(frozen=True, slots=True)
class GetResponseNormal:
    invoke_id: int
    result: Data | DataAccessResult

    def encode(self) -> bytes:
        return bytes((Tag.GET_RESPONSE, 1, self.invoke_id)) + _encode_result(self.result)


@dataclass(frozen=True, slots=True)
class GetResponseWithDatablock:
    """One block of a long GET answer: ``raw_data`` is a slice of the encoded ``Data``."""

    invoke_id: int
    last_block: bool
    block_number: int
    raw_data: bytes | DataAccessResult

    def encode(self) -> bytes:
        head = bytes((Tag.GET_RESPONSE, 2, self.invoke_id, 1 if self.last_block else 0)) + _U32.pack(
            self.block_number
        )
        if isinstance(self.raw_data, DataAccessResult):
            return head + bytes((1, self.raw_data))
        return head + b"\x00" + _octet_string_data(self.raw_data)


@dataclass(frozen=True, slots=True)
class GetResponseWithList:
    invoke_id: int
    results: tuple[Data | DataAccessResult, ...]

    def encode(self) -> bytes:
        out = bytearray((Tag.GET_RESPONSE, 3, self.invoke_id))
        out += encode_length(len(self.results))
        for r in self.results:
            out += _encode_result(r)
        return bytes(out)


def _decode_get_response(
    buf: Buf, pos: int
) -> tuple[GetResponseNormal | GetResponseWithDatablock | GetResponseWithList, int]:
    _need(buf, pos, 3, "a get-response header")
    choice, invoke = buf[pos + 1], buf[pos + 2]
    p = pos + 3
    if choice == 1:
        result, p = _decode_result(buf, p)
        return GetResponseNormal(invoke, result), p
    if choice == 2:
        _need(buf, p, 6, "a data block header")
        last = buf[p]
        if last > 1:
            raise FramingError(f"last-block flag {last}", offset=p, layer=LAYER)
        number = _U32.unpack_from(buf, p + 1)[0]
        kind = buf[p + 5]
        if kind == 0:
            raw, p = _octets(buf, p + 6, "the raw data block")
            return GetResponseWithDatablock(invoke, bool(last), number, raw), p
        if kind == 1:
            dar, p = _dar(buf, p + 6)
            return GetResponseWithDatablock(invoke, bool(last), number, dar), p
        raise FramingError(f"data block result choice {kind}", offset=p + 5, layer=LAYER)
    if choice == 3:
        count, p = decode_length(buf, p)
        if count * 2 > len(buf) - p:
            raise FramingError(f"get-response-with-list of {count} results", offset=pos + 3, layer=LAYER)
        results = []
        for _ in range(count):
            r, p = _decode_result(buf, p)
            results.append(r)
        return GetResponseWithList(invoke, tuple(results)), p
    raise UnsupportedError(f"get-response choice {choice}", offset=pos + 1, layer=LAYER)


# ---------------------------------------------------------------------------------------------------------------
# SET


@dataclass(frozen=True, slots=True)
class SetRequestNormal:
    invoke_id: int
    attribute: AttributeDescriptor
    value: Data
    access: AccessSelection | None = None

    def encode(self) -> bytes:
        return (
            bytes((Tag.SET_REQUEST, 1, self.invoke_id))
            + self.attribute.encode()
            + _encode_access(self.access)
            + encode_data(self.value)
        )


def _encode_block(last: bool, number: int, raw: bytes) -> bytes:
    return bytes((1 if last else 0,)) + _U32.pack(number) + _octet_string_data(raw)


def _decode_block(buf: Buf, pos: int) -> tuple[bool, int, bytes, int]:
    _need(buf, pos, 5, "a data block header")
    last = buf[pos]
    if last > 1:
        raise FramingError(f"last-block flag {last}", offset=pos, layer=LAYER)
    raw, end = _octets(buf, pos + 5, "the raw data block")
    return bool(last), _U32.unpack_from(buf, pos + 1)[0], raw, end


@dataclass(frozen=True, slots=True)
class SetRequestWithFirstDatablock:
    invoke_id: int
    attribute: AttributeDescriptor
    last_block: bool
    block_number: int
    raw_data: bytes
    access: AccessSelection | None = None

    def encode(self) -> bytes:
        return (
            bytes((Tag.SET_REQUEST, 2, self.invoke_id))
            + self.attribute.encode()
            + _encode_access(self.access)
            + _encode_block(self.last_block, self.block_number, self.raw_data)
        )


@dataclass(frozen=True, slots=True)
class SetRequestWithDatablock:
    invoke_id: int
    last_block: bool
    block_number: int
    raw_data: bytes

    def encode(self) -> bytes:
        return bytes((Tag.SET_REQUEST, 3, self.invoke_id)) + _encode_block(
            self.last_block, self.block_number, self.raw_data
        )


@dataclass(frozen=True, slots=True)
class SetRequestWithList:
    invoke_id: int
    attributes: tuple[tuple[AttributeDescriptor, AccessSelection | None], ...]
    values: tuple[Data, ...]

    def __post_init__(self) -> None:
        if len(self.attributes) != len(self.values):
            raise ValueError("set-request-with-list needs one value per attribute")

    def encode(self) -> bytes:
        out = bytearray((Tag.SET_REQUEST, 4, self.invoke_id))
        out += encode_length(len(self.attributes))
        for attr, access in self.attributes:
            out += attr.encode() + _encode_access(access)
        out += encode_length(len(self.values))
        for v in self.values:
            out += encode_data(v)
        return bytes(out)


_SetRequest: TypeAlias = (
    SetRequestNormal | SetRequestWithFirstDatablock | SetRequestWithDatablock | SetRequestWithList
)


def _decode_set_request(buf: Buf, pos: int) -> tuple[_SetRequest, int]:
    _need(buf, pos, 3, "a set-request header")
    choice, invoke = buf[pos + 1], buf[pos + 2]
    p = pos + 3
    if choice in (1, 2):
        attr, p = AttributeDescriptor.decode(buf, p)
        access, p = _decode_access(buf, p)
        if choice == 1:
            value, p = _data(buf, p)
            return SetRequestNormal(invoke, attr, value, access), p
        last, number, raw, p = _decode_block(buf, p)
        return SetRequestWithFirstDatablock(invoke, attr, last, number, raw, access), p
    if choice == 3:
        last, number, raw, p = _decode_block(buf, p)
        return SetRequestWithDatablock(invoke, last, number, raw), p
    if choice == 4:
        count, p = decode_length(buf, p)
        if count * 10 > len(buf) - p:
            raise FramingError(f"set-request-with-list of {count} attributes", offset=pos + 3, layer=LAYER)
        attrs = []
        for _ in range(count):
            attr, p = AttributeDescriptor.decode(buf, p)
            access, p = _decode_access(buf, p)
            attrs.append((attr, access))
        nvalues, q = decode_length(buf, p)
        if nvalues != count:
            raise FramingError(f"{nvalues} values for {count} attributes", offset=p, layer=LAYER)
        values = []
        for _ in range(count):
            v, q = _data(buf, q)
            values.append(v)
        return SetRequestWithList(invoke, tuple(attrs), tuple(values)), q
    raise UnsupportedError(f"set-request choice {choice}", offset=pos + 1, layer=LAYER)


@dataclass(frozen=True, slots=True)
class SetResponseNormal:
    invoke_id: int
    result: DataAccessResult

    def encode(self) -> bytes:
        return bytes((Tag.SET_RESPONSE, 1, self.invoke_id, self.result))


@dataclass(frozen=True, slots=True)
class SetResponseDatablock:
    invoke_id: int
    block_number: int

    def encode(self) -> bytes:
        return bytes((Tag.SET_RESPONSE, 2, self.invoke_id)) + _U32.pack(self.block_number)


@dataclass(frozen=True, slots=True)
class SetResponseLastDatablock:
    invoke_id: int
    result: DataAccessResult
    block_number: int

    def encode(self) -> bytes:
        return bytes((Tag.SET_RESPONSE, 3, self.invoke_id, self.result)) + _U32.pack(self.block_number)


@dataclass(frozen=True, slots=True)
class SetResponseWithList:
    invoke_id: int
    results: tuple[DataAccessResult, ...]

    def encode(self) -> bytes:
        return (
            bytes((Tag.SET_RESPONSE, 5, self.invoke_id))
            + encode_length(len(self.results))
            + bytes(int(r) for r in self.results)
        )


_SetResponse: TypeAlias = (
    SetResponseNormal | SetResponseDatablock | SetResponseLastDatablock | SetResponseWithList
)


def _decode_set_response(buf: Buf, pos: int) -> tuple[_SetResponse, int]:
    _need(buf, pos, 3, "a set-response header")
    choice, invoke = buf[pos + 1], buf[pos + 2]
    p = pos + 3
    if choice == 1:
        dar, p = _dar(buf, p)
        return SetResponseNormal(invoke, dar), p
    if choice == 2:
        _need(buf, p, 4, "a block number")
        return SetResponseDatablock(invoke, _U32.unpack_from(buf, p)[0]), p + 4
    if choice == 3:
        dar, p = _dar(buf, p)
        _need(buf, p, 4, "a block number")
        return SetResponseLastDatablock(invoke, dar, _U32.unpack_from(buf, p)[0]), p + 4
    if choice == 5:
        count, p = decode_length(buf, p)
        results = []
        for _ in range(count):
            dar, p = _dar(buf, p)
            results.append(dar)
        return SetResponseWithList(invoke, tuple(results)), p
    raise UnsupportedError(f"set-response choice {choice}", offset=pos + 1, layer=LAYER)


# ---------------------------------------------------------------------------------------------------------------
# ACTION


@dataclass(frozen=True, slots=True)
class ActionRequestNormal:
    invoke_id: int
    method: MethodDescriptor
    parameters: Data | None = None

    def encode(self) -> bytes:
        out = bytes((Tag.ACTION_REQUEST, 1, self.invoke_id)) + self.method.encode()
        return out + (b"\x00" if self.parameters is None else b"\x01" + encode_data(self.parameters))


def _decode_action_request(buf: Buf, pos: int) -> tuple[ActionRequestNormal, int]:
    _need(buf, pos, 3, "an action-request header")
    choice, invoke = buf[pos + 1], buf[pos + 2]
    if choice != 1:
        raise UnsupportedError(f"action-request choice {choice} (only normal)", offset=pos + 1, layer=LAYER)
    method, p = MethodDescriptor.decode(buf, pos + 3)
    flag = _byte(buf, p, "the parameters flag")
    if flag == 0:
        return ActionRequestNormal(invoke, method), p + 1
    params, p = _data(buf, p + 1)
    return ActionRequestNormal(invoke, method, params), p


@dataclass(frozen=True, slots=True)
class ActionResponseNormal:
    invoke_id: int
    result: ActionResult
    return_parameters: Data | DataAccessResult | None = None

    def encode(self) -> bytes:
        out = bytes((Tag.ACTION_RESPONSE, 1, self.invoke_id, self.result))
        if self.return_parameters is None:
            return out + b"\x00"
        return out + b"\x01" + _encode_result(self.return_parameters)


def _decode_action_response(buf: Buf, pos: int) -> tuple[ActionResponseNormal, int]:
    _need(buf, pos, 5, "an action-response")
    choice, invoke = buf[pos + 1], buf[pos + 2]
    if choice != 1:
        raise UnsupportedError(f"action-response choice {choice} (only normal)", offset=pos + 1, layer=LAYER)
    result = _enum(ActionResult, buf[pos + 3], pos + 3, "action-result")
    assert isinstance(result, ActionResult)
    if buf[pos + 4] == 0:
        return ActionResponseNormal(invoke, result), pos + 5
    params, p = _decode_result(buf, pos + 5)
    return ActionResponseNormal(invoke, result, params), p


# ---------------------------------------------------------------------------------------------------------------
# exception, notifications, block transfer


_STATE_ERRORS = {1: "service-not-allowed", 2: "service-unknown"}
_SERVICE_ERRORS = {
    1: "operation-not-possible",
    2: "service-not-supported",
    3: "other-reason",
    4: "pdu-too-long",
    5: "deciphering-error",
    6: "invocation-counter-error",
}


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """state-error: 1 service-not-allowed, 2 service-unknown; service-error: 1 operation-not-possible,
    2 service-not-supported, 3 other-reason, 4 pdu-too-long, 5 deciphering-error, 6 invocation-counter-error."""

    state_error: int
    service_error: int
    invocation_counter: int | None = None

    def encode(self) -> bytes:
        out = bytes((Tag.EXCEPTION_RESPONSE, self.state_error, self.service_error))
        return out + (b"" if self.invocation_counter is None else _U32.pack(self.invocation_counter))

    @property
    def reason(self) -> str:
        state = _STATE_ERRORS.get(self.state_error, f"state-error {self.state_error}")
        service = _SERVICE_ERRORS.get(self.service_error, f"service-error {self.service_error}")
        extra = (
            "" if self.invocation_counter is None else f" (meter expects counter {self.invocation_counter})"
        )
        return f"{state}, {service}{extra}"

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[ExceptionResponse, int]:
        _need(buf, pos, 3, "an exception-response")
        state, service = buf[pos + 1], buf[pos + 2]
        if service == 6:
            _need(buf, pos + 3, 4, "the invocation counter")
            return cls(state, service, _U32.unpack_from(buf, pos + 3)[0]), pos + 7
        return cls(state, service), pos + 3


@dataclass(frozen=True, slots=True)
class DataNotification:
    """Data-Notification: long-invoke-id-and-priority, optional date-time, notification body."""

    long_invoke_id: int
    date_time: CosemDateTime | None
    body: Data

    def encode(self) -> bytes:
        stamp = b"\x00" if self.date_time is None else b"\x0c" + self.date_time.encode()
        return (
            bytes((Tag.DATA_NOTIFICATION,)) + _U32.pack(self.long_invoke_id) + stamp + encode_data(self.body)
        )

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[DataNotification, int]:
        _need(buf, pos, 6, "a data-notification header")
        invoke = _U32.unpack_from(buf, pos + 1)[0]
        n = buf[pos + 5]
        p = pos + 6
        stamp = None
        if n == 12:
            stamp = CosemDateTime.decode(buf, p)
            p += 12
        elif n:
            raise FramingError(
                f"data-notification date-time of {n} bytes (expected 0 or 12)", offset=pos + 5, layer=LAYER
            )
        body, p = _data(buf, p)
        return cls(invoke, stamp, body), p


@dataclass(frozen=True, slots=True)
class EventNotificationRequest:
    """Event-Notification-Request: optional time (octet-string), attribute descriptor, value."""

    attribute: AttributeDescriptor
    value: Data
    time: bytes | None = None

    def encode(self) -> bytes:
        stamp = b"\x00" if self.time is None else b"\x01" + _octet_string_data(self.time)
        return (
            bytes((Tag.EVENT_NOTIFICATION_REQUEST,))
            + stamp
            + self.attribute.encode()
            + encode_data(self.value)
        )

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[EventNotificationRequest, int]:
        flag = _byte(buf, pos + 1, "the time flag")
        p = pos + 2
        stamp = None
        if flag:
            stamp, p = _octets(buf, p, "the event time")
        attr, p = AttributeDescriptor.decode(buf, p)
        value, p = _data(buf, p)
        return cls(attr, value, stamp), p


@dataclass(frozen=True, slots=True)
class GeneralBlockTransfer:
    """General-Block-Transfer (E0): block-control (last, streaming, window), numbers, one block of data."""

    last_block: bool
    block_number: int
    block_data: bytes
    block_number_ack: int = 0
    streaming: bool = False
    window: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.window <= 0x3F:
            raise ValueError(f"window {self.window} out of range 0..63")
        if not 0 <= self.block_number <= 0xFFFF or not 0 <= self.block_number_ack <= 0xFFFF:
            raise ValueError("block numbers are 16 bits")

    def encode(self) -> bytes:
        control = (0x80 if self.last_block else 0) | (0x40 if self.streaming else 0) | self.window
        return struct.pack(
            ">BBHH", Tag.GENERAL_BLOCK_TRANSFER, control, self.block_number, self.block_number_ack
        ) + _octet_string_data(self.block_data)

    @classmethod
    def decode_at(cls, buf: Buf, pos: int) -> tuple[GeneralBlockTransfer, int]:
        _need(buf, pos, 6, "a general-block-transfer header")
        _, control, number, ack = struct.unpack_from(">BBHH", buf, pos)
        data, p = _octets(buf, pos + 6, "the block data")
        return cls(bool(control & 0x80), number, data, ack, bool(control & 0x40), control & 0x3F), p


# ---------------------------------------------------------------------------------------------------------------
# the one entry point

Apdu: TypeAlias = (
    AARQ
    | AARE
    | RLRQ
    | RLRE
    | InitiateRequest
    | InitiateResponse
    | ConfirmedServiceError
    | GetRequestNormal
    | GetRequestNext
    | GetRequestWithList
    | GetResponseNormal
    | GetResponseWithDatablock
    | GetResponseWithList
    | _SetRequest
    | _SetResponse
    | ActionRequestNormal
    | ActionResponseNormal
    | ExceptionResponse
    | DataNotification
    | EventNotificationRequest
    | GeneralBlockTransfer
    | CipheredApdu
    | GeneralGloCiphering
    | GeneralCiphering
)
_ApduDecoder = Callable[[Buf, int], tuple[Apdu, int]]


def _build_table() -> tuple[_ApduDecoder | None, ...]:
    table: list[_ApduDecoder | None] = [None] * 256
    table[Tag.AARQ] = AARQ.decode_at
    table[Tag.AARE] = AARE.decode_at
    table[Tag.RLRQ] = RLRQ.decode_at
    table[Tag.RLRE] = RLRE.decode_at
    table[Tag.INITIATE_REQUEST] = InitiateRequest.decode_at
    table[Tag.INITIATE_RESPONSE] = InitiateResponse.decode_at
    table[Tag.CONFIRMED_SERVICE_ERROR] = ConfirmedServiceError.decode_at
    table[Tag.GET_REQUEST] = _decode_get_request
    table[Tag.GET_RESPONSE] = _decode_get_response
    table[Tag.SET_REQUEST] = _decode_set_request
    table[Tag.SET_RESPONSE] = _decode_set_response
    table[Tag.ACTION_REQUEST] = _decode_action_request
    table[Tag.ACTION_RESPONSE] = _decode_action_response
    table[Tag.EXCEPTION_RESPONSE] = ExceptionResponse.decode_at
    table[Tag.DATA_NOTIFICATION] = DataNotification.decode_at
    table[Tag.EVENT_NOTIFICATION_REQUEST] = EventNotificationRequest.decode_at
    table[Tag.GENERAL_BLOCK_TRANSFER] = GeneralBlockTransfer.decode_at
    table[Tag.GENERAL_GLO_CIPHERING] = GeneralGloCiphering.decode_at
    table[Tag.GENERAL_DED_CIPHERING] = GeneralDedCiphering.decode_at
    table[Tag.GENERAL_CIPHERING] = GeneralCiphering.decode_at
    for tag in CIPHERED_TAGS:
        table[tag] = CipheredApdu.decode_at
    return tuple(table)


_TABLE = _build_table()


def decode_apdu(data: Buf) -> Apdu:
    """Decode exactly one APDU that fills ``data``; offsets in errors count from its first byte."""
    if not data:
        raise FramingError("empty APDU", offset=0, layer=LAYER)
    fn = _TABLE[data[0]]
    if fn is None:
        raise UnsupportedError(f"unknown APDU tag 0x{data[0]:02X}", offset=0, layer=LAYER)
    try:
        apdu, end = fn(data, 0)
    except ProtocolError:
        raise
    except ValueError as exc:  # a field out of its range when the value object was made
        raise FramingError(f"invalid APDU field: {exc}", offset=0, layer=LAYER) from None
    if end != len(data):
        raise FramingError(f"{len(data) - end} bytes after the APDU", offset=end, layer=LAYER)
    return apdu
