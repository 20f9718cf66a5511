"""IEC 62056-21 decoder for ``meterbridge decode``: one JSON object per data line value.

Input is a capture of the optical port: identification line ``/XXXZident`` and data
readouts ``STX ... ! CR LF ETX BCC`` (a bare readout starting at STX works too), with
sign-ons, option selects, programming-mode commands and answers wherever a sniffer saw
them. Each data set becomes::

    {"meter": "13647123", "obis": "1-0:32.7.0.255", "value": 241, "unit": "V",
     "timestamp": null, "authenticated": null}

``meter`` comes from C.1.0 / 0.0.0 / 96.1.1 or the identification line; ``obis`` is the
canonical code (the address as sent when it is no OBIS code); ``value`` is exact;
``timestamp`` is null because a readout carries no time of its own; ``authenticated`` is
null (IEC 62056-21 has no security). Error values ``(ERxx)`` print ``"value": null`` with
``"error": "ER.."``. Requests print as ``{"request": "R1", ...}`` (a password never).
A wrong BCC or a malformed line stops decoding with the stream byte offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from meterbridge.cli.decode import DecodeOptions, Decoder

__all__ = ["DECODER"]

_NO_CLOCK = datetime(1970, 1, 1, tzinfo=UTC)  # marks "no timestamp" through Reading, printed as null


def detect(head: bytes) -> bool:
    return bool(head) and head[0] in (0x2F, 0x02)


def decode(chunks: Iterable[bytes], options: DecodeOptions) -> Iterator[dict[str, object]]:
    from meterbridge.protocols.events import NEED_DATA
    from meterbridge.protocols.iec62056_21 import (
        Ack,
        Break,
        CaptureReader,
        DataMessage,
        Identification,
        Nak,
        OptionSelect,
        Password,
        PasswordOperand,
        ReadRequest,
        SignOn,
        WriteRequest,
        meter_id_of,
        to_readings,
    )

    reader = CaptureReader()
    identification: Identification | None = None
    meter: str | None = None
    for chunk in chunks:
        reader.receive_data(chunk)
        while (message := reader.next_event()) is not NEED_DATA:
            if isinstance(message, Identification):
                identification, meter = message, None
            elif isinstance(message, DataMessage):
                sets = message.data_sets
                meter = meter_id_of(sets, identification) or meter or "unknown"
                for reading, data_set in zip(
                    to_readings(sets, received_at=_NO_CLOCK, meter_id=meter),
                    [s for s in sets if s.address],
                    strict=True,
                ):
                    out: dict[str, object] = {
                        "meter": reading.meter_id,
                        "obis": str(reading.key),
                        "value": reading.value,
                        "unit": reading.unit,
                        "timestamp": None if reading.timestamp == _NO_CLOCK else reading.timestamp,
                        "authenticated": None,
                    }
                    if data_set.error is not None:
                        out["error"] = data_set.error
                    if len(data_set.values) > 1:
                        out["values"] = [v.text for v in data_set.values]
                    yield out
                for data_set in sets:
                    if not data_set.address:  # answers without address: errors or bare values
                        yield {"answer": [v.text for v in data_set.values], "error": data_set.error}
            elif isinstance(message, SignOn):
                yield {"request": "sign-on", "address": message.address}
            elif isinstance(message, OptionSelect):
                yield {
                    "request": "option-select",
                    "protocol": message.protocol,
                    "baud_char": message.baud_char,
                    "mode": message.mode,
                }
            elif isinstance(message, ReadRequest):
                yield {"request": f"R{message.kind}", "address": message.address}
            elif isinstance(message, WriteRequest):
                yield {
                    "request": f"W{message.kind}",
                    "address": message.address,
                    "values": [v.text for v in message.values],
                }
            elif isinstance(message, Password):
                yield {"request": f"P{message.kind}"}
            elif isinstance(message, PasswordOperand):
                yield {"request": "P0", "operand": message.operand}
            elif isinstance(message, Break):
                yield {"request": "B0"}
            elif isinstance(message, Ack | Nak):
                yield {"request": type(message).__name__.upper()}


DECODER = Decoder(
    name="iec62056-21",
    detect=detect,
    decode=decode,
    description="IEC 62056-21 optical readouts (identification, STX ... ETX BCC) and programming mode",
    priority=60,
)
