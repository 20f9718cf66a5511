"""COSEM interface classes to readings: Data, Register, Extended and Demand Register, Clock, Profile Generic.

Holds the class ids (``ClassId``), the Blue Book unit table (``UNITS``, indexed by the unit
enum), ``ScalerUnit`` and the exact ``scale`` (int or ``Decimal``, never float),
``value_of`` (a COSEM ``Data`` to the Python value a ``Reading`` carries), builders of
readings for each class (``register_reading``, ``extended_register_reading``,
``demand_register_readings``, ``clock_time``), and for Profile Generic: ``CaptureObject``,
the selective-access descriptors ``range_descriptor`` / ``entry_descriptor``,
``profile_rows`` / ``profile_readings`` (buffer to rows to readings) and, for the meter role,
``select_profile`` (apply a range or entry descriptor to a buffer).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal

from meterbridge.errors import FramingError, UnsupportedError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import AccessSelection
from meterbridge.protocols.dlms.axdr import BitString, CosemDate, CosemDateTime, CosemTime, Data, DataType
from meterbridge.readings import Quality, Reading, Value

__all__ = [
    "CLOCK_OBIS",
    "UNITS",
    "CaptureObject",
    "ClassId",
    "ProfileRow",
    "ScalerUnit",
    "clock_time",
    "demand_register_readings",
    "entry_descriptor",
    "extended_register_reading",
    "profile_readings",
    "profile_rows",
    "range_descriptor",
    "register_reading",
    "scale",
    "select_profile",
    "unit_code",
    "value_of",
]

LAYER = "dlms"
CLOCK_OBIS = ObisCode(0, 0, 1, 0, 0, 255)


class ClassId(enum.IntEnum):
    DATA = 1
    REGISTER = 3
    EXTENDED_REGISTER = 4
    DEMAND_REGISTER = 5
    REGISTER_ACTIVATION = 6
    PROFILE_GENERIC = 7
    CLOCK = 8
    SCRIPT_TABLE = 9
    ASSOCIATION_SN = 12
    ASSOCIATION_LN = 15
    DISCONNECT_CONTROL = 70
    PUSH_SETUP = 40
    SECURITY_SETUP = 64


def _unit_table() -> tuple[str | None, ...]:
    """Blue Book (DLMS UA 1000-1) physical units, enum value -> symbol; ``None`` where undefined."""
    symbols = {
        1: "a", 2: "mo", 3: "wk", 4: "d", 5: "h", 6: "min", 7: "s", 8: "°", 9: "°C", 10: "currency",
        11: "m", 12: "m/s", 13: "m³", 14: "m³", 15: "m³/h", 16: "m³/h", 17: "m³/d", 18: "m³/d",
        19: "l", 20: "kg", 21: "N", 22: "Nm", 23: "Pa", 24: "bar", 25: "J", 26: "J/h", 27: "W",
        28: "VA", 29: "var", 30: "Wh", 31: "VAh", 32: "varh", 33: "A", 34: "C", 35: "V", 36: "V/m",
        37: "F", 38: "Ω", 39: "Ωm²/m", 40: "Wb", 41: "T", 42: "A/m", 43: "H", 44: "Hz",
        45: "1/(Wh)", 46: "1/(varh)", 47: "1/(VAh)", 48: "V²h", 49: "A²h", 50: "kg/s", 51: "S",
        52: "K", 53: "1/(V²h)", 54: "1/(A²h)", 55: "1/m³", 56: "%", 57: "Ah", 60: "Wh/m³",
        61: "J/m³", 62: "Mol %", 63: "g/m³", 64: "Pa s", 65: "J/kg", 66: "g/cm²", 67: "atm",
        70: "dBm", 71: "dBμV", 72: "dB", 254: "other", 255: "count",
    }  # fmt: skip
    return tuple(symbols.get(i) for i in range(256))


UNITS: tuple[str | None, ...] = _unit_table()
"""Unit symbol by the Blue Book unit enum (Wh=30, varh=32, VAh=31, W=27, var=29, VA=28, V=35, A=33, Hz=44 ...)."""

_UNIT_CODES: dict[str, int] = {}
for _code, _symbol in enumerate(UNITS):
    if _symbol is not None:
        _UNIT_CODES.setdefault(_symbol, _code)


def unit_code(symbol: str) -> int:
    """The unit enum of a symbol (the first one where two share a symbol)."""
    try:
        return _UNIT_CODES[symbol]
    except KeyError:
        raise ValueError(f"unknown unit {symbol!r}") from None


def scale(value: int, scaler: int) -> int | Decimal:
    """``value * 10**scaler`` exactly: an int for scaler >= 0, else a ``Decimal`` with ``-scaler`` places."""
    if scaler >= 0:
        return int(value * 10**scaler)
    return Decimal(value).scaleb(scaler)


@dataclass(frozen=True, slots=True)
class ScalerUnit:
    """scaler_unit of a Register: a power of ten and the unit enum."""

    scaler: int = 0
    unit: int = 255

    @property
    def symbol(self) -> str | None:
        """Unit symbol; ``None`` for 'count' (255) and undefined codes."""
        return None if self.unit == 255 else UNITS[self.unit]

    def apply(self, value: Value) -> Value:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and self.scaler:
                return value * 10.0**self.scaler
            return value
        return scale(value, self.scaler) if self.scaler else value

    def to_data(self) -> Data:
        return Data.structure(Data.integer(self.scaler), Data.enum(self.unit))

    @classmethod
    def from_data(cls, data: Data) -> ScalerUnit:
        items = data.value
        if (
            data.type is not DataType.STRUCTURE
            or not isinstance(items, tuple)
            or len(items) != 2
            or not isinstance(items[0].value, int)
            or not isinstance(items[1].value, int)
            or isinstance(items[0].value, bool)
        ):
            raise FramingError("scaler_unit is not a structure of scaler and unit", layer=LAYER)
        return cls(items[0].value, items[1].value)


def value_of(data: Data, default_tz: tzinfo = UTC) -> Value:
    """The Python value of a COSEM ``Data`` for a ``Reading``.

    Integers stay int, floats float; visible/utf8 strings str; an octet-string of 12 bytes that
    reads as a complete date-time becomes an aware ``datetime``; other octet-strings that are
    printable ASCII become str, else bytes; date-time values become ``datetime`` (``None`` when
    unspecified); a date, a time or a bit-string becomes its text (``2026-05-04``, ``11:39:21``,
    ``0101``). Arrays and structures are not one value: ``UnsupportedError``.
    """
    v = data.value
    if type(v) is int or v is None:
        return v
    if type(v) is not bytes and isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes):
        if len(v) == 12 and v[2] != 0xFF:
            try:
                stamp = CosemDateTime.decode(v)
                if stamp.is_complete:
                    return stamp.to_datetime(default_tz)
            except (FramingError, ValueError):
                pass
        if v.isascii():
            text = v.decode("ascii")
            if text and text.isprintable():
                return text
        return v
    if isinstance(v, CosemDateTime):
        return v.to_datetime(default_tz) if v.is_complete else None
    if isinstance(v, CosemDate | CosemTime | BitString):
        return str(v)
    raise UnsupportedError(f"{data.type.name} cannot be a reading value", layer=LAYER)


def register_reading(
    meter_id: str,
    obis: ObisCode,
    value: Data,
    scaler_unit: ScalerUnit | None,
    timestamp: datetime,
    quality: Quality = Quality.OK,
) -> Reading:
    """A Register (class 3) or Data (class 1, no scaler_unit) value as a reading."""
    raw = value_of(value, timestamp.tzinfo or UTC)
    if scaler_unit is None:
        return Reading(meter_id, obis, raw, None, timestamp, quality)
    return Reading(meter_id, obis, scaler_unit.apply(raw), scaler_unit.symbol, timestamp, quality)


def extended_register_reading(
    meter_id: str,
    obis: ObisCode,
    value: Data,
    scaler_unit: ScalerUnit,
    status: Data,
    capture_time: Data,
    received: datetime,
) -> Reading:
    """Extended Register (class 4): the capture time is the reading's time; a non-zero status flags it."""
    tz = received.tzinfo or UTC
    stamp = value_of(capture_time, tz)
    when = stamp if isinstance(stamp, datetime) else received
    flagged = isinstance(status.value, int) and not isinstance(status.value, bool) and status.value != 0
    quality = Quality.METER_ERROR if flagged else Quality.OK
    return register_reading(meter_id, obis, value, scaler_unit, when, quality)


