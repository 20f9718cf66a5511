"""EN 13757-3 application layer: what a long frame carries.

Slave to master (RSP_UD):

* :class:`VariableDataResponse` - CI 0x72 / 0x76 (long header), 0x7A (short header),
  0x78 (no header): fixed header plus variable data records,
* :class:`FixedDataResponse` - CI 0x73 / 0x77: the fixed data structure (two counters),
* CI 0x70 application error: :func:`decode_response` raises :class:`SlaveApplicationError`
  (:class:`ApplicationErrorResponse` encodes it for the slave role).

Master to slave (SND_UD with CI 0x51 "data send") records are decoded by
:func:`decode_data_send`. Encoding for the slave role: :func:`encode_variable_response`,
:func:`encode_fixed_response`, ``ApplicationErrorResponse.to_frame``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from meterbridge.errors import FramingError, ProtocolError, UnsupportedError
from meterbridge.protocols.mbus import datatypes as dt
from meterbridge.protocols.mbus.link import (
    C_RSP_UD,
    CI_DATA_SEND,
    ControlFrame,
    Frame,
    LongFrame,
    SecondaryAddress,
)
from meterbridge.protocols.mbus.records import (
    DataRecord,
    RecordSpec,
    RecordValue,
    decode_records,
    encode_records,
)
from meterbridge.protocols.mbus.tables import (
    FIXED_UNIT,
    MEDIUM,
    MEDIUM_TEXT,
    FixedUnit,
    manufacturer_code,
    manufacturer_id,
)

__all__ = [
    "APPLICATION_ERRORS",
    "CI_FIXED",
    "CI_VARIABLE",
    "ApplicationErrorResponse",
    "FixedCounter",
    "FixedDataResponse",
    "Response",
    "SlaveApplicationError",
    "VariableDataResponse",
    "decode_data_send",
    "decode_response",
    "encode_fixed_response",
    "encode_variable_response",
]

LAYER: Final = "mbus"
CI_ERROR: Final = 0x70
CI_VARIABLE: Final = frozenset((0x72, 0x76, 0x7A, 0x78))
CI_FIXED: Final = frozenset((0x73, 0x77))
_HEADER_START: Final = 7  # offset of the first data byte in a long frame (68 L L 68 C A CI)

APPLICATION_ERRORS: Final[tuple[str, ...]] = (
    "Unspecified error",
    "Unimplemented CI-Field",
    "Buffer too long, truncated",
    "Too many records",
    "Premature end of record",
    "More than 10 DIFE´s",
    "More than 10 VIFE´s",
    "Reserved",
    "Application busy",
    "Too many readouts",
)

FIXED_MEDIUM: Final[tuple[tuple[str, str], ...]] = (
    ("other", "Other"),
    ("oil", "Oil"),
    ("electricity", "Electricity"),
    ("gas", "Gas"),
    ("heat", "Heat"),
    ("steam", "Steam"),
    ("hot_water", "Hot Water"),
    ("water", "Water"),
    ("heat_cost_allocator", "H.C.A."),
    ("reserved", "Reserved"),
    ("gas_mode_2", "Gas Mode 2"),
    ("heat_mode_2", "Heat Mode 2"),
    ("hot_water_mode_2", "Hot Water Mode 2"),
    ("water_mode_2", "Water Mode 2"),
    ("heat_cost_allocator_mode_2", "H.C.A. Mode 2"),
    ("reserved", "Reserved"),
)


class SlaveApplicationError(ProtocolError):
    """The slave answered with CI 0x70: an application error (``code``, ``text``)."""

    def __init__(self, code: int | None, *, offset: int | None = None) -> None:
        self.code = code
        self.text = (
            APPLICATION_ERRORS[code] if code is not None and code < len(APPLICATION_ERRORS) else "Reserved"
        )
        if code is None:
            self.text = APPLICATION_ERRORS[0]
        label = "none" if code is None else f"0x{code:02X}"
        super().__init__(f"slave reports application error {label}: {self.text}", offset=offset, layer=LAYER)


@dataclass(frozen=True, slots=True)
class ApplicationErrorResponse:
    """CI 0x70 from a slave (encoding side; decoding raises :class:`SlaveApplicationError`)."""

    address: int
    code: int | None = None

    def to_frame(self) -> Frame:
        if self.code is None:
            return ControlFrame(C_RSP_UD, self.address, CI_ERROR)
        return LongFrame(C_RSP_UD, self.address, CI_ERROR, bytes((self.code,)))


@dataclass(frozen=True, slots=True)
class VariableDataResponse:
    """RSP_UD with variable data records (CI 0x72, 0x76, 0x7A, 0x78)."""

    c: int
    address: int
    ci: int
    identification: str | None  # 8 digits as printed (None with a short header)
    manufacturer_id: int | None
    version: int | None
    medium: int | None
    access_number: int | None
    status: int | None
    signature: int | None
    records: tuple[DataRecord, ...]
    manufacturer_data: bytes
    more_records_follow: bool

    @property
    def manufacturer(self) -> str | None:
        return None if self.manufacturer_id is None else manufacturer_code(self.manufacturer_id)

    @property
    def medium_name(self) -> str | None:
        return None if self.medium is None else MEDIUM[self.medium]

    @property
    def medium_text(self) -> str | None:
        return None if self.medium is None else MEDIUM_TEXT[self.medium]

    @property
    def secondary_address(self) -> SecondaryAddress | None:
        if (
            self.identification is None
            or self.manufacturer_id is None
            or self.version is None
            or self.medium is None
        ):
            return None
        return SecondaryAddress(self.identification, self.manufacturer_id, self.version, self.medium)


@dataclass(frozen=True, slots=True)
class FixedCounter:
    """One counter of the fixed data structure."""

    unit_info: FixedUnit
    stored: bool
    raw: int | str
    value: RecordValue

    @property
    def quantity(self) -> str:
        return self.unit_info.quantity

    @property
    def unit(self) -> str | None:
        return self.unit_info.unit

    @property
    def function(self) -> str:
        return "stored" if self.stored else "instantaneous"

    @property
    def function_text(self) -> str:
        return "Stored value" if self.stored else "Actual value"

    @property
    def description(self) -> str:
        return self.unit_info.description


@dataclass(frozen=True, slots=True)
class FixedDataResponse:
    """RSP_UD with the fixed data structure (CI 0x73, or 0x77 for mode 2)."""

    c: int
    address: int
    ci: int
    identification: str
    access_number: int
    status: int
    medium: int  # 4-bit fixed-structure medium
    counters: tuple[FixedCounter, FixedCounter]

    @property
    def medium_name(self) -> str:
        return FIXED_MEDIUM[self.medium][0]

    @property
    def medium_text(self) -> str:
        return FIXED_MEDIUM[self.medium][1]

    @property
    def more_records_follow(self) -> bool:
        return False


Response = VariableDataResponse | FixedDataResponse


def decode_response(frame: Frame) -> Response:
    """Decode the application data of a slave's long frame.

    Raises :class:`SlaveApplicationError` for CI 0x70, ``UnsupportedError`` for CI fields
    that are not slave responses, ``FramingError`` for truncated headers and records.
    """
    if isinstance(frame, ControlFrame):
        if frame.ci == CI_ERROR:
            raise SlaveApplicationError(None, offset=6)
        raise UnsupportedError(
            f"control frame with CI 0x{frame.ci:02X} carries no response", offset=6, layer=LAYER
        )
    if not isinstance(frame, LongFrame):
        raise UnsupportedError(f"{type(frame).__name__} carries no application data", offset=0, layer=LAYER)
    ci = frame.ci
    data = frame.data
    if ci in CI_VARIABLE:
        return _decode_variable(frame)
    if ci in CI_FIXED:
        return _decode_fixed(frame)
    if ci == CI_ERROR:
        raise SlaveApplicationError(data[0] if data else None, offset=_HEADER_START)
    raise UnsupportedError(f"CI field 0x{ci:02X} is not a slave response", offset=6, layer=LAYER)


def _decode_variable(frame: LongFrame) -> VariableDataResponse:
    ci = frame.ci
    data = frame.data
    n = len(data)
    if ci == 0x72 or ci == 0x76:  # noqa: PLR1714
        if n < 12:
            raise FramingError(
                f"variable data header needs 12 bytes, got {n}", offset=_HEADER_START + n, layer=LAYER
            )
        ident: str | None = data[3::-1].hex().upper()
        manufacturer: int | None = data[4] | (data[5] << 8)
        version: int | None = data[6]
        medium: int | None = data[7]
        access: int | None = data[8]
        status: int | None = data[9]
        signature: int | None = data[10] | (data[11] << 8)
        start = 12
    elif ci == 0x7A:
        if n < 4:
            raise FramingError(f"short header needs 4 bytes, got {n}", offset=_HEADER_START + n, layer=LAYER)
        ident = None
        manufacturer = version = medium = None
        access, status, signature = data[0], data[1], data[2] | (data[3] << 8)
        start = 4
    else:  # 0x78: no header
        ident = None
        manufacturer = version = medium = access = status = signature = None
        start = 0
    # offsets in records and errors count from the frame's first byte (68)
    records, tail, more = decode_records(data, start, n, msb_first=ci == 0x76, base=_HEADER_START)
    return VariableDataResponse(
        frame.c,
        frame.address,
        ci,
        ident,
        manufacturer,
        version,
        medium,
        access,
        status,
        signature,
        records,
        tail,
        more,
    )


def _decode_fixed(frame: LongFrame) -> FixedDataResponse:
    data = frame.data
    if len(data) != 16:
        raise FramingError(
            f"fixed data structure is 16 bytes, got {len(data)}",
            offset=_HEADER_START + min(len(data), 16),
            layer=LAYER,
        )
    msb_first = frame.ci == 0x77
    identification = data[3::-1].hex().upper()
    access, status = data[4], data[5]
    type1, type2 = data[6], data[7]
    medium = ((type1 & 0xC0) >> 6) | ((type2 & 0xC0) >> 4)
    stored = bool(status & 0x40)
    binary = bool(status & 0x80)
    counters = []
    for unit_code, raw_bytes in ((type1 & 0x3F, data[8:12]), (type2 & 0x3F, data[12:16])):
        field = raw_bytes[::-1] if msb_first else raw_bytes
        raw: int | str = int.from_bytes(field, "little", signed=True) if binary else dt.decode_bcd(field)
        info = FIXED_UNIT[unit_code]
        value: RecordValue = raw
        if isinstance(raw, int) and info.kind == "number" and info.unit is not None:
            value = (
                raw * info.factor * 10**info.exponent
                if info.exponent >= 0
                else Decimal(raw).scaleb(info.exponent)
            )
        counters.append(FixedCounter(info, stored, raw, value))
    return FixedDataResponse(
        frame.c, frame.address, frame.ci, identification, access, status, medium, (counters[0], counters[1])
    )


def decode_data_send(frame: LongFrame) -> tuple[DataRecord, ...]:
    """Records of a master's SND_UD with CI 0x51 (data send), e.g. ``01 7A 08`` (set address 8)."""
    if frame.ci != CI_DATA_SEND:
        raise UnsupportedError(f"CI 0x{frame.ci:02X} is not data send (0x51)", offset=6, layer=LAYER)
    records, _tail, _more = decode_records(frame.data, 0, len(frame.data), base=_HEADER_START)
    return records


