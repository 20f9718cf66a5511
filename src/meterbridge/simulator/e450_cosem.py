"""The COSEM object model of the virtual E450 (what a DLMS client can GET), and its push layout.

:class:`E450Objects` implements the association's ``CosemModel`` protocol over an
:class:`~meterbridge.simulator.e450_model.E450Model`:

* a Register (class 3) for every measured quantity of ``meterbridge.obis.CATALOGUE``:
  attribute 1 logical name, 2 value (raw integer), 3 scaler_unit (``REGISTERS`` below
  says which scaler, unit and A-XDR type each register uses);
* Data (class 1) for the serial number, equipment identifier, logical device name,
  firmware version and current tariff, and the profile status;
* the Clock (class 8, 0-0:1.0.0.255): local time with deviation, time zone, status,
  DST flag, clock base;
* the load profile (Profile Generic, class 7, 1-0:99.1.0.255): buffer with range and
  entry selective access, capture objects, capture period, entries in use, depth;
* the CII push setup (class 40, 0-8:25.9.0.255) with the E450 push object list;
* the current association (class 15, 0-0:40.0.0.255) with its object list, so a generic
  client can discover everything.

``push_body(snapshot)`` builds the Data-Notification body exactly as the E450 lays it
out on its customer interface (see ``tests/vectors/dlms/e450_cii_push_unencrypted.json``):
a structure of the push object list followed by one value per object, raw values without
scaler (currents in 0.01 A, voltages in V), date-times in local time without deviation
(``push_date_time``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import (
    AccessSelection,
    ActionResult,
    AttributeDescriptor,
    DataAccessResult,
    MethodDescriptor,
)
from meterbridge.protocols.dlms.axdr import ClockStatus, CosemDate, CosemDateTime, CosemTime, Data, DataType
from meterbridge.protocols.dlms.cosem import CaptureObject, ClassId, ScalerUnit, select_profile, unit_code
from meterbridge.simulator.e450_model import PROFILE_OBIS, PROFILE_REGISTERS, E450Model, Snapshot

__all__ = [
    "ASSOCIATION_OBIS",
    "CLOCK_OBIS",
    "DATA_OBJECTS",
    "PROFILE_CAPTURE_OBJECTS",
    "PUSH_OBJECTS",
    "PUSH_SETUP_OBIS",
    "REGISTERS",
    "E450Objects",
    "RegisterSpec",
    "push_body",
    "push_date_time",
    "raw_value",
]

_O = ObisCode.parse
CLOCK_OBIS: Final = _O("0-0:1.0.0.255")
PUSH_SETUP_OBIS: Final = _O("0-8:25.9.0.255")  # the CII push setup, as in the captures
ASSOCIATION_OBIS: Final = _O("0-0:40.0.0.255")
PROFILE_STATUS_OBIS: Final = _O("0-0:96.10.1.255")


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """How one register is exposed: scaler, unit symbol and A-XDR type of the value."""

    obis: ObisCode
    scaler: int
    unit: str | None
    type: DataType


def _r(code: str, scaler: int, unit: str | None, typ: DataType) -> RegisterSpec:
    return RegisterSpec(_O(code), scaler, unit, typ)


_U32, _I32, _U16, _I16 = (
    DataType.DOUBLE_LONG_UNSIGNED,
    DataType.DOUBLE_LONG,
    DataType.LONG_UNSIGNED,
    DataType.LONG,
)
REGISTERS: Final[dict[ObisCode, RegisterSpec]] = {
    s.obis: s
    for s in (
        _r("1-0:1.8.0", 0, "Wh", _U32),
        _r("1-0:1.8.1", 0, "Wh", _U32),
        _r("1-0:1.8.2", 0, "Wh", _U32),
        _r("1-0:2.8.0", 0, "Wh", _U32),
        _r("1-0:2.8.1", 0, "Wh", _U32),
        _r("1-0:2.8.2", 0, "Wh", _U32),
        _r("1-0:3.8.0", 0, "varh", _U32),
        _r("1-0:4.8.0", 0, "varh", _U32),
        _r("1-0:9.8.0", 0, "VAh", _U32),
        _r("1-0:15.8.0", 0, "Wh", _U32),
        _r("1-0:1.7.0", 0, "W", _U32),
        _r("1-0:2.7.0", 0, "W", _U32),
        _r("1-0:3.7.0", 0, "var", _U32),
        _r("1-0:4.7.0", 0, "var", _U32),
        _r("1-0:9.7.0", 0, "VA", _U32),
        _r("1-0:16.7.0", 0, "W", _I32),
        _r("1-0:36.7.0", 0, "W", _I32),
        _r("1-0:56.7.0", 0, "W", _I32),
        _r("1-0:76.7.0", 0, "W", _I32),
        _r("1-0:21.7.0", 0, "W", _U32),
        _r("1-0:41.7.0", 0, "W", _U32),
        _r("1-0:61.7.0", 0, "W", _U32),
        _r("1-0:32.7.0", -1, "V", _U16),
        _r("1-0:52.7.0", -1, "V", _U16),
        _r("1-0:72.7.0", -1, "V", _U16),
        _r("1-0:31.7.0", -2, "A", _U16),
        _r("1-0:51.7.0", -2, "A", _U16),
        _r("1-0:71.7.0", -2, "A", _U16),
        _r("1-0:91.7.0", -2, "A", _U16),
        _r("1-0:14.7.0", -2, "Hz", _U16),
        _r("1-0:13.7.0", -3, None, _I16),
        _r("1-0:33.7.0", -3, None, _I16),
        _r("1-0:53.7.0", -3, None, _I16),
        _r("1-0:73.7.0", -3, None, _I16),
        _r("1-0:32.7.124", -1, "%", _U16),
        _r("1-0:52.7.124", -1, "%", _U16),
        _r("1-0:72.7.124", -1, "%", _U16),
        _r("1-0:31.7.124", -1, "%", _U16),
        _r("1-0:51.7.124", -1, "%", _U16),
        _r("1-0:71.7.124", -1, "%", _U16),
    )
}

DATA_OBJECTS: Final = (
    _O("0-0:96.1.0.255"),
    _O("0-0:96.1.1.255"),
    _O("0-0:42.0.0.255"),
    _O("1-0:0.2.0.255"),
    _O("0-0:96.14.0.255"),
)

PROFILE_CAPTURE_OBJECTS: Final = (
    CaptureObject(ClassId.CLOCK, CLOCK_OBIS, 2, 0),
    CaptureObject(ClassId.DATA, PROFILE_STATUS_OBIS, 2, 0),
    *(CaptureObject(ClassId.REGISTER, code, 2, 0) for code in PROFILE_REGISTERS),
)

# The E450 CII push object list (Swiss VSE configuration): (class, obis, attribute).
# Energies carry channel B = 1 as in the captures; the values are the same registers.
PUSH_OBJECTS: Final = (
    (ClassId.PUSH_SETUP, PUSH_SETUP_OBIS, 2),
    (ClassId.PUSH_SETUP, PUSH_SETUP_OBIS, 1),
    (ClassId.DATA, _O("0-0:42.0.0.255"), 2),
    (ClassId.DATA, _O("0-0:96.1.1.255"), 2),
    (ClassId.CLOCK, CLOCK_OBIS, 2),
    (ClassId.REGISTER, _O("1-1:1.8.0.255"), 2),
    (ClassId.REGISTER, _O("1-1:2.8.0.255"), 2),
    (ClassId.REGISTER, _O("1-1:3.8.0.255"), 2),
    (ClassId.REGISTER, _O("1-1:4.8.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:1.7.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:2.7.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:32.7.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:52.7.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:72.7.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:31.7.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:51.7.0.255"), 2),
    (ClassId.REGISTER, _O("1-0:71.7.0.255"), 2),
)
# Raw scalers of the push values (the push carries none): V in 1 V, A in 0.01 A.
_PUSH_SCALERS: Final = {
    _O("1-0:32.7.0.255"): 0,
    _O("1-0:52.7.0.255"): 0,
    _O("1-0:72.7.0.255"): 0,
}

_BOUNDS: Final = {
    DataType.DOUBLE_LONG_UNSIGNED: (0, 0xFFFFFFFF),
    DataType.DOUBLE_LONG: (-(1 << 31), (1 << 31) - 1),
    DataType.LONG_UNSIGNED: (0, 0xFFFF),
    DataType.LONG: (-(1 << 15), (1 << 15) - 1),
}


def raw_value(value: float | int, scaler: int, typ: DataType) -> Data:
    """Physical value -> the integer a register holds (``value / 10**scaler``, rounded, clamped)."""
    raw = math.floor(value) if scaler == 0 and isinstance(value, int) else round(value / 10.0**scaler)
    lo, hi = _BOUNDS[typ]
    return Data(typ, max(lo, min(hi, int(raw))))


def _energy_raw(value: float | int) -> int:
    return max(0, min(0xFFFFFFFF, math.floor(value)))


def _base(code: ObisCode) -> ObisCode:
    """Channel B of the push (1-1:1.8.0) is the same register as 1-0:1.8.0."""
    return ObisCode(code.a, 0, code.c, code.d, code.e, code.f) if code.a == 1 else code


def clock_data(at: datetime, timezone: str) -> Data:
    """The Clock value: local time with its deviation, DST flag in the status."""
    local = at.astimezone(ZoneInfo(timezone))
    status = ClockStatus.OK
    if local.dst():
        status |= ClockStatus.DAYLIGHT_SAVING_ACTIVE
    return Data.octet_string(CosemDateTime.from_datetime(local, status).encode())


def push_date_time(at: datetime, timezone: str, status: ClockStatus | None = None) -> CosemDateTime:
    """A date-time as the E450 writes it in its CII push: local wall time to the second,
    hundredths and deviation *not specified* (``FF`` and ``80 00``, as in the real capture),
    so that a receiver must know the meter's time zone. ``status`` ``None``: the clock's own
    (daylight saving flag while DST is active)."""
    local = at.astimezone(ZoneInfo(timezone))
    if status is None:
        status = ClockStatus.DAYLIGHT_SAVING_ACTIVE if local.dst() else ClockStatus.OK
    return CosemDateTime(
        CosemDate.from_date(local.date()),
        CosemTime(local.hour, local.minute, local.second, None),
        None,
        status,
    )


def _string(text: str) -> Data:
    return Data.octet_string(text.encode("ascii"))


def _register_data(snapshot: Snapshot, code: ObisCode) -> Data:
    spec = REGISTERS[code]
    value = snapshot.values[code]
    assert isinstance(value, (int, float))
    if spec.unit in ("Wh", "varh", "VAh"):
        return Data(spec.type, _energy_raw(value))
    return raw_value(value, spec.scaler, spec.type)


def push_body(snapshot: Snapshot, timezone: str = "Europe/Zurich") -> Data:
    """The E450 CII Data-Notification body: (object list, value 1 ... value n)."""
    object_list = Data.array(
        Data.structure(
            Data.long_unsigned(cls),
            Data.octet_string(bytes(obis)),
            Data.integer(attr),
            Data.long_unsigned(0),
        )
        for cls, obis, attr in PUSH_OBJECTS
    )
    values: list[Data] = [object_list, Data.octet_string(bytes(PUSH_SETUP_OBIS))]
    for cls, obis, _attr in PUSH_OBJECTS[2:]:
        code = _base(obis)
        if cls == ClassId.CLOCK:
            values.append(Data.octet_string(push_date_time(snapshot.at, timezone).encode()))
        elif cls == ClassId.DATA:
            value = snapshot.values[code]
            values.append(_string(str(value)))
        else:
            spec = REGISTERS[code]
            value = snapshot.values[code]
            assert isinstance(value, (int, float))
            if spec.unit in ("Wh", "varh", "VAh"):
                values.append(Data(spec.type, _energy_raw(value)))
            else:
                scaler = _PUSH_SCALERS.get(code, spec.scaler)
                typ = DataType.LONG_UNSIGNED if spec.type is _U16 else DataType.DOUBLE_LONG_UNSIGNED
                values.append(raw_value(max(0.0, float(value)), scaler, typ))
    return Data.structure(*values)


class E450Objects:
    """The ``CosemModel`` of the virtual meter (see the module docstring).

    ``snapshot`` is called for every request so that values are those of "now" on the
    simulator's clock.
    """

    def __init__(self, model: E450Model, snapshot: Callable[[], Snapshot]) -> None:
        self.model = model
        self._snapshot = snapshot
        self.timezone = model.config.timezone
        self._getters: dict[
            tuple[int, ObisCode], Callable[[int, AccessSelection | None], Data | DataAccessResult]
        ] = {}
        for code in REGISTERS:
            self._getters[(ClassId.REGISTER, code)] = self._register
        for code in DATA_OBJECTS:
            self._getters[(ClassId.DATA, code)] = self._data
        self._getters[(ClassId.DATA, PROFILE_STATUS_OBIS)] = self._data
        self._getters[(ClassId.CLOCK, CLOCK_OBIS)] = self._clock
        self._getters[(ClassId.PROFILE_GENERIC, PROFILE_OBIS)] = self._profile
        self._getters[(ClassId.PUSH_SETUP, PUSH_SETUP_OBIS)] = self._push_setup
        self._getters[(ClassId.ASSOCIATION_LN, ASSOCIATION_OBIS)] = self._association
        self._current: tuple[ObisCode, Snapshot] | None = None

    # -- CosemModel -----------------------------------------------------------------------
    def get(self, attribute: AttributeDescriptor, access: AccessSelection | None) -> Data | DataAccessResult:
        getter = self._getters.get((attribute.class_id, attribute.obis))
        if getter is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if attribute.attribute == 1:
            return Data.octet_string(bytes(attribute.obis))
        self._current = (attribute.obis, self._snapshot())
        try:
            return getter(attribute.attribute, access)
        finally:
            self._current = None

    def set(self, attribute: AttributeDescriptor, value: Data) -> DataAccessResult:
        if (attribute.class_id, attribute.obis) not in self._getters:
            return DataAccessResult.OBJECT_UNDEFINED
        return DataAccessResult.READ_WRITE_DENIED

    def action(self, method: MethodDescriptor, parameters: Data | None) -> tuple[ActionResult, Data | None]:
        if (method.class_id, method.obis) not in self._getters:
            return ActionResult.OBJECT_UNDEFINED, None
        return ActionResult.READ_WRITE_DENIED, None

    # -- objects --------------------------------------------------------------------------
    def _now(self) -> tuple[ObisCode, Snapshot]:
        assert self._current is not None
        return self._current

    def _register(self, attribute: int, access: AccessSelection | None) -> Data | DataAccessResult:
        code, snap = self._now()
        spec = REGISTERS[code]
        if access is not None:
            return DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
        if attribute == 2:
            return _register_data(snap, code)
        if attribute == 3:
            return ScalerUnit(spec.scaler, unit_code(spec.unit) if spec.unit else 255).to_data()
        return DataAccessResult.OBJECT_UNAVAILABLE

    def _data(self, attribute: int, access: AccessSelection | None) -> Data | DataAccessResult:
        code, snap = self._now()
        if attribute != 2 or access is not None:
            return DataAccessResult.OBJECT_UNAVAILABLE
        if code == PROFILE_STATUS_OBIS:
            return Data.unsigned(0)
        value = snap.values[code]
        if isinstance(value, int):
            return Data.unsigned(value)
        return _string(str(value))

    def _clock(self, attribute: int, access: AccessSelection | None) -> Data | DataAccessResult:
        _, snap = self._now()
        local = snap.at.astimezone(ZoneInfo(self.timezone))
        offset = local.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset is not None else 0
        dst = local.dst()
        answers: dict[int, Data] = {
            2: clock_data(snap.at, self.timezone),
            3: Data.long(-(minutes - (int(dst.total_seconds() // 60) if dst else 0))),
            4: Data.unsigned(int(ClockStatus.DAYLIGHT_SAVING_ACTIVE) if dst else 0),
            7: Data.integer(60),
            8: Data.boolean(True),
            9: Data.enum(1),  # crystal
        }
        return answers.get(attribute, DataAccessResult.OBJECT_UNAVAILABLE)

    def _profile_buffer(self) -> Data:
        rows = []
        for entry in self.model.profile:
            rows.append(
                Data.structure(
                    clock_data(entry.at, self.timezone),
                    Data.unsigned(entry.status),
                    *(Data.double_long_unsigned(v) for v in entry.values),
                )
            )
        return Data.array(rows)

    def _profile(self, attribute: int, access: AccessSelection | None) -> Data | DataAccessResult:
        if attribute == 2:
            try:
                return select_profile(
                    self._profile_buffer(), PROFILE_CAPTURE_OBJECTS, access, ZoneInfo(self.timezone)
                )
            except ValueError:  # a malformed or unknown selective access descriptor
                return DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
        if access is not None:
            return DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
        period = int(self.model.config.profile_period.total_seconds())
        answers: dict[int, Data] = {
            3: Data.array(c.to_data() for c in PROFILE_CAPTURE_OBJECTS),
            4: Data.double_long_unsigned(period),
            5: Data.enum(1),  # fifo
            6: PROFILE_CAPTURE_OBJECTS[0].to_data(),
            7: Data.double_long_unsigned(len(self.model.profile)),
            8: Data.double_long_unsigned(self.model.config.profile_depth),
        }
        return answers.get(attribute, DataAccessResult.OBJECT_UNAVAILABLE)

    def _push_setup(self, attribute: int, access: AccessSelection | None) -> Data | DataAccessResult:
        if attribute == 2 and access is None:
            return Data.array(
                Data.structure(
                    Data.long_unsigned(cls),
                    Data.octet_string(bytes(obis)),
                    Data.integer(attr),
                    Data.long_unsigned(0),
                )
                for cls, obis, attr in PUSH_OBJECTS
            )
        return DataAccessResult.OBJECT_UNAVAILABLE

    def _association(self, attribute: int, access: AccessSelection | None) -> Data | DataAccessResult:
        if attribute != 2 or access is not None:
            return DataAccessResult.OBJECT_UNAVAILABLE
        versions = {ClassId.PROFILE_GENERIC: 1, ClassId.ASSOCIATION_LN: 1}
        attributes = {
            ClassId.DATA: 2,
            ClassId.REGISTER: 3,
            ClassId.CLOCK: 9,
            ClassId.PROFILE_GENERIC: 8,
            ClassId.PUSH_SETUP: 2,
            ClassId.ASSOCIATION_LN: 2,
        }
        entries = []
        for cls, code in self._getters:
            n = attributes[ClassId(cls)]
            access_list = Data.array(
                Data.structure(Data.integer(i), Data.enum(1), Data.null())  # read-only
                for i in range(1, n + 1)
            )
            entries.append(
                Data.structure(
                    Data.long_unsigned(cls),
                    Data.unsigned(versions.get(ClassId(cls), 0)),
                    Data.octet_string(bytes(code)),
                    Data.structure(access_list, Data.array(())),
                )
            )
        return Data.array(entries)
