"""M-Bus decoder for ``meterbridge decode`` (EN 13757-2/3): one JSON object per frame.

Slave responses (RSP_UD) give the fixed header and every record::

    {"frame": "long", "c": "0x08", "address": 1, "ci": "0x72", "id": "12082058",
     "manufacturer": "LGB", "version": 64, "medium": "gas", "access_number": 64,
     "status": 0, "signature": 0, "records": [{"index": 0, "function": "instantaneous",
     "storage": 1, "tariff": 0, "subunit": 0, "quantity": "volume", "unit": "m³",
     "value": 10834.092}, ...]}

``value`` is exact (after the VIF exponent, in the base unit of its quantity); dates are
ISO 8601, text a string, manufacturer specific and binary data hex in frame order.
Master requests are shown with ``"request"`` (``SND_NKE``, ``REQ_UD2``, ``select`` ...).
Noise, a bad checksum or a truncated frame stops decoding with the stream byte offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from meterbridge.cli.decode import DecodeOptions, Decoder

if TYPE_CHECKING:
    from meterbridge.protocols.mbus import Frame, Response

__all__ = ["DECODER", "frame_to_dict", "response_to_dict"]

FEED = 256  # bytes per receive_data call (MBusLink's buffer limit is 4096)


def detect(head: bytes) -> bool:
    return bool(head) and head[0] in (0x68, 0x10, 0xE5)


def response_to_dict(response: Response) -> dict[str, object]:
    from meterbridge.protocols.mbus import FixedDataResponse

    out: dict[str, object] = {
        "frame": "long",
        "c": f"0x{response.c:02X}",
        "address": response.address,
        "ci": f"0x{response.ci:02X}",
    }
    if isinstance(response, FixedDataResponse):
        out.update(
            id=response.identification,
            medium=response.medium_name,
            access_number=response.access_number,
            status=response.status,
            records=[
                {
                    "index": i,
                    "function": counter.function,
                    "quantity": counter.quantity,
                    "unit": counter.unit,
                    "value": counter.value,
                }
                for i, counter in enumerate(response.counters)
            ],
        )
        return out
    if response.identification is not None:
        out.update(
            id=response.identification,
            manufacturer=response.manufacturer,
            version=response.version,
            medium=response.medium_name,
        )
    out.update(access_number=response.access_number, status=response.status, signature=response.signature)
    records = []
    for record in response.records:
        if record.function in ("manufacturer_specific", "more_records_follow"):
            continue
        records.append(record.to_dict())
    out["records"] = records
    if response.manufacturer_data:
        out["manufacturer_data"] = response.manufacturer_data
    if response.more_records_follow:
        out["more_records_follow"] = True
    return out


def frame_to_dict(frame: Frame) -> dict[str, object]:
    from meterbridge.protocols.mbus import (
        ApplicationReset,
        ControlFrame,
        LongFrame,
        ReqUd1,
        ReqUd2,
        SelectSecondary,
        SendUserData,
        SetBaudRate,
        SetPrimaryAddress,
        ShortFrame,
        SndNke,
        decode_data_send,
        decode_request,
        decode_response,
    )
    from meterbridge.protocols.mbus.link import C_SND_UD

    if isinstance(frame, ShortFrame | ControlFrame | LongFrame) and frame.c & 0x40 == 0:
        return response_to_dict(decode_response(frame))
    if not isinstance(frame, ShortFrame | ControlFrame | LongFrame):
        return {"frame": "ack"}
    kind = {ShortFrame: "short", ControlFrame: "control", LongFrame: "long"}[type(frame)]
    out: dict[str, object] = {"frame": kind, "c": f"0x{frame.c:02X}", "address": frame.address}
    if not isinstance(frame, ShortFrame):
        out["ci"] = f"0x{frame.ci:02X}"
    request = decode_request(frame)
    if isinstance(request, SndNke):
        out["request"] = "SND_NKE"
    elif isinstance(request, ReqUd2 | ReqUd1):
        out["request"] = "REQ_UD2" if isinstance(request, ReqUd2) else "REQ_UD1"
        out["fcb"] = request.fcb
        out["fcv"] = request.fcv
    elif isinstance(request, SelectSecondary):
        out["request"] = "select"
        out["pattern"] = request.pattern
    elif isinstance(request, ApplicationReset):
        out["request"] = "application_reset"
        out["subcode"] = request.subcode
    elif isinstance(request, SetBaudRate):
        out["request"] = "set_baud_rate"
        out["baud"] = request.baud
    elif isinstance(request, SetPrimaryAddress):
        out["request"] = "set_primary_address"
        out["new_address"] = request.new_address
    elif isinstance(request, SendUserData):
        out["request"] = "SND_UD"
        if isinstance(frame, LongFrame) and frame.ci == 0x51 and frame.c & 0x4F == C_SND_UD & 0x4F:
            out["records"] = [r.to_dict() for r in decode_data_send(frame)]
        else:
            out["data"] = request.data
    return out


def decode(chunks: Iterable[bytes], options: DecodeOptions) -> Iterator[dict[str, object]]:
    from meterbridge.errors import ProtocolError
    from meterbridge.protocols.events import NEED_DATA
    from meterbridge.protocols.mbus import LinkNoise, MBusLink

    link = MBusLink(drop_echo=False)
    position = 0  # stream offset of the next frame's first byte

    def frames() -> Iterator[dict[str, object]]:
        nonlocal position
        while (event := link.next_event()) is not NEED_DATA:
            if isinstance(event, LinkNoise):
                raise event.error
            start = position
            size = len(event.encode())
            position += size
            try:
                yield frame_to_dict(event)
            except ProtocolError as exc:  # frame offsets -> stream offsets
                if exc.offset is not None:
                    exc.offset += start
                    exc.args = (exc._render(),)
                raise

    for chunk in chunks:
        for i in range(0, len(chunk), FEED):
            link.receive_data(chunk[i : i + FEED])
            yield from frames()
    link.receive_data(b"")
    yield from frames()


DECODER = Decoder(
    name="mbus",
    detect=detect,
    decode=decode,
    description="M-Bus (EN 13757-2/3) frames: E5, short, control and long frames",
    priority=50,
)
