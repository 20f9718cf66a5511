"""HdlcStream: frames fed whole, byte by byte, with noise, shared flags, errors that name the offset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meterbridge.errors import ChecksumError, FramingError, ProtocolError
from meterbridge.protocols.hdlc import (
    NEED_DATA,
    FrameKind,
    HdlcAddress,
    HdlcFrame,
    HdlcStream,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dlms"
AARE_FRAME = bytes.fromhex(json.loads((VECTORS / "hdlc_aare.json").read_text())["frame_hex"])
E450_FRAMES = [
    bytes.fromhex(h)
    for h in json.loads((VECTORS / "e450_cii_push_unencrypted.json").read_text())["frames_hex"]
]
E450 = [HdlcFrame.decode(raw) for raw in E450_FRAMES]


def drain(stream: HdlcStream) -> tuple[list[HdlcFrame], list[ProtocolError]]:
    frames: list[HdlcFrame] = []
    errors: list[ProtocolError] = []
    while True:
        try:
            event = stream.next_event()
        except ProtocolError as exc:
            errors.append(exc)
            continue
        if event is NEED_DATA:
            return frames, errors
        frames.append(event)


def feed(data: bytes, chunk: int) -> tuple[list[HdlcFrame], list[ProtocolError], HdlcStream]:
    stream = HdlcStream()
    frames: list[HdlcFrame] = []
    errors: list[ProtocolError] = []
    for i in range(0, len(data), chunk):
        stream.receive_data(data[i : i + chunk])
        got, bad = drain(stream)
        frames += got
        errors += bad
    stream.receive_data(b"")
    got, bad = drain(stream)
    return frames + got, errors + bad, stream


@pytest.mark.parametrize("chunk", [10_000, 1, 7])
def test_e450_push_whole_byte_by_byte_and_in_chunks(chunk: int) -> None:
    frames, errors, stream = feed(b"".join(E450_FRAMES), chunk)
    assert frames == E450
    assert errors == []
    assert stream.skipped == 0


@pytest.mark.parametrize("chunk", [10_000, 1])
def test_noise_around_frames(chunk: int) -> None:
    noise = bytes.fromhex("00FF7E12347E7E55A0")  # includes stray flags and a 7E followed by junk
    data = (
        noise
        + E450_FRAMES[0]
        + b"\x7e\x7e\x7e"
        + E450_FRAMES[1]
        + noise
        + E450_FRAMES[2]
        + E450_FRAMES[3]
        + b"garbage"
    )
    frames, errors, stream = feed(data, chunk)
    assert frames == E450
    assert stream.skipped > 0
    # "A0" at the end of the noise follows a flag: a false header; it may be reported, never a frame
    assert all(isinstance(e, FramingError | ChecksumError) for e in errors)


def test_trailing_garbage_after_close_reports_partial_frame_only() -> None:
    frames, errors, _ = feed(AARE_FRAME + b"\x01\x02", 1000)
    assert frames == [HdlcFrame.decode(AARE_FRAME)]
    assert errors == []
    frames, errors, _ = feed(AARE_FRAME + AARE_FRAME[:20], 1000)
    assert len(frames) == 1
    assert len(errors) == 1
    assert "line closed inside a frame" in str(errors[0])
    assert errors[0].offset == len(AARE_FRAME)


def test_back_to_back_frames_share_a_flag() -> None:
    shared = E450_FRAMES[0] + b"".join(f[1:] for f in E450_FRAMES[1:])
    assert len(shared) == sum(map(len, E450_FRAMES)) - 3
    for chunk in (1, 3, 1000):
        frames, errors, _ = feed(shared, chunk)
        assert frames == E450
        assert errors == []


def test_bad_fcs_is_reported_with_stream_offset_and_next_frame_survives() -> None:
    bad = bytearray(E450_FRAMES[1])
    bad[40] ^= 0xFF
    data = b"\x00\x00" + E450_FRAMES[0] + bytes(bad) + E450_FRAMES[2]
    frames, errors, _ = feed(data, 1000)
    assert frames == [E450[0], E450[2]]
    assert len(errors) == 1
    assert isinstance(errors[0], ChecksumError)
    assert "FCS mismatch" in errors[0].message
    assert errors[0].offset == 2 + len(E450_FRAMES[0]) + len(bad) - 3


def test_bad_hcs_resyncs_without_waiting_for_the_announced_length() -> None:
    bad = bytearray(E450_FRAMES[0])
    bad[2] = 0xFF  # length field now says 0xFF: HCS no longer matches
    stream = HdlcStream()
    stream.receive_data(bytes(bad[:12]))
    with pytest.raises(ChecksumError, match="HCS mismatch") as info:
        stream.next_event()
    assert info.value.offset == 7  # CE FF 03 13: HCS after a 2-byte and a 1-byte address
    stream.receive_data(bytes(bad[12:]) + E450_FRAMES[1])
    frames, errors = drain(stream)
    assert frames == [E450[1]]
    assert errors == []


def test_missing_closing_flag() -> None:
    bad = bytearray(AARE_FRAME)
    bad[-1] = 0x00
    frames, errors, _ = feed(bytes(bad) + E450_FRAMES[0], 1000)
    assert frames == [E450[0]]
    assert isinstance(errors[0], FramingError)
    assert "closing flag" in errors[0].message
    assert errors[0].offset == len(AARE_FRAME) - 1


def test_flag_inside_information_field_is_data() -> None:
    frame = HdlcFrame(
        FrameKind.I, HdlcAddress.server(1, 17), HdlcAddress.client(16), b"\xe6\xe6\x00\x7e\x7e\xa0\x7e"
    )
    frames, errors, _ = feed(frame.encode() * 3, 1)
    assert frames == [frame] * 3
    assert errors == []


def test_buffer_limit() -> None:
    stream = HdlcStream(max_buffer=4096)
    partial = E450_FRAMES[0][:100]
    stream.receive_data(partial)
    assert stream.next_event() is NEED_DATA
    assert stream.buffered == 100
    with pytest.raises(FramingError, match="more than 4096 bytes buffered") as info:
        stream.receive_data(bytes(5000))
    assert info.value.offset == 0
    assert stream.buffered == 4096
    assert drain(stream) == ([], [])  # the zeros are noise
    stream.receive_data(E450_FRAMES[1])
    frames, _ = drain(stream)
    assert frames == [E450[1]]
    with pytest.raises(ValueError, match="one whole frame"):
        HdlcStream(max_buffer=100)


def test_large_noise_is_discarded_and_compacted() -> None:
    stream = HdlcStream()
    for _ in range(20):
        stream.receive_data(bytes(1000) + E450_FRAMES[0])
        frames, errors = drain(stream)
        assert frames == [E450[0]]
        assert errors == []
    assert stream.skipped == 20_000
    assert stream.buffered <= 1


def test_line_that_closes_and_comes_back() -> None:
    stream = HdlcStream()
    stream.receive_data(b"")  # closed before anything came: nothing to report
    assert stream.closed
    assert stream.next_event() is NEED_DATA
    stream.receive_data(E450_FRAMES[0][:30])
    stream.receive_data(b"")  # unplugged inside a frame
    with pytest.raises(FramingError, match="line closed inside a frame"):
        stream.next_event()
    stream.receive_data(E450_FRAMES[1])  # reopened
    assert not stream.closed
    assert drain(stream) == ([E450[1]], [])


def test_lone_flag_at_close_is_not_an_error() -> None:
    frames, errors, _ = feed(AARE_FRAME + b"\x7e", 1000)
    assert len(frames) == 1
    assert errors == []
