"""EN 13757-3 variable data records: DIF/DIFE, VIF/VIFE, data field; decoding and encoding.

``decode_records(buffer, start, end)`` walks the records of a variable data structure and
returns frozen :class:`DataRecord` values plus the manufacturer specific tail. Each record
keeps its raw coding (``dif``, ``dife``, ``vif``, ``vife``, ``data``) next to its meaning:
function, storage number, tariff, subunit, quantity, unit and the exact ``value`` in the
base unit of the quantity (``int`` or ``Decimal``; ``float`` only for real32 data).

``RecordSpec`` describes a record for the slave role and ``encode_record`` turns it into
bytes; ``decode_records(encode_record(spec))`` gives the same record back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Final, NamedTuple

from meterbridge.errors import FramingError, ProtocolError, UnsupportedError
from meterbridge.protocols.mbus import datatypes as dt
from meterbridge.protocols.mbus.tables import (
    DATA_FIELD,
    FB_VIF,
    FD_VIF,
    FUNCTION,
    FUNCTION_TEXT,
    ORTHOGONAL_VIFE,
    PRIMARY_VIF,
    VifeInfo,
    VifInfo,
    unit_prefix,
)

__all__ = [
    "MAX_DIFE",
    "MAX_VIFE",
    "DataRecord",
    "RecordSpec",
    "RecordValue",
    "decode_records",
    "encode_record",
    "encode_records",
]

LAYER: Final = "mbus"
MAX_DIFE: Final = 10  # EN 13757-3 6.3.2: at most 10 DIFEs
MAX_VIFE: Final = 10  # EN 13757-3 6.4.1: at most 10 VIFEs
MAX_TEXT_VIF: Final = 0x7F  # longest plain-text VIF we accept

RecordValue = int | Decimal | float | str | bytes | date | datetime | time | dt.DaylightSaving | None

_MANUFACTURER_VIF: Final = VifInfo(
    0x7F, "manufacturer_specific", None, 0, "manufacturer", "Manufacturer specific"
)
_NO_VIF: Final = VifInfo(-1, "none", None, 0, "number", "")
_PLAIN_TEXT: Final = PRIMARY_VIF[0x7C]
# 10**e as Decimal for negative exponents (exact, built once)
_POW10: Final[dict[int, Decimal]] = {e: Decimal(1).scaleb(e) for e in range(-40, 0)}
_POW10_INT: Final[dict[int, int]] = {e: 10**e for e in range(0, 40)}
# VIFE code -> index into _ORTHO (avoid attribute lookups in the loop)
_ORTHO: Final = ORTHOGONAL_VIFE
_DATA_LEN: Final[tuple[int, ...]] = tuple(f.length for f in DATA_FIELD)
_DATA_KIND: Final[tuple[str, ...]] = tuple(f.kind for f in DATA_FIELD)


class DataRecord(NamedTuple):
    """One decoded data record (immutable).

    ``storage``, ``tariff``, ``subunit`` come from DIF and DIFEs; ``info`` is the VIF
    meaning (``info.quantity``, ``info.unit``); ``extensions`` the orthogonal VIFEs;
    ``raw`` the data field as coded (integer, BCD number, text, bytes, date ...) and
    ``value`` the exact value in the base unit of the quantity.

    A ``NamedTuple`` rather than a frozen dataclass on purpose: a telegram holds dozens of
    records, and a frozen dataclass's ``__init__`` makes one ``object.__setattr__`` call per
    field (16 here), which profiling showed to be half of the decoding time. The decoder
    builds records with ``tuple.__new__`` in one step; they are just as immutable.
    """

    index: int  # type: ignore[assignment]  # position in the telegram (shadows tuple.index on purpose)
    offset: int  # byte offset of the DIF in the frame
    dif: int
    dife: tuple[int, ...]
    vif: int | None
    vife: tuple[int, ...]
    data: bytes
    function: str  # instantaneous | maximum | minimum | error | manufacturer_specific | more_records_follow
    storage: int
    tariff: int
    subunit: int
    info: VifInfo
    extensions: tuple[VifeInfo, ...]
    text_unit: str | None  # the ASCII unit of a plain-text VIF (0x7C / 0xFC)
    raw: RecordValue
    value: RecordValue

    @property
    def quantity(self) -> str:
        return self.info.quantity

    @property
    def unit(self) -> str | None:
        if self.text_unit is not None:
            return self.text_unit
        return self.info.unit

    @property
    def function_text(self) -> str:
        """Function as libmbus prints it (``Instantaneous value`` ...)."""
        if self.function == "manufacturer_specific":
            return "Manufacturer specific"
        if self.function == "more_records_follow":
            return "More records follow"
        return FUNCTION_TEXT[(self.dif >> 4) & 3]

    @property
    def description(self) -> str:
        """The unit text libmbus prints for this record's VIF in its raw XML."""
        if self.text_unit is not None:
            exponent = sum(e.exponent for e in self.extensions)
            return f"{unit_prefix(exponent)} {self.text_unit}" if exponent else self.text_unit
        return self.info.description

    @property
    def data_type(self) -> str:
        return DATA_FIELD[self.dif & 0x0F].name

    def to_dict(self) -> dict[str, object]:
        """JSON-able view (values left as Python objects; the CLI renders Decimals exactly)."""
        out: dict[str, object] = {
            "index": self.index,
            "function": self.function,
            "storage": self.storage,
            "tariff": self.tariff,
            "subunit": self.subunit,
            "quantity": self.quantity,
            "unit": self.unit,
            "value": self.value,
        }
        if isinstance(self.value, dt.DaylightSaving):
            v = self.value
            out["value"] = {
                "begin": f"{v.begin_day:02d}.{v.begin_month:02d} {v.begin_hour:02d}:00",
                "end": f"{v.end_day:02d}.{v.end_month:02d}",
                "deviation_hours": v.deviation,
            }
        if self.extensions:
            out["extensions"] = [e.name for e in self.extensions]
        return out


