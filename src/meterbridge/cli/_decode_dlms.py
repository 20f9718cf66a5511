"""HDLC/DLMS decoder for ``meterbridge decode``: pushes and other APDUs in HDLC frames or M-Bus long frames.

Detected on ``7E A.`` (HDLC, e.g. the Landis+Gyr E450 customer interface) and on M-Bus long
frames whose CI is 0x00..0x1F (``68 L L 68 C A CI ..``: EN 13757-3 reserves that range for DLMS;
Kaifa and Sagemcom meters push this way). It claims no other M-Bus frame, and its priority (40)
puts it before the plain M-Bus decoder (50).

A push (Data-Notification, plain or in general-glo-ciphering) gives one JSON object per reading::

    {"meter": "LGZ1030653520967", "obis": "1-0:32.7.0.255", "value": 236, "unit": "V",
     "timestamp": "2026-05-04T11:39:21", "authenticated": null}

``authenticated`` is ``true`` when the GCM tag was verified (``--key`` and ``--auth-key``),
``false`` when the push was only decrypted (``--key`` alone), ``null`` for a plain push. The
timestamp is the meter's clock as it sent it: without a UTC offset when the meter gave none.
``--scaler OBIS=N`` scales a register by 10**N (pushes carry no scaler). Any other APDU (an
AARE, a GET response ...) gives one object describing it (``{"apdu": "AARE", ...}``), secrets
left out. A failure stops decoding with the layer and reason: ``hdlc``/``mbus`` framing and
checksum errors name the byte offset in the stream, ``dlms`` errors the offset in the APDU,
``dlms-security`` errors name the check that failed (system title, security control, tag,
replay) and never the key.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta, timezone

from meterbridge.cli.decode import DecodeOptions, Decoder

__all__ = ["DECODER", "apdu_to_dict", "detect"]

# the time zone a push's clock is read in when it states no UTC offset; printed without an offset
METER_CLOCK = timezone(timedelta(0), "meter clock")
_PUSH_TAGS = frozenset((0x0F, 0xDB, 0xDC))


def detect(head: bytes) -> bool:
    """HDLC frames, or M-Bus long frames carrying DLMS (CI 0x00..0x1F)."""
    if not head:
        return False
    if head[0] == 0x7E:
        return len(head) < 2 or head[1] & 0xF0 == 0xA0 or head[1] == 0x7E
    return len(head) >= 7 and head[0] == 0x68 and head[1] == head[2] and head[3] == 0x68 and head[6] <= 0x1F


def _plain(value: object) -> object:
    from meterbridge.obis import ObisCode
    from meterbridge.protocols.dlms.axdr import (
        BitString,
        CompactArray,
        CosemDate,
        CosemDateTime,
        CosemTime,
        Data,
    )

    if isinstance(value, Data):
        return _plain(value.value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, CompactArray):
        return [_plain(v) for v in value.items]
    if isinstance(value, CosemDateTime | CosemDate | CosemTime | BitString | ObisCode):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name.lower().replace("_", "-")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    return value


def apdu_to_dict(apdu: object) -> dict[str, object]:
    """A JSON-able description of any APDU; fields that hold secrets (not in the repr) are left out."""
    out: dict[str, object] = {"apdu": type(apdu).__name__}
    body = _plain(apdu)
    if isinstance(body, dict):
        out.update(body)
    return out


def _timestamp(value: datetime) -> str:
    if value.tzinfo is METER_CLOCK:
        return value.replace(tzinfo=None).isoformat()
    return value.isoformat()


def decode(chunks: Iterable[bytes], options: DecodeOptions) -> Iterator[dict[str, object]]:
    from meterbridge.errors import ConfigError
    from meterbridge.obis import ObisCode
    from meterbridge.protocols.dlms.apdu import decode_apdu
    from meterbridge.protocols.dlms.push import PushDecoder, PushError, RegisterFormat
    from meterbridge.protocols.dlms.security import SecurityKeys
    from meterbridge.protocols.events import NEED_DATA

    formats = {}
    for text, exponent in options.scalers.items():
        try:
            formats[ObisCode.parse(text)] = RegisterFormat(exponent)
        except ValueError as exc:
            raise ConfigError(str(exc), where=f"--scaler {text}") from None
    keys = None
    if options.key is not None or options.auth_key is not None:
        keys = SecurityKeys(options.key, options.auth_key)
    decoder = PushDecoder(keys=keys, formats=formats, default_tz=METER_CLOCK)
    framer = decoder.framer

    def drain() -> Iterator[dict[str, object]]:
        while (found := framer.next_event()) is not NEED_DATA:
            if isinstance(found, PushError):
                raise found.error
            assert isinstance(found, bytes)
            if found[:1] and found[0] in _PUSH_TAGS:
                push = decoder.decode_apdu(found)
                for r in push.readings:
                    yield {
                        "meter": r.meter_id,
                        "obis": str(r.key),
                        "value": r.value,
                        "unit": r.unit,
                        "timestamp": _timestamp(r.timestamp),
                        "authenticated": push.authenticated,
                    }
            else:
                yield apdu_to_dict(decode_apdu(found))

    for chunk in chunks:
        decoder.receive_data(chunk)
        yield from drain()


DECODER = Decoder(
    name="hdlc",
    detect=detect,
    decode=decode,
    description="DLMS/COSEM in HDLC frames (E450 pushes, GBT, ciphered) or in M-Bus long frames (CI 00..1F)",
    priority=40,
)
