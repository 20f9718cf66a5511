"""Serial line settings and the bit-time arithmetic every timing decision rests on.

``LineSettings(baud, bytesize, parity, stopbits)`` describes one asynchronous serial
character frame: a start bit, ``bytesize`` data bits, an optional parity bit and
``stopbits`` stop bits. Everything that waits on a serial line (the M-Bus reply window,
the IEC 62056-21 inter-character time, a virtual bus) derives its figures from here::

    >>> MBUS_2400.bits_per_char, round(MBUS_2400.char_time * 1000, 3)
    (11.0, 4.583)

Parity letters are pyserial's (``N E O M S``), so ``LineSettings.parity`` can be given
to ``serial.Serial(parity=...)`` unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

__all__ = [
    "IEC_SIGN_ON",
    "MBUS_2400",
    "STANDARD_BAUD_RATES",
    "LineSettings",
    "Parity",
]

STANDARD_BAUD_RATES: Final = (300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


class Parity(StrEnum):
    """Parity of a character frame; the values are pyserial's ``PARITY_*`` constants."""

    NONE = "N"
    EVEN = "E"
    ODD = "O"
    MARK = "M"
    SPACE = "S"


_FORMAT = re.compile(r"^\s*(?:(\d+)\s*[ /,:@-]?\s*)?([5-8])([NEOMSneoms])(1|1\.5|2)\s*$")


@dataclass(frozen=True, slots=True)
class LineSettings:
    """One serial character format and speed, e.g. ``LineSettings(2400, 8, Parity.EVEN, 1)``."""

    baud: int
    bytesize: int = 8
    parity: Parity = Parity.NONE
    stopbits: float = 1

    def __post_init__(self) -> None:
        if not isinstance(self.baud, int) or self.baud <= 0:
            raise ValueError(f"line: baud rate must be a positive integer, got {self.baud!r}")
        if self.bytesize not in (5, 6, 7, 8):
            raise ValueError(f"line: byte size must be 5, 6, 7 or 8 bits, got {self.bytesize!r}")
        try:
            parity = Parity(self.parity)
        except ValueError:
            raise ValueError(f"line: parity must be one of N E O M S, got {self.parity!r}") from None
        object.__setattr__(self, "parity", parity)
        if self.stopbits not in (1, 1.5, 2):
            raise ValueError(f"line: stop bits must be 1, 1.5 or 2, got {self.stopbits!r}")

    @classmethod
    def parse(cls, text: str) -> LineSettings:
        """Read ``"2400 8E1"``, ``"2400/8E1"``, ``"300,7E1"`` or ``"9600-8N1"``.

        A format without speed (``"8E1"``) is refused: a line always has a baud rate.
        """
        m = _FORMAT.match(text)
        if m is None or m[1] is None:
            raise ValueError(
                f"line settings {text!r}: expected '<baud> <bits><parity><stop>', e.g. '2400 8E1'"
            )
        stop = float(m[4])
        return cls(int(m[1]), int(m[2]), Parity(m[3].upper()), 1 if stop == 1 else stop)

    def __str__(self) -> str:
        stop = int(self.stopbits) if self.stopbits != 1.5 else 1.5
        return f"{self.baud} {self.bytesize}{self.parity.value}{stop}"

    @property
    def bit_time(self) -> float:
        """Seconds per bit."""
        return 1.0 / self.baud

    @property
    def bits_per_char(self) -> float:
        """Start bit + data bits + parity bit (if any) + stop bits."""
        return 1 + self.bytesize + (0 if self.parity is Parity.NONE else 1) + self.stopbits

    @property
    def char_time(self) -> float:
        """Seconds one character occupies on the wire (2400 8E1: 11/2400 s = 4.583 ms)."""
        return self.bits_per_char / self.baud

    def transmit_time(self, nbytes: int) -> float:
        """Seconds ``nbytes`` characters take back to back on the wire."""
        if nbytes < 0:
            raise ValueError(f"line: cannot transmit {nbytes} bytes")
        return nbytes * self.char_time

    def bits(self, nbits: float) -> float:
        """Seconds for ``nbits`` bit times (M-Bus specifies its reply window in bit times)."""
        return nbits / self.baud

    @property
    def data_mask(self) -> int:
        """Mask of the data bits: a 7-bit line carries ``byte & 0x7F``."""
        return (1 << self.bytesize) - 1

    def with_baud(self, baud: int) -> LineSettings:
        return replace(self, baud=baud)

    def same_framing(self, other: LineSettings) -> bool:
        """True when a receiver set to ``other`` decodes characters sent with ``self``.

        Speed and frame length must agree; the receiver keeps its own data bits (a 7E1
        receiver reading 8N1 characters takes the 8th bit as parity, which the Linux
        default of not checking parity ignores).
        """
        return self.baud == other.baud and self.bits_per_char == other.bits_per_char


MBUS_2400: Final = LineSettings(2400, 8, Parity.EVEN, 1)
"""Wired M-Bus default and the E450 customer interface: 2400 baud 8E1."""

IEC_SIGN_ON: Final = LineSettings(300, 7, Parity.EVEN, 1)
"""IEC 62056-21 sign-on: 300 baud 7E1."""
