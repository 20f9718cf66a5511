"""Decoding tables of EN 13757-3, built once at import and indexed by byte.

* ``PRIMARY_VIF[vif & 0x7F]``, ``FB_VIF[vife & 0x7F]``, ``FD_VIF[vife & 0x7F]``: what a value
  information field means (:class:`VifInfo`: quantity, base unit, decimal exponent, kind,
  and the description libmbus prints for it).
* ``ORTHOGONAL_VIFE[vife & 0x7F]``: the combinable VIF extensions (:class:`VifeInfo`).
* ``DATA_FIELD[dif & 0x0F]``: data type and length of the data field.
* ``FUNCTION[dif >> 4 & 3]``: function field names.
* ``MEDIUM[byte]``, ``MEDIUM_TEXT[byte]``: device type of the fixed header (EN 13757-3 table 3).
* ``FIXED_UNIT[code]``: units of the fixed data structure (CI 0x73/0x77).
* ``manufacturer_code`` / ``manufacturer_id``: the three-letter FLAG code.

Quantities are snake_case names (``energy``, ``volume``, ``flow_temperature`` ...); units are
the SI base unit of the quantity (``Wh``, ``J``, ``m³``, ``kg``, ``W``, ``J/h``, ``m³/h``,
``°C``, ``K``, ``bar``, ``s``, ``V``, ``A``); durations are normalised to seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

__all__ = [
    "DATA_FIELD",
    "FB_VIF",
    "FD_VIF",
    "FIXED_UNIT",
    "FUNCTION",
    "MEDIUM",
    "MEDIUM_TEXT",
    "ORTHOGONAL_VIFE",
    "PRIMARY_VIF",
    "DataField",
    "FixedUnit",
    "VifInfo",
    "VifeInfo",
    "manufacturer_code",
    "manufacturer_id",
    "unit_prefix",
]


# Value kinds: how a record's data is interpreted once decoded.
NUMBER: Final = "number"  # scaled by 10**exponent (and by ``factor`` for durations)
DATE: Final = "date"  # type G
DATETIME: Final = "datetime"  # type F / I (date and time) or J (time only)
IDENT: Final = "ident"  # a number shown as is (fabrication number, versions, addresses)
BINARY: Final = "binary"  # flags, bit fields: the integer as is
TEXT: Final = "text"  # plain text
MANUFACTURER: Final = "manufacturer"  # manufacturer specific
DAYLIGHT: Final = "daylight"  # type K (32 bits): daylight saving begin, end, deviation


@dataclass(frozen=True, slots=True)
class VifInfo:
    """Meaning of one VIF code.

    ``value = raw * factor * 10**exponent`` in ``unit`` (the quantity's base unit);
    ``description`` is the text libmbus prints for the code in its raw XML.
    """

    code: int  # 0x00..0x7F, or 0x100 | code for FB, 0x200 | code for FD
    quantity: str
    unit: str | None
    exponent: int
    kind: str
    description: str
    factor: int = 1
    scale: int | Decimal = field(init=False, repr=False, compare=False)  # factor * 10**exponent, exact
    unscaled: bool = field(init=False, repr=False, compare=False)  # scale == 1, decided once

    def __post_init__(self) -> None:
        scale: int | Decimal = (
            self.factor * 10**self.exponent
            if self.exponent >= 0
            else Decimal(self.factor).scaleb(self.exponent)
        )
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "unscaled", scale == 1)


@dataclass(frozen=True, slots=True)
class VifeInfo:
    """Meaning of one combinable (orthogonal) VIFE code (EN 13757-3 table 15)."""

    code: int
    name: str
    exponent: int = 0  # multiplicative correction 10**exponent applied to the value
    additive_exponent: int | None = None  # additive correction constant 10**exponent * unit


@dataclass(frozen=True, slots=True)
class DataField:
    """Data type coded in DIF bits 0..3."""

    code: int
    name: str
    length: int  # bytes; -1: variable (LVAR), 0: none
    kind: str  # "none", "int", "real", "bcd", "variable", "special"


@dataclass(frozen=True, slots=True)
class FixedUnit:
    """One unit code of the fixed data structure (EN 13757-3 annex, EN 1434-3)."""

    code: int
    quantity: str
    unit: str | None
    exponent: int
    description: str  # libmbus's text
    kind: str = NUMBER
    factor: int = 1


def unit_prefix(exponent: int) -> str:
    """The SI-ish prefix libmbus prints for a power of ten (``mbus_unit_prefix``)."""
    return _PREFIX.get(exponent, f"1e{exponent} ")


_PREFIX: Final[dict[int, str]] = {
    0: "",
    -3: "m",
    -6: "my",
    1: "10 ",
    2: "100 ",
    3: "k",
    4: "10 k",
    5: "100 k",
    6: "M",
    9: "T",
}

_TIME_UNITS: Final = (("seconds", 1), ("minutes", 60), ("hours", 3600), ("days", 86400))
_TIME_UNITS_HOURS_UP: Final = (("hours", 3600), ("days", 86400), ("months", 2629800), ("years", 31557600))


def _build_primary() -> tuple[VifInfo, ...]:
    table: list[VifInfo] = []

    def add(
        code: int, quantity: str, unit: str | None, exponent: int, kind: str, text: str, factor: int = 1
    ) -> None:
        assert code == len(table), hex(code)
        table.append(VifInfo(code, quantity, unit, exponent, kind, text, factor))

    for n in range(8):
        add(n, "energy", "Wh", n - 3, NUMBER, f"Energy ({unit_prefix(n - 3)}Wh)")
    for n in range(8):
        add(0x08 + n, "energy", "J", n, NUMBER, f"Energy ({unit_prefix(n)}J)")
    for n in range(8):
        add(0x10 + n, "volume", "m³", n - 6, NUMBER, f"Volume ({unit_prefix(n - 6)} m^3)")
    for n in range(8):
        add(0x18 + n, "mass", "kg", n - 3, NUMBER, f"Mass ({unit_prefix(n - 3)}kg)")
    for n, (name, factor) in enumerate(_TIME_UNITS):
        add(0x20 + n, "on_time", "s", 0, NUMBER, f"On time ({name})", factor)
    for n, (name, factor) in enumerate(_TIME_UNITS):
        add(0x24 + n, "operating_time", "s", 0, NUMBER, f"Operating time ({name})", factor)
    for n in range(8):
        add(0x28 + n, "power", "W", n - 3, NUMBER, f"Power ({unit_prefix(n - 3)}W)")
    for n in range(8):
        add(0x30 + n, "power", "J/h", n, NUMBER, f"Power ({unit_prefix(n)}J/h)")
    for n in range(8):
        add(0x38 + n, "volume_flow", "m³/h", n - 6, NUMBER, f"Volume flow ({unit_prefix(n - 6)} m^3/h)")
    for n in range(8):
        add(0x40 + n, "volume_flow", "m³/min", n - 7, NUMBER, f"Volume flow ({unit_prefix(n - 7)} m^3/min)")
    for n in range(8):
        add(0x48 + n, "volume_flow", "m³/s", n - 9, NUMBER, f"Volume flow ({unit_prefix(n - 9)} m^3/s)")
    for n in range(8):
        add(0x50 + n, "mass_flow", "kg/h", n - 3, NUMBER, f"Mass flow ({unit_prefix(n - 3)}kg/h)")
    for n in range(4):
        add(
            0x58 + n, "flow_temperature", "°C", n - 3, NUMBER, f"Flow temperature ({unit_prefix(n - 3)}deg C)"
        )
    for n in range(4):
        add(
            0x5C + n,
            "return_temperature",
            "°C",
            n - 3,
            NUMBER,
            f"Return temperature ({unit_prefix(n - 3)}deg C)",
        )
    for n in range(4):
        add(
            0x60 + n,
            "temperature_difference",
            "K",
            n - 3,
            NUMBER,
            f"Temperature Difference ({unit_prefix(n - 3)} deg C)",
        )
    for n in range(4):
        add(
            0x64 + n,
            "external_temperature",
            "°C",
            n - 3,
            NUMBER,
            f"External temperature ({unit_prefix(n - 3)} deg C)",
        )
    for n in range(4):
        add(0x68 + n, "pressure", "bar", n - 3, NUMBER, f"Pressure ({unit_prefix(n - 3)} bar)")
    add(0x6C, "date", None, 0, DATE, "Time Point (date)")
    add(0x6D, "date_time", None, 0, DATETIME, "Time Point (time & date)")
    add(0x6E, "hca_units", None, 0, NUMBER, "Units for H.C.A.")
    add(0x6F, "reserved", None, 0, NUMBER, "Reserved")
    for n, (name, factor) in enumerate(_TIME_UNITS):
        add(0x70 + n, "averaging_duration", "s", 0, NUMBER, f"Averaging Duration ({name})", factor)
    for n, (name, factor) in enumerate(_TIME_UNITS):
        add(0x74 + n, "actuality_duration", "s", 0, NUMBER, f"Actuality Duration ({name})", factor)
    add(0x78, "fabrication_number", None, 0, IDENT, "Fabrication number")
    add(0x79, "enhanced_identification", None, 0, IDENT, "Unknown (VIF=0x79)")
    add(0x7A, "bus_address", None, 0, IDENT, "Bus Address")
    add(0x7B, "unknown", None, 0, IDENT, "Unknown (VIF=0x7B)")
    add(0x7C, "plain_text", None, 0, NUMBER, "")
    add(0x7D, "unknown", None, 0, IDENT, "Unknown (VIF=0x7D)")
    add(0x7E, "any", None, 0, IDENT, "Any VIF")
    add(0x7F, "manufacturer_specific", None, 0, MANUFACTURER, "Manufacturer specific")
    return tuple(table)


def _build_fb() -> tuple[VifInfo, ...]:
    entries: dict[int, VifInfo] = {}

    def add(code: int, quantity: str, unit: str | None, exponent: int, text: str, kind: str = NUMBER) -> None:
        entries[code] = VifInfo(0x100 | code, quantity, unit, exponent, kind, text)

    add(0x00, "energy", "Wh", 5, "Energy (0.1 MWh)")
    add(0x01, "energy", "Wh", 6, "Energy (1 MWh)")
    add(0x08, "energy", "J", 8, "Energy (0.1 GJ)")
    add(0x09, "energy", "J", 9, "Energy (1 GJ)")
    add(0x10, "volume", "m³", 2, "Volume (100 m^3)")
    add(0x11, "volume", "m³", 3, "Volume (1000 m^3)")
    add(0x18, "mass", "kg", 5, "Mass (100 t)")
    add(0x19, "mass", "kg", 6, "Mass (1000 t)")
    add(0x21, "volume", "ft³", -1, "Volume (0.1 feet^3)")
    add(0x22, "volume", "US gal", -1, "Volume (0.1 american gallon)")
    add(0x23, "volume", "US gal", 0, "Volume (1 american gallon)")
    add(0x24, "volume_flow", "US gal/min", -3, "Volume flow (0.001 american gallon/min)")
    add(0x25, "volume_flow", "US gal/min", 0, "Volume flow (1 american gallon/min)")
    add(0x26, "volume_flow", "US gal/h", 0, "Volume flow (1 american gallon/h)")
    add(0x28, "power", "W", 5, "Power (0.1 MW)")
    add(0x29, "power", "W", 6, "Power (1 MW)")
    add(0x30, "power", "J/h", 8, "Power (0.1 GJ/h)")
    add(0x31, "power", "J/h", 9, "Power (1 GJ/h)")
    for n in range(4):
        add(0x58 + n, "flow_temperature", "°F", n - 3, f"Flow temperature ({unit_prefix(n - 3)}deg F)")
        add(0x5C + n, "return_temperature", "°F", n - 3, f"Return temperature ({unit_prefix(n - 3)}deg F)")
        add(
            0x60 + n,
            "temperature_difference",
            "°F",
            n - 3,
            f"Temperature difference ({unit_prefix(n - 3)}deg F)",
        )
        add(
            0x64 + n, "external_temperature", "°F", n - 3, f"External temperature ({unit_prefix(n - 3)}deg F)"
        )
        add(
            0x70 + n,
            "temperature_limit",
            "°F",
            n - 3,
            f"Cold / Warm Temperature Limit ({unit_prefix(n - 3)}deg F)",
        )
        add(
            0x74 + n,
            "temperature_limit",
            "°C",
            n - 3,
            f"Cold / Warm Temperature Limit ({unit_prefix(n - 3)}deg C)",
        )
    for n in range(8):
        add(0x78 + n, "cumulative_max_power", "W", n - 3, f"Cumul count max power ({unit_prefix(n - 3)}W)")
    return tuple(
        entries.get(code, VifInfo(0x100 | code, "reserved", None, 0, NUMBER, "Reserved VIF extension"))
        for code in range(0x80)
    )


def _build_fd() -> tuple[VifInfo, ...]:
    entries: dict[int, VifInfo] = {}

    def add(
        code: int,
        quantity: str,
        unit: str | None,
        exponent: int,
        text: str,
        kind: str = NUMBER,
        factor: int = 1,
    ) -> None:
        entries[code] = VifInfo(0x200 | code, quantity, unit, exponent, kind, text, factor)

    for n in range(4):
        add(
            0x00 + n,
            "credit",
            "currency",
            n - 3,
            f"Credit of {unit_prefix(n - 3)}of the nominal local legal currency units",
        )
        add(
            0x04 + n,
            "debit",
            "currency",
            n - 3,
            f"Debit of {unit_prefix(n - 3)}of the nominal local legal currency units",
        )
    add(0x08, "access_number", None, 0, "Access Number (transmission count)", IDENT)
    add(0x09, "medium", None, 0, "Medium (as in fixed header)", IDENT)
    add(0x0A, "manufacturer", None, 0, "Manufacturer (as in fixed header)", IDENT)
    add(0x0B, "parameter_set_identification", None, 0, "Parameter set identification", IDENT)
    add(0x0C, "model_version", None, 0, "Model / Version", IDENT)
    add(0x0D, "hardware_version", None, 0, "Hardware version", IDENT)
    add(0x0E, "firmware_version", None, 0, "Firmware version", IDENT)
    add(0x0F, "software_version", None, 0, "Software version", IDENT)
    add(0x10, "customer_location", None, 0, "Customer location", IDENT)
    add(0x11, "customer", None, 0, "Customer", IDENT)
    add(0x12, "access_code_user", None, 0, "Access Code User", IDENT)
    add(0x13, "access_code_operator", None, 0, "Access Code Operator", IDENT)
    add(0x14, "access_code_system_operator", None, 0, "Access Code System Operator", IDENT)
    add(0x15, "access_code_developer", None, 0, "Access Code Developer", IDENT)
    add(0x16, "password", None, 0, "Password", IDENT)
    add(0x17, "error_flags", None, 0, "Error flags", BINARY)
    add(0x18, "error_mask", None, 0, "Error mask", BINARY)
    add(0x1A, "digital_output", None, 0, "Digital output (binary)", BINARY)
    add(0x1B, "digital_input", None, 0, "Digital input (binary)", BINARY)
    add(0x1C, "baud_rate", "Bd", 0, "Baud rate", IDENT)
    add(0x1D, "response_delay", "bit times", 0, "Response delay time", IDENT)
    add(0x1E, "retry", None, 0, "Retry", IDENT)
    add(0x1F, "remote_control", None, 0, "Remote control (device specific)", BINARY)
    add(0x20, "first_storage_number", None, 0, "First storage # for cyclic storage", IDENT)
    add(0x21, "last_storage_number", None, 0, "Last storage # for cyclic storage", IDENT)
    add(0x22, "storage_block_size", None, 0, "Size of storage block", IDENT)
    for n, (name, factor) in enumerate(_TIME_UNITS):
        add(0x24 + n, "storage_interval", "s", 0, f"Storage interval ({name})", NUMBER, factor)
    add(0x28, "storage_interval", "months", 0, "Storage interval (months)")
    add(0x29, "storage_interval", "years", 0, "Storage interval (years)")
    for n, (name, factor) in enumerate(_TIME_UNITS):
        add(
            0x2C + n,
            "duration_since_readout",
            "s",
            0,
            f"Duration since last readout ({name})",
            NUMBER,
            factor,
        )
    add(0x30, "tariff_start", None, 0, "Start (date/time) of tariff", DATETIME)
    for n, (name, factor) in enumerate(_TIME_UNITS[1:]):
        add(0x31 + n, "tariff_duration", "s", 0, f"Duration of tariff ({name})", NUMBER, factor)
    for n, (name, factor) in enumerate(_TIME_UNITS):
        add(0x34 + n, "tariff_period", "s", 0, f"Period of tariff ({name})", NUMBER, factor)
    add(0x38, "tariff_period", "months", 0, "Period of tariff (months)")
    add(0x39, "tariff_period", "years", 0, "Period of tariff (years)")
    add(0x3A, "dimensionless", None, 0, "dimensionless / no VIF")
    for n in range(16):
        add(0x40 + n, "voltage", "V", n - 9, f"{unit_prefix(n - 9)} V")
        add(0x50 + n, "current", "A", n - 12, f"{unit_prefix(n - 12)} A")
    add(0x60, "reset_counter", None, 0, "Reset counter", IDENT)
    add(0x61, "cumulation_counter", None, 0, "Cumulation counter", IDENT)
    add(0x62, "control_signal", None, 0, "Control signal", BINARY)
    add(0x63, "day_of_week", None, 0, "Day of week", IDENT)
    add(0x64, "week_number", None, 0, "Week number", IDENT)
    add(0x65, "day_change_time", None, 0, "Time point of day change", IDENT)
    add(0x66, "parameter_activation_state", None, 0, "State of parameter activation", BINARY)
    add(0x67, "special_supplier_information", None, 0, "Special supplier information", IDENT)
    for n, (name, factor) in enumerate(_TIME_UNITS_HOURS_UP):
        add(
            0x68 + n,
            "duration_since_cumulation",
            "s",
            0,
            f"Duration since last cumulation ({name})",
            NUMBER,
            factor,
        )
        add(0x6C + n, "battery_operating_time", "s", 0, f"Operating time battery ({name})", NUMBER, factor)
    add(0x70, "battery_change_time", None, 0, "Date and time of battery change", DATETIME)
    add(0x71, "rf_level", "dBm", 0, "RF level units: dBm")
    add(0x72, "daylight_saving", None, 0, "Daylight saving (beginning, ending, deviation)", DAYLIGHT)
    add(0x73, "listening_window", None, 0, "Listening window management", BINARY)
    add(0x74, "remaining_battery_life", "s", 0, "Remaining battery life time (days)", NUMBER, 86400)
    add(0x75, "meter_stop_count", None, 0, "Number of times the meter was stopped", IDENT)
    add(0x76, "data_container", None, 0, "Data container for manufacturer specific protocol", BINARY)
    return tuple(
        entries.get(code, VifInfo(0x200 | code, "reserved", None, 0, NUMBER, "Reserved VIF extension"))
        for code in range(0x80)
    )


def _build_orthogonal() -> tuple[VifeInfo, ...]:
    entries: dict[int, VifeInfo] = {}
    for code in range(0x20):
        entries[code] = VifeInfo(code, f"error_code_{code:02x}")
    per = ("second", "minute", "hour", "day", "week", "month", "year", "revolution/measurement")
    for n, name in enumerate(per):
        entries[0x20 + n] = VifeInfo(0x20 + n, f"per {name}")
    entries[0x28] = VifeInfo(0x28, "increment per input pulse on input channel 0")
    entries[0x29] = VifeInfo(0x29, "increment per input pulse on input channel 1")
    entries[0x2A] = VifeInfo(0x2A, "increment per output pulse on output channel 0")
    entries[0x2B] = VifeInfo(0x2B, "increment per output pulse on output channel 1")
    for code, name in (
        (0x2C, "per litre"),
        (0x2D, "per m³"),
        (0x2E, "per kg"),
        (0x2F, "per K"),
        (0x30, "per kWh"),
        (0x31, "per GJ"),
        (0x32, "per kW"),
        (0x33, "per (K·l)"),
        (0x34, "per V"),
        (0x35, "per A"),
        (0x36, "multiplied by s"),
        (0x37, "multiplied by s/V"),
        (0x38, "multiplied by s/A"),
        (0x39, "start date(/time) of"),
        (0x3A, "uncorrected unit"),
        (0x3B, "accumulation only if positive contributions"),
        (0x3C, "accumulation of absolute value only if negative contributions"),
    ):
        entries[code] = VifeInfo(code, name)
    for u, limit in ((0, "lower"), (1, "upper")):
        base = 0x40 | (u << 3)
        entries[base] = VifeInfo(base, f"{limit} limit value")
        entries[base | 1] = VifeInfo(base | 1, f"number of exceeds of {limit} limit")
        for f, first in ((0, "first"), (1, "last")):
            for b, edge in ((0, "begin"), (1, "end")):
                code = base | 0x02 | (f << 2) | b
                entries[code] = VifeInfo(code, f"date(/time) of {edge} of {first} {limit} limit exceed")
            for nn, unit in enumerate(("seconds", "minutes", "hours", "days")):
                code = 0x50 | (u << 3) | (f << 2) | nn
                entries[code] = VifeInfo(code, f"duration of {first} {limit} limit exceed ({unit})")
    for f, first in ((0, "first"), (1, "last")):
        for nn, unit in enumerate(("seconds", "minutes", "hours", "days")):
            code = 0x60 | (f << 2) | nn
            entries[code] = VifeInfo(code, f"duration of {first} ({unit})")
        for b, edge in ((0, "begin"), (1, "end")):
            code = 0x6A | (f << 2) | b
            entries[code] = VifeInfo(code, f"date(/time) of {first} {edge}")
    for n in range(8):
        entries[0x70 + n] = VifeInfo(0x70 + n, f"multiplicative correction factor 1e{n - 6}", exponent=n - 6)
    for n in range(4):
        entries[0x78 + n] = VifeInfo(
            0x78 + n, f"additive correction constant 1e{n - 3} x unit", additive_exponent=n - 3
        )
    entries[0x7C] = VifeInfo(0x7C, "extension of combinable VIFE")
    entries[0x7D] = VifeInfo(0x7D, "multiplicative correction factor 1e3", exponent=3)
    entries[0x7E] = VifeInfo(0x7E, "future value")
    entries[0x7F] = VifeInfo(0x7F, "manufacturer specific")
    return tuple(entries.get(code, VifeInfo(code, "reserved")) for code in range(0x80))


def _build_data_field() -> tuple[DataField, ...]:
    return (
        DataField(0x0, "no data", 0, "none"),
        DataField(0x1, "8 bit integer", 1, "int"),
        DataField(0x2, "16 bit integer", 2, "int"),
        DataField(0x3, "24 bit integer", 3, "int"),
        DataField(0x4, "32 bit integer", 4, "int"),
        DataField(0x5, "32 bit real", 4, "real"),
        DataField(0x6, "48 bit integer", 6, "int"),
        DataField(0x7, "64 bit integer", 8, "int"),
        DataField(0x8, "selection for readout", 0, "none"),
        DataField(0x9, "2 digit BCD", 1, "bcd"),
        DataField(0xA, "4 digit BCD", 2, "bcd"),
        DataField(0xB, "6 digit BCD", 3, "bcd"),
        DataField(0xC, "8 digit BCD", 4, "bcd"),
        DataField(0xD, "variable length", -1, "variable"),
        DataField(0xE, "12 digit BCD", 6, "bcd"),
        DataField(0xF, "special functions", 0, "special"),
    )


PRIMARY_VIF: Final[tuple[VifInfo, ...]] = _build_primary()
FB_VIF: Final[tuple[VifInfo, ...]] = _build_fb()
FD_VIF: Final[tuple[VifInfo, ...]] = _build_fd()
ORTHOGONAL_VIFE: Final[tuple[VifeInfo, ...]] = _build_orthogonal()
DATA_FIELD: Final[tuple[DataField, ...]] = _build_data_field()
FUNCTION: Final[tuple[str, ...]] = ("instantaneous", "maximum", "minimum", "error")
FUNCTION_TEXT: Final[tuple[str, ...]] = (
    "Instantaneous value",
    "Maximum value",
    "Minimum value",
    "Value during error state",
)

_MEDIA: Final[dict[int, tuple[str, str]]] = {
    0x00: ("other", "Other"),
    0x01: ("oil", "Oil"),
    0x02: ("electricity", "Electricity"),
    0x03: ("gas", "Gas"),
    0x04: ("heat_outlet", "Heat: Outlet"),
    0x05: ("steam", "Steam"),
    0x06: ("warm_water", "Warm water (30-90°C)"),
    0x07: ("water", "Water"),
    0x08: ("heat_cost_allocator", "Heat Cost Allocator"),
    0x09: ("compressed_air", "Compressed Air"),
    0x0A: ("cooling_outlet", "Cooling load meter: Outlet"),
    0x0B: ("cooling_inlet", "Cooling load meter: Inlet"),
    0x0C: ("heat_inlet", "Heat: Inlet"),
    0x0D: ("heat_cooling", "Heat / Cooling load meter"),
    0x0E: ("bus_system", "Bus/System"),
    0x0F: ("unknown", "Unknown Medium"),
    0x15: ("hot_water", "Hot water (>=90°C)"),
    0x16: ("cold_water", "Cold water"),
    0x17: ("dual_water", "Hot/Cold water meter"),
    0x18: ("pressure", "Pressure"),
    0x19: ("ad_converter", "A/D Converter"),
    0x1A: ("smoke_detector", "Smoke detector"),
    0x1B: ("room_sensor", "Room sensor"),
    0x1C: ("gas_detector", "Gas detector"),
    0x20: ("breaker", "Breaker: Electricity"),
    0x21: ("valve", "Valve: Gas or Water"),
    0x25: ("customer_unit", "Customer unit (display device)"),
    0x28: ("waste_water", "Waste water"),
    0x29: ("garbage", "Garbage"),
    0x2A: ("carbon_dioxide", "Carbon dioxide"),
    0x31: ("communication_controller", "Communication controller"),
    0x32: ("unidirectional_repeater", "Unidirectional repeater"),
    0x33: ("bidirectional_repeater", "Bidirectional repeater"),
    0x36: ("radio_converter_system", "Radio converter (system side)"),
    0x37: ("radio_converter_meter", "Radio converter (meter side)"),
}
MEDIUM: Final[tuple[str, ...]] = tuple(
    _MEDIA[m][0] if m in _MEDIA else f"reserved_0x{m:02x}" for m in range(256)
)
MEDIUM_TEXT: Final[tuple[str, ...]] = tuple(_MEDIA[m][1] if m in _MEDIA else "Reserved" for m in range(256))
MEDIUM_CODE: Final[dict[str, int]] = {name: code for code, (name, _) in _MEDIA.items()}


def _build_fixed_units() -> tuple[FixedUnit, ...]:
    units: list[FixedUnit] = [
        FixedUnit(0x00, "time", None, 0, "h,m,s", IDENT),
        FixedUnit(0x01, "date", None, 0, "D,M,Y", IDENT),
    ]
    for i, (unit, exp) in enumerate(
        (
            ("Wh", 0),
            ("10 Wh", 1),
            ("100 Wh", 2),
            ("kWh", 3),
            ("10 kWh", 4),
            ("100 kWh", 5),
            ("MWh", 6),
            ("10 MWh", 7),
            ("100 MWh", 8),
        )
    ):
        units.append(FixedUnit(0x02 + i, "energy", "Wh", exp, unit))
    for i, (unit, exp) in enumerate(
        (
            ("kJ", 3),
            ("10 kJ", 4),
            ("100 kJ", 5),
            ("MJ", 6),
            ("10 MJ", 7),
            ("100 MJ", 8),
            ("GJ", 9),
            ("10 GJ", 10),
            ("100 GJ", 11),
        )
    ):
        units.append(FixedUnit(0x0B + i, "energy", "J", exp, unit))
    for i, (unit, exp) in enumerate(
        (
            ("W", 0),
            ("10 W", 1),
            ("100 W", 2),
            ("kW", 3),
            ("10 kW", 4),
            ("100 kW", 5),
            ("MW", 6),
            ("10 MW", 7),
            ("100 MW", 8),
        )
    ):
        units.append(FixedUnit(0x14 + i, "power", "W", exp, unit))
    for i, (unit, exp) in enumerate(
        (
            ("kJ/h", 3),
            ("10 kJ/h", 4),
            ("100 kJ/h", 5),
            ("MJ/h", 6),
            ("10 MJ/h", 7),
            ("100 MJ/h", 8),
            ("GJ/h", 9),
            ("10 GJ/h", 10),
            ("100 GJ/h", 11),
        )
    ):
        units.append(FixedUnit(0x1D + i, "power", "J/h", exp, unit))
    for i, (unit, exp) in enumerate(
        (
            ("ml", -6),
            ("10 ml", -5),
            ("100 ml", -4),
            ("l", -3),
            ("10 l", -2),
            ("100 l", -1),
            ("m^3", 0),
            ("10 m^3", 1),
            ("100 m^3", 2),
        )
    ):
        units.append(FixedUnit(0x26 + i, "volume", "m³", exp, unit))
    for i, (unit, exp) in enumerate(
        (
            ("ml/h", -6),
            ("10 ml/h", -5),
            ("100 ml/h", -4),
            ("l/h", -3),
            ("10 l/h", -2),
            ("100 l/h", -1),
            ("m^3/h", 0),
            ("10 m^3/h", 1),
            ("100 m^3/h", 2),
        )
    ):
        units.append(FixedUnit(0x2F + i, "volume_flow", "m³/h", exp, unit))
    units.append(FixedUnit(0x38, "temperature", "°C", -3, "1e-3 °C"))
    units.append(FixedUnit(0x39, "hca_units", None, 0, "units for HCA"))
    units.extend(FixedUnit(code, "reserved", None, 0, "reserved") for code in range(0x3A, 0x3E))
    units.append(FixedUnit(0x3E, "same_but_historic", None, 0, "reserved but historic"))
    units.append(FixedUnit(0x3F, "dimensionless", None, 0, "without units"))
    assert len(units) == 0x40
    return tuple(units)


FIXED_UNIT: Final[tuple[FixedUnit, ...]] = _build_fixed_units()


def manufacturer_code(value: int) -> str:
    """Three-letter FLAG code of a 16-bit manufacturer id (EN 13757-3 5.6)."""
    return chr(((value >> 10) & 0x1F) + 64) + chr(((value >> 5) & 0x1F) + 64) + chr((value & 0x1F) + 64)


def manufacturer_id(code: str) -> int:
    """16-bit manufacturer id of a three-letter FLAG code (``"LGB"`` -> 0x30E2)."""
    if len(code) != 3 or not all("A" <= ch <= "Z" or ch == "@" for ch in code.upper()):
        raise ValueError(f"manufacturer code must be three letters A-Z, got {code!r}")
    up = code.upper()
    return ((ord(up[0]) - 64) << 10) | ((ord(up[1]) - 64) << 5) | (ord(up[2]) - 64)
