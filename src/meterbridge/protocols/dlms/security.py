"""DLMS/COSEM security suite 0: AES-128-GCM with 12-byte tags (Green Book 9.2.7).

Holds ``SecurityControl`` (the security control byte), ``SecurityKeys`` (encryption and
authentication key, never shown in reprs), ``encrypt`` / ``decrypt`` of a security header
plus payload (``SC || IC || ciphertext || tag``), ``gmac`` and the HLS-GMAC pass 3/4
helpers ``hls_gmac_response`` / ``verify_hls_gmac``, the ``ReplayGuard`` that insists the
invocation counter of each system title rises, and ``SecurityContext`` that ties them
together for one party.

Rules: IV = system title (8 bytes) || invocation counter (4 bytes); AAD = SC || AK
(|| plaintext when only authenticated). With an authentication key the tag is checked and a
bad tag is an ``AuthenticationError``. Without it an authenticated-and-encrypted payload is
still decrypted (GCM is CTR underneath: counter block IV || 00000002) and reported as not
authenticated. Errors name what failed, never the key.
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from meterbridge.errors import AuthenticationError, FramingError, ReplayError, SecurityError, UnsupportedError

__all__ = [
    "TAG_LENGTH",
    "Opened",
    "ReplayGuard",
    "SecurityContext",
    "SecurityControl",
    "SecurityKeys",
    "check_key",
    "check_system_title",
    "decrypt",
    "encrypt",
    "gmac",
    "hls_gmac_response",
    "system_title_text",
    "verify_hls_gmac",
]

LAYER = "dlms-security"
TAG_LENGTH = 12
_HEADER = struct.Struct(">BI")


class SecurityControl(enum.IntFlag):
    """The security control byte: suite id in bits 0-3, then the flags."""

    NONE = 0x00
    AUTHENTICATION = 0x10
    ENCRYPTION = 0x20
    BROADCAST_KEY = 0x40
    COMPRESSION = 0x80

    AUTHENTICATED_AND_ENCRYPTED = 0x30


def check_key(key: bytes, what: str) -> bytes:
    """Return ``key`` if it has the 16 bytes suite 0 needs, else raise a ``SecurityError`` naming ``what``."""
    if len(key) != 16:
        raise SecurityError(f"{what} is {len(key)} bytes, security suite 0 needs 16 (AES-128)", layer=LAYER)
    return bytes(key)


def check_system_title(system_title: bytes) -> bytes:
    if len(system_title) != 8:
        raise SecurityError(f"system title is {len(system_title)} bytes, expected 8", layer=LAYER)
    return bytes(system_title)


@dataclass(frozen=True, slots=True)
class SecurityKeys:
    """The global (or dedicated) unicast encryption key and the authentication key; either may be absent."""

    encryption_key: bytes | None = field(default=None, repr=False)
    authentication_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.encryption_key is not None:
            check_key(self.encryption_key, "encryption key (GUEK)")
        if self.authentication_key is not None:
            check_key(self.authentication_key, "authentication key (GAK)")

    def __repr__(self) -> str:
        have = [
            name
            for name, key in (("GUEK", self.encryption_key), ("GAK", self.authentication_key))
            if key is not None
        ]
        return f"SecurityKeys(<{', '.join(have) or 'no keys'}>)"


@dataclass(frozen=True, slots=True)
class Opened:
    """A payload taken out of its security envelope."""

    plaintext: bytes
    security_control: int
    invocation_counter: int
    authenticated: bool
    """True when the GCM tag (or GMAC) was verified with the authentication key."""


def _parse_control(sc: int, offset: int) -> None:
    if sc & 0x0F:
        raise UnsupportedError(
            f"security suite {sc & 0x0F} in security control 0x{sc:02X} (only suite 0 is implemented)",
            offset=offset,
            layer=LAYER,
        )
    if sc & SecurityControl.COMPRESSION:
        raise UnsupportedError(f"compression in security control 0x{sc:02X}", offset=offset, layer=LAYER)


def _ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).encryptor()
    return enc.update(data) + enc.finalize()


def encrypt(
    plaintext: bytes,
    *,
    system_title: bytes,
    invocation_counter: int,
    keys: SecurityKeys,
    security_control: int = SecurityControl.AUTHENTICATED_AND_ENCRYPTED,
) -> bytes:
    """Protect ``plaintext``: return ``SC || IC || ciphertext (or plaintext) || tag (when authenticated)``."""
    _parse_control(security_control, 0)
    iv = check_system_title(system_title) + invocation_counter.to_bytes(4, "big")
    header = _HEADER.pack(security_control, invocation_counter)
    auth = bool(security_control & SecurityControl.AUTHENTICATION)
    enc = bool(security_control & SecurityControl.ENCRYPTION)
    if auth and keys.authentication_key is None:
        raise SecurityError(
            "security control asks for authentication but there is no authentication key", layer=LAYER
        )
    if enc and keys.encryption_key is None:
        raise SecurityError(
            "security control asks for encryption but there is no encryption key", layer=LAYER
        )
    if not auth and not enc:
        return header + plaintext
    key = keys.encryption_key
    if key is None:  # authentication only: GCM still runs with the encryption key
        raise SecurityError("authentication needs the encryption key too (GMAC uses it)", layer=LAYER)
    if not auth:
        return header + _ctr(key, iv, plaintext)
    assert keys.authentication_key is not None
    encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    aad = bytes((security_control,)) + keys.authentication_key
    if enc:
        encryptor.authenticate_additional_data(aad)
        body = encryptor.update(plaintext) + encryptor.finalize()
        return header + body + encryptor.tag[:TAG_LENGTH]
    encryptor.authenticate_additional_data(aad + plaintext)
    encryptor.finalize()
    return header + plaintext + encryptor.tag[:TAG_LENGTH]


def decrypt(
    protected: bytes | memoryview, *, system_title: bytes, keys: SecurityKeys, offset: int = 0
) -> Opened:
    """Open ``SC || IC || payload [|| tag]``. ``offset`` is where it starts in the frame (for errors)."""
    data = bytes(protected)
    if len(data) < 5:
        raise FramingError("security header needs 5 bytes (SC, IC)", offset=offset, layer=LAYER)
    sc, ic = _HEADER.unpack_from(data, 0)
    _parse_control(sc, offset)
    iv = check_system_title(system_title) + data[1:5]
    auth = bool(sc & SecurityControl.AUTHENTICATION)
    enc = bool(sc & SecurityControl.ENCRYPTION)
    body = data[5:]
    if not auth and not enc:
        return Opened(body, sc, ic, False)
    if auth and len(body) < TAG_LENGTH:
        raise FramingError(
            f"authenticated payload of {len(body)} bytes is shorter than its {TAG_LENGTH}-byte tag",
            offset=offset + 5,
            layer=LAYER,
        )
    key = keys.encryption_key
    if enc and key is None:
        raise SecurityError(
            f"payload is encrypted (security control 0x{sc:02X}) but no encryption key was given", layer=LAYER
        )
    if not auth:
        assert key is not None
        return Opened(_ctr(key, iv, body), sc, ic, False)
    payload, tag = body[:-TAG_LENGTH], body[-TAG_LENGTH:]
    if keys.authentication_key is None or key is None:
        # no way to check the tag: open what can be opened and say it is not authenticated
        if enc:
            assert key is not None
            return Opened(_ctr(key, iv, payload), sc, ic, False)
        return Opened(payload, sc, ic, False)
    aad = bytes((sc,)) + keys.authentication_key
    decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=TAG_LENGTH)).decryptor()
    try:
        if enc:
            decryptor.authenticate_additional_data(aad)
            plain = decryptor.update(payload) + decryptor.finalize()
        else:
            decryptor.authenticate_additional_data(aad + payload)
            decryptor.finalize()
            plain = payload
    except InvalidTag:
        raise AuthenticationError(
            f"GCM tag does not verify (security control 0x{sc:02X}, invocation counter {ic}): "
            "wrong authentication key or encryption key, or the frame was altered",
            offset=offset + len(data) - TAG_LENGTH,
            layer=LAYER,
        ) from None
    return Opened(plain, sc, ic, True)


def gmac(
    data: bytes,
    *,
    system_title: bytes,
    invocation_counter: int,
    keys: SecurityKeys,
    security_control: int = 0x10,
) -> bytes:
    """GMAC of ``data``: the 12-byte tag of GCM over AAD = SC || AK || data with no ciphertext."""
    if keys.encryption_key is None or keys.authentication_key is None:
        raise SecurityError("GMAC needs both the encryption and the authentication key", layer=LAYER)
    iv = check_system_title(system_title) + invocation_counter.to_bytes(4, "big")
    encryptor = Cipher(algorithms.AES(keys.encryption_key), modes.GCM(iv)).encryptor()
    encryptor.authenticate_additional_data(bytes((security_control,)) + keys.authentication_key + data)
    encryptor.finalize()
    return encryptor.tag[:TAG_LENGTH]


def hls_gmac_response(
    challenge: bytes, *, system_title: bytes, invocation_counter: int, keys: SecurityKeys
) -> bytes:
    """HLS-GMAC pass 3 (client) or 4 (server): ``SC(0x10) || IC || GMAC(SC || AK || challenge)``."""
    tag = gmac(challenge, system_title=system_title, invocation_counter=invocation_counter, keys=keys)
    return _HEADER.pack(0x10, invocation_counter) + tag


def verify_hls_gmac(response: bytes, challenge: bytes, *, system_title: bytes, keys: SecurityKeys) -> int:
    """Check the peer's pass 3/4 answer to our ``challenge``; return its invocation counter."""
    if len(response) != 5 + TAG_LENGTH:
        raise FramingError(f"HLS-GMAC response is {len(response)} bytes, expected 17", layer=LAYER)
    sc, ic = _HEADER.unpack_from(response, 0)
    if sc != 0x10:
        raise SecurityError(f"HLS-GMAC response has security control 0x{sc:02X}, expected 0x10", layer=LAYER)
    expected = gmac(challenge, system_title=system_title, invocation_counter=ic, keys=keys)
    if not hmac.compare_digest(expected, response[5:]):
        raise AuthenticationError("HLS-GMAC response does not verify: wrong key or challenge", layer=LAYER)
    return int(ic)


