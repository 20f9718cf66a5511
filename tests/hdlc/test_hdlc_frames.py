"""HDLC frames (IEC 62056-46): golden frames from real meters, every field, every error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meterbridge.errors import ChecksumError, FramingError, ProtocolError, UnsupportedError
from meterbridge.protocols.hdlc import (
    LLC_RESPONSE,
    FrameKind,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    fcs16,
    fcs16_table,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dlms"
AARE = json.loads((VECTORS / "hdlc_aare.json").read_text())
AARE_FRAME = bytes.fromhex(AARE["frame_hex"])
E450 = json.loads((VECTORS / "e450_cii_push_unencrypted.json").read_text())
E450_FRAMES = [bytes.fromhex(h) for h in E450["frames_hex"]]


def test_crc16_x25_check_value() -> None:
    # The catalogue check value of CRC-16/X-25 ("123456789").
    for crc in (fcs16, fcs16_table):
        assert crc(b"123456789") == 0x906E
        assert crc(b"xx123456789yy", 2, 11) == 0x906E
        assert crc(bytearray(b"123456789")) == crc(memoryview(b"123456789")) == 0x906E
        assert crc(b"") == 0x0000


def test_aare_vector_decodes_to_all_listed_fields() -> None:
    frame = HdlcFrame.decode(AARE_FRAME)
    assert frame.destination == HdlcAddress.client(16)
    assert frame.destination.encode() == b"\x21"
    assert frame.source == HdlcAddress.server(1, 17)
    assert (frame.source.upper, frame.source.lower, frame.source.size) == (1, 17, 2)
    assert frame.source.encode() == bytes.fromhex("0223")
    assert frame.control == 0x30
    assert frame.kind is FrameKind.I
    assert (frame.send_sequence, frame.receive_sequence, frame.poll_final) == (0, 1, True)
    assert not frame.segmented
    assert frame.llc == LLC_RESPONSE == bytes.fromhex("E6E700")
    assert frame.payload[:2] == bytes.fromhex("6129")  # AARE tag, length 41
    assert len(frame.payload) == 0x29 + 2
    assert frame.length == 0x38
    # HCS (34 E7) and FCS (B8 6A) valid: decode checked them; encode rebuilds them.
    assert frame.encode() == AARE_FRAME


def test_e450_push_frames_decode() -> None:
    frames = [HdlcFrame.decode(raw) for raw in E450_FRAMES]
    for frame, raw in zip(frames, E450_FRAMES, strict=True):
        assert frame.kind is FrameKind.UI
        assert frame.control == 0x13
        assert frame.poll_final
        # CE FF: two-byte destination (low bit 0 then 1), upper 0x67, lower 0x7F (all stations)
        assert frame.destination == HdlcAddress(0x67, 0x7F, 2)
        assert frame.source == HdlcAddress(1)
        assert not frame.segmented
        assert frame.encode() == raw
        assert frame.payload[0] == 0xE0  # a General Block Transfer block per frame
    assert frames[0].llc == LLC_RESPONSE
    assert [f.llc for f in frames[1:]] == [None, None, None]
    assert [int.from_bytes(f.payload[2:4]) for f in frames] == [1, 2, 3, 4]  # GBT block numbers
    assert frames[3].payload[1] & 0x80  # last block


@pytest.mark.parametrize(
    ("kind", "control"),
    [
        (FrameKind.SNRM, 0x93),
        (FrameKind.DISC, 0x53),
        (FrameKind.UA, 0x73),
        (FrameKind.DM, 0x1F),
        (FrameKind.FRMR, 0x97),
        (FrameKind.UI, 0x13),
        (FrameKind.RR, 0x71),
        (FrameKind.RNR, 0x75),
    ],
)
def test_control_bytes(kind: FrameKind, control: int) -> None:
    nr = 3 if kind.acknowledges else 0
    frame = HdlcFrame(kind, HdlcAddress.server(1, 17), HdlcAddress.client(16), receive_sequence=nr)
    assert frame.control == control
    assert HdlcFrame.decode(frame.encode()) == frame


def test_well_known_wire_frames() -> None:
    # SNRM from client 16 to server 1/17 without parameters, as meters' manuals print it.
    snrm = HdlcFrame(FrameKind.SNRM, HdlcAddress.server(1, 17), HdlcAddress.client(16))
    assert snrm.encode() == bytes.fromhex("7EA00802232193") + snrm.encode()[7:]
    assert len(snrm.encode()) == 10
    i_frame = HdlcFrame(
        FrameKind.I,
        HdlcAddress.server(1, 17),
        HdlcAddress.client(16),
        b"\xe6\xe6\x00\x01",
        send_sequence=2,
        receive_sequence=5,
    )
    assert i_frame.control == 0b1011_0100


@pytest.mark.parametrize(
    ("address", "wire"),
    [
        (HdlcAddress(16), "21"),
        (HdlcAddress(1, 17), "0223"),
        (HdlcAddress(0x67, 0x7F), "CEFF"),
        (HdlcAddress(1, 17, 4), "00020023"),
        (HdlcAddress(0x3FFF, 0x3FFF), "FEFEFEFF"),
        (HdlcAddress(0x1234, 0x0567), "486814CF"),
    ],
)
def test_address_encodings(address: HdlcAddress, wire: str) -> None:
    raw = bytes.fromhex(wire)
    assert address.encode() == raw
    assert HdlcAddress.decode(raw) == (address, len(raw))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((128,), "upper"),
        ((1, 128, 2), "lower"),
        ((1, None, 2), "needs a lower"),
        ((1, 2, 1), "no lower"),
        ((1, 2, 3), "1, 2 or 4"),
        ((0x4000, 1), "upper"),
    ],
)
def test_invalid_addresses_refused(args: tuple[int, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HdlcAddress(*args)


def test_address_of_three_or_five_bytes_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="3 bytes") as info:
        HdlcAddress.decode(bytes.fromhex("020203"))
    assert info.value.offset == 0
    with pytest.raises(FramingError, match="longer than 4"):
        HdlcAddress.decode(bytes.fromhex("0202020202"))


def _corrupt(raw: bytes, at: int, mask: int = 0x01) -> bytes:
    out = bytearray(raw)
    out[at] ^= mask
    return bytes(out)


def test_hcs_error_names_hcs_expected_and_found() -> None:
    bad = bytearray(AARE_FRAME)
    bad[7] = 0x00  # HCS low byte
    with pytest.raises(ChecksumError, match=r"HCS mismatch: expected 0xE734, found 0xE700") as info:
        HdlcFrame.decode(bytes(bad))
    assert info.value.offset == 7
    assert info.value.layer == "hdlc"


def test_fcs_error_names_fcs_and_offset() -> None:
    bad = _corrupt(AARE_FRAME, 20)  # inside the information field
    with pytest.raises(ChecksumError, match=r"FCS mismatch: expected 0x[0-9A-F]{4}, found 0x6AB8") as info:
        HdlcFrame.decode(bad)
    assert info.value.offset == len(AARE_FRAME) - 3


def test_header_only_frame_with_bad_fcs() -> None:
    ua = HdlcFrame(FrameKind.UA, HdlcAddress.client(16), HdlcAddress.server(1, 17)).encode()
    with pytest.raises(ChecksumError, match="FCS"):
        HdlcFrame.decode(_corrupt(ua, 4, 0x04))  # a changed address: the FCS covers the header


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        (b"", FramingError, "opening flag"),
        (AARE_FRAME[1:], FramingError, "opening flag"),
        (AARE_FRAME[:-1], FramingError, "input ends after"),
        (AARE_FRAME[:2], FramingError, "inside the header"),
        (AARE_FRAME[:-1] + b"\x00", FramingError, "closing flag"),
        (AARE_FRAME + b"\x00", FramingError, "after the closing flag"),
        (b"\x7e\x80" + AARE_FRAME[2:], FramingError, "frame format type 3"),
        (bytes.fromhex("7EA0052103137E"), FramingError, "shorter than the header"),
        (bytes.fromhex("7EA00221037E"), FramingError, "runs past the end"),
        (bytes.fromhex("7EA00421037E"), FramingError, "no room for the control"),
        (bytes.fromhex("7EA00821020202027E"), FramingError, "address"),
    ],
)
def test_malformed_frames(raw: bytes, error: type[ProtocolError], match: str) -> None:
    with pytest.raises(error, match=match):
        HdlcFrame.decode(raw)


def _with_control(control: int, information: bytes = b"", fmt: int = 0xA0) -> bytes:
    header = bytes((0x21, 0x03, control))
    length = 2 + len(header) + 2 + (len(information) + 2 if information else 0)
    body = bytearray((fmt | (length >> 8), length & 0xFF)) + header
    if information:
        hcs = fcs16(body)
        body += bytes((hcs & 0xFF, hcs >> 8)) + information
    fcs = fcs16(body)
    return b"\x7e" + bytes(body) + bytes((fcs & 0xFF, fcs >> 8, 0x7E))


def test_reject_and_unknown_control_bytes_are_unsupported() -> None:
    for control in (0x09, 0x0D, 0x2F, 0xEF):  # REJ, SREJ, unnumbered codes outside the standard's set
        with pytest.raises(UnsupportedError, match=f"0x{control:02X}"):
            HdlcFrame.decode(_with_control(control))


def test_information_on_a_frame_that_carries_none() -> None:
    with pytest.raises(FramingError, match="RR frame with an information field"):
        HdlcFrame.decode(_with_control(0x11, b"\x01"))
    with pytest.raises(FramingError, match="DISC frame with the segmentation bit"):
        HdlcFrame.decode(_with_control(0x53, fmt=0xA8))


def test_frame_construction_is_validated() -> None:
    server, client = HdlcAddress.server(1), HdlcAddress.client(16)
    with pytest.raises(ValueError, match="N\\(S\\)"):
        HdlcFrame(FrameKind.RR, server, client, send_sequence=1)
    with pytest.raises(ValueError, match="N\\(R\\)"):
        HdlcFrame(FrameKind.UA, server, client, receive_sequence=1)
    with pytest.raises(ValueError, match=r"0\.\.7"):
        HdlcFrame(FrameKind.I, server, client, send_sequence=8)
    with pytest.raises(ValueError, match="information"):
        HdlcFrame(FrameKind.DISC, server, client, b"x")
    with pytest.raises(ValueError, match="segmented"):
        HdlcFrame(FrameKind.UA, server, client, segmented=True)
    with pytest.raises(ValueError, match="11-bit"):
        HdlcFrame(FrameKind.I, server, client, bytes(2040))
    assert HdlcFrame(FrameKind.I, server, client, bytearray(b"ab")).information == b"ab"


def test_longest_frame() -> None:
    frame = HdlcFrame(
        FrameKind.I, HdlcAddress(1, 17, 4), HdlcAddress(16), bytes(range(256)) * 7 + bytes(2035 - 1792)
    )
    assert frame.length == 0x7FF
    wire = frame.encode()
    assert wire[1:3] == b"\xa7\xff"
    assert HdlcFrame.decode(wire) == frame


def test_negotiation_parameters() -> None:
    # As sent by Gurux and most meters: lengths 1 or 2 bytes, windows 4 bytes.
    raw = bytes.fromhex("818014050200800602008007040000000108040000000 1".replace(" ", ""))
    assert HdlcParameters.decode(raw) == HdlcParameters(128, 128, 1, 1)
    params = HdlcParameters(max_info_tx=512, max_info_rx=64, window_tx=7, window_rx=2)
    assert HdlcParameters.decode(params.encode()) == params
    assert params.encode()[:3] == bytes.fromhex("818013")
    assert HdlcParameters.decode(b"") == HdlcParameters()
    assert HdlcParameters.decode(bytes.fromhex("818003050140")) == HdlcParameters(max_info_tx=64)


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        ("8180", FramingError, "81 80"),
        ("818104050180", FramingError, "81 80"),
        ("818004050180", FramingError, "does not match"),
        ("8180020501", FramingError, "bad length"),
        ("818001 05", FramingError, "cut short"),
        ("818003090101", UnsupportedError, "0x09"),
        ("818003050500", FramingError, "bad length"),
        ("818003070108", FramingError, "out of range"),
        ("818003050100", FramingError, "out of range"),
    ],
)
def test_bad_negotiation_fields(raw: str, error: type[ProtocolError], match: str) -> None:
    with pytest.raises(error, match=match):
        HdlcParameters.decode(bytes.fromhex(raw.replace(" ", "")))


def test_parameter_ranges() -> None:
    with pytest.raises(ValueError, match="window_tx"):
        HdlcParameters(window_tx=0)
    with pytest.raises(ValueError, match="max_info_rx"):
        HdlcParameters(max_info_rx=4000)
