"""EN 13757-2 link layer: frames, requests both ways, the streaming MBusLink."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import ChecksumError, FramingError, UnsupportedError
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.mbus import (
    ApplicationReset,
    ControlFrame,
    LinkNoise,
    LongFrame,
    MBusLink,
    ReqUd1,
    ReqUd2,
    SecondaryAddress,
    SelectSecondary,
    SendUserData,
    SetBaudRate,
    SetPrimaryAddress,
    ShortFrame,
    SingleCharacter,
    SndNke,
    decode_frame,
    decode_request,
)
from meterbridge.protocols.mbus.link import Frame

byte = st.integers(0, 255)
frames = st.one_of(
    st.just(SingleCharacter()),
    st.builds(ShortFrame, byte, byte),
    st.builds(ControlFrame, byte, byte, byte),
    st.builds(LongFrame, byte, byte, byte, st.binary(min_size=1, max_size=252)),
)


def drain(link: MBusLink) -> list[object]:
    out = []
    while (event := link.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def test_wire_formats() -> None:
    assert SndNke(1).to_frame().encode() == bytes.fromhex("10 40 01 41 16")
    assert ReqUd2(5, fcb=True).to_frame().encode() == bytes.fromhex("10 7B 05 80 16")
    assert ReqUd2(5, fcb=False).to_frame().encode() == bytes.fromhex("10 5B 05 60 16")
    assert ReqUd1(5).to_frame().encode() == bytes.fromhex("10 5A 05 5F 16")
    assert SetBaudRate(1, 9600).to_frame().encode() == bytes.fromhex("68 03 03 68 53 01 BD 11 16")
    assert SetPrimaryAddress(254, 8).to_frame().encode() == bytes.fromhex(
        "68 06 06 68 53 FE 51 01 7A 08 25 16"
    )
    assert ApplicationReset(3).to_frame().encode() == bytes.fromhex("68 03 03 68 53 03 50 A6 16")
    # FIELD_NOTES: 68 0B 0B 68 73 FD 52 + id (BCD, F wildcards) + manufacturer, version, medium
    select = SelectSecondary("12345678FFFFFFFF", fcb=True).to_frame().encode()
    assert select[:7] == bytes.fromhex("68 0B 0B 68 73 FD 52")
    assert select[7:15] == bytes.fromhex("78 56 34 12 FF FF FF FF")
    assert select[-2] == sum(select[4:-2]) & 0xFF


def test_select_wildcards_match() -> None:
    meter = SecondaryAddress("12345678", 0x30E2, 0x40, 0x03)
    assert SelectSecondary("1FFFFFFFFFFFFFFF").matches(meter)
    assert SelectSecondary(str(meter)).matches(meter)
    assert SelectSecondary("12345678" + "30E2" + "FF" + "03").matches(meter)
    assert not SelectSecondary("2FFFFFFFFFFFFFFF").matches(meter)
    assert not SelectSecondary("12345678" + "30E3" + "FFFF").matches(meter)
    assert meter.manufacturer_code == "LGB"
    assert SecondaryAddress.parse(str(meter)) == meter
    assert SecondaryAddress.parse(str(meter)).to_bytes() == bytes.fromhex("78563412E2304003")


requests = st.one_of(
    st.builds(SndNke, byte),
    st.builds(ReqUd2, byte, st.booleans(), st.booleans()),
    st.builds(ReqUd1, byte, st.booleans(), st.booleans()),
    st.builds(SelectSecondary, st.text("0123456789ABCDEF", min_size=16, max_size=16), st.booleans()),
    st.builds(ApplicationReset, byte, st.none() | byte),
    st.builds(SetBaudRate, byte, st.sampled_from([300, 600, 1200, 2400, 4800, 9600, 19200, 38400])),
    st.builds(SetPrimaryAddress, byte, st.integers(0, 250)),
)


@settings(max_examples=200, deadline=None)
@given(requests)
def test_request_round_trip(request: object) -> None:
    frame = request.to_frame()  # type: ignore[attr-defined]
    wire = frame.encode()
    assert decode_frame(wire) == frame
    assert decode_request(decode_frame(wire)) == request


@settings(max_examples=200, deadline=None)
@given(frames)
def test_frame_round_trip(frame: Frame) -> None:
    wire = frame.encode()
    assert decode_frame(wire) == frame
    assert decode_frame(wire + b"\x00\x68garbage") == frame


@settings(max_examples=200, deadline=None)
@given(st.lists(frames, min_size=1, max_size=5), st.integers(1, 40))
def test_stream_any_chunking(items: list[Frame], chunk: int) -> None:
    wire = b"".join(f.encode() for f in items)
    link = MBusLink()
    got: list[object] = []
    for i in range(0, len(wire), chunk):
        link.receive_data(wire[i : i + chunk])
        got += drain(link)
    assert got == items


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_stream_only_our_errors(data: bytes) -> None:
    link = MBusLink()
    link.receive_data(data)
    link.receive_data(b"")
    events = drain(link)
    # every byte is accounted for: either in a frame or reported as noise
    total = sum(len(e.data) if isinstance(e, LinkNoise) else len(e.encode()) for e in events)  # type: ignore[attr-defined]
    assert total == len(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_decode_frame_only_our_errors(data: bytes) -> None:
    with contextlib.suppress(FramingError, ChecksumError):
        decode_frame(data)


def test_noise_before_frame_is_reported_and_frame_found() -> None:
    link = MBusLink()
    link.receive_data(b"\x00\x11" + SndNke(3).to_frame().encode())
    noise, frame = drain(link)
    assert isinstance(noise, LinkNoise) and noise.data == b"\x00\x11"
    assert frame == ShortFrame(0x40, 3)


def test_bad_checksum_is_noise_not_a_frame() -> None:
    wire = bytearray(LongFrame(0x08, 1, 0x72, bytes(12)).encode())
    wire[-2] ^= 0xFF
    link = MBusLink()
    link.receive_data(bytes(wire))
    link.receive_data(b"")
    events = drain(link)
    assert events and all(isinstance(e, LinkNoise) for e in events)
    assert isinstance(events[0].error, ChecksumError)  # type: ignore[union-attr]


def test_truncated_frame_waits_then_is_noise_at_end() -> None:
    wire = LongFrame(0x08, 1, 0x72, bytes(12)).encode()
    link = MBusLink()
    link.receive_data(wire[:10])
    assert link.next_event() is NEED_DATA
    link.receive_data(b"")
    (noise,) = drain(link)
    assert isinstance(noise, LinkNoise) and noise.data == wire[:10]
    assert "premature end of frame" in str(noise.error)


def test_echo_of_own_request_is_dropped() -> None:
    link = MBusLink()
    wire = link.send(ReqUd2(5))
    reply = LongFrame(0x08, 5, 0x72, bytes(12))
    stream = wire + reply.encode()
    for i in range(len(stream)):  # byte by byte
        link.receive_data(stream[i : i + 1])
        events = drain(link)
        if i < len(stream) - 1:
            assert events == []
    assert events == [reply]


def test_without_echo_the_reply_comes_through() -> None:
    link = MBusLink()
    link.send(SndNke(1))
    link.receive_data(b"\xe5")
    assert drain(link) == [SingleCharacter()]


def test_buffer_limit() -> None:
    link = MBusLink(max_buffer=64)
    link.receive_data(b"\x68\xff\xff\x68" + bytes(50))
    assert link.next_event() is NEED_DATA
    with pytest.raises(FramingError, match="more than 64 bytes buffered"):
        link.receive_data(bytes(20))


def test_length_fields_differ() -> None:
    with pytest.raises(FramingError, match="length fields differ") as info:
        decode_frame(bytes.fromhex("68 05 06 68 08 01 72 00 00 7B 16"))
    assert info.value.offset == 2


def test_stop_byte() -> None:
    with pytest.raises(FramingError, match="stop byte"):
        decode_frame(bytes.fromhex("10 40 01 41 17"))
    with pytest.raises(FramingError, match="stop byte"):
        decode_frame(bytes.fromhex("68 03 03 68 53 01 BD 11 17"))


def test_decode_request_rejects_responses() -> None:
    with pytest.raises(UnsupportedError):
        decode_request(LongFrame(0x08, 1, 0x72, b"\x00"))
    with pytest.raises(UnsupportedError):
        decode_request(SingleCharacter())
    with pytest.raises(UnsupportedError):
        decode_request(ShortFrame(0x08, 1))
    assert decode_request(LongFrame(0x53, 1, 0x51, b"\x0c\x06\x01\x00\x00\x00")) == SendUserData(
        1, 0x51, b"\x0c\x06\x01\x00\x00\x00"
    )


def test_frame_values_validated() -> None:
    with pytest.raises(ValueError):
        ShortFrame(0x100, 1)
    with pytest.raises(ValueError):
        LongFrame(0x08, 1, 0x72, bytes(253))
    with pytest.raises(ValueError):
        SetBaudRate(1, 1234)
    with pytest.raises(ValueError):
        SelectSecondary("123")
