"""DLMS pushes from meters to readings, sans-IO: ``PushDecoder`` (bytes in, ``PushReadings`` / ``PushError`` out).

Two envelopes are understood:

* **HDLC** (the Landis+Gyr E450 customer interface): UI frames ``7E A0 ..`` (decoded by
  ``meterbridge.protocols.hdlc``), LLC ``E6 E7 00`` on the first frame, a General Block
  Transfer whose blocks are reassembled, optionally general-glo-ciphering (``DB 08`` + system
  title, security control 0x30 or 0x20), then a Data-Notification.
* **M-Bus long frames** (Kaifa, Sagemcom in Austria): ``68 L L 68 53 FF CI 01 67 ..`` with
  CI 0x00..0x0F for a segment that more segments follow (low nibble: sequence number) and
  0x10..0x1F for the last one; STSAP/DTSAP (``01 67``) are dropped from every segment and the
  rest joined into the APDU (usually general-glo-ciphering with security control 0x20:
  encrypted, no tag). The long frames themselves are cut and checked by the M-Bus link layer
  (``meterbridge.protocols.mbus.link``).

The Data-Notification body is read in one of three layouts:

1. a structure whose first element is the push object list (array of {class id, logical name,
   attribute, data index}) followed by the values of those objects (E450);
2. a configured ``layout``: position -> OBIS code (``None`` skips a position), for utilities
   whose pushes carry no object list;
3. a flat list of (OBIS octet-string, value [, scaler_unit structure]) pairs, optionally after
   a leading date-time.

The meter id is the logical device name (0-0:42.0.0.255) when the push carries it, else the
configured ``meter_id``, else the system title. The timestamp is the clock value
(0-0:1.0.0.255) in the push, else the leading date-time, else the Data-Notification's
date-time, else ``received_at``. A date-time with an unspecified deviation is read in
``default_tz``. Most pushes carry no scaler: where a register comes without its scaler_unit,
``formats`` gives scaler and unit per OBIS code (falling back to the catalogue's unit and
scaler 0); a scaler_unit the push carries (flat layout) is used as sent. Values are exact
(int or Decimal).

Errors never stop the decoder: each comes out as a ``PushError`` naming the layer (``hdlc``,
``mbus``, ``dlms``, ``dlms-security``), the byte offset and the exception.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Literal, NamedTuple

from meterbridge.errors import FramingError, ProtocolError, SecurityError, UnsupportedError
from meterbridge.obis import ObisCode, lookup
from meterbridge.protocols.dlms.apdu import (
    Apdu,
    DataNotification,
    GeneralGloCiphering,
    decode_apdu,
)
from meterbridge.protocols.dlms.axdr import (
    CosemDateTime,
    Data,
    DataType,
    decode_length,
    decode_structure,
    encode_data,
)
from meterbridge.protocols.dlms.cosem import ScalerUnit, scale, value_of
from meterbridge.protocols.dlms.security import ReplayGuard, SecurityKeys, decrypt, system_title_text
from meterbridge.protocols.dlms.transfer import DEFAULT_MAX_APDU, GeneralBlockReassembler
from meterbridge.protocols.events import NEED_DATA, NeedData
from meterbridge.protocols.hdlc import LLC_REQUEST, LLC_RESPONSE, HdlcStream
from meterbridge.protocols.mbus.link import LinkNoise, LongFrame, MBusLink, SingleCharacter
from meterbridge.readings import Quality, Reading, Value

__all__ = [
    "CLOCK",
    "LOGICAL_DEVICE_NAME",
    "PushDecoder",
    "PushError",
    "PushEvent",
    "PushFramer",
    "PushReadings",
    "RegisterFormat",
    "read_notification",
]

LOGICAL_DEVICE_NAME = ObisCode(0, 0, 42, 0, 0, 255)
CLOCK = ObisCode(0, 0, 1, 0, 0, 255)
_PUSH_SETUP_CLASS = 40
_CLOCK_CLASS = 8
MBUS_LAYER = "mbus"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_LLC_HEADERS = (LLC_REQUEST, LLC_RESPONSE)


@dataclass(frozen=True, slots=True)
class RegisterFormat:
    """Configured scaler (power of ten) and unit for a pushed register; ``unit=None`` keeps the catalogue's."""

    scaler: int = 0
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class PushReadings:
    """One push turned into readings."""

    meter_id: str
    timestamp: datetime
    readings: tuple[Reading, ...]
    authenticated: bool | None
    """``None`` for a plain push; True when the GCM tag was verified; False when only decrypted."""
    system_title: bytes | None = None
    invocation_counter: int | None = None
    notification: DataNotification | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class PushError:
    """A push (or the bytes that should have been one) that could not be read."""

    error: ProtocolError

    @property
    def layer(self) -> str:
        return self.error.layer or "dlms"

    @property
    def offset(self) -> int | None:
        return self.error.offset

    def __str__(self) -> str:
        return str(self.error)


