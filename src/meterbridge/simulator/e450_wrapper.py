"""The virtual E450 as a G3-PLC meter reached by a head-end: DLMS over the IEC 62056-47 wrapper.

A head-end reaches G3-PLC meters through the data concentrator with wrapper-framed DLMS over
TCP or UDP (port 4059). Every APDU travels with an 8-byte header (version 1, source wPort,
destination wPort, length; codec in :mod:`meterbridge.protocols.dlms.wrapper`). The wPorts
are the DLMS SAPs: the client's (16 = public client, 1 = management client ...) and the
meter's logical device (1 = management logical device, the only one an E450 has).

This module holds the parts that do not depend on the socket kind:

* :class:`WrapperSessions` - sans-IO: a :class:`~meterbridge.protocols.dlms.wrapper.WrapperFrame`
  in, the reply frame (or ``None``) out. It keeps one association per (peer, client wPort,
  server wPort), at most ``max_associations`` of them (the one idle longest goes first), and
  answers each APDU with the association handler the simulator gives it (the same
  ``DlmsServer`` as on the optical port: AARQ/AARE, GET normal / with-list / with-block, SET,
  ACTION, RLRQ/RLRE). A frame for a logical device the meter does not have is dropped, as
  IEC 62056-47 says; an association idle for ``inactivity`` seconds is forgotten (UDP has no
  connection whose end would tell).
* :class:`WrapperUdpServer` - a UDP socket: each datagram is one frame, each reply one
  datagram to the sender. A datagram that is no valid wrapper frame is dropped (counted in
  ``malformed``). Replies go out through a :class:`~meterbridge.simulator.faults.FaultyTransport`
  when faults are configured (a lossy power line).

The TCP side is :meth:`meterbridge.simulator.e450.E450Simulator.serve_wrapper` (one call per
accepted connection, e.g. with :func:`meterbridge.transports.serve_tcp`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Hashable
from typing import Final

from meterbridge.errors import ProtocolError
from meterbridge.protocols.dlms.wrapper import WrapperFrame
from meterbridge.simulator.faults import FaultConfig, FaultyTransport
from meterbridge.transports import BufferedTransport, Clock, Transport

__all__ = [
    "MANAGEMENT_LOGICAL_DEVICE",
    "MAX_ASSOCIATIONS",
    "MAX_WRAPPER_APDU",
    "AssociationHandler",
    "WrapperSessions",
    "WrapperUdpServer",
]

log = logging.getLogger(__name__)

MANAGEMENT_LOGICAL_DEVICE: Final = 1
MAX_WRAPPER_APDU: Final = 2048
"""The longest APDU the meter accepts in one wrapper frame (its receive buffer); a TCP
connection that announces a longer one is closed."""

_MAX_PEERS: Final = 256
MAX_ASSOCIATIONS: Final = 16
"""Associations a :class:`WrapperSessions` holds at once (per TCP connection, or for all UDP peers)."""

AssociationHandler = Callable[[bytes], bytes]
"""One association's request APDU -> reply APDU (built by the simulator per client SAP)."""


class WrapperSessions:
    """Associations of wrapper peers (see the module docstring); sans-IO, time passed in."""

    def __init__(
        self,
        new_association: Callable[[int], AssociationHandler],
        *,
        logical_devices: Collection[int] = (MANAGEMENT_LOGICAL_DEVICE,),
        inactivity: float | None = None,
        max_associations: int = MAX_ASSOCIATIONS,
    ) -> None:
        self._new_association = new_association
        self.logical_devices = frozenset(logical_devices)
        self.inactivity = inactivity
        self.max_associations = max_associations
        self._associations: dict[tuple[Hashable, int, int], tuple[AssociationHandler, float]] = {}
        self.answered = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._associations)

    def handle(self, frame: WrapperFrame, *, peer: Hashable = None, now: float = 0.0) -> WrapperFrame | None:
        """The reply to ``frame`` from ``peer`` at time ``now`` (seconds), or ``None`` if it is dropped."""
        if frame.destination not in self.logical_devices:
            self.dropped += 1
            log.debug("wrapper: no logical device at wPort %d, frame dropped", frame.destination)
            return None
        self._expire(now)
        key = (peer, frame.source, frame.destination)
        found = self._associations.pop(key, None)
        if found is None:
            if len(self._associations) >= self.max_associations:
                # a meter holds few associations: the one idle longest is dropped
                del self._associations[next(iter(self._associations))]
            handler = self._new_association(frame.source)
        else:
            handler = found[0]
        self._associations[key] = (handler, now)  # re-inserted: the dict stays in order of last use
        self.answered += 1
        return WrapperFrame(frame.destination, frame.source, handler(frame.data))

    def _expire(self, now: float) -> None:
        if self.inactivity is None:
            return
        limit = now - self.inactivity
        while self._associations:  # in order of last use: the idle ones are at the front
            key, (_, last) = next(iter(self._associations.items()))
            if last >= limit:
                return
            del self._associations[key]


class _DatagramReply(BufferedTransport):
    """The reply path to one UDP peer, as a Transport so that faults can damage it."""

    def __init__(self, endpoint: asyncio.DatagramTransport, peer: tuple[str, int], clock: Clock) -> None:
        super().__init__(f"udp-peer://{peer[0]}:{peer[1]}", clock=clock)
        self._endpoint = endpoint
        self._peer = peer

    async def _send(self, data: bytes) -> None:
        if not self._endpoint.is_closing():
            self._endpoint.sendto(data, self._peer)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: WrapperUdpServer) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.owner._received(data, (str(addr[0]), int(addr[1])))


class WrapperUdpServer:
    """Answers wrapper datagrams on a UDP socket; made by ``E450Simulator.serve_wrapper_udp``."""

    def __init__(self, sessions: WrapperSessions, *, clock: Clock, faults: FaultConfig | None = None) -> None:
        self.sessions = sessions
        self.clock = clock
        self.faults = faults
        self.malformed = 0
        self._endpoint: asyncio.DatagramTransport | None = None
        self._replies: dict[tuple[str, int], Transport] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> WrapperUdpServer:
        loop = asyncio.get_running_loop()
        self._endpoint, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        return self

    @property
    def host(self) -> str:
        assert self._endpoint is not None
        return str(self._endpoint.get_extra_info("sockname")[0])

    @property
    def port(self) -> int:
        assert self._endpoint is not None
        return int(self._endpoint.get_extra_info("sockname")[1])

    def _received(self, data: bytes, peer: tuple[str, int]) -> None:
        try:
            frame = WrapperFrame.decode(data)
        except ProtocolError as exc:
            self.malformed += 1
            log.debug("wrapper/udp from %s:%d: %s", peer[0], peer[1], exc)
            return
        # answered in arrival order; only the write (a late reply under faults) runs as a task
        reply = self.sessions.handle(frame, peer=peer, now=self.clock.monotonic())
        if reply is None or self._endpoint is None:
            return
        task = asyncio.get_running_loop().create_task(self._reply_port(peer).write(reply.encode()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _reply_port(self, peer: tuple[str, int]) -> Transport:
        port = self._replies.get(peer)
        if port is None:
            assert self._endpoint is not None
            if len(self._replies) >= _MAX_PEERS:  # forget the oldest peer's reply path
                del self._replies[next(iter(self._replies))]
            port = _DatagramReply(self._endpoint, peer, self.clock)
            if self.faults is not None and self.faults.any:
                port = FaultyTransport(port, self.faults)
            self._replies[peer] = port
        return port

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._endpoint is not None:
            self._endpoint.close()

    async def __aenter__(self) -> WrapperUdpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
