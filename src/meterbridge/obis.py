"""OBIS codes (IEC 62056-61) and the catalogue of quantities meterbridge knows.

``ObisCode.parse`` accepts every notation people type and meters print:

=======================  ====================================================
``1-0:1.8.0.255``        canonical form (what ``str()`` prints)
``1-0:1.8.0*255``        ``*`` or ``&`` before the F group (IEC 62056-21)
``1-0:1.8.0``            F omitted: 255
``1.0.1.8.0.255``        six dotted groups A.B.C.D.E.F
``1.8.0``, ``32.7``      short forms of optical readouts: C.D[.E], A=1 B=0
``C.1.0``, ``F.F``       letter groups: C=96, F=97, L=98, P=99; A=0 B=0
``1.8.0.255.2.255``      the notation of the Landis+Gyr E450 guide:
                         C.D.E.F followed by the attribute index (2 = value)
                         and 255; read as ``1-0:1.8.0.255``
``0100010800FF``         twelve hex digits, as on the wire
=======================  ====================================================

The E450 guide alias is recognised when six dotted groups end in ``.2.255`` and
the fourth group is 255: in a genuine A.B.C.D.E.F code D=255 is reserved, so the
two readings cannot be confused in practice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

__all__ = ["CATALOGUE", "ObisCode", "Quantity", "lookup"]

_LETTERS: Final = {"C": 96, "F": 97, "L": 98, "P": 99}
_GROUP = r"(\d{1,3}|[CFLP])"
_FULL = re.compile(
    r"^(?P<a>\d{1,3})-(?P<b>\d{1,3}):(?P<c>" + _GROUP[1:-1] + r")\.(?P<d>" + _GROUP[1:-1] + r")"
    r"(?:\.(?P<e>\d{1,3}))?(?:[.*&](?P<f>\d{1,3}))?$"
)
_HEX = re.compile(r"^[0-9A-Fa-f]{12}$")


_DIGITS: Final = tuple(str(i) for i in range(256))


def _group(text: str, what: str, source: str) -> int:
    value = _LETTERS.get(text.upper()) if not text.isdigit() else int(text)
    if value is None or not 0 <= value <= 255:
        raise ValueError(f"OBIS code {source!r}: group {what} {text!r} is not 0-255 or one of C, F, L, P")
    return value


@dataclass(frozen=True, slots=True, order=True)
class ObisCode:
    """One OBIS code, six groups A-F, each 0-255."""

    a: int
    b: int
    c: int
    d: int
    e: int = 0
    f: int = 255

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d", "e", "f"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 255:
                raise ValueError(f"OBIS group {name.upper()} must be an integer 0-255, got {value!r}")

    @classmethod
    def parse(cls, text: str) -> ObisCode:
        """Parse any notation listed in the module docstring; raise ``ValueError`` naming the input."""
        source = text
        text = text.strip()
        if not text:
            raise ValueError("OBIS code is empty")
        if _HEX.match(text):
            return cls.from_bytes(bytes.fromhex(text))
        if (m := _FULL.match(text)) is not None:
            return cls(
                _group(m["a"], "A", source),
                _group(m["b"], "B", source),
                _group(m["c"], "C", source),
                _group(m["d"], "D", source),
                _group(m["e"], "E", source) if m["e"] is not None else 0,
                _group(m["f"], "F", source) if m["f"] is not None else 255,
            )
        head, sep, tail = text.replace("&", "*").partition("*")
        if sep and not tail.isdigit():
            raise ValueError(f"OBIS code {source!r}: billing-period group after '*' must be a number")
        parts = head.split(".")
        if not all(re.fullmatch(_GROUP, p, flags=re.IGNORECASE) for p in parts):
            raise ValueError(
                f"OBIS code {source!r} is not in a notation meterbridge knows (e.g. 1-0:1.8.0.255)"
            )
        f = _group(tail, "F", source) if sep else None
        if len(parts) == 6:
            groups = [_group(p, "ABCDEF"[i], source) for i, p in enumerate(parts)]
            if groups[3] == 255 and groups[4] == 2 and groups[5] == 255 and f is None:
                # E450 guide notation C.D.E.F.attribute.255 (attribute 2 = value)
                c, d, e = groups[0], groups[1], groups[2]
                return cls(1 if c < 96 else 0, 0, c, d, e, 255)
            a, b, c, d, e, last = groups
            return cls(a, b, c, d, e, last if f is None else f)
        if len(parts) == 5 and f is None:
            a, b, c, d, e = (_group(p, "ABCDE"[i], source) for i, p in enumerate(parts))
            return cls(a, b, c, d, e)
        if 2 <= len(parts) <= 4:
            c = _group(parts[0], "C", source)
            d = _group(parts[1], "D", source)
            e = _group(parts[2], "E", source) if len(parts) >= 3 else 0
            if len(parts) == 4:
                if f is not None:
                    raise ValueError(f"OBIS code {source!r} has two F groups")
                f = _group(parts[3], "F", source)
            abstract = c >= 96 or parts[0].upper() in _LETTERS
            return cls(0 if abstract else 1, 0, c, d, e, 255 if f is None else f)
        raise ValueError(f"OBIS code {source!r} has {len(parts)} groups; expected 2 to 6")

    @classmethod
    def from_bytes(cls, data: bytes) -> ObisCode:
        """Six bytes A..F as carried by DLMS logical names and push object lists."""
        if len(data) != 6:
            raise ValueError(f"OBIS code needs 6 bytes, got {len(data)}")
        return cls(*data)

    def __bytes__(self) -> bytes:
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    def __str__(self) -> str:
        n = _DIGITS  # the text of each group from a table: readings are keyed and published by this text
        return f"{n[self.a]}-{n[self.b]}:{n[self.c]}.{n[self.d]}.{n[self.e]}.{n[self.f]}"

    def __repr__(self) -> str:
        return f"ObisCode('{self}')"

    @property
    def short(self) -> str:
        """The C.D.E short form used in optical readouts, with C/F/L/P letters for 96-99."""
        rev = {v: k for k, v in _LETTERS.items()}
        c = rev.get(self.c, str(self.c))
        d = rev.get(self.d, str(self.d)) if self.c in rev else str(self.d)
        return f"{c}.{d}.{self.e}"

    def with_channel(self, a: int | None = None, b: int | None = None) -> ObisCode:
        return ObisCode(
            self.a if a is None else a, self.b if b is None else b, self.c, self.d, self.e, self.f
        )


@dataclass(frozen=True, slots=True)
class Quantity:
    """What one OBIS register measures.

    ``plausible`` is the range outside which a value cannot be a real reading (the
    E450 guide's table); ``expected`` is the band whose violation is a quality event
    (EN 50160 / the guide's thresholds). Either bound may be ``None``.
    """

    obis: ObisCode
    name: str
    unit: str | None
    device_class: str | None
    state_class: str | None
    plausible: tuple[Decimal | None, Decimal | None] = (None, None)
    expected: tuple[Decimal | None, Decimal | None] = (None, None)
    key: str = ""

    @property
    def is_counter(self) -> bool:
        return self.state_class == "total_increasing"


def _d(x: str | None) -> Decimal | None:
    return None if x is None else Decimal(x)


def _q(
    code: str,
    key: str,
    name: str,
    unit: str | None,
    device_class: str | None,
    state_class: str | None,
    plausible: tuple[str | None, str | None] = (None, None),
    expected: tuple[str | None, str | None] = (None, None),
) -> Quantity:
    return Quantity(
        ObisCode.parse(code),
        name,
        unit,
        device_class,
        state_class,
        (_d(plausible[0]), _d(plausible[1])),
        (_d(expected[0]), _d(expected[1])),
        key,
    )


_ENERGY = ("energy", "total_increasing")
_V = (("0", "300"), ("207", "253"))  # guide: 0-300 V plausible; EN 50160: 230 V +/- 10 %
_A = (("0", "100"), (None, None))
_THD = (("0", "100"), (None, "8"))
_PF = (("-1", "1"), ("0.9", None))

_ENTRIES: Final = (
    # energies (registers count Wh / varh / VAh; Home Assistant shows kWh)
    _q("1-0:1.8.0.255", "energy_import", "Active energy import", "Wh", *_ENERGY),
    _q("1-0:1.8.1.255", "energy_import_t1", "Active energy import tariff 1", "Wh", *_ENERGY),
    _q("1-0:1.8.2.255", "energy_import_t2", "Active energy import tariff 2", "Wh", *_ENERGY),
    _q("1-0:2.8.0.255", "energy_export", "Active energy export", "Wh", *_ENERGY),
    _q("1-0:2.8.1.255", "energy_export_t1", "Active energy export tariff 1", "Wh", *_ENERGY),
    _q("1-0:2.8.2.255", "energy_export_t2", "Active energy export tariff 2", "Wh", *_ENERGY),
    _q(
        "1-0:3.8.0.255",
        "reactive_energy_import",
        "Reactive energy import (Q+)",
        "varh",
        "reactive_energy",
        "total_increasing",
    ),
    _q(
        "1-0:4.8.0.255",
        "reactive_energy_export",
        "Reactive energy export (Q-)",
        "varh",
        "reactive_energy",
        "total_increasing",
    ),
    # apparent energy has no Home Assistant device class (FIELD_NOTES)
    _q("1-0:9.8.0.255", "apparent_energy_import", "Apparent energy import", "VAh", None, "total_increasing"),
    _q("1-0:15.8.0.255", "energy_absolute", "Active energy absolute |+A|+|-A|", "Wh", *_ENERGY),
    # powers
    _q("1-0:1.7.0.255", "power_import", "Active power import", "W", "power", "measurement", ("0", None)),
    _q("1-0:2.7.0.255", "power_export", "Active power export", "W", "power", "measurement", ("0", None)),
    _q(
        "1-0:3.7.0.255",
        "reactive_power_import",
        "Reactive power import (Q+)",
        "var",
        "reactive_power",
        "measurement",
        ("0", None),
    ),
    _q(
        "1-0:4.7.0.255",
        "reactive_power_export",
        "Reactive power export (Q-)",
        "var",
        "reactive_power",
        "measurement",
        ("0", None),
    ),
    _q(
        "1-0:9.7.0.255",
        "apparent_power",
        "Apparent power",
        "VA",
        "apparent_power",
        "measurement",
        ("0", None),
    ),
    _q("1-0:16.7.0.255", "power", "Active power (import - export)", "W", "power", "measurement"),
    _q("1-0:36.7.0.255", "power_l1", "Active power L1", "W", "power", "measurement"),
    _q("1-0:56.7.0.255", "power_l2", "Active power L2", "W", "power", "measurement"),
    _q("1-0:76.7.0.255", "power_l3", "Active power L3", "W", "power", "measurement"),
    _q(
        "1-0:21.7.0.255",
        "power_import_l1",
        "Active power import L1",
        "W",
        "power",
        "measurement",
        ("0", None),
    ),
    _q(
        "1-0:41.7.0.255",
        "power_import_l2",
        "Active power import L2",
        "W",
        "power",
        "measurement",
        ("0", None),
    ),
    _q(
        "1-0:61.7.0.255",
        "power_import_l3",
        "Active power import L3",
        "W",
        "power",
        "measurement",
        ("0", None),
    ),
    # voltages, currents
    _q("1-0:32.7.0.255", "voltage_l1", "Voltage L1", "V", "voltage", "measurement", *_V),
    _q("1-0:52.7.0.255", "voltage_l2", "Voltage L2", "V", "voltage", "measurement", *_V),
    _q("1-0:72.7.0.255", "voltage_l3", "Voltage L3", "V", "voltage", "measurement", *_V),
    _q("1-0:31.7.0.255", "current_l1", "Current L1", "A", "current", "measurement", *_A),
    _q("1-0:51.7.0.255", "current_l2", "Current L2", "A", "current", "measurement", *_A),
    _q("1-0:71.7.0.255", "current_l3", "Current L3", "A", "current", "measurement", *_A),
    _q("1-0:91.7.0.255", "current_neutral", "Current neutral", "A", "current", "measurement", *_A),
    # frequency, power factor
    _q(
        "1-0:14.7.0.255",
        "frequency",
        "Frequency",
        "Hz",
        "frequency",
        "measurement",
        ("45", "65"),
        ("49", "51"),
    ),
    _q("1-0:13.7.0.255", "power_factor", "Power factor", None, "power_factor", "measurement", *_PF),
    _q("1-0:33.7.0.255", "power_factor_l1", "Power factor L1", None, "power_factor", "measurement", *_PF),
    _q("1-0:53.7.0.255", "power_factor_l2", "Power factor L2", None, "power_factor", "measurement", *_PF),
    _q("1-0:73.7.0.255", "power_factor_l3", "Power factor L3", None, "power_factor", "measurement", *_PF),
    # total harmonic distortion (value group E = 124)
    _q("1-0:32.7.124.255", "thd_voltage_l1", "THD voltage L1", "%", None, "measurement", *_THD),
    _q("1-0:52.7.124.255", "thd_voltage_l2", "THD voltage L2", "%", None, "measurement", *_THD),
    _q("1-0:72.7.124.255", "thd_voltage_l3", "THD voltage L3", "%", None, "measurement", *_THD),
    _q("1-0:31.7.124.255", "thd_current_l1", "THD current L1", "%", None, "measurement", *_THD),
    _q("1-0:51.7.124.255", "thd_current_l2", "THD current L2", "%", None, "measurement", *_THD),
    _q("1-0:71.7.124.255", "thd_current_l3", "THD current L3", "%", None, "measurement", *_THD),
    # identification and clock
    _q("0-0:96.1.0.255", "serial_number", "Meter serial number", None, None, None),
    _q("0-0:96.1.1.255", "equipment_id", "Equipment identifier", None, None, None),
    _q("0-0:42.0.0.255", "logical_device_name", "COSEM logical device name", None, None, None),
    _q("0-0:1.0.0.255", "clock", "Clock", None, "timestamp", None),
    _q("1-0:0.2.0.255", "firmware_version", "Firmware version", None, None, None),
    _q("0-0:96.14.0.255", "tariff", "Current tariff", None, None, None),
)

CATALOGUE: Final[dict[ObisCode, Quantity]] = {q.obis: q for q in _ENTRIES}
_BY_KEY: Final[dict[str, Quantity]] = {q.key: q for q in _ENTRIES}


def lookup(code: ObisCode | str) -> Quantity | None:
    """The catalogue entry for a code, ignoring channel B and billing period F.

    Channel B differs between meters (the E450 push uses ``1-1:1.8.0`` for the same
    register as ``1-0:1.8.0``); F 255 is "current value". A key such as
    ``"voltage_l1"`` also works.
    """
    if isinstance(code, str):
        if code in _BY_KEY:
            return _BY_KEY[code]
        code = ObisCode.parse(code)
    found = CATALOGUE.get(code)
    if found is None:
        found = CATALOGUE.get(ObisCode(code.a, 0 if code.a else code.b, code.c, code.d, code.e, 255))
    return found