PushEvent = PushReadings | PushError


# ---------------------------------------------------------------------------------------------------------------
# reading the notification body


def _is_object_list(item: Data) -> bool:
    v = item.value
    if item.type is not DataType.ARRAY or not isinstance(v, tuple) or not v:
        return False
    first = v[0]
    return first.type is DataType.STRUCTURE and isinstance(first.value, tuple) and len(first.value) == 4


_OBIS_CACHE: dict[bytes, ObisCode] = {}


def _obis_of(item: Data) -> ObisCode | None:
    v = item.value
    if item.type is DataType.OCTET_STRING and isinstance(v, bytes) and len(v) == 6:
        code = _OBIS_CACHE.get(v)
        if code is None:
            code = ObisCode.from_bytes(v)
            if len(_OBIS_CACHE) < 4096:
                _OBIS_CACHE[v] = code
        return code
    return None


def _is_stamp(item: Data) -> bool:
    v = item.value
    return item.type is DataType.DATE_TIME or (
        item.type is DataType.OCTET_STRING and isinstance(v, bytes) and len(v) == 12
    )


def _is_scaler_unit(item: Data) -> bool:
    v = item.value
    return (
        item.type is DataType.STRUCTURE
        and isinstance(v, tuple)
        and len(v) == 2
        and v[0].type is DataType.INTEGER
        and v[1].type is DataType.ENUM
    )


# what a pushed entry is: a register, something to skip (push setup), the meter's name, its clock
_REGISTER, _SKIP, _NAME, _CLOCK = 0, 1, 2, 3
# (kind, OBIS, value, scaler_unit carried by the push or None)
_Entry = tuple[int, ObisCode, Data, ScalerUnit | None]


def _kind(class_id: int, obis: ObisCode) -> int:
    if class_id == _PUSH_SETUP_CLASS:
        return _SKIP
    if obis == LOGICAL_DEVICE_NAME:
        return _NAME
    if class_id == _CLOCK_CLASS or obis == CLOCK:
        return _CLOCK
    return _REGISTER


class _Plan(NamedTuple):
    """How to read a body of ``size`` values: which positions are registers, which name or clock."""

    size: int
    registers: tuple[tuple[int, ObisCode, int, str | None], ...]  # (position, OBIS, scaler, unit)
    others: tuple[tuple[int, int], ...]  # (position, kind) of the meter's name and clock, in order

    @classmethod
    def of(cls, entries: Sequence[tuple[int, ObisCode, int, str | None]]) -> _Plan:
        """From (kind, OBIS, scaler, unit) per position."""
        return cls(
            len(entries),
            tuple(
                (i, obis, scaler, unit)
                for i, (kind, obis, scaler, unit) in enumerate(entries)
                if kind == _REGISTER
            ),
            tuple((i, kind) for i, (kind, _, _, _) in enumerate(entries) if kind in (_NAME, _CLOCK)),
        )


class _ObjectListMemo:
    """The last push object list seen and its (class id, OBIS) pairs: pushes repeat their list."""

    __slots__ = ("_plan", "_plan_key", "objects", "pairs", "raw")

    def __init__(self) -> None:
        self.raw = b""
        self.objects: Data | None = None
        self.pairs: list[tuple[int, ObisCode]] = []  # (kind, OBIS)
        self._plan = _Plan(0, (), ())
        self._plan_key: tuple[int, int] = (0, 0)

    def plan(self, formats: _Formats) -> _Plan:
        """The plan for these pairs and these formats (cached)."""
        key = (id(self.pairs), id(formats))
        if key != self._plan_key:
            self._plan = _Plan.of([(kind, obis, *formats.get(obis)) for kind, obis in self.pairs])
            self._plan_key = key
        return self._plan


def _object_pairs(objects: tuple[Data, ...]) -> list[tuple[int, ObisCode]]:
    pairs = []
    for definition in objects:
        fields = definition.value
        if not isinstance(fields, tuple) or len(fields) != 4:
            raise FramingError("push object list entry is not a structure of 4", layer="dlms")
        class_id, obis = fields[0].value, _obis_of(fields[1])
        if not isinstance(class_id, int) or isinstance(class_id, bool) or obis is None:
            raise FramingError("push object list entry has no class id or logical name", layer="dlms")
        pairs.append((_kind(class_id, obis), obis))
    return pairs