# --------------------------------------------------------------------------- encoding (slave role)


def encode_variable_response(
    address: int,
    records: Sequence[RecordSpec],
    *,
    identification: str = "00000000",
    manufacturer: str | int = "ABC",
    version: int = 0,
    medium: int = 0,
    access_number: int = 0,
    status: int = 0,
    signature: int = 0,
    manufacturer_data: bytes = b"",
    more_records_follow: bool = False,
    ci: int = 0x72,
    c: int = C_RSP_UD,
) -> LongFrame:
    """A RSP_UD long frame with a fixed header and the given records.

    ``more_records_follow`` appends DIF 0x1F (with ``manufacturer_data``); otherwise
    non-empty ``manufacturer_data`` is appended after DIF 0x0F.
    """
    if ci not in CI_VARIABLE or ci == 0x76:
        raise ValueError("ci must be 0x72, 0x7A or 0x78")
    man = manufacturer if isinstance(manufacturer, int) else manufacturer_id(manufacturer)
    if ci == 0x72:
        if len(identification) != 8:
            raise ValueError("identification must be 8 digits")
        header = (
            bytes.fromhex(identification)[::-1]
            + man.to_bytes(2, "little")
            + bytes((version, medium, access_number, status))
            + signature.to_bytes(2, "little")
        )
    elif ci == 0x7A:
        header = bytes((access_number, status)) + signature.to_bytes(2, "little")
    else:
        header = b""
    body = header + encode_records(records)
    if more_records_follow:
        body += b"\x1f" + manufacturer_data
    elif manufacturer_data:
        body += b"\x0f" + manufacturer_data
    if len(body) > 252:
        raise ValueError(f"records need {len(body)} bytes, a long frame holds 252")
    return LongFrame(c, address, ci, body)


def encode_fixed_response(
    address: int,
    *,
    identification: str,
    access_number: int,
    status: int,
    medium: int,
    units: tuple[int, int],
    counters: tuple[int, int],
    c: int = C_RSP_UD,
) -> LongFrame:
    """A RSP_UD with the fixed data structure (CI 0x73); counters BCD unless status bit 7."""
    binary = bool(status & 0x80)
    t1 = (units[0] & 0x3F) | ((medium & 0x03) << 6)
    t2 = (units[1] & 0x3F) | ((medium & 0x0C) << 4)
    values = b"".join(
        v.to_bytes(4, "little", signed=True) if binary else dt.encode_bcd(v, 4) for v in counters
    )
    data = bytes.fromhex(identification)[::-1] + bytes((access_number, status, t1, t2)) + values
    return LongFrame(c, address, 0x73, data)
