"""APDUs: golden bytes, round trips of every APDU, block transfer both ways, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import FramingError, ProtocolError, UnsupportedError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import (
    AARE,
    AARQ,
    RLRE,
    RLRQ,
    AccessSelection,
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResult,
    Apdu,
    ApplicationContext,
    AssociationResult,
    AttributeDescriptor,
    CipheredApdu,
    ConfirmedServiceError,
    Conformance,
    DataAccessResult,
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
    GeneralBlockTransfer,
    GeneralCiphering,
    GeneralDedCiphering,
    GeneralGloCiphering,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    InitiateRequest,
    InitiateResponse,
    KeyInfo,
    Mechanism,
    MethodDescriptor,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseNormal,
    SetResponseWithList,
    decode_apdu,
)
from meterbridge.protocols.dlms.axdr import CosemDate, CosemDateTime, CosemTime, Data
from meterbridge.protocols.dlms.transfer import (
    DatablockReassembler,
    GeneralBlockReassembler,
    split_general_block_transfer,
    split_get_response,
)

H = bytes.fromhex
VOLTAGE = AttributeDescriptor(3, ObisCode.parse("1-0:32.7.0.255"), 2)


def test_golden_aare_from_a_meter() -> None:
    raw = H("6129a109060760857405080101a203020100a305a103020100be10040e0800065f1f0400001e1d04c80007")
    aare = decode_apdu(raw)
    assert isinstance(aare, AARE)
    assert aare.accepted and aare.diagnostic == 0 and aare.diagnostic_source == 1
    assert aare.application_context is ApplicationContext.LOGICAL_NAME
    info = aare.user_information
    assert isinstance(info, InitiateResponse)
    assert info.dlms_version == 6
    assert int(info.conformance) == 0x001E1D
    assert (
        Conformance.GET in info.conformance
        and Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ in info.conformance
    )
    assert info.server_max_receive_pdu_size == 1224
    assert info.vaa_name == 0x0007
    assert aare.encode() == raw


def test_golden_lls_aarq() -> None:
    raw = H(
        "6036A1090607608574050801018A0207808B0760857405080201AC0A80083132333435363738"
        "BE10040E01000000065F1F0400007E1F04B0"
    )
    aarq = decode_apdu(raw)
    assert aarq == AARQ(
        InitiateRequest(Conformance(0x007E1F), 0x04B0),
        mechanism=Mechanism.LOW,
        authentication_value=b"12345678",
    )
    assert aarq.encode() == raw
    assert "12345678" not in repr(aarq)


def test_golden_get_request_and_response() -> None:
    req = GetRequestNormal(0xC1, VOLTAGE)
    assert req.encode() == H("C001C1000301002007 00FF0200".replace(" ", ""))
    assert decode_apdu(req.encode()) == req
    assert decode_apdu(H("C401C1001200EC")) == GetResponseNormal(0xC1, Data.long_unsigned(236))
    refused = decode_apdu(H("C401C10104"))
    assert refused == GetResponseNormal(0xC1, DataAccessResult.OBJECT_UNDEFINED)
    assert DataAccessResult.OBJECT_UNDEFINED.reason == "object-undefined"


def test_exception_response_reason() -> None:
    exc = decode_apdu(H("D8010600000010"))
    assert isinstance(exc, ExceptionResponse)
    assert exc.reason == "service-not-allowed, invocation-counter-error (meter expects counter 16)"


def test_data_notification_with_and_without_date_time() -> None:
    stamp = CosemDateTime(CosemDate(2026, 5, 4, 1), CosemTime(11, 39, 20, None), None, None)
    dn = DataNotification(0x00D7DD82, stamp, Data.structure(Data.long_unsigned(1)))
    assert decode_apdu(dn.encode()) == dn
    bare = DataNotification(1, None, Data.null())
    assert bare.encode() == H("0F000000010000")
    assert decode_apdu(bare.encode()) == bare
    with pytest.raises(FramingError, match="date-time of 5 bytes"):
        decode_apdu(H("0F00000001050102030405 00".replace(" ", "")))


@pytest.mark.parametrize(
    ("raw", "error", "offset"),
    [
        ("", FramingError, 0),
        ("42", UnsupportedError, 0),
        ("C001C1000301", FramingError, 3),
        ("C009C1", UnsupportedError, 1),
        ("C401C1001200EC00", FramingError, 7),
        ("C401C102", FramingError, 3),
        ("E0800001000005AABB", FramingError, 7),
        ("6103A10100", FramingError, 0),
        ("6005A103060100", UnsupportedError, 6),
    ],
)
def test_errors_name_the_offset(raw: str, error: type[ProtocolError], offset: int) -> None:
    with pytest.raises(error) as info:
        decode_apdu(H(raw))
    assert info.value.offset == offset


SAMPLES: list[Apdu] = [
    AARQ(InitiateRequest(Conformance(0x1E1D), 1024, dedicated_key=bytes(16), proposed_quality_of_service=3)),
    AARQ(
        CipheredApdu(0x21, H("3000000001") + bytes(20)),
        ApplicationContext.LOGICAL_NAME_CIPHERING,
        Mechanism.HIGH_GMAC,
        bytes(range(16)),
        b"MBR\x00\x00\x00\x00\x01",
    ),
    AARE(
        AssociationResult.REJECTED_PERMANENT,
        ConfirmedServiceError(1, 6, 0),
        diagnostic=13,
        diagnostic_source=1,
    ),
    AARE(
        AssociationResult.ACCEPTED,
        CipheredApdu(0x28, bytes(30)),
        ApplicationContext.LOGICAL_NAME_CIPHERING,
        14,
        1,
        b"LGZ\x00\x00\x00\x00\x01",
        Mechanism.HIGH_GMAC,
        bytes(16),
    ),
    RLRQ(0),
    RLRQ(None, InitiateRequest(Conformance.GET, 512)),
    RLRE(0),
    GetRequestNext(0xC2, 7),
    GetRequestWithList(
        0xC3, ((VOLTAGE, None), (VOLTAGE, AccessSelection(2, Data.structure(Data.double_long_unsigned(1)))))
    ),
    GetResponseWithDatablock(0xC2, True, 3, b"\x01\x02"),
    GetResponseWithDatablock(0xC2, True, 3, DataAccessResult.LONG_GET_ABORTED),
    GetResponseWithList(0xC3, (Data.long_unsigned(230), DataAccessResult.READ_WRITE_DENIED)),
    SetRequestNormal(0xC1, VOLTAGE, Data.long_unsigned(1)),
    SetRequestWithFirstDatablock(0xC1, VOLTAGE, False, 1, b"\x09\x10"),
    SetRequestWithDatablock(0xC1, True, 2, b"\x00"),
    SetRequestWithList(0xC1, ((VOLTAGE, None),), (Data.null(),)),
    SetResponseNormal(0xC1, DataAccessResult.SUCCESS),
    SetResponseDatablock(0xC1, 1),
    SetResponseLastDatablock(0xC1, DataAccessResult.SUCCESS, 2),
    SetResponseWithList(0xC1, (DataAccessResult.SUCCESS, DataAccessResult.TYPE_UNMATCHED)),
    ActionRequestNormal(
        0xC1, MethodDescriptor(15, ObisCode.parse("0-0:40.0.0.255"), 1), Data.octet_string(b"x")
    ),
    ActionRequestNormal(0xC1, MethodDescriptor(70, ObisCode.parse("0-0:96.3.10.255"), 2)),
    ActionResponseNormal(0xC1, ActionResult.SUCCESS, Data.octet_string(b"y")),
    ActionResponseNormal(0xC1, ActionResult.OTHER_REASON),
    ExceptionResponse(2, 2),
    EventNotificationRequest(VOLTAGE, Data.long_unsigned(1), bytes(12)),
    EventNotificationRequest(VOLTAGE, Data.null()),
    GeneralBlockTransfer(True, 4, b"abc", 3, False, 0),
    CipheredApdu(0xC8, H("30000000AA") + bytes(12)),
    CipheredApdu(0xD4, H("2000000001")),
    GeneralGloCiphering(b"LGZ\x11\x22\x33\x44\x55", H("30000000AA") + bytes(12)),
    GeneralDedCiphering(b"LGZ\x11\x22\x33\x44\x55", H("30000000AA")),
    GeneralCiphering(b"\x01", b"A" * 8, b"B" * 8, b"", b"", KeyInfo(0, 0), b"\x30\x00\x00\x00\x01"),
    GeneralCiphering(b"\x01", b"A" * 8, b"B" * 8, b"", b"", KeyInfo(1, 0, b"", bytes(24)), b""),
    GeneralCiphering(b"\x01", b"A" * 8, b"B" * 8, b"", b"", KeyInfo(2, 0, b"\x01", bytes(24)), b""),
    GeneralCiphering(b"", b"", b"", b"", b"", None, b""),
]


@pytest.mark.parametrize("apdu", SAMPLES, ids=lambda a: type(a).__name__)
def test_every_apdu_round_trips(apdu: Apdu) -> None:
    assert decode_apdu(apdu.encode()) == apdu


def test_dedicated_key_never_in_repr() -> None:
    assert "00000000" not in repr(InitiateRequest(Conformance.GET, 1, dedicated_key=bytes(16)))


# ------------------------------------------------------------------------------------------- hypothesis

obis = st.builds(ObisCode, *(st.integers(0, 255) for _ in range(6)))
attrs = st.builds(AttributeDescriptor, st.integers(0, 0xFFFF), obis, st.integers(-128, 127))
invoke = st.integers(0, 255)
small_data = st.one_of(
    st.integers(0, 2**32 - 1).map(Data.double_long_unsigned),
    st.binary(max_size=20).map(Data.octet_string),
    st.just(Data.null()),
)
results = small_data | st.sampled_from(list(DataAccessResult))
apdus = st.one_of(
    st.builds(
        GetRequestNormal,
        invoke,
        attrs,
        st.none() | st.builds(AccessSelection, st.integers(0, 255), small_data),
    ),
    st.builds(GetRequestNext, invoke, st.integers(0, 2**32 - 1)),
    st.builds(GetResponseNormal, invoke, results),
    st.builds(GetResponseWithList, invoke, st.lists(results, max_size=5).map(tuple)),
    st.builds(
        GetResponseWithDatablock, invoke, st.booleans(), st.integers(0, 2**32 - 1), st.binary(max_size=50)
    ),
    st.builds(SetRequestNormal, invoke, attrs, small_data),
    st.builds(
        GeneralBlockTransfer,
        st.booleans(),
        st.integers(0, 0xFFFF),
        st.binary(max_size=300),
        st.integers(0, 0xFFFF),
        st.booleans(),
        st.integers(0, 63),
    ),
    st.builds(DataNotification, st.integers(0, 2**32 - 1), st.none(), small_data),
    st.builds(
        InitiateRequest,
        st.integers(0, 2**24 - 1).map(Conformance),
        st.integers(0, 0xFFFF),
        st.integers(0, 255),
        st.none() | st.binary(min_size=16, max_size=16),
        st.booleans(),
        st.none() | st.integers(0, 255),
    ),
    st.builds(
        AARE,
        st.sampled_from(list(AssociationResult)),
        st.none()
        | st.builds(InitiateResponse, st.integers(0, 2**24 - 1).map(Conformance), st.integers(0, 0xFFFF)),
        st.sampled_from(list(ApplicationContext)),
        st.integers(0, 255),
        st.sampled_from([1, 2]),
        st.none() | st.binary(min_size=8, max_size=8),
        st.none() | st.sampled_from(list(Mechanism)),
        st.none() | st.binary(max_size=64),
    ),
)


@settings(max_examples=200, deadline=None)
@given(apdus)
def test_round_trip(apdu: Apdu) -> None:
    assert decode_apdu(apdu.encode()) == apdu


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [0x60, 0x61, 0x62, 0x0F, 0xC0, 0xC1, 0xC3, 0xC4, 0xC5, 0xC7, 0xD8, 0xDB, 0xDD, 0xE0, 0xC2]
    ),
    st.binary(max_size=120),
)
def test_fuzz_raises_only_our_errors(tag: int, rest: bytes) -> None:
    try:
        apdu = decode_apdu(bytes((tag,)) + rest)
    except ProtocolError:
        return
    assert apdu is not None


# ------------------------------------------------------------------------------------------- block transfer


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 300))
def test_general_block_transfer_in_any_block_size(apdu: bytes, size: int) -> None:
    blocks = split_general_block_transfer(apdu, size)
    assert blocks[-1].last_block and not any(b.last_block for b in blocks[:-1])
    assert [b.block_number for b in blocks] == list(range(1, len(blocks) + 1))
    reassembler = GeneralBlockReassembler()
    out = None
    for block in blocks:
        assert out is None
        out = reassembler.add(decode_apdu(block.encode()))  # type: ignore[arg-type]
    assert out == apdu
    assert not reassembler.in_progress


def test_general_block_transfer_gap_and_limit() -> None:
    blocks = split_general_block_transfer(bytes(100), 10)
    r = GeneralBlockReassembler()
    r.add(blocks[0])
    assert r.ack().block_number_ack == 1
    with pytest.raises(FramingError, match="block 3 where block 2 was expected: transfer dropped"):
        r.add(blocks[2])
    assert not r.in_progress
    assert [r.add(b) for b in blocks[3:]] == [None] * 7 and r.skipped_blocks == 7  # never the tail alone
    assert [r.add(b) for b in blocks][-1] == bytes(100)  # the next transfer from block 1 is whole
    small = GeneralBlockReassembler(max_size=50)
    with pytest.raises(FramingError, match="exceeds 50 bytes"):
        for block in blocks:
            small.add(block)


def test_get_response_blocks() -> None:
    value = Data.octet_string(bytes(range(200)))
    blocks = split_get_response(0xC1, value.encode(), 64)
    r = DatablockReassembler()
    out = None
    for block in blocks:
        out = r.add(decode_apdu(block.encode()))  # type: ignore[arg-type]
    assert out is not None and Data.decode(out) == value
    with pytest.raises(FramingError, match="block 2 where block 1"):
        DatablockReassembler().add(blocks[1])
    with pytest.raises(FramingError, match="long-get-aborted"):
        DatablockReassembler().add(GetResponseWithDatablock(0xC1, True, 1, DataAccessResult.LONG_GET_ABORTED))