def _entries(body: Data, layout: Sequence[ObisCode | None] | None) -> tuple[list[_Entry], Data | None]:
    """The (class, OBIS, value, scaler) entries of a notification body and a leading date-time if any."""
    items = body.value
    if body.type is not DataType.STRUCTURE or not isinstance(items, tuple) or not items:
        raise UnsupportedError(f"push body is {body.type.name.lower()}, expected a structure", layer="dlms")
    if _is_object_list(items[0]):
        objects = items[0].value
        assert isinstance(objects, tuple)
        pairs = _object_pairs(objects)
    else:
        pairs = []
    if pairs:
        if len(items) == len(pairs):
            values = items
        elif len(items) == len(pairs) + 1:
            values = items[1:]
        else:
            raise FramingError(
                f"push object list names {len(pairs)} objects but the push carries {len(items) - 1} values",
                layer="dlms",
            )
        return [(c, o, v, None) for (c, o), v in zip(pairs, values, strict=True)], None
    if layout is not None:
        if len(items) != len(layout):
            raise FramingError(
                f"push carries {len(items)} values, the configured layout names {len(layout)}", layer="dlms"
            )
        return [
            (_kind(0, code), code, value, None)
            for code, value in zip(layout, items, strict=True)
            if code is not None
        ], None
    # flat list of (OBIS, value [, scaler_unit]) after an optional date-time
    start = 0
    stamp = None
    if _is_stamp(items[0]) and (len(items) == 1 or _obis_of(items[1]) is not None):
        stamp, start = items[0], 1
    out = []
    i, n = start, len(items)
    while i < n:
        obis = _obis_of(items[i])
        if obis is None or i + 1 >= n:
            raise UnsupportedError(
                f"push value {i} is not an OBIS code of a (code, value) pair, no object list and no layout "
                "was configured",
                layer="dlms",
            )
        value = items[i + 1]
        su = None
        if i + 2 < n and _is_scaler_unit(items[i + 2]):
            pair = items[i + 2].value
            assert isinstance(pair, tuple)
            su = ScalerUnit(pair[0].value, pair[1].value)  # type: ignore[arg-type]
            i += 3
        else:
            i += 2
        out.append((_kind(0, obis), obis, value, su))
    return out, stamp


