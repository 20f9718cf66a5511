"""DSMR P1 decoder for ``meterbridge decode``: one JSON object per data line value.

Input: one or more telegrams ``/XXX5ident CR LF CR LF lines ! CRC`` (noise between them
is skipped). Each data set becomes::

    {"meter": "E0044007131650217", "obis": "1-0:1.7.0.255", "value": 1.193, "unit": "kW",
     "timestamp": "2023-11-28T10:45:12+01:00", "authenticated": null}

``meter`` is the equipment id (``0-0:96.1.1``, hex decoded) and, for M-Bus channel n, that
device's ``0-n:96.1.0``; ``timestamp`` is the telegram's clock ``0-0:1.0.0`` (an M-Bus
value its own capture time); ``authenticated`` is null (P1 has no security). A CRC
mismatch stops decoding, naming both CRCs and the stream byte offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from meterbridge.cli.decode import DecodeOptions, Decoder

__all__ = ["DECODER"]

_NO_CLOCK = datetime(1970, 1, 1, tzinfo=UTC)
_P1_HEAD = re.compile(rb"/[A-Za-z]{3}\d[^\r\n]*\r\n(\r\n|\d{1,3}-\d{1,3}:)")


def detect(head: bytes) -> bool:
    """A header line followed by the empty line (or a full OBIS data line), no STX: DSMR, not a readout."""
    return _P1_HEAD.match(head) is not None and b"\x02" not in head


def decode(chunks: Iterable[bytes], options: DecodeOptions) -> Iterator[dict[str, object]]:
    from meterbridge.protocols.events import NEED_DATA
    from meterbridge.protocols.p1 import P1Reader, to_readings

    reader = P1Reader()
    for chunk in chunks:
        reader.receive_data(chunk)
        while (telegram := reader.next_event()) is not NEED_DATA:
            for reading in to_readings(telegram, received_at=_NO_CLOCK):
                out: dict[str, object] = {
                    "meter": reading.meter_id,
                    "obis": str(reading.key),
                    "value": reading.value,
                    "unit": reading.unit,
                    "timestamp": None if reading.timestamp == _NO_CLOCK else reading.timestamp,
                    "authenticated": None,
                }
                if reading.quality:
                    out["quality"] = reading.quality.names
                yield out


DECODER = Decoder(
    name="p1",
    detect=detect,
    decode=decode,
    description="DSMR P1 telegrams (/XXX5 header, data lines, !CRC16)",
    priority=50,
)