def _build_simple() -> tuple[tuple[tuple[int, str, str, int, VifInfo] | None, ...], ...]:
    """``_SIMPLE[dif][vif]``: everything a record header without extensions decides (data
    length and type, function, storage bit, VIF meaning); None where the slow path must
    decide (DIFE/VIFE, special DIF, variable length, FB/FD/plain-text VIF). Bytes >= 0x80
    always carry an extension bit, so the table stops at 0x7F; the decoder only indexes
    it with a DIF below 0x80, and a VIF row has 256 entries (None from 0x80 on)."""
    nothing: tuple[None, ...] = (None,) * 256
    rows: list[tuple[tuple[int, str, str, int, VifInfo] | None, ...]] = []
    for dif in range(0x80):
        low = dif & 0x0F
        if low in (0x0D, 0x0F):
            rows.append(nothing)
            continue
        row: list[tuple[int, str, str, int, VifInfo] | None] = []
        for vif in range(256):
            if vif >= 0x80 or vif in (0x7B, 0x7C, 0x7D):
                row.append(None)
            else:
                row.append(
                    (
                        _DATA_LEN[low],
                        _DATA_KIND[low],
                        FUNCTION[(dif >> 4) & 3],
                        (dif >> 6) & 1,
                        PRIMARY_VIF[vif],
                    )
                )
        rows.append(tuple(row))
    return tuple(rows)


_SIMPLE: Final = _build_simple()


def _premature(what: str, pos: int) -> FramingError:
    return FramingError(f"premature end of data: expected {what}", offset=pos, layer=LAYER)


def _scale_slow(raw: RecordValue, info: VifInfo, extra: int) -> RecordValue:
    """Apply VIF exponent, duration factor and a VIFE multiplicative correction."""
    if isinstance(raw, int):
        exponent = info.exponent + extra
        number: int = raw * info.factor
        if exponent == 0:
            return number
        if exponent > 0:
            return number * _POW10_INT[exponent]
        return Decimal(number) * _POW10[exponent]
    if isinstance(raw, float):
        exponent = info.exponent + extra
        if exponent == 0 and info.factor == 1:
            return raw
        return float(Decimal(repr(raw)) * info.factor * Decimal(1).scaleb(exponent))
    return raw


def _lvar(lvar: int, pos: int) -> tuple[int, str]:
    """Length and kind of a variable length data field (EN 13757-3 6.3.3)."""
    if lvar <= 0xBF:
        return lvar, "text"
    if lvar <= 0xCF:
        return lvar - 0xC0, "bcd"
    if lvar <= 0xDF:
        return lvar - 0xD0, "negbcd"
    if lvar <= 0xEF:
        return lvar - 0xE0, "bin"
    if lvar <= 0xF4:
        return 4 * (lvar - 0xEC), "bin"
    if lvar == 0xF5:
        return 48, "bin"
    if lvar == 0xF6:
        return 64, "bin"
    raise UnsupportedError(f"reserved LVAR 0x{lvar:02X}", offset=pos, layer=LAYER)


