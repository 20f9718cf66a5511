"""TCP and UDP transports (M-Bus gateways, DLMS wrapper port 4059) and a TCP server.

* :func:`open_tcp` connects and returns a :class:`TcpTransport`.
* :func:`open_udp` returns a :class:`UdpTransport` "connected" to one peer: each
  ``write`` is one datagram, ``read`` returns the bytes of received datagrams in order
  (datagram boundaries are not kept; ``read_datagram`` keeps them).
* :func:`serve_tcp` accepts connections and runs ``handler(transport)`` for each (a
  simulated meter behind a TCP-to-serial gateway).

Sockets have no serial line: ``line`` is ``None`` unless ``set_line`` recorded one
(useful to compute timing of the serial side behind a gateway); it changes nothing
on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable

from meterbridge.transports.clock import Clock
from meterbridge.transports.line import LineSettings
from meterbridge.transports.transport import BufferedTransport, TransportClosed, TransportTimeout

__all__ = ["TcpServer", "TcpTransport", "UdpTransport", "open_tcp", "open_udp", "serve_tcp"]


class _StreamProtocol(asyncio.Protocol):
    def __init__(self, owner: TcpTransport) -> None:
        self.owner = owner
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.on_connected: Callable[[], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.owner._tr = transport
        if self.on_connected is not None:
            self.on_connected()

    def data_received(self, data: bytes) -> None:
        self.owner._feed(data)

    def eof_received(self) -> bool:
        self.owner._feed_eof(TransportClosed(f"{self.owner.name}: the peer closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        detail = f" ({exc})" if exc else ""
        self.owner._feed_eof(TransportClosed(f"{self.owner.name}: connection lost{detail}"))
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()


class TcpTransport(BufferedTransport):
    """One TCP connection."""

    def __init__(self, name: str, *, clock: Clock | None = None, line: LineSettings | None = None) -> None:
        super().__init__(name, clock=clock, line=line)
        self._tr: asyncio.Transport | None = None
        self._protocol = _StreamProtocol(self)

    @property
    def peer(self) -> tuple[str, int] | None:
        if self._tr is None:
            return None
        info = self._tr.get_extra_info("peername")
        return (str(info[0]), int(info[1])) if info else None

    def _pause_source(self) -> None:
        if self._tr is not None and not self._tr.is_closing():
            self._tr.pause_reading()

    def _resume_source(self) -> None:
        if self._tr is not None and not self._tr.is_closing():
            self._tr.resume_reading()

    async def _send(self, data: bytes) -> None:
        tr = self._tr
        if tr is None or tr.is_closing():
            raise TransportClosed(f"{self.name}: connection is closed")
        tr.write(data)
        await self._drain()

    async def _drain(self) -> None:
        await self._protocol._can_write.wait()

    async def _close(self) -> None:
        if self._tr is not None:
            self._tr.close()
        self._feed_eof(TransportClosed(f"{self.name}: transport is closed"))


async def open_tcp(
    host: str,
    port: int,
    *,
    clock: Clock | None = None,
    connect_timeout: float = 10.0,
    line: LineSettings | None = None,
) -> TcpTransport:
    """Connect to ``host:port``; raise ``TransportClosed`` (or ``TransportTimeout``) naming it."""
    name = f"tcp://{host}:{port}"
    transport = TcpTransport(name, clock=clock, line=line)
    loop = asyncio.get_running_loop()
    try:
        await transport.clock.wait_for(
            loop.create_connection(lambda: transport._protocol, host, port), connect_timeout
        )
    except TimeoutError:
        raise TransportTimeout(f"{name}: no connection within {connect_timeout} s") from None
    except OSError as exc:
        raise TransportClosed(f"{name}: cannot connect ({exc.strerror or exc})") from exc
    return transport


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.owner._datagrams.append(data)
        self.owner._feed(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: the peer is not there (yet). Keep listening;
        # the reader's time-out reports the silence.
        self.owner.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._feed_eof(TransportClosed(f"{self.owner.name}: socket closed"))


class UdpTransport(BufferedTransport):
    """A UDP socket bound to one peer; see the module docstring."""

    def __init__(self, name: str, *, clock: Clock | None = None) -> None:
        super().__init__(name, clock=clock)
        self._tr: asyncio.DatagramTransport | None = None
        self._datagrams: deque[bytes] = deque()
        self.errors: list[Exception] = []

    @property
    def local_address(self) -> tuple[str, int]:
        assert self._tr is not None
        info = self._tr.get_extra_info("sockname")
        return (str(info[0]), int(info[1]))

    async def read_datagram(self, timeout: float | None = None) -> bytes:
        """Return the next whole datagram (consumes the same bytes from the stream view)."""
        await self._wait_input(self._deadline(timeout), 1)
        if not self._datagrams:  # the stream view already consumed part of it
            return self._take(len(self._rx))
        gram = self._datagrams.popleft()
        return self._take(len(gram))

    def _take(self, n: int) -> bytes:
        data = super()._take(n)
        left = n
        while left and self._datagrams:
            head = self._datagrams[0]
            if len(head) <= left:
                left -= len(head)
                self._datagrams.popleft()
            else:
                self._datagrams[0] = head[left:]
                left = 0
        return data

    def discard_input(self) -> None:
        self._datagrams.clear()
        super().discard_input()

    async def _send(self, data: bytes) -> None:
        if self._tr is None or self._tr.is_closing():
            raise TransportClosed(f"{self.name}: socket is closed")
        self._tr.sendto(data)

    async def _close(self) -> None:
        if self._tr is not None:
            self._tr.close()
        self._feed_eof(TransportClosed(f"{self.name}: transport is closed"))


async def open_udp(
    host: str,
    port: int,
    *,
    local: tuple[str, int] | None = None,
    clock: Clock | None = None,
) -> UdpTransport:
    """A UDP transport sending to ``host:port`` and receiving only from there."""
    name = f"udp://{host}:{port}"
    transport = UdpTransport(name, clock=clock)
    loop = asyncio.get_running_loop()
    try:
        tr, _ = await loop.create_datagram_endpoint(
            lambda: _DatagramProtocol(transport), remote_addr=(host, port), local_addr=local
        )
    except OSError as exc:
        raise TransportClosed(f"{name}: cannot open socket ({exc.strerror or exc})") from exc
    transport._tr = tr
    return transport


class TcpServer:
    """A listening socket started by :func:`serve_tcp`; ``port`` is the bound port."""

    def __init__(self, server: asyncio.Server, tasks: set[asyncio.Task[None]]) -> None:
        self._server = server
        self._tasks = tasks

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._server.sockets[0].getsockname()[0])

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()

    async def __aenter__(self) -> TcpServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def serve_tcp(
    handler: Callable[[TcpTransport], Awaitable[None]],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: Clock | None = None,
) -> TcpServer:
    """Listen on ``host:port`` (0: any free port); run ``handler`` per connection, then close it."""
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def run(transport: TcpTransport) -> None:
        try:
            await handler(transport)
        except TransportClosed:
            pass  # the client went away: normal end of a session
        finally:
            await transport.close()

    def factory() -> asyncio.Protocol:
        transport = TcpTransport(f"tcp-server://{host}:{port}", clock=clock)

        def connected() -> None:
            if (peer := transport.peer) is not None:
                transport.name = f"tcp-peer://{peer[0]}:{peer[1]}"
            task = loop.create_task(run(transport))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        transport._protocol.on_connected = connected
        return transport._protocol

    try:
        server = await loop.create_server(factory, host, port)
    except OSError as exc:
        raise TransportClosed(f"tcp://{host}:{port}: cannot listen ({exc.strerror or exc})") from exc
    return TcpServer(server, tasks)
