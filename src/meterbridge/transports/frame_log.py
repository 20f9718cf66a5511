"""Frame logging: raw traffic in hex with timestamps and direction (``--log-frames``).

What users attach when they ask for help. Every command that opens a transport
accepts ``--log-frames PATH`` (``-`` for stderr); a driver needs one line::

    transport = LoggedTransport(transport, open_frame_log(path))

Each line is ``<UTC time> <direction> <port> <hex bytes>``, direction ``tx`` (we sent),
``rx`` (we received), ``line`` (speed/parity changed), ``event`` (closed)::

    2026-01-01T00:00:00.004583Z tx /dev/ttyUSB0 10 40 fe 3e 16

Only bytes pass here - nothing is decoded, so nothing but the wire appears in the
log. Keys never travel through a transport in clear (ciphered APDUs stay ciphered),
and an LLS password sent in an AARQ is exactly what a wire capture would show:
say so when you share a log of an association with a password.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from meterbridge.transports.line import LineSettings
from meterbridge.transports.transport import Transport, TransportWrapper

__all__ = ["FrameRecord", "FrameSink", "HexDumpWriter", "LoggedTransport", "open_frame_log"]


@dataclass(frozen=True, slots=True)
class FrameRecord:
    """One logged chunk of traffic."""

    at: datetime
    direction: str
    port: str
    data: bytes = b""
    note: str = ""

    def format(self) -> str:
        stamp = self.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = self.data.hex(" ") if self.data else self.note
        return f"{stamp} {self.direction} {self.port} {body}".rstrip()


FrameSink = Callable[[FrameRecord], None]


class HexDumpWriter:
    """A sink that writes one formatted line per record to a text stream."""

    def __init__(self, stream: TextIO, *, owns_stream: bool = False) -> None:
        self.stream = stream
        self._owns = owns_stream

    def __call__(self, record: FrameRecord) -> None:
        self.stream.write(record.format() + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._owns:
            self.stream.close()


def open_frame_log(target: str) -> HexDumpWriter:
    """``-`` logs to stderr; anything else is a file path, appended to."""
    if target == "-":
        return HexDumpWriter(sys.stderr)
    return HexDumpWriter(open(target, "a", encoding="ascii"), owns_stream=True)


class LoggedTransport(TransportWrapper):
    """Passes everything through and hands each chunk to ``sink``."""

    def __init__(self, inner: Transport, sink: FrameSink) -> None:
        super().__init__(inner)
        self.sink = sink

    def _log(self, direction: str, data: bytes = b"", note: str = "") -> None:
        self.sink(FrameRecord(self.clock.now(), direction, self.name, data, note))

    async def _read(self, max_bytes: int, timeout: float | None) -> bytes:
        data = await self.inner.read(max_bytes, timeout)
        self._log("rx", data)
        return data

    async def write(self, data: bytes) -> None:
        self._log("tx", bytes(data))
        await self.inner.write(data)

    async def set_line(self, line: LineSettings) -> None:
        await self.inner.set_line(line)
        self._log("line", note=str(line))

    async def close(self) -> None:
        if not self.inner.closed:
            self._log("event", note="close")
        await self.inner.close()
