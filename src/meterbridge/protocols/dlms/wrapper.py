"""The DLMS/COSEM transport wrapper of IEC 62056-47 (TCP and UDP, port 4059).

Every APDU is preceded by an 8-byte header, all fields big-endian unsigned 16-bit::

    version (0x0001) | source wPort | destination wPort | length of the APDU

The wPorts are the DLMS SAPs: the client's (16 = public client, 1 = management
...) and the server's logical device (1 = management logical device).

* ``WrapperFrame(source, destination, data)``: one wrapped APDU; ``encode()`` and
  ``WrapperFrame.decode(datagram)`` for UDP, where one datagram is one frame.
* ``WrapperStream``: cuts a TCP byte stream into frames (``receive_data`` /
  ``next_event`` -> ``WrapperFrame`` or ``NEED_DATA``). A TCP stream cannot
  resynchronise after a wrong version or an over-long frame: the stream stays
  failed and raises the same error on every later call (close the connection).

Errors: ``FramingError`` (short input, length disagreeing with the datagram, frame
longer than ``max_length``, line closed inside a frame) and ``UnsupportedError``
(version other than 1), with ``layer="wrapper"`` and the byte offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from meterbridge.errors import FramingError, LocalProtocolError, ProtocolError, UnsupportedError
from meterbridge.protocols.events import NEED_DATA, NeedData

__all__ = [
    "DLMS_PORT",
    "HEADER_SIZE",
    "WRAPPER_VERSION",
    "WrapperFrame",
    "WrapperStream",
]

LAYER: Final = "wrapper"
DLMS_PORT: Final = 4059
WRAPPER_VERSION: Final = 0x0001
_HEADER: Final = struct.Struct(">HHHH")
HEADER_SIZE: Final = _HEADER.size


def _check_version(version: int, offset: int) -> None:
    if version != WRAPPER_VERSION:
        raise UnsupportedError(
            f"wrapper version 0x{WRAPPER_VERSION:04X} expected, found 0x{version:04X}",
            offset=offset,
            layer=LAYER,
        )


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    """One APDU with its wrapper header: ``source`` and ``destination`` are wPorts."""

    source: int
    destination: int
    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))
        for name in ("source", "destination"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"wPort {name} must be 0..65535, got {value}")
        if len(self.data) > 0xFFFF:
            raise ValueError(f"an APDU of {len(self.data)} bytes does not fit the 16-bit length field")

    def encode(self) -> bytes:
        return _HEADER.pack(WRAPPER_VERSION, self.source, self.destination, len(self.data)) + self.data

    @classmethod
    def decode(cls, datagram: bytes | bytearray | memoryview) -> WrapperFrame:
        """Decode one UDP datagram (exactly one frame)."""
        if len(datagram) < HEADER_SIZE:
            raise FramingError(
                f"datagram of {len(datagram)} bytes is shorter than the {HEADER_SIZE}-byte header",
                offset=len(datagram),
                layer=LAYER,
            )
        version, source, destination, length = _HEADER.unpack_from(datagram, 0)
        _check_version(version, 0)
        if len(datagram) != HEADER_SIZE + length:
            raise FramingError(
                f"length field says {length} bytes, the datagram holds {len(datagram) - HEADER_SIZE}",
                offset=6,
                layer=LAYER,
            )
        return cls(source, destination, bytes(datagram[HEADER_SIZE:]))


class WrapperStream:
    """Cuts a TCP byte stream into ``WrapperFrame`` values."""

    __slots__ = ("_base", "_buf", "_closed", "_failed", "max_length")

    def __init__(self, *, max_length: int = 0xFFFF) -> None:
        self.max_length = max_length
        self._buf = bytearray()
        self._base = 0
        self._closed = False
        self._failed: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the socket; ``b""`` means the peer closed."""
        if self._closed:
            raise LocalProtocolError("receive_data() after the stream was closed")
        if not data:
            self._closed = True
            return
        self._buf += data

    def next_event(self) -> WrapperFrame | NeedData:
        if self._failed is not None:
            raise self._failed
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return self._end_of_input()
        version, source, destination, length = _HEADER.unpack_from(buf, 0)
        try:
            _check_version(version, self._base)
            if length > self.max_length:
                raise FramingError(
                    f"frame of {length} bytes exceeds the limit of {self.max_length}",
                    offset=self._base + 6,
                    layer=LAYER,
                )
        except ProtocolError as exc:
            self._failed = exc
            raise
        end = HEADER_SIZE + length
        if len(buf) < end:
            return self._end_of_input()
        frame = WrapperFrame(source, destination, bytes(buf[HEADER_SIZE:end]))
        del buf[:end]
        self._base += end
        return frame

    def _end_of_input(self) -> NeedData:
        if self._closed and self._buf:
            self._failed = FramingError(
                f"connection closed inside a frame ({len(self._buf)} bytes pending)",
                offset=self._base,
                layer=LAYER,
            )
            raise self._failed
        return NEED_DATA
