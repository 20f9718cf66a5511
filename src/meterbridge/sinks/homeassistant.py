"""Home Assistant MQTT discovery: entities for readings, device payloads, problem sensors, legacy topics.

Pure functions and tables, no I/O: ``MqttSink`` publishes what they build.

* ``entity_for(reading)`` decides how one register appears in Home Assistant (object id, name, device and
  state class, unit) from the OBIS catalogue, or from the unit for registers the catalogue does not know
  (M-Bus records, manufacturer codes). Energies counted in Wh / varh / VAh are shown in kWh / kvarh / kVAh.
* ``ha_state(spec, reading)`` converts a reading to the entity's unit and says whether it may be shown.
* ``meter_discovery`` / ``gateway_discovery`` build the device-based discovery payloads
  (``homeassistant/device/<id>/config``: ``device``, ``origin``, ``components`` with ``platform``,
  ``unique_id`` and ``default_entity_id``), one device per meter with ``via_device`` to the gateway's device.
* ``PROBLEMS`` lists the quality-event problem sensors (``binary_sensor`` with device class ``problem``).
* ``legacy_messages`` feeds the two topics of the E450 guide's hand-written YAML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from meterbridge.obis import ObisCode, lookup
from meterbridge.readings import Reading
from meterbridge.sinks.base import publishable
from meterbridge.sinks.mqtt_topics import TopicLayout, json_number, slug
from meterbridge.sinks.store import MeterInfo

__all__ = [
    "GATEWAY_PROBLEMS",
    "LEGACY_POWER_TOPIC",
    "LEGACY_TOTAL_TOPIC",
    "METER_PROBLEMS",
    "NUMERIC_VALUE_TEMPLATE",
    "EntitySpec",
    "Problem",
    "entity_for",
    "gateway_discovery",
    "ha_state",
    "legacy_messages",
    "meter_discovery",
    "origin",
    "problem_for_event_kind",
]

#: Renders an empty state for a withheld value: Home Assistant ignores an empty state for numeric sensors,
#: so the entity keeps its last good value (and a total_increasing sensor never sees a drop).
NUMERIC_VALUE_TEMPLATE: Final = "{{ value_json.value if value_json.valid else '' }}"
TEXT_VALUE_TEMPLATE: Final = "{{ value_json.value if value_json.valid else '' }}"
PROBLEM_VALUE_TEMPLATE: Final = "{{ 'ON' if value_json.problem else 'OFF' }}"

# ---------------------------------------------------------------------------------------------- units

_UNIT_ALIASES: Final = {
    "m3": "m³",
    "m^3": "m³",
    "m3/h": "m³/h",
    "m^3/h": "m³/h",
    "l": "L",
    "l/h": "L/h",
    "degc": "°C",
    "°c": "°C",
    "c": "°C",
    "kvarh": "kvarh",
    "varh": "varh",
    "kwh": "kWh",
    "wh": "Wh",
    "mwh": "MWh",
    "kw": "kW",
    "w": "W",
    "va": "VA",
    "kva": "kVA",
    "vah": "VAh",
    "kvah": "kVAh",
    "var": "var",
    "kvar": "kvar",
}


def _norm_unit(unit: str | None) -> str | None:
    if unit is None or unit == "":
        return None
    return _UNIT_ALIASES.get(unit.lower(), unit)


@dataclass(frozen=True, slots=True)
class _Family:
    device_class: str | None
    state_class: str
    display_unit: str
    factors: Mapping[str, Decimal]  # unit -> multiple of the family's base unit


_K = Decimal(1000)
_FAMILIES: Final = (
    _Family("energy", "total_increasing", "kWh", {"Wh": Decimal(1), "kWh": _K, "MWh": _K * _K, "GWh": _K**3}),
    _Family("energy", "total_increasing", "GJ", {"J": Decimal(1), "kJ": _K, "MJ": _K**2, "GJ": _K**3}),
    _Family(
        "reactive_energy", "total_increasing", "kvarh", {"varh": Decimal(1), "kvarh": _K, "Mvarh": _K**2}
    ),
    _Family(None, "total_increasing", "kVAh", {"VAh": Decimal(1), "kVAh": _K, "MVAh": _K**2}),
    _Family("power", "measurement", "W", {"W": Decimal(1), "kW": _K, "MW": _K**2}),
    _Family("reactive_power", "measurement", "var", {"var": Decimal(1), "kvar": _K}),
    _Family("apparent_power", "measurement", "VA", {"VA": Decimal(1), "kVA": _K}),
    _Family("voltage", "measurement", "V", {"mV": Decimal("0.001"), "V": Decimal(1), "kV": _K}),
    _Family("current", "measurement", "A", {"mA": Decimal("0.001"), "A": Decimal(1)}),
    _Family("frequency", "measurement", "Hz", {"Hz": Decimal(1)}),
    _Family("volume", "total_increasing", "m³", {"L": Decimal("0.001"), "m³": Decimal(1)}),
    _Family("volume_flow_rate", "measurement", "m³/h", {"L/h": Decimal("0.001"), "m³/h": Decimal(1)}),
    _Family("temperature", "measurement", "°C", {"°C": Decimal(1)}),
    _Family("duration", "measurement", "s", {"s": Decimal(1), "min": Decimal(60), "h": Decimal(3600)}),
)
_FAMILY_OF_UNIT: Final = {unit: fam for fam in _FAMILIES for unit in fam.factors}
#: Device classes a medium gives to a volume (the Energy dashboard wants water/gas, not volume).
_VOLUME_BY_MEDIUM: Final = {"water": "water", "warm_water": "water", "hot_water": "water", "gas": "gas"}


def _convert(value: Decimal, from_unit: str, to_unit: str) -> Decimal | None:
    fam = _FAMILY_OF_UNIT.get(from_unit)
    if fam is None or to_unit not in fam.factors:
        return None
    if from_unit == to_unit:
        return value
    return value * fam.factors[from_unit] / fam.factors[to_unit]


# ---------------------------------------------------------------------------------------------- entities


@dataclass(frozen=True, slots=True)
class EntitySpec:
    """How one register of a meter appears in Home Assistant."""

    key_text: str
    object_id: str
    name: str
    unit: str | None
    device_class: str | None
    state_class: str | None
    numeric: bool
    entity_category: str | None = None

    @property
    def is_counter(self) -> bool:
        return self.state_class == "total_increasing"

    def with_state_class(self, state_class: str | None) -> EntitySpec:
        return EntitySpec(
            self.key_text,
            self.object_id,
            self.name,
            self.unit,
            self.device_class,
            state_class,
            self.numeric,
            self.entity_category,
        )


def _numeric_value(value: object) -> bool:
    return isinstance(value, int | Decimal | float) and not isinstance(value, bool)


def _mbus_parts(key: str) -> dict[str, str]:
    """``mbus/<index>/<quantity>/<function>/s<storage>/t<tariff>/u<subunit>`` -> named parts (best effort)."""
    parts = key.split("/")
    names = ("index", "quantity", "function")
    out = dict(zip(names, parts[1:4], strict=False))
    for p in parts[4:]:
        if len(p) > 1 and p[0] in "stu" and p[1:].isdigit():
            out[{"s": "storage", "t": "tariff", "u": "subunit"}[p[0]]] = p[1:]
    return out


def entity_for(reading: Reading, medium: str | None = None) -> EntitySpec:
    """The entity that shows ``reading``'s register (``medium`` is the meter's kind, e.g. ``water``)."""
    key = reading.key
    unit = _norm_unit(reading.unit)
    numeric = _numeric_value(reading.value)
    if isinstance(key, ObisCode) and key.f == 255 and (q := lookup(key)) is not None:
        cat_unit = _norm_unit(q.unit)
        fam = _FAMILY_OF_UNIT.get(cat_unit or "")
        display = fam.display_unit if fam is not None and cat_unit in fam.factors else cat_unit
        is_number = q.state_class is not None or q.unit is not None
        category = None if is_number or q.device_class == "timestamp" else "diagnostic"
        object_id = q.key if key.b in (0, 1) else f"{q.key}_ch{key.b}"
        return EntitySpec(
            reading.key_text, object_id, q.name, display, q.device_class, q.state_class, is_number, category
        )
    # not in the catalogue: classes from the unit
    if isinstance(key, ObisCode):
        object_id = "obis_" + slug(str(key))
        historic = key.f != 255
        default_name = f"OBIS {key}"
    else:
        object_id = slug(key)
        parts = _mbus_parts(key) if key.startswith("mbus/") else {}
        historic = parts.get("storage", "0") != "0" or parts.get("function", "instantaneous") not in (
            "instantaneous",
            "inst",
        )
        quantity = parts.get("quantity")
        default_name = (
            f"{quantity.replace('_', ' ').capitalize()} (record {parts.get('index', '?')})"
            if quantity
            else key
        )
    name = reading.name or default_name
    if not numeric:
        return EntitySpec(reading.key_text, object_id, name, None, None, None, False, "diagnostic")
    fam = _FAMILY_OF_UNIT.get(unit or "")
    if fam is None:
        return EntitySpec(
            reading.key_text, object_id, name, unit, None, None if historic else "measurement", True
        )
    device_class = fam.device_class
    if device_class == "volume" and medium is not None:
        device_class = _VOLUME_BY_MEDIUM.get(slug(medium), "volume")
    state_class = None if historic else fam.state_class
    if historic and device_class in ("energy", "reactive_energy", "volume", "water", "gas"):
        state_class = "total"  # a billing-period or due-date value: a total, not a live counter
    return EntitySpec(reading.key_text, object_id, name, fam.display_unit, device_class, state_class, True)


def ha_state(spec: EntitySpec, reading: Reading) -> tuple[int | float | str | None, bool]:
    """(value in the entity's unit, whether it may be shown). Flagged readings and wrong units are not."""
    if not publishable(reading):
        return None, False
    value = reading.value
    if not spec.numeric:
        if value is None:
            return None, False
        if isinstance(value, bytes):
            return value.hex(), True
        if isinstance(value, datetime):
            return value.isoformat(), True
        return str(value), True
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return None, False
    unit = _norm_unit(reading.unit)
    exact = (
        value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
    )
    if not exact.is_finite():
        return None, False
    if spec.unit is None or unit == spec.unit:
        if unit is not None and spec.unit is None:
            return None, False
        converted: Decimal | None = exact
    elif unit is None:
        return None, False
    else:
        converted = _convert(exact, unit, spec.unit)
    if converted is None:
        return None, False
    return json_number(converted), True


# ---------------------------------------------------------------------------------------------- problems


@dataclass(frozen=True, slots=True)
class Problem:
    """A problem binary sensor fed by quality events of ``event_kinds``."""

    kind: str
    name: str
    event_kinds: frozenset[str]


METER_PROBLEMS: Final = (
    Problem("voltage", "Voltage out of range", frozenset({"voltage"})),
    Problem("frequency", "Frequency out of range", frozenset({"frequency"})),
    Problem("power_factor", "Low power factor", frozenset({"power_factor"})),
    Problem("thd", "Harmonic distortion", frozenset({"thd"})),
    Problem("not_answering", "Meter not answering", frozenset({"meter_silent"})),
    Problem(
        "bad_readings",
        "Rejected readings",
        frozenset({"implausible", "not_monotonic", "unit_mismatch", "meter_error"}),
    ),
)
GATEWAY_PROBLEMS: Final = (Problem("bus_collisions", "Bus collisions", frozenset({"bus_collisions"})),)
_PROBLEM_OF_EVENT: Final = {k: p for p in (*METER_PROBLEMS, *GATEWAY_PROBLEMS) for k in p.event_kinds}


def problem_for_event_kind(kind: str) -> tuple[Problem, bool] | None:
    """(problem sensor, is it gateway-wide) for a ``QualityEvent.kind``; None when no sensor shows it."""
    problem = _PROBLEM_OF_EVENT.get(kind)
    if problem is None:
        return None
    return problem, problem in GATEWAY_PROBLEMS


# ---------------------------------------------------------------------------------------------- discovery


def origin(sw_version: str) -> dict[str, str]:
    return {"name": "meterbridge", "sw_version": sw_version}


def _availability(layout: TopicLayout) -> list[dict[str, str]]:
    return [{"topic": layout.status, "payload_available": "online", "payload_not_available": "offline"}]


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def sensor_component(
    layout: TopicLayout, meter_id: str, spec: EntitySpec, *, expire_after: int | None
) -> dict[str, Any]:
    device_id = layout.meter_device_id(meter_id)
    state_topic = layout.state(meter_id, spec.object_id)
    return _drop_none(
        {
            "platform": "sensor",
            "unique_id": f"{device_id}_{spec.object_id}",
            "default_entity_id": f"sensor.{slug(meter_id)}_{spec.object_id}",
            "name": spec.name,
            "state_topic": state_topic,
            "value_template": NUMERIC_VALUE_TEMPLATE if spec.numeric else TEXT_VALUE_TEMPLATE,
            "json_attributes_topic": state_topic,
            "device_class": spec.device_class,
            "state_class": spec.state_class,
            "unit_of_measurement": spec.unit,
            "expire_after": expire_after if expire_after and expire_after > 0 else None,
            "entity_category": spec.entity_category,
        }
    )


def _problem_component(layout: TopicLayout, problem: Problem, meter_id: str | None) -> dict[str, Any]:
    if meter_id is None:
        owner, topic, entity = (
            layout.gateway_device_id,
            layout.gateway_problem(problem.kind),
            layout.gateway_device_id,
        )
    else:
        owner = layout.meter_device_id(meter_id)
        topic = layout.meter_problem(meter_id, problem.kind)
        entity = slug(meter_id)
    return {
        "platform": "binary_sensor",
        "unique_id": f"{owner}_problem_{problem.kind}",
        "default_entity_id": f"binary_sensor.{entity}_problem_{problem.kind}",
        "name": problem.name,
        "device_class": "problem",
        "state_topic": topic,
        "value_template": PROBLEM_VALUE_TEMPLATE,
        "payload_on": "ON",
        "payload_off": "OFF",
        "json_attributes_topic": topic,
        "entity_category": "diagnostic",
    }


def meter_device(layout: TopicLayout, meter: MeterInfo) -> dict[str, Any]:
    model = " ".join(p for p in (meter.kind, "meter", f"({meter.protocol})" if meter.protocol else None) if p)
    return _drop_none(
        {
            "identifiers": [layout.meter_device_id(meter.id)],
            "name": meter.name or meter.id,
            "manufacturer": meter.manufacturer,
            "model": model,
            "serial_number": meter.serial,
            "sw_version": meter.firmware,
            "via_device": layout.gateway_device_id,
        }
    )


def meter_discovery(
    layout: TopicLayout,
    meter: MeterInfo,
    entities: Iterable[EntitySpec],
    *,
    sw_version: str,
    expire_after: int | None,
    problems: Iterable[Problem] = METER_PROBLEMS,
) -> tuple[str, bytes]:
    """(topic, retained payload) announcing one meter with its sensors and problem sensors."""
    components: dict[str, Any] = {}
    for spec in sorted(entities, key=lambda s: s.object_id):
        components[spec.object_id] = sensor_component(layout, meter.id, spec, expire_after=expire_after)
    for problem in problems:
        components[f"problem_{problem.kind}"] = _problem_component(layout, problem, meter.id)
    payload = {
        "device": meter_device(layout, meter),
        "origin": origin(sw_version),
        "availability": _availability(layout),
        "qos": 1,
        "components": components,
    }
    return layout.discovery(layout.meter_device_id(meter.id)), _dumps(payload)


def gateway_discovery(layout: TopicLayout, *, name: str | None, sw_version: str) -> tuple[str, bytes]:
    """(topic, retained payload) announcing the gateway: connectivity, outbox depth, bus problems."""
    dev = layout.gateway_device_id
    components: dict[str, Any] = {
        "connectivity": {
            "platform": "binary_sensor",
            "unique_id": f"{dev}_connectivity",
            "default_entity_id": f"binary_sensor.{dev}_connectivity",
            "name": "Connected",
            "device_class": "connectivity",
            "state_topic": layout.status,
            "payload_on": "online",
            "payload_off": "offline",
            "entity_category": "diagnostic",
        },
        "outbox": {
            "platform": "sensor",
            "unique_id": f"{dev}_outbox",
            "default_entity_id": f"sensor.{dev}_outbox",
            "name": "Readings waiting to be published",
            "state_topic": layout.outbox,
            "state_class": "measurement",
            "availability": _availability(layout),
            "entity_category": "diagnostic",
        },
    }
    for problem in GATEWAY_PROBLEMS:
        comp = _problem_component(layout, problem, None)
        comp["availability"] = _availability(layout)
        components[f"problem_{problem.kind}"] = comp
    payload = {
        "device": {
            "identifiers": [dev],
            "name": name or f"meterbridge {layout.gateway_id}",
            "manufacturer": "meterbridge",
            "model": "gateway",
            "sw_version": sw_version,
        },
        "origin": origin(sw_version),
        "qos": 1,
        "components": components,
    }
    return layout.discovery(dev), _dumps(payload)


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------- legacy

LEGACY_TOTAL_TOPIC: Final = "homeassistant/sensor/compteur_e450/total"
LEGACY_POWER_TOPIC: Final = "homeassistant/sensor/compteur_e450/power"
_LEGACY: Final = {
    ObisCode(1, 0, 1, 8, 0): (LEGACY_TOTAL_TOPIC, "energy_kwh", "kWh"),
    ObisCode(1, 0, 1, 7, 0): (LEGACY_POWER_TOPIC, "power_w", "W"),
}


def legacy_messages(reading: Reading) -> list[tuple[str, bytes]]:
    """The E450 guide's payloads (``{"energy_kwh": ...}``, ``{"power_w": ...}``) for a good reading."""
    key = reading.key
    if not isinstance(key, ObisCode) or key.f != 255:
        return []
    target = _LEGACY.get(ObisCode(key.a, 0, key.c, key.d, key.e))
    if target is None or not publishable(reading) or not _numeric_value(reading.value):
        return []
    topic, field_name, unit = target
    spec = EntitySpec(reading.key_text, field_name, field_name, unit, None, None, True)
    value, valid = ha_state(spec, reading)
    if not valid:
        return []
    return [(topic, _dumps({field_name: value, "timestamp": reading.timestamp.isoformat()}))]
