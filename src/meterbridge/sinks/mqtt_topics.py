"""The MQTT wire contract of meterbridge: topic layout and JSON payloads (documented in docs/mqtt.md).

Topics (``<p>`` is the topic prefix, default ``meterbridge``; ``<gw>`` the gateway id; ``<meter>`` and
``<entity>`` are slugs: lower-case ``[a-z0-9_]``):

==========================================  =====  ======  ================================================
topic                                       QoS    retain  payload
==========================================  =====  ======  ================================================
``<p>/<gw>/status``                         1      yes     ``online`` / ``offline`` (last will)
``<p>/<gw>/meter/<meter>/state/<entity>``   1      yes     latest value of one entity (``state_payload``)
``<p>/<gw>/meter/<meter>/problem/<kind>``   1      yes     a problem sensor's state (``problem_payload``)
``<p>/<gw>/problem/<kind>``                 1      yes     a gateway-wide problem (bus collisions)
``<p>/<gw>/event``                          1      no      every quality event once (``event_payload``)
``<p>/<gw>/outbox``                         0      yes     readings waiting for this sink (integer)
``<p>/<gw>/readings/<meter>``               1      no      every reading once, with a stable id
                                                           (``reading_payload``): the fleet stream
``homeassistant/device/<device>/config``    1      yes     device-based discovery (``homeassistant``)
==========================================  =====  ======  ================================================

The state topics hold the *latest value per entity* for Home Assistant; the readings topic carries *every*
reading exactly as stored (including flagged ones, with their quality) for the fleet ingest, which
subscribes to ``$share/<group>/<p>/+/readings/#``. A reading's id ``<gw>:<seq>`` (``seq`` = the gateway
store's row id) is what makes a redelivered message recognisable.
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from meterbridge.errors import MeterbridgeError, ProtocolError
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading, Value
from meterbridge.sinks.store import QualityEvent, decode_value, encode_value

__all__ = [
    "READING_SCHEMA",
    "FleetReading",
    "TopicLayout",
    "decode_reading_payload",
    "event_payload",
    "json_number",
    "problem_payload",
    "reading_payload",
    "slug",
    "state_payload",
]

#: Version of the ``reading_payload`` JSON (field ``v``); ingest refuses other versions.
READING_SCHEMA: Final = 1

_SLUG_RUN: Final = re.compile(r"[^a-z0-9]+")
_CANONICAL_OBIS: Final = re.compile(r"^\d{1,3}-\d{1,3}:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_TOPIC_FORBIDDEN: Final = re.compile(r"[+#\x00]")


@functools.lru_cache(maxsize=4096)
def slug(text: str) -> str:
    """``"E450 / Flat 2"`` -> ``"e450_flat_2"``: safe in topics, unique ids and entity ids."""
    out = _SLUG_RUN.sub("_", text.lower()).strip("_")
    if not out:
        raise ValueError(f"{text!r} has no letters or digits to make an identifier from")
    return out


@dataclass(frozen=True, slots=True)
class TopicLayout:
    """Every topic one gateway uses, from its prefix, its id and the discovery prefix."""

    gateway_id: str
    prefix: str = "meterbridge"
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        for name in ("prefix", "discovery_prefix"):
            value = getattr(self, name)
            if not value or _TOPIC_FORBIDDEN.search(value) or value.startswith("/") or value.endswith("/"):
                raise ValueError(
                    f"TopicLayout.{name} {value!r} must be a topic without wildcards or edge '/'"
                )
        object.__setattr__(self, "gateway_id", slug(self.gateway_id))

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.gateway_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic: ``online`` means re-send discovery."""
        return f"{self.discovery_prefix}/status"

    def state(self, meter_id: str, entity: str) -> str:
        return f"{self.base}/meter/{slug(meter_id)}/state/{entity}"

    def meter_problem(self, meter_id: str, kind: str) -> str:
        return f"{self.base}/meter/{slug(meter_id)}/problem/{kind}"

    def gateway_problem(self, kind: str) -> str:
        return f"{self.base}/problem/{kind}"

    @property
    def events(self) -> str:
        return f"{self.base}/event"

    @property
    def outbox(self) -> str:
        return f"{self.base}/outbox"

    def readings(self, meter_id: str) -> str:
        return f"{self.base}/readings/{slug(meter_id)}"

    def readings_filter(self, share_group: str | None = None, *, all_gateways: bool = True) -> str:
        """The subscription for the fleet stream: every gateway (``+``) or this one, shared or not."""
        gw = "+" if all_gateways else self.gateway_id
        topic = f"{self.prefix}/{gw}/readings/#"
        return f"$share/{slug(share_group)}/{topic}" if share_group else topic

    @property
    def gateway_device_id(self) -> str:
        return f"meterbridge_{self.gateway_id}"

    def meter_device_id(self, meter_id: str) -> str:
        return f"meterbridge_{self.gateway_id}_{slug(meter_id)}"

    def discovery(self, device_id: str) -> str:
        return f"{self.discovery_prefix}/device/{device_id}/config"

    @property
    def discovery_filter(self) -> str:
        return f"{self.discovery_prefix}/device/+/config"