def decode_records(
    buffer: bytes, start: int, end: int, *, msb_first: bool = False, base: int = 0
) -> tuple[tuple[DataRecord, ...], bytes, bool]:
    """Decode the records in ``buffer[start:end]``.

    Returns ``(records, manufacturer_data, more_records_follow)``. ``msb_first`` is
    mode 2 (CI 0x76): multi-byte data fields are sent most significant byte first.
    Offsets in errors and records are indices into ``buffer`` plus ``base`` (the offset
    of ``buffer`` in its frame).
    """
    try:
        return _decode_records(buffer, start, end, msb_first, base)
    except ProtocolError as exc:
        if base and exc.offset is not None:
            exc.offset += base
            exc.args = (exc._render(),)
        raise


_HeaderPlan = tuple[
    int, str, str, int, int, int, VifInfo, tuple[VifeInfo, ...], tuple[int, ...], int, tuple[int, ...], int
]
# Header bytes (DIF .. last VIFE) -> what they decide. A pure memo of _decode_header for
# headers that decoded without error (a telegram repeats the same few headers every
# readout); bounded, and the same input always gives the same plan.
_HEADER_CACHE: dict[bytes, _HeaderPlan] = {}
_HEADER_CACHE_MAX: Final = 4096


def _decode_records(
    buffer: bytes, start: int, end: int, msb_first: bool, base: int
) -> tuple[tuple[DataRecord, ...], bytes, bool]:
    records: list[DataRecord] = []
    append = records.append
    new = tuple.__new__
    simple = _SIMPLE
    cache = _HEADER_CACHE
    difes: tuple[int, ...]
    vifes: tuple[int, ...]
    extensions: tuple[VifeInfo, ...]
    text_unit: str | None
    from_bytes = int.from_bytes
    decode_bcd = dt.decode_bcd
    manufacturer = b""
    more = False
    index = 0
    pos = start
    while pos < end:
        offset = pos
        dif = buffer[pos]
        plan = simple[dif][buffer[pos + 1]] if dif < 0x80 and pos + 1 < end else None
        if plan is not None:  # the common record: no DIFE, no VIFE, primary VIF, fixed-size data
            length, kind, function, storage, info = plan
            vif = buffer[pos + 1]
            pos += 2
            tariff = subunit = extra = 0
            difes = vifes = ()
            extensions = ()
            text_unit = None
        else:
            # a header seen before (DIFEs, VIFEs, FB/FD): find its end, look it up
            hit = None
            if dif & 0x0F != 0x0F:
                p = pos + 1
                byte = dif
                while byte & 0x80 and p < end:
                    byte = buffer[p]
                    p += 1
                if not byte & 0x80 and p < end:
                    vif = buffer[p]
                    p += 1
                    if vif & 0x7F != 0x7C:
                        byte = vif
                        while byte & 0x80 and p < end:
                            byte = buffer[p]
                            p += 1
                        if not byte & 0x80:
                            hit = cache.get(buffer[pos:p])
            if hit is None:
                header = _decode_header(buffer, pos, end, base, index, append)
                if header is None:  # a special-function DIF (filler, manufacturer data)
                    if dif == 0x2F:
                        pos += 1
                        continue
                    if dif == 0x7F:
                        pos += 1
                        index += 1
                        continue
                    manufacturer = buffer[pos + 1 : end]
                    more = dif == 0x1F
                    break
                hit, (text_unit, p) = header
                if text_unit is None:
                    if len(cache) >= _HEADER_CACHE_MAX:
                        cache.clear()
                    cache[buffer[pos:p]] = hit
            else:
                text_unit = None
            (
                length,
                kind,
                function,
                storage,
                tariff,
                subunit,
                info,
                extensions,
                difes,
                vif,
                vifes,
                extra,
            ) = hit
            pos = p
        if length < 0:
            if pos >= end:
                raise _premature("LVAR", pos)
            length, kind = _lvar(buffer[pos], pos)
            pos += 1
            if not length and (kind == "bcd" or kind == "negbcd"):  # noqa: PLR1714
                kind = "none"  # LVAR C0 / D0: a number of no digits
        if pos + length > end:
            raise FramingError(
                f"premature end of data: expected {length} data bytes, {end - pos} left",
                offset=pos,
                layer=LAYER,
            )
        data = buffer[pos : pos + length]
        pos += length
        raw: RecordValue
        value: RecordValue
        ikind = info.kind
        if kind == "int":
            field = data[::-1] if msb_first else data
            if ikind == "number":
                raw = from_bytes(field, "little", signed=True)
                if extra:
                    value = _scale_slow(raw, info, extra)
                elif info.unscaled:
                    value = raw
                else:
                    value = raw * info.scale
            elif ikind in {"date", "datetime"}:
                raw = from_bytes(field, "little")
                value = _decode_time(field)
            elif ikind == "manufacturer":
                raw = value = from_bytes(field, "little", signed=True)
            elif ikind == "daylight":
                raw = from_bytes(field, "little")
                value = dt.decode_type_k(field) if length == 4 else raw
            else:  # identification numbers and bit fields
                raw = value = from_bytes(field, "little")
        elif kind == "bcd":
            try:
                raw = int((data if msb_first else data[::-1]).hex())
            except ValueError:  # a sign nibble F or digits A..F
                raw = decode_bcd(data[::-1] if msb_first else data)
            if ikind in {"date", "datetime"} or type(raw) is str:
                value = raw
            elif extra:
                value = _scale_slow(raw, info, extra)
            else:
                value = raw if info.unscaled else raw * info.scale  # type: ignore[operator]  # raw is int here
        elif kind == "real":
            raw = dt.decode_real32(data[::-1] if msb_first else data)
            if not math.isfinite(raw):
                value = None  # NaN / infinity: the meter has no number to give
            else:
                value = _scale_slow(raw, info, extra) if ikind == "number" else raw
        elif kind == "none":
            raw = value = None
        elif kind == "text":
            raw = value = data[::-1].decode("latin-1")
        elif kind == "bin":
            raw = value = data
        else:  # negative BCD of variable length
            magnitude = decode_bcd(data)
            raw = -magnitude if type(magnitude) is int else "-" + str(magnitude)
            value = _scale_slow(raw, info, extra)
        append(
            new(
                DataRecord,
                (index, offset + base, dif, difes, vif, vifes, data, function, storage, tariff, subunit,
                 info, extensions, text_unit, raw, value),
            )
        )  # fmt: skip
        index += 1
    return tuple(records), manufacturer, more


