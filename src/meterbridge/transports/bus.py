"""A virtual serial line / bus in (virtual) time, with several devices and collisions.

:class:`VirtualLine` is the medium the simulators build on (the M-Bus simulator puts
its master port and 250 slaves on one; the E450 customer interface is one too).
Every device gets a :class:`LinePort`, a normal
:class:`~meterbridge.transports.transport.Transport`:

* **Timing.** A write is queued like a UART FIFO: character *i* of a write occupies the
  wire from ``start + i*char_time`` to ``start + (i+1)*char_time`` (``start`` is now, or
  the end of what the port is still sending), using the *sender's* line settings.
  Each character reaches the listeners when its stop bit ends. ``drain()`` waits until
  the port's last character is out. On a :class:`~meterbridge.transports.clock.VirtualClock`
  all of this happens in virtual time: exact and instant.
* **Who hears whom** is a ``hears(sender, receiver)`` function. :func:`mbus_topology`
  (the default): the master hears every slave and every slave hears the master, slaves
  do not hear each other (the master modulates the voltage, slaves the current).
  :func:`shared_topology`: every port hears every other port (RS-485, an optical head).
  ``attach(..., echo=True)`` makes a port hear its own bytes too (a level converter
  that echoes; see :class:`~meterbridge.transports.echo.EchoCanceller`).
* **Collisions.** When characters of two senders overlap in time at a receiver, the
  receiver gets ``combine([values...])`` instead: :func:`wired_and` by default. That is
  M-Bus slave -> master: a space (logical 0) is signalled by a slave *drawing* current,
  so concurrent currents add and any 0 wins - the master reads the bitwise AND (an
  "OR of currents"). Characters that start together merge into one; characters that
  are shifted against each other each arrive garbled. Every collision is recorded in
  ``VirtualLine.collisions`` (a :class:`Collision` with time, senders, receiver, values,
  result) and counted in ``collision_count``, so a simulator or a test can tell a
  garbled reply from a clean one. Two identical E5 acknowledgements AND to a clean E5,
  as on a real bus.
* **Framing.** A receiver whose speed or frame length differs from the sender's gets
  deterministic nonsense (``line_errors`` counts it); a 7-bit receiver keeps 7 data bits.

A simulator that must not answer while the line is busy can ask ``line.busy_until()``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from meterbridge.transports.clock import Clock
from meterbridge.transports.line import LineSettings
from meterbridge.transports.transport import BufferedTransport, TransportClosed

__all__ = [
    "Collision",
    "LinePort",
    "VirtualLine",
    "mbus_topology",
    "shared_topology",
    "wired_and",
    "wired_or",
]

_EPS = 1e-9


def wired_and(values: Sequence[int]) -> int:
    """Bitwise AND: dominant 0 (M-Bus slave -> master, open-collector lines)."""
    out = 0xFF
    for v in values:
        out &= v
    return out


def wired_or(values: Sequence[int]) -> int:
    """Bitwise OR: dominant 1."""
    out = 0
    for v in values:
        out |= v
    return out


def mbus_topology(sender: LinePort, receiver: LinePort) -> bool:
    """Master hears slaves, slaves hear the master; slaves do not hear each other."""
    return (sender.role == "master") != (receiver.role == "master")


def shared_topology(sender: LinePort, receiver: LinePort) -> bool:
    """Every port hears every other port."""
    return sender is not receiver


@dataclass(frozen=True, slots=True)
class Collision:
    """Characters of several senders overlapped at ``receiver`` around time ``at``."""

    at: float
    receiver: str
    senders: tuple[str, ...]
    values: tuple[int, ...]
    result: int


@dataclass(slots=True, eq=False)
class _Symbol:
    sender: LinePort
    start: float
    end: float
    value: int
    line: LineSettings
    delivered: set[int] = field(default_factory=set)  # id() of receivers served


def _garble(value: int) -> int:
    return (value * 167 + 13) & 0xFF


class LinePort(BufferedTransport):
    """A device's connection to a :class:`VirtualLine` (a full Transport)."""

    def __init__(self, medium: VirtualLine, name: str, role: str, echo: bool, line: LineSettings) -> None:
        super().__init__(name, clock=medium.clock, line=line)
        self.medium = medium
        self.role = role
        self.echo = echo
        self._tx_until = 0.0
        self.bytes_sent = 0

    @property
    def settings(self) -> LineSettings:
        line = self._line
        assert line is not None
        return line

    async def _send(self, data: bytes) -> None:
        self.medium._transmit(self, data)
        self.bytes_sent += len(data)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        wait = self._tx_until - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)

    @property
    def transmitting_until(self) -> float:
        """Loop time when this port's last queued character has left."""
        return self._tx_until

    async def _close(self) -> None:
        self.medium._detach(self)
        self._feed_eof(TransportClosed(f"{self.name}: transport is closed"))