class ReplayGuard:
    """Remembers the highest invocation counter accepted per system title; a counter must rise."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def check(self, system_title: bytes, invocation_counter: int) -> None:
        last = self._last.get(bytes(system_title))
        if last is not None and invocation_counter <= last:
            raise ReplayError(
                f"invocation counter {invocation_counter} of system title {system_title_text(system_title)} "
                f"does not rise (last accepted {last})",
                layer=LAYER,
            )

    def accept(self, system_title: bytes, invocation_counter: int) -> None:
        self.check(system_title, invocation_counter)
        self._last[bytes(system_title)] = invocation_counter

    def last(self, system_title: bytes) -> int | None:
        return self._last.get(bytes(system_title))


def system_title_text(system_title: bytes) -> str:
    """A system title as people write it: the manufacturer's three letters, then the rest in hex."""
    head = system_title[:3]
    if all(0x41 <= b <= 0x5A for b in head):
        return f"{head.decode()}{system_title[3:].hex().upper()}"
    return system_title.hex().upper()


class SecurityContext:
    """One party's security state: own system title and counter, keys, and the peers' counters.

    ``protect`` uses and then raises our invocation counter; ``unprotect`` checks the tag
    (when the authentication key is known) before it accepts the peer's counter, so a forged
    frame cannot move the counter.
    """

    __slots__ = ("_keys", "guard", "invocation_counter", "system_title")

    def __init__(
        self,
        *,
        system_title: bytes = b"MBR\x00\x00\x00\x00\x01",
        keys: SecurityKeys,
        invocation_counter: int = 1,
        guard: ReplayGuard | None = None,
    ) -> None:
        self.system_title = check_system_title(system_title)
        self._keys = keys
        self.invocation_counter = invocation_counter
        self.guard = guard if guard is not None else ReplayGuard()

    @property
    def keys(self) -> SecurityKeys:
        return self._keys

    def __repr__(self) -> str:
        return f"SecurityContext(system_title={system_title_text(self.system_title)}, {self._keys!r})"

    def protect(
        self, plaintext: bytes, security_control: int = SecurityControl.AUTHENTICATED_AND_ENCRYPTED
    ) -> bytes:
        if self.invocation_counter > 0xFFFFFFFF:
            raise SecurityError("invocation counter exhausted: a new key is needed", layer=LAYER)
        out = encrypt(
            plaintext,
            system_title=self.system_title,
            invocation_counter=self.invocation_counter,
            keys=self._keys,
            security_control=security_control,
        )
        self.invocation_counter += 1
        return out

    def unprotect(self, protected: bytes | memoryview, system_title: bytes, *, offset: int = 0) -> Opened:
        if len(protected) >= 5:
            self.guard.check(system_title, int.from_bytes(protected[1:5], "big"))
        opened = decrypt(protected, system_title=system_title, keys=self._keys, offset=offset)
        self.guard.accept(system_title, opened.invocation_counter)
        return opened
