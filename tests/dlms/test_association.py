"""Client and meter roles back to back in memory: associate (none, LLS, HLS-GMAC), GET with-list of the
guide's registers, GET with-block of a load profile selected by range, SET, ACTION, release."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import AuthenticationError, LocalProtocolError, ProtocolError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import (
    AccessSelection,
    AttributeDescriptor,
    DataAccessResult,
    decode_apdu,
)
from meterbridge.protocols.dlms.association import (
    Associated,
    AssociationRejected,
    AssociationState,
    AuthenticationPending,
    BlockReceived,
    DictCosemModel,
    DlmsClient,
    DlmsServer,
    GetResult,
    HlsGmac,
    Lls,
    Released,
    SetResult,
)
from meterbridge.protocols.dlms.axdr import CosemDateTime, Data
from meterbridge.protocols.dlms.cosem import (
    CLOCK_OBIS,
    CaptureObject,
    ClassId,
    ScalerUnit,
    profile_readings,
    range_descriptor,
    register_reading,
    select_profile,
    unit_code,
)
from meterbridge.protocols.dlms.security import SecurityContext, SecurityKeys

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
T0 = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)

# the guide's OBIS table: (code, raw value, scaler, unit)
GUIDE = [
    ("1-0:1.8.0.255", 482939, 0, "Wh"),
    ("1-0:1.8.1.255", 300000, 0, "Wh"),
    ("1-0:1.8.2.255", 182939, 0, "Wh"),
    ("1-0:2.8.0.255", 0, 0, "Wh"),
    ("1-0:3.8.0.255", 37, 0, "varh"),
    ("1-0:4.8.0.255", 344697, 0, "varh"),
    ("1-0:9.8.0.255", 600000, 0, "VAh"),
    ("1-0:16.7.0.255", 28, 0, "W"),
    ("1-0:1.7.0.255", 28, 0, "W"),
    ("1-0:2.7.0.255", 0, 0, "W"),
    ("1-0:36.7.0.255", 10, 0, "W"),
    ("1-0:56.7.0.255", 9, 0, "W"),
    ("1-0:76.7.0.255", 9, 0, "W"),
    ("1-0:32.7.0.255", 2361, -1, "V"),
    ("1-0:52.7.0.255", 2358, -1, "V"),
    ("1-0:72.7.0.255", 2302, -1, "V"),
    ("1-0:31.7.0.255", 9, -2, "A"),
    ("1-0:51.7.0.255", 8, -2, "A"),
    ("1-0:71.7.0.255", 0, -2, "A"),
    ("1-0:14.7.0.255", 5001, -2, "Hz"),
    ("1-0:13.7.0.255", 998, -3, None),
    ("1-0:32.7.124.255", 21, -1, "%"),
]
PROFILE_OBIS = ObisCode.parse("1-0:99.1.0.255")
COLUMNS = (
    CaptureObject(ClassId.CLOCK, CLOCK_OBIS, 2, 0),
    CaptureObject(ClassId.REGISTER, ObisCode.parse("1-0:1.8.0.255")),
    CaptureObject(ClassId.REGISTER, ObisCode.parse("1-0:2.8.0.255")),
)


def _meter_model() -> DictCosemModel:
    values: dict = {}
    for code, raw, scaler, unit in GUIDE:
        obis = ObisCode.parse(code)
        values[(3, obis, 2)] = Data.double_long_unsigned(raw) if scaler == 0 else Data.long_unsigned(raw)
        values[(3, obis, 3)] = ScalerUnit(scaler, unit_code(unit) if unit else 255).to_data()
    rows = [
        Data.structure(
            Data.octet_string(CosemDateTime.from_datetime(T0 + timedelta(minutes=15 * i)).encode()),
            Data.double_long_unsigned(1000 + 10 * i),
            Data.double_long_unsigned(i),
        )
        for i in range(96)
    ]
    buffer = Data.array(rows)
    values[(7, PROFILE_OBIS, 2)] = lambda access: select_profile(buffer, COLUMNS, access)
    values[(7, PROFILE_OBIS, 3)] = Data.array(c.to_data() for c in COLUMNS)
    return DictCosemModel(values)


def _exchange(client: DlmsClient, server: DlmsServer) -> list:
    """Carry every queued client APDU to the server and the answer back, until nothing is left."""
    events = []
    while client.outbox:
        request = client.outbox.popleft()
        events.append(client.receive(server.handle(request)))
    return events


def _associate(auth, server: DlmsServer, client_kwargs=None) -> DlmsClient:
    client = DlmsClient(authentication=auth, **(client_kwargs or {}))
    client.associate()
    events = _exchange(client, server)
    assert isinstance(events[-1], Associated), events
    assert client.state is AssociationState.ASSOCIATED
    assert server.state is AssociationState.ASSOCIATED
    return client


def _read_guide_table(client: DlmsClient, server: DlmsServer) -> None:
    attrs = []
    for code, *_ in GUIDE:
        obis = ObisCode.parse(code)
        attrs += [(AttributeDescriptor(3, obis, 2), None), (AttributeDescriptor(3, obis, 3), None)]
    client.get_with_list(attrs)
    (result,) = _exchange(client, server)
    assert isinstance(result, GetResult) and len(result.results) == 2 * len(GUIDE)
    readings = {}
    for i, (code, *_rest) in enumerate(GUIDE):
        value, su = result.results[2 * i], result.results[2 * i + 1]
        assert isinstance(value, Data) and isinstance(su, Data)
        r = register_reading("E450", ObisCode.parse(code), value, ScalerUnit.from_data(su), T0)
        readings[code] = (r.value, r.unit)
    assert readings["1-0:1.8.0.255"] == (482939, "Wh")
    assert readings["1-0:9.8.0.255"] == (600000, "VAh")
    assert readings["1-0:32.7.0.255"] == (Decimal("236.1"), "V")
    assert readings["1-0:31.7.0.255"] == (Decimal("0.09"), "A")
    assert readings["1-0:71.7.0.255"] == (Decimal("0.00"), "A")
    assert readings["1-0:14.7.0.255"] == (Decimal("50.01"), "Hz")
    assert readings["1-0:13.7.0.255"] == (Decimal("0.998"), None)
    assert readings["1-0:32.7.124.255"] == (Decimal("2.1"), "%")
    assert readings["1-0:4.8.0.255"] == (344697, "varh")


def _read_profile(client: DlmsClient, server: DlmsServer) -> None:
    access = range_descriptor(T0 + timedelta(hours=2), T0 + timedelta(hours=14))
    client.get(AttributeDescriptor(7, PROFILE_OBIS, 2), access)
    events = _exchange(client, server)
    blocks = [e for e in events if isinstance(e, BlockReceived)]
    assert len(blocks) >= 3, "the answer must come in several blocks"
    assert [b.block_number for b in blocks] == list(range(1, len(blocks) + 1))
    final = events[-1]
    assert isinstance(final, GetResult)
    (buffer,) = final.results
    assert isinstance(buffer, Data)
    readings = profile_readings("E450", buffer, COLUMNS, {c.obis: ScalerUnit(0, 30) for c in COLUMNS[1:]})
    assert len(readings) == 2 * 49  # 02:00 .. 14:00 every 15 min, two registers
    first = readings[0]
    assert first.timestamp == T0 + timedelta(hours=2)
    assert (first.key, first.value, first.unit) == (ObisCode.parse("1-0:1.8.0.255"), 1080, "Wh")


def _release(client: DlmsClient, server: DlmsServer) -> None:
    client.release()
    (event,) = _exchange(client, server)
    assert isinstance(event, Released)
    assert client.state is AssociationState.CLOSED
    assert server.state is AssociationState.IDLE


def test_lls_client_and_meter() -> None:
    server = DlmsServer(_meter_model(), password=b"12345678", block_size=256)
    client = _associate(Lls(b"12345678"), server)
    _read_guide_table(client, server)
    _read_profile(client, server)
    client.set(AttributeDescriptor(3, ObisCode.parse("1-0:1.8.0.255"), 2), Data.double_long_unsigned(1))
    (event,) = _exchange(client, server)
    assert event == SetResult(event.invoke_id, DataAccessResult.SUCCESS)
    _release(client, server)


def test_lls_wrong_password_is_rejected() -> None:
    server = DlmsServer(_meter_model(), password=b"12345678")
    client = DlmsClient(authentication=Lls(b"00000000"))
    client.associate()
    (event,) = _exchange(client, server)
    assert isinstance(event, AssociationRejected)
    assert "rejected-permanent" in event.reason and event.aare.diagnostic == 13
    assert client.state is AssociationState.IDLE
    with pytest.raises(LocalProtocolError):
        client.get(AttributeDescriptor(3, ObisCode.parse("1-0:1.8.0.255"), 2))


def test_hls_gmac_pass_3_and_4_and_ciphered_traffic() -> None:
    meter_ctx = SecurityContext(system_title=b"LGZ\x00\x01\x02\x03\x04", keys=SecurityKeys(EK, AK))
    server = DlmsServer(_meter_model(), security=meter_ctx, block_size=256)
    client_ctx = SecurityContext(system_title=b"MBR\x00\x00\x00\x00\x01", keys=SecurityKeys(EK, AK))
    client = DlmsClient(authentication=HlsGmac(client_ctx))
    aarq = client.associate()
    assert b"\x8b\x07\x60\x85\x74\x05\x08\x02\x05" in aarq  # mechanism 5: HLS-GMAC
    events = _exchange(client, server)
    assert isinstance(events[0], AuthenticationPending)
    assert isinstance(events[1], Associated)
    # after the association every APDU travels glo-ciphered
    request = client.get(AttributeDescriptor(3, ObisCode.parse("1-0:32.7.0.255"), 2))
    assert request[0] == 0xC8
    client.outbox.clear()
    answer = server.handle(request)
    assert answer[0] == 0xCC
    assert client.receive(answer) == GetResult(0xC2, (Data.long_unsigned(2361),))
    _read_guide_table(client, server)
    _read_profile(client, server)
    _release(client, server)


def test_hls_gmac_with_a_wrong_key_fails() -> None:
    meter_ctx = SecurityContext(system_title=b"LGZ\x00\x01\x02\x03\x04", keys=SecurityKeys(EK, AK))
    server = DlmsServer(_meter_model(), security=meter_ctx)
    client_ctx = SecurityContext(keys=SecurityKeys(EK, bytes(16)))
    client = DlmsClient(authentication=HlsGmac(client_ctx))
    client.associate()
    event = client.receive(server.handle(client.outbox.popleft()))
    assert isinstance(event, AssociationRejected)  # the ciphered InitiateRequest does not verify


def test_no_security_and_unknown_object() -> None:
    server = DlmsServer(_meter_model())
    client = _associate(None, server)
    client.get(AttributeDescriptor(3, ObisCode.parse("1-0:99.99.0.255"), 2))
    (event,) = _exchange(client, server)
    assert event == GetResult(event.invoke_id, (DataAccessResult.OBJECT_UNDEFINED,))
    client.get(AttributeDescriptor(3, ObisCode.parse("1-0:1.8.0.255"), 2), AccessSelection(2, Data.null()))
    (event,) = _exchange(client, server)
    assert event.results == (DataAccessResult.SCOPE_OF_ACCESS_VIOLATED,)


def test_requests_before_association_get_an_exception() -> None:
    server = DlmsServer(_meter_model())
    client = DlmsClient()
    from meterbridge.protocols.dlms.apdu import ExceptionResponse, GetRequestNormal

    answer = decode_apdu(
        server.handle(GetRequestNormal(0xC1, AttributeDescriptor(3, CLOCK_OBIS, 2)).encode())
    )
    assert isinstance(answer, ExceptionResponse) and answer.reason.startswith("service-not-allowed")
    assert client.state is AssociationState.IDLE


def test_wrong_gak_on_pass_4_raises() -> None:
    meter_ctx = SecurityContext(system_title=b"LGZ\x00\x01\x02\x03\x04", keys=SecurityKeys(EK, AK))
    server = DlmsServer(_meter_model(), security=meter_ctx)
    client = DlmsClient(authentication=HlsGmac(SecurityContext(keys=SecurityKeys(EK, AK))))
    client.associate()
    assert isinstance(client.receive(server.handle(client.outbox.popleft())), AuthenticationPending)
    pass3 = client.outbox.popleft()
    server._challenge = b"tampered-challenge"  # the meter now expects another answer
    with pytest.raises((AuthenticationError, ProtocolError)):
        client.receive(server.handle(pass3))


_TAGS = [0x60, 0x61, 0x62, 0x63, 0xC0, 0xC1, 0xC3, 0xC4, 0xC5, 0xC7, 0xC8, 0xCC, 0xD8, 0x0F, 0xE0]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_TAGS), st.binary(max_size=80), st.booleans())
def test_fuzz_both_roles_raise_only_protocol_errors(tag: int, rest: bytes, associate_first: bool) -> None:
    server = DlmsServer(_MODEL, password=b"12345678")
    client = DlmsClient(authentication=Lls(b"12345678"))
    if associate_first:
        client.associate()
        _exchange(client, server)
    data = bytes((tag,)) + rest
    try:
        reply = server.handle(data)
        assert reply  # a meter always answers something
    except ProtocolError:
        pass
    with contextlib.suppress(ProtocolError):
        client.receive(data)


_MODEL = _meter_model()


def test_a_long_get_aborted_by_the_meter_is_a_result() -> None:
    from meterbridge.protocols.dlms.apdu import GetResponseWithDatablock

    server = DlmsServer(_meter_model())
    client = _associate(None, server)
    client.get(AttributeDescriptor(7, PROFILE_OBIS, 2))
    client.outbox.clear()
    event = client.receive(
        GetResponseWithDatablock(0xC1, True, 1, DataAccessResult.LONG_GET_ABORTED).encode()
    )
    assert event == GetResult(0xC1, (DataAccessResult.LONG_GET_ABORTED,))
    assert client.state is AssociationState.ASSOCIATED


def test_client_takes_unsolicited_notifications() -> None:
    from meterbridge.protocols.dlms.apdu import DataNotification, EventNotificationRequest
    from meterbridge.protocols.dlms.association import EventReceived, NotificationReceived

    server = DlmsServer(_meter_model())
    client = _associate(None, server)
    event = EventNotificationRequest(
        AttributeDescriptor(1, ObisCode.parse("0-0:96.11.0.255"), 2), Data.unsigned(47)
    )
    assert client.receive(event.encode()) == EventReceived(event)
    push = DataNotification(1, None, Data.structure(Data.long_unsigned(236)))
    assert client.receive(push.encode()) == NotificationReceived(push)
    assert client.state is AssociationState.ASSOCIATED
