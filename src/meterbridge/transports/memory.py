"""In-memory transports: a pipe pair for tests that need no timing.

``a, b = pipe_pair()`` gives two connected :class:`MemoryTransport` ends: what one
writes, the other reads at once (no line time). Closing one end makes the other's
reads raise ``TransportClosed`` once drained. For a line that takes its transmit time
and can hold several devices, use :class:`~meterbridge.transports.bus.VirtualLine`.
"""

from __future__ import annotations

from meterbridge.transports.clock import Clock
from meterbridge.transports.line import LineSettings
from meterbridge.transports.transport import BufferedTransport, TransportClosed

__all__ = ["MemoryTransport", "pipe_pair"]


class MemoryTransport(BufferedTransport):
    """One end of :func:`pipe_pair`."""

    def __init__(self, name: str, *, clock: Clock | None = None, line: LineSettings | None = None) -> None:
        super().__init__(name, clock=clock, line=line)
        self.peer: MemoryTransport | None = None

    async def _send(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.closed:
            raise TransportClosed(f"{self.name}: the other end is closed")
        peer._feed(data)

    async def _close(self) -> None:
        peer, self.peer = self.peer, None
        if peer is not None:
            peer.peer = None
            peer._feed_eof(TransportClosed(f"{peer.name}: the other end ({self.name}) closed"))


def pipe_pair(
    names: tuple[str, str] = ("pipe:a", "pipe:b"),
    *,
    clock: Clock | None = None,
    line: LineSettings | None = None,
) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected in-memory transports; ``line`` is only recorded (no timing)."""
    a = MemoryTransport(names[0], clock=clock, line=line)
    b = MemoryTransport(names[1], clock=clock, line=line)
    a.peer, b.peer = b, a
    return a, b
