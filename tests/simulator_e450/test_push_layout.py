"""The simulated CII push against the real E450 capture, layer by layer.

The capture (tests/vectors/dlms/e450_cii_push_unencrypted.json, a real meter) is taken apart with
the HDLC codec, the General Block Transfer reassembly of the push framer and the APDU decoder; our
push is taken apart the same way, and every layer is compared: HDLC addresses and frame kind, LLC,
block control, the Data-Notification header and its date-time form, the full push object list,
the type of every value (and the length of every octet string), and what the push decoder reads.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterbridge.protocols.dlms.apdu import DataNotification, GeneralBlockTransfer, decode_apdu
from meterbridge.protocols.dlms.axdr import ClockStatus, CosemDateTime, Data, DataType, encode_data
from meterbridge.protocols.dlms.push import PushDecoder, PushFramer, PushReadings
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.hdlc import LLC_RESPONSE, FrameKind, HdlcFrame, HdlcStream
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.transports import VirtualClock

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "dlms" / "e450_cii_push_unencrypted.json"
ZURICH = ZoneInfo("Europe/Zurich")


def _real() -> bytes:
    vector = json.loads(VECTOR.read_text())
    return b"".join(bytes.fromhex(h) for h in vector["frames_hex"])


def _ours(at: datetime, seed: int = 7) -> tuple[bytes, E450Simulator]:
    with VirtualClock(epoch=at) as clock:
        sim = E450Simulator(clock=clock, seed=seed)
        return b"".join(sim.push_encoder.frames(sim.snapshot())), sim


def _frames(raw: bytes) -> list[HdlcFrame]:
    stream = HdlcStream()
    stream.receive_data(raw)
    frames = []
    while (frame := stream.next_event()) is not NEED_DATA:
        assert isinstance(frame, HdlcFrame)
        frames.append(frame)
    return frames


def _notification(raw: bytes) -> DataNotification:
    framer = PushFramer(framing="hdlc")
    framer.receive_data(raw)
    apdu = framer.next_event()
    assert isinstance(apdu, bytes), apdu
    assert framer.next_event() is NEED_DATA
    notification = decode_apdu(apdu)
    assert isinstance(notification, DataNotification)
    return notification


def _shape(item: Data) -> object:
    """Type tree of a value: types, element counts and octet-string lengths, no values."""
    if item.type in (DataType.STRUCTURE, DataType.ARRAY):
        return (item.type, tuple(_shape(i) for i in item.items))
    if item.type is DataType.OCTET_STRING:
        assert isinstance(item.value, bytes)
        return (item.type, len(item.value))
    return item.type


# the instant of the capture: 2026-05-04 11:39:20 in Zurich (CEST)
CAPTURE_AT = datetime(2026, 5, 4, 9, 39, 20, tzinfo=UTC)


@pytest.mark.parametrize("at", [CAPTURE_AT, datetime(2026, 1, 15, 6, 0, 1, tzinfo=UTC)])
def test_hdlc_llc_and_block_layers_are_those_of_the_real_meter(at: datetime) -> None:
    real, (ours, _) = _frames(_real()), _ours(at)
    mine = _frames(ours)
    assert len(mine) >= 2  # long enough to need several blocks, as the real push
    for frames in (real, mine):
        for index, frame in enumerate(frames):
            assert frame.kind is FrameKind.UI and frame.poll_final
            assert (frame.destination, frame.source) == (real[0].destination, real[0].source)
            assert frame.llc == (LLC_RESPONSE if index == 0 else None)  # LLC on the first frame only
            block = decode_apdu(frame.payload)
            assert isinstance(block, GeneralBlockTransfer)
            assert (block.block_number, block.block_number_ack) == (index + 1, 0)
            assert block.last_block == (index == len(frames) - 1)
            assert (block.streaming, block.window) == (True, 0)  # as the E450 sets them


def test_notification_header_and_date_time_form_are_those_of_the_real_meter() -> None:
    real = _notification(_real())
    ours = _notification(_ours(CAPTURE_AT)[0])
    assert 0 <= ours.long_invoke_id <= 0xFFFFFFFF
    for note in (real, ours):
        stamp = note.date_time
        assert stamp is not None and stamp.is_complete
        # local wall time, hundredths and deviation not specified, status OK
        assert stamp.time.hundredths is None and stamp.deviation is None
        assert stamp.clock_status == ClockStatus.OK
    assert ours.date_time == real.date_time  # same instant, same encoding (the capture's second)


def test_push_object_list_and_every_value_type_equal_the_real_push() -> None:
    real = _notification(_real()).body
    ours = _notification(_ours(CAPTURE_AT)[0]).body
    assert real.type is ours.type is DataType.STRUCTURE
    assert len(ours.items) == len(real.items) == 17
    # the full object list, byte for byte (class ids, logical names, attributes, data indexes)
    assert encode_data(ours.items[0]) == encode_data(real.items[0])
    # every value: same A-XDR type, same octet-string length (name 16, equipment id 7, clock 12)
    assert [_shape(i) for i in ours.items] == [_shape(i) for i in real.items]
    # the push's clock value has the capture's form: local time, no hundredths, no deviation, DST flag
    clocks = []
    for body in (real, ours):
        value = body.items[4].value
        assert isinstance(value, bytes)
        clocks.append(CosemDateTime.decode(value))
    for stamp in clocks:
        assert stamp.time.hundredths is None and stamp.deviation is None
        assert stamp.clock_status is not None and stamp.clock_status & ClockStatus.DAYLIGHT_SAVING_ACTIVE
    assert clocks[1].to_datetime(ZURICH) == CAPTURE_AT
    # raw values without scaler as the real meter sends them: voltage in V, current in 0.01 A
    volts = [i.value for i in ours.items[11:14]]
    assert all(isinstance(v, int) and 200 <= v <= 260 for v in volts)
    assert all(isinstance(v, int) and 0 <= v < 10_000 for v in (i.value for i in ours.items[14:17]))


def test_the_push_decoder_reads_both_alike() -> None:
    def decoded(raw: bytes) -> PushReadings:
        decoder = PushDecoder(framing="hdlc", default_tz=ZURICH)
        decoder.receive_data(raw)
        (event,) = decoder.events()
        assert isinstance(event, PushReadings)
        return event

    real = decoded(_real())
    ours_raw, sim = _ours(CAPTURE_AT)
    ours = decoded(ours_raw)
    assert [(str(r.key), r.unit, type(r.value)) for r in ours.readings] == [
        (str(r.key), r.unit, type(r.value)) for r in real.readings
    ]
    assert real.meter_id == "LGZ1030653520967" and ours.meter_id == sim.model.logical_device_name
    assert len(ours.meter_id) == len(real.meter_id) and ours.meter_id.startswith("LGZ1")
    assert ours.timestamp == CAPTURE_AT  # local time without deviation, read in the meter's zone
    assert real.timestamp == datetime(2026, 5, 4, 11, 39, 21, tzinfo=ZURICH)