# ---------------------------------------------------------------------------------------------- payloads


def json_number(value: Value) -> int | float | None:
    """A numeric reading value as a JSON number (``Decimal`` -> float), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(obj: dict[str, Any]) -> bytes:
    return _ENCODER.encode(obj).encode()


def _iso(when: datetime) -> str:
    return when.isoformat()


@functools.lru_cache(maxsize=256)
def _flag_names(quality: int) -> list[str]:
    return Quality(quality).names


def flag_names(quality: Quality) -> list[str]:
    """``Quality.names`` (cached: the flag combinations are few, readings many). A new list each call."""
    return list(_flag_names(int(quality)))


def state_payload(
    reading: Reading, value: int | float | str | None, unit: str | None, *, valid: bool
) -> bytes:
    """The Home Assistant state of one entity.

    ``{"value": 1234.567, "unit": "kWh", "timestamp": "...", "quality": [], "valid": true}``.
    When ``valid`` is false (the reading was flagged: implausible, a counter going backwards, a wrong unit, a
    meter error, stale) ``value`` is ``null`` and the stored value moves to ``raw_value``: the discovery
    ``value_template`` then renders an empty state, which Home Assistant ignores for numeric sensors, so the
    entity keeps its last good value and a ``total_increasing`` sensor never sees a drop.
    """
    body: dict[str, Any] = {
        "value": value if valid else None,
        "unit": unit,
        "timestamp": _iso(reading.timestamp),
        "quality": flag_names(reading.quality),
        "valid": valid,
    }
    if not valid:
        _, text, _ = encode_value(reading.value)
        body["raw_value"] = text
        body["raw_unit"] = reading.unit
    return _dumps(body)


def problem_payload(
    active: bool, *, timestamp: datetime, message: str | None, detail: dict[str, Any]
) -> bytes:
    """A problem binary sensor: ``{"problem": true, "since": "...", "message": "...", ...detail}``."""
    body: dict[str, Any] = {"problem": active, "since": _iso(timestamp), "message": message}
    body.update(detail)
    return _dumps(body)


def event_payload(gateway_id: str, event: QualityEvent) -> bytes:
    """One quality event, as stored: raised (``active``) or cleared."""
    return _dumps(
        {
            "gateway": gateway_id,
            "meter": event.meter_id,
            "kind": event.kind,
            "key": event.key,
            "active": event.active,
            "message": event.message,
            "value": None if event.value is None else str(event.value),
            "threshold": None if event.threshold is None else str(event.threshold),
            "timestamp": _iso(event.timestamp),
        }
    )


def reading_payload(gateway_id: str, seq: int, reading: Reading) -> bytes:
    """One reading of the fleet stream: exact value, stable id.

    ``{"v": 1, "id": "gw1:42", "gateway": "gw1", "seq": 42, "meter": "e450", "key": "1-0:1.8.0.255",
    "name": ..., "type": "decimal", "value": "1234567.8", "unit": "Wh", "timestamp": "...+00:00",
    "quality": 0, "flags": []}``. ``value`` is the exact text of the stored value (``type`` says how to read
    it back: none, bool, int, decimal, float, str, bytes (hex), datetime (ISO 8601)).

    The same bytes as ``json`` makes of that dictionary (compact, UTF-8), put together from pieces cached
    per gateway and register: the gateway encodes one reading for every message it sends.
    """
    value_type, text, _ = encode_value(reading.value)
    head, middle, before_value, after_value = _stream_pieces(
        gateway_id, reading.meter_id, reading.key_text, reading.name, value_type, reading.unit
    )
    if text is None:
        value = "null"
    elif value_type in _PLAIN_TEXT_TYPES:
        value = f'"{text}"'  # digits, signs, points, exponents, hex, ISO dates: nothing to escape
    else:
        value = _ENCODER.encode(text)
    quality = int(reading.quality)
    return (
        f"{head}{seq}{middle}{seq}{before_value}{value}{after_value}{reading.timestamp.isoformat()}"
        f'","quality":{quality},"flags":{_flags_json(quality)}}}'
    ).encode()


#: value types whose text (``encode_value``) never holds a character JSON escapes
_PLAIN_TEXT_TYPES: Final = frozenset({"bool", "int", "decimal", "float", "bytes", "datetime"})


@functools.lru_cache(maxsize=8192)
def _stream_pieces(
    gateway_id: str, meter_id: str, key: str, name: str | None, value_type: str, unit: str | None
) -> tuple[str, str, str, str]:
    """The constant text around seq (twice), the value and the timestamp of ``reading_payload``."""
    enc = _ENCODER.encode
    gateway = enc(gateway_id)
    return (
        f'{{"v":{READING_SCHEMA},"id":{gateway[:-1]}:',
        f'","gateway":{gateway},"seq":',
        f',"meter":{enc(meter_id)},"key":{enc(key)},"name":{enc(name)},"type":{enc(value_type)},"value":',
        f',"unit":{enc(unit)},"timestamp":"',
    )


@functools.lru_cache(maxsize=256)
def _flags_json(quality: int) -> str:
    return _ENCODER.encode(Quality(quality).names)


@dataclass(frozen=True, slots=True)
class FleetReading:
    """A reading as received from the fleet stream, with where it came from."""

    gateway: str
    seq: int
    reading: Reading

    @property
    def id(self) -> str:
        return f"{self.gateway}:{self.seq}"


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    if name not in body or body[name] is None:
        if optional:
            return None
        raise ProtocolError(f"reading payload has no {name!r}", layer="mqtt-reading")
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise ProtocolError(
            f"reading payload field {name!r} is {type(value).__name__}, expected {kind}", layer="mqtt-reading"
        )
    return value


def decode_reading_payload(data: bytes) -> FleetReading:
    """Inverse of ``reading_payload``; raises ``ProtocolError`` (layer ``mqtt-reading``) on anything else."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        offset = getattr(exc, "pos", None) if isinstance(exc, json.JSONDecodeError) else exc.start
        raise ProtocolError(
            f"reading payload is not JSON: {exc}", offset=offset, layer="mqtt-reading"
        ) from None
    if not isinstance(body, dict):
        raise ProtocolError("reading payload is not a JSON object", layer="mqtt-reading")
    if body.get("v") != READING_SCHEMA:
        raise ProtocolError(
            f"reading payload version {body.get('v')!r} is not {READING_SCHEMA}", layer="mqtt-reading"
        )
    gateway = _field(body, "gateway", str)
    seq = _field(body, "seq", int)
    if seq < 0:
        raise ProtocolError(f"reading payload seq {seq} is negative", layer="mqtt-reading")
    key_text = _field(body, "key", str)
    value_type = _field(body, "type", str)
    text = _field(body, "value", str, optional=True)
    try:
        key: ObisCode | str = ObisCode.parse(key_text) if _CANONICAL_OBIS.match(key_text) else key_text
        value = decode_value(value_type, text)
        timestamp = datetime.fromisoformat(_field(body, "timestamp", str))
        reading = Reading(
            meter_id=_field(body, "meter", str),
            key=key,
            value=value,
            unit=_field(body, "unit", str, optional=True),
            timestamp=timestamp,
            quality=Quality(_field(body, "quality", int)),
            name=_field(body, "name", str, optional=True),
        )
    except ProtocolError:
        raise
    except (ValueError, ArithmeticError, TypeError, MeterbridgeError) as exc:
        raise ProtocolError(f"reading payload is inconsistent: {exc}", layer="mqtt-reading") from None
    return FleetReading(gateway, seq, reading)
