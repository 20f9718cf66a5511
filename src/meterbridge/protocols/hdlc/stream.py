"""``HdlcStream``: a streaming frame decoder for a byte stream carrying HDLC frames.

Feed what the line delivered with ``receive_data(chunk)`` (``b""`` means the line
closed) and pull frames with ``next_event()``, which answers an ``HdlcFrame`` or
``NEED_DATA``. The decoder:

* skips bytes outside frames (line noise, idle flags), counting them in ``skipped``;
* accepts back-to-back frames that share one flag (``7E ... 7E ... 7E``) as well as
  separate flags (``7E ... 7E 7E ... 7E``);
* checks the HCS as soon as the header is in, so a false start in the noise never
  makes it wait for a long frame that is not there;
* on a bad frame raises ``FramingError``, ``ChecksumError`` (HCS or FCS, expected
  and found) or ``UnsupportedError`` with the byte offset counted from the first
  byte ever received, after having dropped the bad frame: call ``next_event()``
  again to continue with the next frame;
* takes ``b""`` as "the line closed" (a frame cut by it is reported) and bytes after that as
  "the line came back";
* holds at most ``max_buffer`` unprocessed bytes; beyond that the oldest are
  dropped and ``receive_data`` raises ``FramingError`` saying so.
"""

from __future__ import annotations

from typing import Final

from meterbridge.errors import FramingError, ProtocolError
from meterbridge.protocols.events import NEED_DATA, NeedData
from meterbridge.protocols.hdlc.frames import (
    FLAG,
    LAYER,
    MAX_FRAME_LENGTH,
    HdlcFrame,
    _check_hcs,
    _parse_header,
    _plain_frame,
)

__all__ = ["DEFAULT_MAX_BUFFER", "HdlcStream"]

DEFAULT_MAX_BUFFER: Final = 8 * (MAX_FRAME_LENGTH + 2)
_COMPACT_AT: Final = 4096


class HdlcStream:
    """Cuts a byte stream into ``HdlcFrame`` values (see the module docstring)."""

    __slots__ = ("_base", "_buf", "_closed", "_pos", "max_buffer", "skipped")

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        if max_buffer < MAX_FRAME_LENGTH + 2:
            raise ValueError(f"max_buffer must hold one whole frame ({MAX_FRAME_LENGTH + 2} bytes)")
        self.max_buffer = max_buffer
        self.skipped = 0
        """Bytes dropped outside frames (noise, bad frames, bytes over the buffer limit); flags not counted."""
        self._buf = bytearray()
        self._pos = 0  # next byte to look at in _buf
        self._base = 0  # stream offset of _buf[0]
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once ``receive_data(b"")`` said the line closed."""
        return self._closed

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes from the line; ``b""`` means the line closed.

        A frame cut by the close is reported by ``next_event()``. Bytes after a close mean
        the line came back (a serial adapter that was unplugged and reopened): decoding
        starts afresh.
        """
        if not data:
            self._closed = True
            return
        self._closed = False
        self._buf += data
        excess = self.buffered - self.max_buffer
        if excess > 0:
            at = self._base + self._pos
            self._pos += excess
            self.skipped += excess
            raise FramingError(
                f"more than {self.max_buffer} bytes buffered without a complete frame: dropped {excess} bytes",
                offset=at,
                layer=LAYER,
            )

    def next_event(self) -> HdlcFrame | NeedData:
        """The next complete frame, or ``NEED_DATA``; raises (after dropping it) for a bad frame."""
        buf = self._buf
        if self._pos >= _COMPACT_AT and self._pos * 2 >= len(buf):
            del buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        while True:
            start = buf.find(FLAG, self._pos)
            if start < 0:
                self.skipped += len(buf) - self._pos
                self._pos = len(buf)
                return NEED_DATA
            self.skipped += start - self._pos
            self._pos = start
            if len(buf) - start < 2:
                return self._end_of_input()
            fmt = buf[start + 1]
            if fmt == FLAG:  # idle flag or separate closing/opening flags
                self._pos = start + 1
                continue
            if fmt & 0xF0 != 0xA0:  # a closing flag, or a 7E in the noise
                self._pos = start + 1
                continue
            close = start + 1 + (((fmt & 0x07) << 8) | buf[start + 2]) if len(buf) - start > 2 else len(buf)
            if close < len(buf) and buf[close] == FLAG:  # the whole frame is here: try the one-pass decoder
                frame = _plain_frame(buf, start, close)
                if frame is not None:
                    self._pos = close
                    return frame
            try:
                header = _parse_header(buf, start, self._base)
                if header is None:
                    return self._end_of_input()
                if header.has_information:
                    if len(buf) < header.control_at + 3:
                        return self._end_of_input()
                    _check_hcs(buf, start, header, self._base)
            except ProtocolError:
                self._pos = start + 1
                raise
            close = start + 1 + header.length
            if len(buf) <= close:
                return self._end_of_input()
            if buf[close] != FLAG:
                self._pos = start + 1
                raise FramingError(
                    f"closing flag 0x7E expected, found 0x{buf[close]:02X}",
                    offset=self._base + close,
                    layer=LAYER,
                )
            # The header is sound; whatever the body holds, the frame ends at ``close``
            # (that flag may open the next frame).
            self._pos = close
            return HdlcFrame._from_checked(buf, start, header, self._base, hcs_checked=True)

    def _end_of_input(self) -> NeedData:
        if not self._closed:
            return NEED_DATA
        at = self._base + self._pos
        left = len(self._buf) - self._pos
        self._pos = len(self._buf)
        if left <= 1:  # a lone flag
            return NEED_DATA
        self.skipped += left - 1  # the flag is not counted
        raise FramingError(f"line closed inside a frame ({left} bytes dropped)", offset=at, layer=LAYER)
