"""A virtual wired M-Bus: up to 250 simulated slaves behind one port, with line timing.

:class:`MBusSimulator` reads the master's requests from any ``Transport`` (an in-memory
:class:`~meterbridge.transports.VirtualLine` port in virtual time, a TCP connection, a PTY),
lets every addressed :class:`~meterbridge.simulator.mbus_slave.SimulatedSlave` answer,
and writes the answers back:

* **Reply window.** Each slave answers ``reply_delay_bits`` bit times after the request's
  last stop bit (EN 13757-2: between 11 and 330 bit times + 50 ms), at the bus baud rate.
  On a transport without a serial line (TCP) the simulator also waits the line time of the
  request and of the reply, so that it behaves like a real transparent M-Bus/TCP gateway.
* **Collisions.** When several slaves answer, their bits are combined on the wire as the
  M-Bus physical layer does (a space is a slave drawing current: any 0 wins, wired AND)
  with each slave's own delay, and the master's UART re-samples the result: two E5 sent at
  the same instant read as one clean E5, anything shifted or longer comes out garbled.
* **Addresses.** Primary addresses 0..250 (several slaves may share one, 0 is the
  unconfigured address), 253 for the slave selected by secondary address, 254 broadcast
  with reply (every slave answers: a collision), 255 broadcast without reply.
* **Faults** by configuration (:class:`~meterbridge.simulator.faults.FaultConfig`): dropped,
  flipped and extra bytes, late replies, silent windows; and per slave ``silent``.

:func:`build_bus` makes a bus of N meters (electricity, heat, water, gas in turn) with
distinct primary addresses 1..N unless told otherwise, and consecutive or random serial
numbers, deterministic for a seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from meterbridge.errors import ProtocolError
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.mbus import LinkNoise, MBusLink, Request, SetBaudRate, decode_request
from meterbridge.protocols.mbus.link import SingleCharacter
from meterbridge.simulator.faults import FaultConfig, FaultyTransport
from meterbridge.simulator.mbus_slave import KINDS, SimulatedSlave, make_slave
from meterbridge.transports import LineSettings, Transport
from meterbridge.transports.line import MBUS_2400

__all__ = ["BusStats", "MBusSimulator", "build_bus", "merge_replies"]

MAX_SLAVES = 250
_STREAM_CHUNK = 8  # characters per write when emulating line time on a socket


def _char_bits(value: int) -> list[int]:
    """The 11 bits of one 8E1 character on the wire: start, 8 data bits LSB first, even parity, stop."""
    data = [(value >> i) & 1 for i in range(8)]
    return [0, *data, sum(data) & 1, 1]


def merge_replies(replies: Sequence[tuple[float, bytes]]) -> tuple[float, bytes]:
    """What the master's UART reads when several slaves send at once.

    ``replies`` are ``(delay_bits, data)``; returns ``(delay_bits of the first start bit,
    bytes read)``. Bits are combined with wired AND at one-bit resolution and re-sampled:
    a start bit (0 after idle 1) begins a character of 11 bits.
    """
    if len(replies) == 1:
        return replies[0]
    start = min(d for d, _ in replies)
    length = max(round(d - start) + 11 * len(data) for d, data in replies) + 11
    line = [1] * length
    for delay, data in replies:
        offset = round(delay - start)
        for j, value in enumerate(data):
            for k, bit in enumerate(_char_bits(value)):
                if bit == 0:
                    line[offset + 11 * j + k] = 0
    out = bytearray()
    i = 0
    while i < length:
        if line[i] == 1:
            i += 1
            continue
        value = 0
        for k in range(8):
            if i + 1 + k < length and line[i + 1 + k]:
                value |= 1 << k
        out.append(value)
        i += 10  # sample the stop bit position, then hunt for the next start bit
        while i < length and line[i] == 0:  # a framing error: wait for the line to go idle
            i += 1
    return start, bytes(out)


@dataclass(slots=True)
class BusStats:
    requests: int = 0
    replies: int = 0
    collisions: int = 0
    ignored: int = 0  # frames that were not requests, or noise from the master side
    by_slave: dict[str, int] = field(default_factory=dict)


class MBusSimulator:
    """The virtual bus (see the module docstring)."""

    def __init__(
        self,
        slaves: Sequence[SimulatedSlave],
        *,
        line: LineSettings = MBUS_2400,
        faults: FaultConfig | None = None,
        emulate_line_time: bool | None = None,
    ) -> None:
        if len(slaves) > MAX_SLAVES:
            raise ValueError(f"an M-Bus segment holds at most {MAX_SLAVES} slaves, got {len(slaves)}")
        self.slaves = list(slaves)
        self.line = line
        self.faults = faults
        self.emulate_line_time = emulate_line_time
        self.stats = BusStats()
        self._t0: float | None = None

    @property
    def baud(self) -> int:
        return self.line.baud

    def slave(self, primary: int) -> SimulatedSlave:
        """The (first) slave with this primary address."""
        for s in self.slaves:
            if s.primary == primary:
                return s
        raise KeyError(primary)

    def answers(self, request: Request, t: float) -> list[tuple[float, bytes, SimulatedSlave]]:
        """Every slave's answer to ``request`` at time ``t``: ``(delay_bits, bytes, slave)``."""
        out = []
        for slave in self.slaves:
            if slave.baud != self.line.baud:
                continue  # listens at another speed: hears only noise
            reply = slave.respond(request, t)
            if reply is not None:
                out.append((slave.reply_delay_bits, reply, slave))
        return out

    def handle(self, request: Request, t: float) -> tuple[float, bytes] | None:
        """The merged reply the master receives, or None when nobody answers."""
        self.stats.requests += 1
        answers = self.answers(request, t)
        if not answers:
            return None
        self.stats.replies += 1
        for _, _, slave in answers:
            self.stats.by_slave[slave.label] = self.stats.by_slave.get(slave.label, 0) + 1
        if len(answers) > 1:
            self.stats.collisions += 1
        return merge_replies([(d, data) for d, data, _ in answers])

    async def serve(self, transport: Transport) -> None:
        """Answer requests arriving on ``transport`` until it closes."""
        clock = transport.clock
        if self._t0 is None:
            self._t0 = clock.monotonic()
        emulate = self.emulate_line_time if self.emulate_line_time is not None else transport.line is None
        writer: Transport = (
            FaultyTransport(transport, self.faults) if self.faults and self.faults.any else transport
        )
        link = MBusLink(drop_echo=False)
        while True:
            data = await transport.read()
            link.receive_data(data)
            while (event := link.next_event()) is not NEED_DATA:
                if isinstance(event, LinkNoise | SingleCharacter) or event.c & 0x40 == 0:
                    self.stats.ignored += 1
                    continue
                try:
                    request = decode_request(event)
                except ProtocolError:
                    self.stats.ignored += 1
                    continue
                t = clock.monotonic() - self._t0
                reply = self.handle(request, t)
                if reply is None:
                    continue
                delay_bits, wire = reply
                line = self.line
                if not emulate:  # the transport times the characters itself (VirtualLine, PTY)
                    await clock.sleep(delay_bits * line.bit_time)
                    await writer.write(wire)
                else:  # TCP: the serial side of a gateway sends the request, waits, streams the reply
                    await clock.sleep(line.transmit_time(len(event.encode())) + delay_bits * line.bit_time)
                    for i in range(0, len(wire), _STREAM_CHUNK):
                        chunk = wire[i : i + _STREAM_CHUNK]
                        await clock.sleep(line.transmit_time(len(chunk)))
                        await writer.write(chunk)
                if isinstance(request, SetBaudRate):
                    await writer.drain()
                    await self._switch_baud(transport, request)

    async def _switch_baud(self, transport: Transport, request: SetBaudRate) -> None:
        """The addressed slave(s) now talk at the new speed; the bus port follows the master,
        which switches after the acknowledgement. Slaves left at the old speed no longer
        understand requests (they only hear noise) until the master switches back."""
        new = self.line.with_baud(request.baud)
        for slave in self.slaves:
            if slave.baud == self.line.baud and slave.addressed(request.address):
                slave.baud = request.baud
        self.line = new
        if transport.line is not None:
            with contextlib.suppress(Exception):
                await transport.set_line(new)


