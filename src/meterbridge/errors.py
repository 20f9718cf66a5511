"""The one error hierarchy of meterbridge.

Every error says who was wrong and where. ``ProtocolError`` and its subclasses are
raised by the codecs when the *peer* sent something wrong (they inherit from
``ValueError``); ``LocalProtocolError`` when *our* caller asked for something the
protocol does not allow. Messages name the layer and the byte offset when known.

Nothing here ever formats key material: a ``SecurityError`` names which check
failed (key length, system title, tag, replay), never the key.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ChecksumError",
    "ConfigError",
    "FramingError",
    "LocalProtocolError",
    "MeterbridgeError",
    "ProtocolError",
    "ReplayError",
    "SecurityError",
    "TransportError",
    "UnsupportedError",
]


class MeterbridgeError(Exception):
    """Base of every error meterbridge raises on purpose."""


class ProtocolError(MeterbridgeError, ValueError):
    """The peer sent bytes that the protocol does not allow.

    ``layer`` names the codec (``mbus``, ``hdlc``, ``dlms``, ``iec62056-21`` ...),
    ``offset`` the byte offset in the frame or stream where the problem was found.
    """

    def __init__(self, message: str, *, offset: int | None = None, layer: str | None = None) -> None:
        self.message = message
        self.offset = offset
        self.layer = layer
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.message
        if self.offset is not None:
            text = f"{text} (at byte {self.offset})"
        if self.layer:
            text = f"{self.layer}: {text}"
        return text


class FramingError(ProtocolError):
    """Start/stop bytes, lengths or structure of a frame are wrong, or input ended early."""


class ChecksumError(ProtocolError):
    """A checksum (M-Bus sum, HDLC HCS/FCS, IEC BCC, P1 CRC) does not match."""


class UnsupportedError(ProtocolError):
    """Well-formed input that uses a feature this codec does not implement or the standard reserves."""


class SecurityError(ProtocolError):
    """A ciphered APDU could not be opened: key length, system title, security control."""


class AuthenticationError(SecurityError):
    """The GCM tag (or GMAC) does not verify: wrong authentication or encryption key, or tampered data."""


class ReplayError(SecurityError):
    """The invocation counter did not rise for this system title: a replayed or reordered frame."""


class LocalProtocolError(MeterbridgeError, RuntimeError):
    """Our own caller asked for something the protocol state does not allow."""


class TransportError(MeterbridgeError, OSError):
    """A port, socket or PTY failed, vanished or timed out."""


class ConfigError(MeterbridgeError, ValueError):
    """The configuration is invalid. ``where`` names the key path and, when known, the file line."""

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
