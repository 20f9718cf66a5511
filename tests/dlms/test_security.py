"""Security suite 0 against the Green Book example, both ways, and the failure modes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import AuthenticationError, FramingError, ProtocolError, ReplayError, SecurityError
from meterbridge.protocols.dlms.security import (
    ReplayGuard,
    SecurityContext,
    SecurityKeys,
    decrypt,
    encrypt,
    gmac,
    hls_gmac_response,
    verify_hls_gmac,
)

VECTOR = json.loads((Path(__file__).parents[1] / "vectors" / "dlms" / "green_book_gcm.json").read_text())
H = bytes.fromhex
EK = H(VECTOR["encryption_key"])
AK = H(VECTOR["authentication_key"])
ST = H(VECTOR["system_title"])
IC = int(VECTOR["invocation_counter"], 16)
PLAIN = H(VECTOR["plaintext_apdu"])
CIPHERED = H(VECTOR["ciphertext_and_tag"])
BOTH = SecurityKeys(EK, AK)


def test_green_book_encrypt_gives_the_exact_ciphertext_and_tag() -> None:
    out = encrypt(PLAIN, system_title=ST, invocation_counter=IC, keys=BOTH, security_control=0x30)
    assert out == H("30") + IC.to_bytes(4, "big") + CIPHERED


def test_green_book_decrypt_verifies_the_tag() -> None:
    opened = decrypt(H("3001234567") + CIPHERED, system_title=ST, keys=BOTH)
    assert opened.plaintext == PLAIN
    assert opened.authenticated is True
    assert opened.invocation_counter == IC
    assert opened.security_control == 0x30


def test_green_book_decrypt_with_only_the_encryption_key_is_unauthenticated() -> None:
    opened = decrypt(H("3001234567") + CIPHERED, system_title=ST, keys=SecurityKeys(EK))
    assert opened.plaintext == PLAIN
    assert opened.authenticated is False


def test_wrong_authentication_key_is_an_authentication_error() -> None:
    with pytest.raises(AuthenticationError, match="tag does not verify") as info:
        decrypt(H("3001234567") + CIPHERED, system_title=ST, keys=SecurityKeys(EK, bytes(16)))
    assert AK.hex() not in str(info.value).lower() and EK.hex() not in str(info.value).lower()


def test_altered_ciphertext_fails_the_tag() -> None:
    bad = bytearray(CIPHERED)
    bad[0] ^= 1
    with pytest.raises(AuthenticationError):
        decrypt(H("3001234567") + bytes(bad), system_title=ST, keys=BOTH)


def test_green_book_gmac_example() -> None:
    g = VECTOR["gmac_example"]
    tag = gmac(
        H(g["challenge"]),
        system_title=H(g["client_system_title"]),
        invocation_counter=int(g["invocation_counter"], 16),
        keys=BOTH,
    )
    assert tag == H(g["gmac"])
    response = hls_gmac_response(
        H(g["challenge"]), system_title=H(g["client_system_title"]), invocation_counter=1, keys=BOTH
    )
    assert response == H("10" + g["invocation_counter"] + g["gmac"])
    assert (
        verify_hls_gmac(response, H(g["challenge"]), system_title=H(g["client_system_title"]), keys=BOTH) == 1
    )
    with pytest.raises(AuthenticationError):
        verify_hls_gmac(response, bytes(8), system_title=H(g["client_system_title"]), keys=BOTH)


@pytest.mark.parametrize("sc", [0x00, 0x10, 0x20, 0x30])
def test_each_security_control_round_trips(sc: int) -> None:
    out = encrypt(PLAIN, system_title=ST, invocation_counter=7, keys=BOTH, security_control=sc)
    opened = decrypt(out, system_title=ST, keys=BOTH)
    assert opened.plaintext == PLAIN
    assert opened.authenticated is bool(sc & 0x10)
    if sc & 0x20:
        assert PLAIN not in out


def test_encryption_only_matches_gcm_counter_mode() -> None:
    enc_only = encrypt(PLAIN, system_title=ST, invocation_counter=IC, keys=BOTH, security_control=0x20)
    assert enc_only[5:] == CIPHERED[: len(PLAIN)]  # same keystream as GCM's, no tag


def test_errors_name_what_failed_and_never_the_key() -> None:
    with pytest.raises(SecurityError, match="encryption key \\(GUEK\\) is 15 bytes") as info:
        SecurityKeys(bytes(15))
    assert "00" * 15 not in str(info.value)
    with pytest.raises(SecurityError, match="system title is 7 bytes"):
        decrypt(H("3001234567") + CIPHERED, system_title=ST[:7], keys=BOTH)
    with pytest.raises(SecurityError, match="no encryption key"):
        decrypt(H("3001234567") + CIPHERED, system_title=ST, keys=SecurityKeys(authentication_key=AK))
    with pytest.raises(ProtocolError, match="suite 1"):
        decrypt(H("3101234567") + CIPHERED, system_title=ST, keys=BOTH)
    with pytest.raises(FramingError, match="shorter than its 12-byte tag"):
        decrypt(H("3001234567") + CIPHERED[:5], system_title=ST, keys=BOTH)


def test_keys_never_in_reprs() -> None:
    ctx = SecurityContext(system_title=ST, keys=BOTH)
    for text in (repr(BOTH), str(BOTH), repr(ctx)):
        assert EK.hex() not in text.lower() and AK.hex() not in text.lower()
        assert repr(EK) not in text and repr(AK) not in text
    assert "GUEK" in repr(BOTH) and "GAK" in repr(BOTH)


def test_invocation_counter_must_rise_per_system_title() -> None:
    meter = SecurityContext(system_title=ST, keys=BOTH, invocation_counter=10)
    reader = SecurityContext(system_title=H("4D4252000000AA01"), keys=BOTH)
    first = meter.protect(PLAIN)
    second = meter.protect(PLAIN)
    assert reader.unprotect(first, ST).invocation_counter == 10
    assert reader.unprotect(second, ST).invocation_counter == 11
    with pytest.raises(ReplayError, match="does not rise"):
        reader.unprotect(second, ST)
    with pytest.raises(ReplayError):
        reader.unprotect(first, ST)
    other = SecurityContext(system_title=H("4D4D4D0000000002"), keys=BOTH, invocation_counter=1)
    assert reader.unprotect(other.protect(PLAIN), other.system_title).authenticated


def test_a_forged_frame_does_not_move_the_counter() -> None:
    guard = ReplayGuard()
    reader = SecurityContext(keys=BOTH, guard=guard)
    forged = encrypt(PLAIN, system_title=ST, invocation_counter=1000, keys=SecurityKeys(EK, bytes(16)))
    with pytest.raises(AuthenticationError):
        reader.unprotect(forged, ST)
    assert guard.last(ST) is None
    genuine = encrypt(PLAIN, system_title=ST, invocation_counter=5, keys=BOTH)
    assert reader.unprotect(genuine, ST).plaintext == PLAIN


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([0x00, 0x10, 0x20, 0x30]), st.integers(0, 2**32 - 1))
def test_round_trip(plain: bytes, sc: int, ic: int) -> None:
    out = encrypt(plain, system_title=ST, invocation_counter=ic, keys=BOTH, security_control=sc)
    assert decrypt(out, system_title=ST, keys=BOTH).plaintext == plain


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_raises_only_our_errors(raw: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decrypt(raw, system_title=ST, keys=BOTH)
