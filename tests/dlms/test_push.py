"""E450 CII pushes and DLMS in M-Bus long frames to readings: plain, ciphered, fed whole, byte by byte and
with noise; key handling (GAK + GUEK, GUEK only, wrong GAK, replay); scaler overrides and push layouts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import (
    AuthenticationError,
    ChecksumError,
    ReplayError,
    SecurityError,
    UnsupportedError,
)
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import DataNotification, GeneralGloCiphering
from meterbridge.protocols.dlms.axdr import CosemDateTime, Data
from meterbridge.protocols.dlms.push import (
    PushDecoder,
    PushError,
    PushReadings,
    RegisterFormat,
    read_notification,
)
from meterbridge.protocols.dlms.security import SecurityKeys, encrypt
from meterbridge.protocols.dlms.transfer import split_general_block_transfer
from meterbridge.protocols.hdlc import HdlcFrame
from meterbridge.readings import Quality

VECTORS = Path(__file__).parents[1] / "vectors" / "dlms"
PUSH = json.loads((VECTORS / "e450_cii_push_unencrypted.json").read_text())
GCM = json.loads((VECTORS / "green_book_gcm.json").read_text())
FRAMES = [bytes.fromhex(f) for f in PUSH["frames_hex"]]
WIRE = b"".join(FRAMES)
EXPECTED = {ObisCode.parse(k): v for k, v in PUSH["expected"]["values"].items()}
STAMP = datetime.fromisoformat(PUSH["expected"]["timestamp_local"]).replace(tzinfo=UTC)
EK = bytes.fromhex(GCM["encryption_key"])
AK = bytes.fromhex(GCM["authentication_key"])
TITLE = b"LGZ" + bytes.fromhex("6700BC614E")
CURRENTS = [ObisCode.parse(f"1-0:{c}.7.0.255") for c in (31, 51, 71)]


def _plain_apdu() -> bytes:
    return b"".join(HdlcFrame.decode(f).payload[7:] for f in FRAMES)


def _check(event: PushReadings | PushError, *, authenticated: bool | None = None) -> None:
    assert isinstance(event, PushReadings), event
    assert event.meter_id == PUSH["expected"]["device_id"]
    assert event.timestamp == STAMP
    registers = {r.key: r.value for r in event.readings if r.key in EXPECTED}
    assert registers == EXPECTED
    assert all(type(v) is int for v in registers.values())
    extra = {r.key for r in event.readings} - set(EXPECTED)
    assert extra == {ObisCode.parse("0-0:96.1.1.255")}  # the meter's serial number, as text
    assert event.authenticated is authenticated
    flags = Quality.UNAUTHENTICATED if authenticated is False else Quality.OK
    assert all(
        r.quality == flags and r.meter_id == event.meter_id and r.timestamp == STAMP for r in event.readings
    )
    units = {str(r.key): r.unit for r in event.readings}
    assert units["1-1:1.8.0.255"] == "Wh" and units["1-1:3.8.0.255"] == "varh"
    assert units["1-0:1.7.0.255"] == "W" and units["1-0:32.7.0.255"] == "V" and units["1-0:31.7.0.255"] == "A"


def _feed(decoder: PushDecoder, data: bytes, chunk: int | None = None) -> list[PushReadings | PushError]:
    events = []
    step = chunk or len(data) or 1
    for i in range(0, len(data), step):
        decoder.receive_data(data[i : i + step])
        events += decoder.events()
    return events


def test_vector_fed_whole() -> None:
    (event,) = _feed(PushDecoder(), WIRE)
    _check(event)


def test_vector_fed_byte_by_byte() -> None:
    (event,) = _feed(PushDecoder(), WIRE, chunk=1)
    _check(event)


def test_vector_with_noise_before_between_and_after() -> None:
    noisy = b"\x00\xff\x7e\x12" + FRAMES[0] + b"\x55\xaa" + b"".join(FRAMES[1:]) + b"\x7e\x7e\x01\x02\x03"
    events = [e for e in _feed(PushDecoder(), noisy * 2, chunk=7) if isinstance(e, PushReadings)]
    assert len(events) == 2
    for event in events:
        _check(event)


def test_scaler_override_gives_exact_currents() -> None:
    decoder = PushDecoder(formats={code: RegisterFormat(-2) for code in CURRENTS})
    (event,) = _feed(decoder, WIRE)
    values = {r.key: r.value for r in event.readings}
    assert [values[c] for c in CURRENTS] == [Decimal("0.09"), Decimal("0.08"), Decimal("0.00")]
    assert [str(values[c]) for c in CURRENTS] == ["0.09", "0.08", "0.00"]
    assert {r.unit for r in event.readings if r.key in CURRENTS} == {"A"}
    kilo = PushDecoder(formats={ObisCode.parse("1-1:1.8.0.255"): RegisterFormat(-3, "kWh")})
    (event,) = _feed(kilo, WIRE)
    (energy,) = [r for r in event.readings if r.key == ObisCode.parse("1-1:1.8.0.255")]
    assert (energy.value, energy.unit) == (Decimal("482.939"), "kWh")


def test_a_corrupt_frame_is_an_error_and_the_next_push_still_decodes() -> None:
    bad = bytearray(FRAMES[1])
    bad[40] ^= 0x01
    decoder = PushDecoder()
    events = _feed(decoder, FRAMES[0] + bytes(bad) + b"".join(FRAMES[2:]) + WIRE)
    errors = [e for e in events if isinstance(e, PushError)]
    pushes = [e for e in events if isinstance(e, PushReadings)]
    assert errors and isinstance(errors[0].error, ChecksumError) and errors[0].layer == "hdlc"
    assert errors[0].offset is not None
    assert len(pushes) == 1
    _check(pushes[0])


def test_a_listener_joining_mid_push_skips_it_silently_and_decodes_the_next() -> None:
    for start in (1, 2, 3):  # joined at the 2nd, 3rd or last frame of the push
        for chunk in (None, 1, 7):
            decoder = PushDecoder()
            events = _feed(decoder, b"".join(FRAMES[start:]) + WIRE, chunk=chunk)
            assert len(events) == 1, events  # no error for the partial push, no bogus APDU
            _check(events[0])
            assert decoder.framer.skipped_blocks == len(FRAMES) - start


def test_a_missing_block_drops_the_push_with_a_precise_error_and_no_values() -> None:
    decoder = PushDecoder()
    events = _feed(decoder, FRAMES[0] + FRAMES[1] + FRAMES[3] + WIRE)  # block 3 lost on the line
    assert [type(e) for e in events] == [PushError, PushReadings]
    error = events[0]
    assert isinstance(error, PushError) and error.layer == "dlms"
    assert "block 4 where block 3 was expected: transfer dropped (2 blocks discarded" in str(error)
    _check(events[1])
    assert decoder.framer.skipped_blocks == 0  # block 4 was the last one: it was the error, not skipped
    # block 2 lost: the error names it, blocks 3 and 4 of that push are skipped, the next push decodes
    decoder = PushDecoder()
    events = _feed(decoder, FRAMES[0] + FRAMES[2] + FRAMES[3] + WIRE, chunk=3)
    assert [type(e) for e in events] == [PushError, PushReadings]
    assert "block 3 where block 2 was expected" in str(events[0])
    assert decoder.framer.skipped_blocks == 1
    _check(events[1])


def test_a_push_starting_while_another_is_unfinished_is_kept() -> None:
    decoder = PushDecoder()
    events = _feed(decoder, FRAMES[0] + FRAMES[1] + WIRE)  # the first push stops after block 2
    assert [type(e) for e in events] == [PushError, PushReadings]
    assert "block 1 where block 3 was expected" in str(events[0]) and "new transfer" in str(events[0])
    _check(events[1])


# ----------------------------------------------------------------------------------------------- ciphered


def _hdlc_push(apdu: bytes, block_size: int = 112) -> bytes:
    template = HdlcFrame.decode(FRAMES[0])
    out = b""
    for i, block in enumerate(split_general_block_transfer(apdu, block_size)):
        info = (b"\xe6\xe7\x00" if i == 0 else b"") + block.encode()
        out += dataclasses.replace(template, information=info).encode()
    return out


def _ciphered_push(counter: int, *, keys: SecurityKeys | None = None, sc: int = 0x30) -> bytes:
    protected = encrypt(
        _plain_apdu(),
        system_title=TITLE,
        invocation_counter=counter,
        keys=keys or SecurityKeys(EK, AK),
        security_control=sc,
    )
    return GeneralGloCiphering(TITLE, protected).encode()


def test_encrypted_push_with_both_keys_is_authenticated() -> None:
    decoder = PushDecoder(keys=SecurityKeys(EK, AK))
    events = _feed(decoder, _hdlc_push(_ciphered_push(100)) + _hdlc_push(_ciphered_push(101)), chunk=5)
    assert len(events) == 2
    for n, event in enumerate(events):
        _check(event, authenticated=True)
        assert event.system_title == TITLE and event.invocation_counter == 100 + n


def test_encrypted_push_with_only_the_encryption_key_is_unauthenticated() -> None:
    (event,) = _feed(PushDecoder(keys=SecurityKeys(EK)), _hdlc_push(_ciphered_push(7)))
    _check(event, authenticated=False)
    assert all(r.quality & Quality.UNAUTHENTICATED for r in event.readings)


def test_encrypted_push_with_a_wrong_authentication_key_fails() -> None:
    (event,) = _feed(PushDecoder(keys=SecurityKeys(EK, bytes(16))), _hdlc_push(_ciphered_push(7)))
    assert isinstance(event, PushError) and isinstance(event.error, AuthenticationError)
    assert event.layer == "dlms-security"


def test_encrypted_push_with_a_wrong_encryption_key_only() -> None:
    (event,) = _feed(PushDecoder(keys=SecurityKeys(bytes(16))), _hdlc_push(_ciphered_push(7)))
    assert isinstance(event, PushError) and isinstance(event.error, SecurityError)
    assert "no valid APDU" in str(event)


def test_replayed_counter_is_refused() -> None:
    decoder = PushDecoder(keys=SecurityKeys(EK, AK))
    first, again = _hdlc_push(_ciphered_push(5)), _hdlc_push(_ciphered_push(5))
    events = _feed(decoder, first + again + _hdlc_push(_ciphered_push(4)) + _hdlc_push(_ciphered_push(6)))
    assert isinstance(events[0], PushReadings)
    assert isinstance(events[1], PushError) and isinstance(events[1].error, ReplayError)
    assert isinstance(events[2], PushError) and isinstance(events[2].error, ReplayError)
    assert isinstance(events[3], PushReadings) and events[3].invocation_counter == 6


def test_encrypted_push_without_a_key_says_so() -> None:
    (event,) = _feed(PushDecoder(), _hdlc_push(_ciphered_push(1)))
    assert isinstance(event, PushError) and "no encryption key" in str(event)


def test_any_gbt_block_size() -> None:
    for size in (1, 17, 64, 250, 2000):
        (event,) = _feed(PushDecoder(keys=SecurityKeys(EK, AK)), _hdlc_push(_ciphered_push(1), size))
        _check(event, authenticated=True)


# ----------------------------------------------------------------------------------------------- M-Bus framed


def _mbus_telegrams(apdu: bytes, first_size: int = 245) -> bytes:
    def frame(ci: int, chunk: bytes) -> bytes:
        body = bytes((0x53, 0xFF, ci, 0x01, 0x67)) + chunk
        return bytes((0x68, len(body), len(body), 0x68)) + body + bytes((sum(body) & 0xFF, 0x16))

    return frame(0x00, apdu[:first_size]) + frame(0x11, apdu[first_size:])


def test_mbus_framed_push_with_encryption_only() -> None:
    apdu = _ciphered_push(9, keys=SecurityKeys(EK), sc=0x20)
    wire = _mbus_telegrams(apdu)
    assert wire[:9] == bytes.fromhex("68FAFA6853FF000167") and wire[9:11] == b"\xdb\x08"
    for chunk in (None, 1, 13):
        events = _feed(PushDecoder(keys=SecurityKeys(EK)), b"\x00\x10" + wire + b"\xe5", chunk)
        (event,) = [e for e in events if isinstance(e, PushReadings)]
        assert all(isinstance(e, PushError) and e.layer == "mbus" for e in events if e is not event)
        _check(event, authenticated=False)
        assert event.invocation_counter == 9


def test_mbus_framed_errors() -> None:
    wire = bytearray(_mbus_telegrams(_ciphered_push(9, keys=SecurityKeys(EK), sc=0x20)))
    wire[100] ^= 0xFF
    events = _feed(PushDecoder(keys=SecurityKeys(EK), framing="mbus"), bytes(wire))
    assert events and all(isinstance(e, PushError) for e in events)
    assert isinstance(events[0].error, ChecksumError) and events[0].layer == "mbus"


# ----------------------------------------------------------------------------------------------- layouts


T0 = datetime(2026, 5, 4, 11, 39, 21, tzinfo=UTC)


def _notification(body: Data, stamp: datetime | None = None) -> DataNotification:
    return DataNotification(1, CosemDateTime.from_datetime(stamp) if stamp else None, body)


def test_flat_list_of_obis_value_pairs_after_a_clock_value() -> None:
    body = Data.structure(
        Data.octet_string(CosemDateTime.from_datetime(T0).encode()),
        Data.octet_string(bytes(ObisCode.parse("0-0:42.0.0.255"))),
        Data.octet_string(b"KFM1200200000001"),
        Data.octet_string(bytes(ObisCode.parse("1-0:1.8.0.255"))),
        Data.double_long_unsigned(1234567),
        Data.structure(Data.integer(0), Data.enum(30)),
        Data.octet_string(bytes(ObisCode.parse("1-0:32.7.0.255"))),
        Data.long_unsigned(2301),
        Data.structure(Data.integer(-1), Data.enum(35)),
        Data.octet_string(bytes(ObisCode.parse("1-0:31.7.0.255"))),
        Data.long_unsigned(9),
    )
    formats = {CURRENTS[0]: RegisterFormat(-2), ObisCode.parse("1-0:32.7.0.255"): RegisterFormat(-2)}
    result = read_notification(_notification(body), formats=formats)  # a scaler the push carries wins
    assert result.meter_id == "KFM1200200000001" and result.timestamp == T0
    assert [(str(r.key), r.value, r.unit) for r in result.readings] == [
        ("1-0:1.8.0.255", 1234567, "Wh"),
        ("1-0:32.7.0.255", Decimal("230.1"), "V"),
        ("1-0:31.7.0.255", Decimal("0.09"), "A"),
    ]


def test_configured_layout_for_pushes_without_obis_codes() -> None:
    body = Data.structure(Data.double_long_unsigned(482939), Data.long_unsigned(236), Data.long_unsigned(9))
    layout = [ObisCode.parse("1-0:1.8.0.255"), None, ObisCode.parse("1-0:31.7.0.255")]
    received = T0 + timedelta(seconds=3)
    result = read_notification(_notification(body), layout=layout, meter_id="meter-7", received_at=received)
    assert result.meter_id == "meter-7" and result.timestamp == received
    assert [(str(r.key), r.value) for r in result.readings] == [
        ("1-0:1.8.0.255", 482939),
        ("1-0:31.7.0.255", 9),
    ]
    with pytest.raises(UnsupportedError, match="no object list and no layout"):
        read_notification(_notification(body), received_at=received)


def test_the_notification_date_time_is_the_fallback_timestamp() -> None:
    body = Data.structure(Data.double_long_unsigned(1))
    result = read_notification(_notification(body, T0), layout=[ObisCode.parse("1-0:1.8.0.255")])
    assert result.timestamp == T0 and result.meter_id == "unidentified"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 50))
def test_fuzz_only_push_errors(noise: bytes, chunk: int) -> None:
    decoder = PushDecoder(keys=SecurityKeys(EK, AK))
    for event in _feed(decoder, noise, chunk):
        assert isinstance(event, PushError)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, len(WIRE) - 1), st.integers(1, 255))
def test_fuzz_flipped_byte_never_gives_a_wrong_number(at: int, flip: int) -> None:
    wire = bytearray(WIRE)
    wire[at] ^= flip
    for event in _feed(PushDecoder(), bytes(wire) + WIRE):
        if isinstance(event, PushReadings):
            _check(event)