def build_bus(
    meters: int,
    *,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    first_id: int | None = None,
    consecutive: bool = False,
    primary: Sequence[int] | None = None,
    multi_telegram: Sequence[int] = (),
    silent: Sequence[int] = (),
    line: LineSettings = MBUS_2400,
    faults: FaultConfig | None = None,
    reply_delay_bits: float | None = None,
    epoch: datetime | None = None,
) -> MBusSimulator:
    """A bus of ``meters`` slaves (see the module docstring).

    ``primary``: the primary address of each meter (default 1..N); ``consecutive``: serial
    numbers ``first_id, first_id + 1, ...``; otherwise random distinct 8-digit numbers.
    ``multi_telegram``: indices of meters with 14 months of history (two or more telegrams);
    ``silent``: indices of meters that never answer. ``epoch``: what the meters' clocks read when the
    bus starts serving (default 2026-01-01 00:00 UTC, so that telegrams are reproducible).
    """
    if not 0 <= meters <= MAX_SLAVES:
        raise ValueError(f"meters must be 0..{MAX_SLAVES}, got {meters}")
    rng = random.Random(seed)
    addresses = list(primary) if primary is not None else list(range(1, meters + 1))
    if len(addresses) != meters:
        raise ValueError("give one primary address per meter")
    for a in addresses:
        if not 0 <= a <= 250:
            raise ValueError(f"primary address {a} outside 0..250")
    if consecutive:
        start = first_id if first_id is not None else rng.randrange(10_000_000, 99_999_999 - meters)
        ids = [start + i for i in range(meters)]
    else:
        pool: set[int] = set()
        while len(pool) < meters:
            pool.add(rng.randrange(10_000_000, 100_000_000))
        ids = sorted(pool, key=lambda _: rng.random())
    slaves = []
    for i in range(meters):
        slave = make_slave(
            addresses[i],
            ids[i],
            kinds[i % len(kinds)],
            seed=seed,
            history_months=14 if i in multi_telegram else 0,
            reply_delay_bits=reply_delay_bits,
            epoch=epoch,
        )
        slave.silent = i in silent
        slave.baud = line.baud
        slaves.append(slave)
    return MBusSimulator(slaves, line=line, faults=faults)


async def run_tcp(simulator: MBusSimulator, host: str, port: int) -> None:
    """Serve the bus on ``tcp://host:port`` (a transparent M-Bus/TCP gateway) until cancelled."""
    from meterbridge.transports.sockets import serve_tcp

    lock = asyncio.Lock()

    async def handler(transport: Transport) -> None:
        async with lock:  # one master at a time, like a serial port behind a gateway
            await simulator.serve(transport)

    server = await serve_tcp(handler, host, port)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