class VirtualLine:
    """The medium; see the module docstring."""

    def __init__(
        self,
        line: LineSettings,
        *,
        clock: Clock | None = None,
        hears: Callable[[LinePort, LinePort], bool] = mbus_topology,
        combine: Callable[[Sequence[int]], int] = wired_and,
        name: str = "line",
        max_collisions_kept: int = 10000,
    ) -> None:
        self.line = line
        self.clock = clock
        self.hears = hears
        self.combine = combine
        self.name = name
        self.ports: list[LinePort] = []
        self._symbols: list[_Symbol] = []
        self.collisions: deque[Collision] = deque(maxlen=max_collisions_kept)
        self.collision_count = 0
        self.line_errors = 0
        self.chars_on_wire = 0
        self._deliveries = 0

    def attach(
        self, name: str, *, role: str = "slave", echo: bool = False, line: LineSettings | None = None
    ) -> LinePort:
        """Connect a device. ``role``: ``master``, ``slave`` or anything your ``hears`` knows."""
        if any(p.name == name for p in self.ports):
            raise ValueError(f"{self.name}: a port named {name!r} is already attached")
        port = LinePort(self, name, role, echo, line or self.line)
        self.ports.append(port)
        return port

    def _detach(self, port: LinePort) -> None:
        if port in self.ports:
            self.ports.remove(port)

    def busy_until(self) -> float:
        """Loop time when every queued character of every port has left the wire."""
        return max((p.transmitting_until for p in self.ports), default=0.0)

    def _transmit(self, port: LinePort, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        line = port.settings
        ct = line.char_time
        start = max(now, port._tx_until)
        mask = line.data_mask
        for i, b in enumerate(data):
            s = start + i * ct
            sym = _Symbol(port, s, s + ct, b & mask, line)
            self._symbols.append(sym)
            loop.call_at(sym.end, self._deliver, sym)
        port._tx_until = start + len(data) * ct
        self.chars_on_wire += len(data)

    def _listens(self, sender: LinePort, receiver: LinePort) -> bool:
        if sender is receiver:
            return receiver.echo
        return self.hears(sender, receiver)

    def _deliver(self, sym: _Symbol) -> None:
        overlapping = [
            o
            for o in self._symbols
            if o is not sym
            and o.sender is not sym.sender
            and o.start < sym.end - _EPS
            and sym.start < o.end - _EPS
        ]
        for receiver in list(self.ports):
            if receiver.closed or not self._listens(sym.sender, receiver):
                continue
            others = [o for o in overlapping if self._listens(o.sender, receiver)]
            rid = id(receiver)
            if any(rid in o.delivered and abs(o.start - sym.start) < _EPS for o in others):
                sym.delivered.add(rid)  # merged into a character already delivered
                continue
            value = sym.value
            if others:
                values = (sym.value, *(o.value for o in others))
                value = self.combine(values) & 0xFF
                self.collision_count += 1
                self.collisions.append(
                    Collision(
                        sym.end,
                        receiver.name,
                        (sym.sender.name, *(o.sender.name for o in others)),
                        values,
                        value,
                    )
                )
            rline = receiver.settings
            if not sym.line.same_framing(rline):
                value = _garble(value)
                self.line_errors += 1
            receiver._feed(bytes((value & rline.data_mask,)))
            sym.delivered.add(rid)
        self._deliveries += 1
        if self._deliveries % 256 == 0:
            horizon = sym.end - 1.0
            self._symbols = [o for o in self._symbols if o.end > horizon]