def demand_register_readings(
    meter_id: str,
    obis: ObisCode,
    current_average: Data,
    last_average: Data,
    scaler_unit: ScalerUnit,
    capture_time: Data,
    received: datetime,
) -> tuple[Reading, Reading]:
    """Demand Register (class 5): current average (attribute 2, at receipt) and last average (3, at capture time).

    The last average is keyed by the 'last average' code of the same quantity (D = 5 where the
    register is D = 4, as in 1-0:1.4.0 -> 1-0:1.5.0); other registers keep their code.
    """
    tz = received.tzinfo or UTC
    stamp = value_of(capture_time, tz)
    when = stamp if isinstance(stamp, datetime) else received
    last_code = ObisCode(obis.a, obis.b, obis.c, 5, obis.e, obis.f) if obis.d == 4 else obis
    return (
        register_reading(meter_id, obis, current_average, scaler_unit, received),
        register_reading(meter_id, last_code, last_average, scaler_unit, when),
    )


def clock_time(time: Data, default_tz: tzinfo = UTC) -> datetime:
    """Clock (class 8) attribute 2 as an aware datetime."""
    stamp = value_of(time, default_tz)
    if not isinstance(stamp, datetime):
        raise FramingError("clock time is not a complete date-time", layer=LAYER)
    return stamp