def _decode_header(
    buffer: bytes,
    pos: int,
    end: int,
    base: int,
    index: int,
    append: Callable[[DataRecord], None],
) -> tuple[_HeaderPlan, tuple[str | None, int]] | None:
    """Decode one record header (DIF, DIFEs, VIF, plain text, VIFEs) the long way.

    Returns ``(plan, (text_unit, end_of_header))``, or None after appending the record of
    a special-function DIF (0x0F / 0x1F manufacturer data, 0x7F global readout) or for
    the idle filler 0x2F.
    """
    offset = pos
    dif = buffer[pos]
    pos += 1
    low = dif & 0x0F
    if low == 0x0F:
        if dif == 0x2F:  # idle filler
            return None
        if dif == 0x0F or dif == 0x1F:  # noqa: PLR1714
            manufacturer = buffer[pos:end]
            function = "more_records_follow" if dif == 0x1F else "manufacturer_specific"
            append(
                tuple.__new__(
                    DataRecord,
                    (index, offset + base, dif, (), None, (), manufacturer, function, 0, 0, 0,
                     _MANUFACTURER_VIF, (), None, manufacturer, manufacturer),
                )
            )  # fmt: skip
            return None
        if dif == 0x7F:  # global readout request (master to slave): no VIF, no data
            append(
                tuple.__new__(
                    DataRecord,
                    (index, offset + base, dif, (), None, (), b"", "global_readout", 0, 0, 0,
                     _NO_VIF, (), None, None, None),
                )
            )  # fmt: skip
            return None
        raise UnsupportedError(f"reserved special function DIF 0x{dif:02X}", offset=offset, layer=LAYER)
    storage = (dif >> 6) & 1
    tariff = 0
    subunit = 0
    difes: tuple[int, ...] = ()
    if dif & 0x80:
        chain = []
        shift = 0
        byte = dif
        while byte & 0x80:
            if shift == MAX_DIFE:
                raise FramingError(f"more than {MAX_DIFE} DIFEs", offset=pos, layer=LAYER)
            if pos >= end:
                raise _premature("DIFE", pos)
            byte = buffer[pos]
            pos += 1
            chain.append(byte)
            storage |= (byte & 0x0F) << (1 + 4 * shift)
            tariff |= ((byte >> 4) & 0x03) << (2 * shift)
            subunit |= ((byte >> 6) & 0x01) << shift
            shift += 1
        difes = tuple(chain)
    if pos >= end:
        raise _premature("VIF", pos)
    vif = buffer[pos]
    pos += 1
    code = vif & 0x7F
    text_unit: str | None = None
    if code == 0x7C:
        if pos >= end:
            raise _premature("length of plain-text VIF", pos)
        length = buffer[pos]
        pos += 1
        if length > MAX_TEXT_VIF:
            raise FramingError(
                f"plain-text VIF of {length} characters (at most {MAX_TEXT_VIF})", offset=pos - 1, layer=LAYER
            )
        if pos + length > end:
            raise _premature(f"{length} characters of plain-text VIF", pos)
        text_unit = buffer[pos : pos + length][::-1].decode("latin-1")
        pos += length
    vifes: tuple[int, ...] = ()
    extensions: tuple[VifeInfo, ...] = ()
    extra = 0
    info = PRIMARY_VIF[code]
    if vif & 0x80:
        chain = []
        byte = vif
        while byte & 0x80:
            if len(chain) == MAX_VIFE:
                raise FramingError(f"more than {MAX_VIFE} VIFEs", offset=pos, layer=LAYER)
            if pos >= end:
                raise _premature("VIFE", pos)
            byte = buffer[pos]
            pos += 1
            chain.append(byte)
        vifes = tuple(chain)
        # 0x7B / 0x7D without the extension bit announce a table but give no code: the
        # value stays unscaled under quantity "unknown" (see tables.PRIMARY_VIF)
        if code == 0x7D:
            info = FD_VIF[chain[0] & 0x7F]
            ext = chain[1:]
        elif code == 0x7B:
            info = FB_VIF[chain[0] & 0x7F]
            ext = chain[1:]
        else:
            ext = chain if code != 0x7F else []
        if ext:
            found = []
            for byte in ext:
                e = _ORTHO[byte & 0x7F]
                found.append(e)
                extra += e.exponent
                if byte & 0x7F == 0x7F:  # the rest is manufacturer specific
                    break
            extensions = tuple(found)
    if text_unit is not None:
        info = _PLAIN_TEXT
    plan: _HeaderPlan = (
        _DATA_LEN[low],
        _DATA_KIND[low],
        FUNCTION[(dif >> 4) & 3],
        storage,
        tariff,
        subunit,
        info,
        extensions,
        difes,
        vif,
        vifes,
        extra,
    )
    return plan, (text_unit, pos)