def _text(value: Value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex().upper()
    return None


def _stamp_of(item: Data, tz: tzinfo) -> datetime | None:
    value = value_of(item, tz)
    return value if isinstance(value, datetime) else None


class _Formats:
    """Resolved (scaler, unit) per OBIS code, cached."""

    __slots__ = ("_cache", "_formats")

    def __init__(self, formats: Mapping[ObisCode, RegisterFormat]) -> None:
        self._formats = dict(formats)
        self._cache: dict[ObisCode, tuple[int, str | None]] = {}

    def get(self, obis: ObisCode) -> tuple[int, str | None]:
        found = self._cache.get(obis)
        if found is not None:
            return found
        fmt = self._formats.get(obis) or self._formats.get(
            ObisCode(obis.a, 0 if obis.a else obis.b, obis.c, obis.d, obis.e, obis.f)
        )
        quantity = lookup(obis)
        default_unit = quantity.unit if quantity is not None else None
        if fmt is None:
            found = (0, default_unit)
        else:
            found = (fmt.scaler, fmt.unit if fmt.unit is not None else default_unit)
        self._cache[obis] = found
        return found


def read_notification(
    notification: DataNotification,
    *,
    _memo: _ObjectListMemo | None = None,
    formats: Mapping[ObisCode, RegisterFormat] | _Formats | None = None,
    layout: Sequence[ObisCode | None] | None = None,
    meter_id: str | None = None,
    system_title: bytes | None = None,
    authenticated: bool | None = None,
    invocation_counter: int | None = None,
    received_at: datetime | None = None,
    default_tz: tzinfo = UTC,
) -> PushReadings:
    """Turn a Data-Notification into readings (see the module docstring for the rules)."""
    fmts = formats if isinstance(formats, _Formats) else _Formats(formats or {})
    name: str | None = None
    stamp: datetime | None = None
    leading: Data | None = None
    items = notification.body.value
    if _memo is not None and isinstance(items, tuple) and items and items[0] is _memo.objects:
        # the same push object list as before: its plan (kinds, scalers, units) is known
        plan = _memo.plan(fmts)
        values = items if len(items) == plan.size else items[1:]
        if len(values) != plan.size:
            raise FramingError(
                f"push object list names {plan.size} objects but the push carries {len(items) - 1} values",
                layer="dlms",
            )
    else:
        entries, leading = _entries(notification.body, layout)
        plan = _Plan.of(
            [
                (kind, obis, 0, None)
                if kind != _REGISTER
                else (kind, obis, su.scaler, su.symbol)
                if su is not None
                else (kind, obis, *fmts.get(obis))
                for kind, obis, _, su in entries
            ]
        )
        values = tuple(entry[2] for entry in entries)
    for i, kind in plan.others:
        if kind == _NAME:
            name = _text(value_of(values[i], default_tz))
        else:
            stamp = _stamp_of(values[i], default_tz)
    if stamp is None and leading is not None:
        stamp = _stamp_of(leading, default_tz)
    if stamp is None and notification.date_time is not None and notification.date_time.is_complete:
        stamp = notification.date_time.to_datetime(default_tz)
    if stamp is None:
        stamp = received_at
    if stamp is None:
        raise FramingError(
            "push carries no complete date-time and no time of receipt was given", layer="dlms"
        )
    meter = name or meter_id or (system_title_text(system_title) if system_title else None) or "unidentified"
    quality = Quality.UNAUTHENTICATED if authenticated is False else Quality.OK
    # (key, value, unit) of each register, in the order pushed
    converted: list[tuple[ObisCode | str, Value, str | None]] = []
    append = converted.append
    for i, obis, scaler, unit in plan.registers:
        value = values[i]
        wire = value.value
        if type(wire) is int:
            append((obis, scale(wire, scaler) if scaler else wire, unit))
        else:
            append((obis, value_of(value, default_tz), unit))
    return PushReadings(
        meter,
        stamp,
        Reading.batch(meter, stamp, converted, quality),
        authenticated,
        system_title,
        invocation_counter,
        notification,
    )


# ---------------------------------------------------------------------------------------------------------------
# M-Bus long-frame envelope (minimal, see the module docstring)


class _MBusSegments:
    """Joins the DLMS segments of M-Bus long frames (``68 L L 68 C A CI STSAP DTSAP data CS 16``).

    Frames come from the M-Bus link layer (``meterbridge.protocols.mbus.link.MBusLink``: start
    bytes, lengths, checksum, stop byte); this keeps the stream offset of each frame for errors.
    """

    __slots__ = ("_link", "_parts", "_position", "_seq")

    def __init__(self, max_buffer: int) -> None:
        self._link = MBusLink(max_buffer=max_buffer, drop_echo=False)
        self._parts: list[bytes] = []
        self._seq: int | None = None
        self._position = 0  # stream offset of the next frame's first byte

    def receive_data(self, data: bytes) -> None:
        self._link.receive_data(data)

    def next_apdu(self) -> tuple[bytes, int] | None:
        """The next complete APDU and the stream offset of its last frame, or None (more bytes needed)."""
        while True:
            event = self._link.next_event()
            if event is NEED_DATA:
                return None
            if isinstance(event, LinkNoise):
                self._position += len(event.data)
                raise event.error
            at = self._position
            self._position += len(event.encode())
            if isinstance(event, SingleCharacter):
                continue  # an acknowledgement on a shared bus: nothing to read
            if not isinstance(event, LongFrame):
                raise UnsupportedError(
                    f"M-Bus {type(event).__name__} where a long frame with a DLMS segment was expected",
                    offset=at,
                    layer=MBUS_LAYER,
                )
            ci = event.ci
            if ci > 0x1F:
                raise UnsupportedError(
                    f"M-Bus CI 0x{ci:02X} is not a DLMS segment (0x00..0x1F)", offset=at + 6, layer=MBUS_LAYER
                )
            if len(event.data) < 2:
                raise FramingError(
                    "M-Bus long frame too short for a DLMS segment", offset=at + 1, layer=MBUS_LAYER
                )
            seq, last = ci & 0x0F, bool(ci & 0x10)
            expected = 0 if self._seq is None else (self._seq + 1) & 0x0F
            if seq != expected:
                self._parts, self._seq = [], None
                raise FramingError(
                    f"M-Bus DLMS segment {seq} where segment {expected} was expected",
                    offset=at + 6,
                    layer=MBUS_LAYER,
                )
            self._parts.append(event.data[2:])  # without STSAP and DTSAP
            self._seq = seq
            if last:
                apdu = b"".join(self._parts)
                self._parts, self._seq = [], None
                return apdu, at


class PushFramer:
    """The envelope part of a push, sans-IO: bytes in, whole APDUs (``bytes``) or ``PushError`` out.

    ``framing`` is ``"hdlc"``, ``"mbus"`` or ``"auto"`` (decided by the first frame start seen:
    ``7E A.`` or ``68 L L 68``). HDLC payloads that are General Block Transfer blocks are
    reassembled from block 1 on; blocks of a push whose start was not seen are skipped silently and
    counted (``skipped_blocks``). Any other HDLC payload is an APDU by itself.
    """

    def __init__(
        self, *, framing: Literal["auto", "hdlc", "mbus"] = "auto", max_apdu: int = DEFAULT_MAX_APDU
    ) -> None:
        self.framing = framing
        self._hdlc = HdlcStream()
        self._mbus = _MBusSegments(max_buffer=4096)
        self._gbt = GeneralBlockReassembler(max_apdu)
        self._out: deque[bytes | PushError] = deque()
        self._pending = b""

    @property
    def skipped_blocks(self) -> int:
        """GBT blocks discarded because the start of their push was not seen (joined mid-push, after a gap)."""
        return self._gbt.skipped_blocks

    def receive_data(self, data: bytes) -> None:
        if not data:
            return
        if self.framing == "auto":
            data = self._pending + bytes(data)
            self._pending = b""
            for i, b in enumerate(data):
                if b == 0x7E and i + 1 < len(data) and data[i + 1] & 0xF0 == 0xA0:
                    self.framing = "hdlc"
                    break
                if b == 0x68 and i + 3 < len(data) and data[i + 1] == data[i + 2] and data[i + 3] == 0x68:
                    self.framing = "mbus"
                    break
            else:
                self._pending = data[-3:]
                return
        try:
            if self.framing == "hdlc":
                self._hdlc.receive_data(data)
            else:
                self._mbus.receive_data(data)
        except ProtocolError as exc:
            self._out.append(PushError(exc))

    def next_event(self) -> bytes | PushError | NeedData:
        while not self._out:
            if not self._pump():
                return NEED_DATA
        return self._out.popleft()

    def _pump(self) -> bool:
        """Advance the framing until an APDU or an error comes out; False when more input is needed."""
        try:
            if self.framing == "hdlc":
                out = self._out
                while not out:  # frame after frame (GBT blocks) until the APDU is whole
                    frame = self._hdlc.next_event()
                    if frame is NEED_DATA:
                        return False
                    info = frame.information
                    payload = info[3:] if info[:3] in _LLC_HEADERS else info  # frame.payload, inline
                    if payload[:1] == b"\xe0":  # general-block-transfer: E0 control number ack length data
                        if len(payload) < 7:
                            raise FramingError(
                                "general-block-transfer header needs 7 bytes", offset=0, layer="dlms"
                            )
                        control, number = payload[1], _U16.unpack_from(payload, 2)[0]
                        size, start = (payload[6], 7) if payload[6] < 0x80 else decode_length(payload, 6)
                        if start + size != len(payload):
                            raise FramingError(
                                f"general-block-transfer block of {size} bytes in {len(payload) - start}",
                                offset=6,
                                layer="dlms",
                            )
                        whole = self._gbt.add_block(bool(control & 0x80), number, payload[start:])
                        if whole is not None:
                            out.append(whole)
                    elif payload:
                        out.append(payload)
            elif self.framing == "mbus":
                found = self._mbus.next_apdu()
                if found is None:
                    return False
                self._out.append(found[0])
            else:
                return False
        except ProtocolError as exc:
            self._out.append(PushError(exc))
        return True


class PushDecoder:
    """Sans-IO push decoder: ``receive_data(bytes)`` then ``next_event()`` until ``NEED_DATA``.

    ``framing`` is ``"hdlc"``, ``"mbus"`` or ``"auto"`` (see ``PushFramer``). ``keys`` open ciphered
    pushes; ``guard`` (shared between decoders if wanted) refuses a system title's invocation
    counter that does not rise.
    """

    def __init__(
        self,
        *,
        framing: Literal["auto", "hdlc", "mbus"] = "auto",
        keys: SecurityKeys | None = None,
        guard: ReplayGuard | None = None,
        formats: Mapping[ObisCode, RegisterFormat] | None = None,
        layout: Sequence[ObisCode | None] | None = None,
        meter_id: str | None = None,
        default_tz: tzinfo = UTC,
        max_apdu: int = DEFAULT_MAX_APDU,
    ) -> None:
        self.framer = PushFramer(framing=framing, max_apdu=max_apdu)
        self.keys = keys
        self.guard = guard if guard is not None else ReplayGuard()
        self._formats = _Formats(formats or {})
        self.layout = tuple(layout) if layout is not None else None
        self.meter_id = meter_id
        self.default_tz = default_tz
        self._received_at: datetime | None = None
        self._memo = _ObjectListMemo()

    def __repr__(self) -> str:
        return f"PushDecoder(framing={self.framer.framing!r}, keys={self.keys!r})"

    def receive_data(self, data: bytes, *, received_at: datetime | None = None) -> None:
        """Add bytes from the line (``received_at``: time of receipt, used when a push carries no time)."""
        if received_at is not None:
            self._received_at = received_at
        self.framer.receive_data(data)

    def next_event(self) -> PushEvent | NeedData:
        found = self.framer.next_event()
        if isinstance(found, bytes):
            try:
                return self.decode_apdu(found)
            except ProtocolError as exc:
                return PushError(exc)
        return found

    def events(self) -> list[PushEvent]:
        """Every event available now."""
        out: list[PushEvent] = []
        while (event := self.next_event()) is not NEED_DATA:
            out.append(event)
        return out

    def _decode(self, data: bytes) -> Apdu:
        """``decode_apdu``, except that a push object list equal to the last one is not decoded again."""
        memo = self._memo
        if data[:1] == b"\x0f" and len(data) > 8 and data[5] in (0, 12):
            p = 6 + data[5]
            if p < len(data) and data[p] == DataType.STRUCTURE:
                count, q = decode_length(data, p + 1)
                if memo.objects is not None and count and data.startswith(memo.raw, q):
                    body, pos = decode_structure(data, q + len(memo.raw), count, (memo.objects,))
                    if pos != len(data):
                        raise FramingError(
                            f"{len(data) - pos} bytes after the APDU", offset=pos, layer="dlms"
                        )
                    stamp = CosemDateTime.decode(data, 6) if data[5] else None
                    invoke = _U32.unpack_from(data, 1)[0]
                    return DataNotification(invoke, stamp, body)
                apdu = decode_apdu(data)
                assert isinstance(apdu, DataNotification)
                body = apdu.body
                first = body.items[0] if body.type is DataType.STRUCTURE and body.items else None
                if first is not None and _is_object_list(first):
                    raw = encode_data(first)
                    if data.startswith(raw, q):
                        memo.pairs = _object_pairs(first.items)
                        memo.raw, memo.objects = raw, first
                return apdu
        return decode_apdu(data)

    def decode_apdu(self, data: bytes) -> PushReadings:
        """Read one whole push APDU (Data-Notification, or general-glo-ciphering around one)."""
        apdu = self._decode(data)
        authenticated: bool | None = None
        title: bytes | None = None
        counter: int | None = None
        if isinstance(apdu, GeneralGloCiphering):
            if self.keys is None:
                sc = apdu.ciphered[0] if apdu.ciphered else 0
                raise SecurityError(
                    f"push is ciphered (security control 0x{sc:02X}) but no encryption key was given",
                    layer="dlms-security",
                )
            title = apdu.system_title
            if len(apdu.ciphered) >= 5:
                self.guard.check(title, int.from_bytes(apdu.ciphered[1:5], "big"))
            opened = decrypt(apdu.ciphered, system_title=title, keys=self.keys, offset=2 + len(title) + 1)
            try:
                apdu = self._decode(opened.plaintext)
            except ProtocolError as exc:
                raise SecurityError(
                    f"decrypted payload is no valid APDU ({exc.message}): wrong encryption key?",
                    layer="dlms-security",
                ) from None
            self.guard.accept(title, opened.invocation_counter)
            authenticated, counter = opened.authenticated, opened.invocation_counter
        if not isinstance(apdu, DataNotification):
            raise UnsupportedError(
                f"push carries {type(apdu).__name__}, expected a Data-Notification", layer="dlms"
            )
        return read_notification(
            apdu,
            _memo=self._memo,
            formats=self._formats,
            layout=self.layout,
            meter_id=self.meter_id,
            system_title=title,
            authenticated=authenticated,
            invocation_counter=counter,
            received_at=self._received_at,
            default_tz=self.default_tz,
        )