# ---------------------------------------------------------------------------------------------------------------
# Profile Generic


@dataclass(frozen=True, slots=True)
class CaptureObject:
    """One column of a profile: class id, logical name, attribute index, data index."""

    class_id: int
    obis: ObisCode
    attribute: int = 2
    data_index: int = 0

    def to_data(self) -> Data:
        return Data.structure(
            Data.long_unsigned(self.class_id),
            Data.octet_string(bytes(self.obis)),
            Data.integer(self.attribute),
            Data.long_unsigned(self.data_index),
        )

    @classmethod
    def from_data(cls, data: Data) -> CaptureObject:
        items = data.value
        if data.type is not DataType.STRUCTURE or not isinstance(items, tuple) or len(items) != 4:
            raise FramingError("capture object is not a structure of 4", layer=LAYER)
        class_id, ln, attr, index = (i.value for i in items)
        if (
            not (
                isinstance(class_id, int)
                and isinstance(ln, bytes)
                and isinstance(attr, int)
                and isinstance(index, int)
            )
            or len(ln) != 6
        ):
            raise FramingError("capture object fields have the wrong types", layer=LAYER)
        return cls(class_id, ObisCode.from_bytes(ln), attr, index)

    @classmethod
    def list_from_data(cls, data: Data) -> tuple[CaptureObject, ...]:
        if data.type is not DataType.ARRAY or not isinstance(data.value, tuple):
            raise FramingError("capture objects are not an array", layer=LAYER)
        return tuple(cls.from_data(item) for item in data.value)


CLOCK_COLUMN = CaptureObject(ClassId.CLOCK, CLOCK_OBIS, 2, 0)


def _stamp(value: datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(value).encode())


def range_descriptor(
    start: datetime,
    end: datetime,
    *,
    restricting_object: CaptureObject = CLOCK_COLUMN,
    selected_values: Sequence[CaptureObject] = (),
) -> AccessSelection:
    """Selective access by range (selector 1): rows whose restricting column lies in ``start..end``."""
    return AccessSelection(
        1,
        Data.structure(
            restricting_object.to_data(),
            _stamp(start),
            _stamp(end),
            Data.array(c.to_data() for c in selected_values),
        ),
    )


def entry_descriptor(
    from_entry: int = 1, to_entry: int = 0, from_value: int = 1, to_value: int = 0
) -> AccessSelection:
    """Selective access by entry (selector 2); 0 as a 'to' means 'to the last'."""
    return AccessSelection(
        2,
        Data.structure(
            Data.double_long_unsigned(from_entry),
            Data.double_long_unsigned(to_entry),
            Data.long_unsigned(from_value),
            Data.long_unsigned(to_value),
        ),
    )


@dataclass(frozen=True, slots=True)
class ProfileRow:
    """One buffer entry: its time (from the clock column, or derived from the capture period) and values."""

    timestamp: datetime | None
    values: tuple[Data, ...]