def _decode_time(field: bytes) -> RecordValue:
    n = len(field)
    if n == 2:
        return dt.decode_type_g(field)
    if n == 4:
        return dt.decode_type_f(field)
    if n == 6:
        return dt.decode_type_i(field)
    if n == 3:
        return dt.decode_type_j(field)
    return int.from_bytes(field, "little")


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """A data record to encode (slave role).

    ``vif`` is the primary VIF code (0x00..0x7F; 0x7B / 0x7D with ``vife[0]`` the FB / FD
    code; 0x7C with ``text_unit``); further ``vife`` codes are orthogonal. ``data_field``
    is the DIF data type (0x0..0xF). ``value`` is the *raw* coded value (the integer before
    the VIF exponent, a BCD number, text, bytes, a date ...).
    """

    data_field: int
    vif: int | None
    value: RecordValue = None
    function: int = 0  # 0 instantaneous, 1 maximum, 2 minimum, 3 error
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    vife: tuple[int, ...] = ()
    text_unit: str | None = None
    special: int | None = None  # 0x0F / 0x1F / 0x2F / 0x7F special-function DIF instead


def _encode_dib(spec: RecordSpec) -> bytes:
    if not 0 <= spec.function <= 3:
        raise ValueError("function must be 0..3")
    storage, tariff, subunit = spec.storage, spec.tariff, spec.subunit
    if storage < 0 or tariff < 0 or subunit < 0:
        raise ValueError("storage, tariff and subunit must not be negative")
    dif = (spec.data_field & 0x0F) | (spec.function << 4) | ((storage & 1) << 6)
    storage >>= 1
    out = bytearray()
    difes = []
    while storage or tariff or subunit:
        difes.append((storage & 0x0F) | ((tariff & 0x03) << 4) | ((subunit & 1) << 6))
        storage >>= 4
        tariff >>= 2
        subunit >>= 1
    if len(difes) > MAX_DIFE:
        raise ValueError("storage/tariff/subunit need more than 10 DIFEs")
    out.append(dif | (0x80 if difes else 0))
    for i, dife in enumerate(difes):
        out.append(dife | (0x80 if i < len(difes) - 1 else 0))
    return bytes(out)


def _encode_data(spec: RecordSpec) -> bytes:
    field = spec.data_field & 0x0F
    value = spec.value
    length = _DATA_LEN[field]
    kind = _DATA_KIND[field]
    if kind == "none":
        return b""
    if kind == "int":
        if isinstance(value, datetime):
            if length == 4:
                return dt.encode_type_f(value)
            if length == 6:
                return dt.encode_type_i(value)
            raise ValueError("a date and time needs a 32 or 48 bit data field")
        if isinstance(value, date):
            if length == 2:
                return dt.encode_type_g(value)
            raise ValueError("a date needs a 16 bit data field")
        if isinstance(value, time):
            if length == 3:
                return dt.encode_type_j(value)
            raise ValueError("a time needs a 24 bit data field")
        if isinstance(value, dt.DaylightSaving):
            if length == 4:
                return dt.encode_type_k(value)
            raise ValueError("daylight saving (type K) needs a 32 bit data field")
        if isinstance(value, bytes):
            if len(value) != length:
                raise ValueError(f"need {length} bytes")
            return value
        if not isinstance(value, int):
            raise ValueError(f"an integer data field needs an int, got {value!r}")
        signed = value < 0
        return value.to_bytes(length, "little", signed=signed)
    if kind == "real":
        if not isinstance(value, (int, float)):
            raise ValueError("a real32 data field needs a number")
        return dt.encode_real32(float(value))
    if kind == "bcd":
        if isinstance(value, str):
            text = value.upper().rjust(length * 2, "0")
            if len(text) != length * 2:
                raise ValueError("too many BCD digits")
            return bytes.fromhex(text)[::-1]
        if not isinstance(value, int):
            raise ValueError("a BCD data field needs an int")
        return dt.encode_bcd(value, length)
    # variable length
    if isinstance(value, str):
        raw = dt.encode_text(value)
        if len(raw) > 0xBF:
            raise ValueError("text longer than 191 characters")
        return bytes((len(raw),)) + raw
    if isinstance(value, bytes):
        if len(value) > 15:
            raise ValueError("binary variable data longer than 15 bytes")
        return bytes((0xE0 + len(value),)) + value
    if isinstance(value, int):
        digits = len(str(abs(value)))
        nbytes = (digits + 1) // 2
        lvar = (0xD0 if value < 0 else 0xC0) + nbytes
        return bytes((lvar,)) + dt.encode_bcd(abs(value), nbytes)
    raise ValueError(f"cannot encode {value!r} as variable length data")


def encode_record(spec: RecordSpec) -> bytes:
    """The bytes of one data record (DIB + VIB + data)."""
    if spec.special is not None:
        if spec.special not in (0x0F, 0x1F, 0x2F, 0x7F):
            raise ValueError("special must be 0x0F, 0x1F, 0x2F or 0x7F")
        tail = spec.value if isinstance(spec.value, bytes) and spec.special in (0x0F, 0x1F) else b""
        return bytes((spec.special,)) + tail
    out = bytearray(_encode_dib(spec))
    if spec.vif is None:
        raise ValueError("a data record needs a VIF")
    vifes = spec.vife
    if len(vifes) > MAX_VIFE:
        raise ValueError("more than 10 VIFEs")
    out.append((spec.vif & 0x7F) | (0x80 if vifes else 0))
    if spec.vif & 0x7F == 0x7C:
        if spec.text_unit is None:
            raise ValueError("plain-text VIF needs text_unit")
        text = dt.encode_text(spec.text_unit)
        out.append(len(text))
        out += text
    for i, vife in enumerate(vifes):
        out.append((vife & 0x7F) | (0x80 if i < len(vifes) - 1 else 0))
    out += _encode_data(spec)
    return bytes(out)


def encode_records(specs: Sequence[RecordSpec]) -> bytes:
    return b"".join(encode_record(s) for s in specs)