def profile_rows(
    buffer: Data,
    capture_objects: Sequence[CaptureObject],
    *,
    capture_period: int = 0,
    default_tz: tzinfo = UTC,
) -> list[ProfileRow]:
    """Split a profile buffer into rows; a null clock value follows the previous one by ``capture_period`` s."""
    if buffer.type is not DataType.ARRAY or not isinstance(buffer.value, tuple):
        raise FramingError("profile buffer is not an array", layer=LAYER)
    clock_col = next((i for i, c in enumerate(capture_objects) if c.class_id == ClassId.CLOCK), None)
    rows = []
    previous: datetime | None = None
    for n, entry in enumerate(buffer.value):
        if entry.type is not DataType.STRUCTURE or not isinstance(entry.value, tuple):
            raise FramingError(f"profile entry {n} is not a structure", layer=LAYER)
        if len(entry.value) != len(capture_objects):
            raise FramingError(
                f"profile entry {n} has {len(entry.value)} values for {len(capture_objects)} capture objects",
                layer=LAYER,
            )
        stamp: datetime | None = None
        if clock_col is not None:
            cell = entry.value[clock_col]
            if cell.type is DataType.NULL_DATA and previous is not None and capture_period:
                stamp = previous + timedelta(seconds=capture_period)
            else:
                found = value_of(cell, default_tz)
                stamp = found if isinstance(found, datetime) else None
        previous = stamp
        rows.append(ProfileRow(stamp, entry.value))
    return rows


def profile_readings(
    meter_id: str,
    buffer: Data,
    capture_objects: Sequence[CaptureObject],
    scalers: Mapping[ObisCode, ScalerUnit],
    *,
    capture_period: int = 0,
    default_tz: tzinfo = UTC,
    received: datetime | None = None,
) -> list[Reading]:
    """Every value of every row as a reading, scaled by ``scalers`` (the registers' scaler_unit)."""
    readings = []
    for row in profile_rows(buffer, capture_objects, capture_period=capture_period, default_tz=default_tz):
        when = row.timestamp or received
        if when is None:
            raise FramingError("profile row without a time and no time of receipt given", layer=LAYER)
        for column, value in zip(capture_objects, row.values, strict=True):
            if column.class_id == ClassId.CLOCK:
                continue
            readings.append(register_reading(meter_id, column.obis, value, scalers.get(column.obis), when))
    return readings


def _as_datetime(data: Data, tz: tzinfo) -> datetime:
    value = value_of(data, tz)
    if not isinstance(value, datetime):
        raise FramingError("range bound is not a complete date-time", layer=LAYER)
    return value


def select_profile(
    buffer: Data,
    capture_objects: Sequence[CaptureObject],
    access: AccessSelection | None,
    default_tz: tzinfo = UTC,
) -> Data:
    """Meter role: the part of ``buffer`` a range (1) or entry (2) descriptor asks for."""
    if access is None:
        return buffer
    rows = buffer.items
    params = access.parameters.items if isinstance(access.parameters.value, tuple) else ()
    if access.selector == 1 and len(params) == 4:
        restricting = CaptureObject.from_data(params[0])
        start, end = _as_datetime(params[1], default_tz), _as_datetime(params[2], default_tz)
        try:
            col = list(capture_objects).index(restricting)
        except ValueError:
            raise FramingError("range restricting object is not a capture object", layer=LAYER) from None
        selected = [CaptureObject.from_data(d) for d in params[3].items]
        cols = [list(capture_objects).index(s) for s in selected] if selected else None
        out = []
        for row in rows:
            stamp = value_of(row.items[col], default_tz)
            if isinstance(stamp, datetime) and start <= stamp <= end:
                out.append(row if cols is None else Data.structure(*(row.items[c] for c in cols)))
        return Data.array(out)
    if access.selector == 2 and len(params) == 4:
        first, last, vfirst, vlast = (p.value for p in params)
        assert (
            isinstance(first, int)
            and isinstance(last, int)
            and isinstance(vfirst, int)
            and isinstance(vlast, int)
        )
        chosen = rows[max(first, 1) - 1 : (last or len(rows))]
        return Data.array(
            Data.structure(*r.items[max(vfirst, 1) - 1 : (vlast or len(r.items))]) for r in chosen
        )
    raise UnsupportedError(f"selective access selector {access.selector}", layer=LAYER)
