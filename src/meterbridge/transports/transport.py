"""The one async byte-stream interface every port implements, and its shared machinery.

:class:`Transport` is what drivers and simulators talk to. Every implementation
(serial, PTY, TCP, UDP, in-memory pipe, virtual bus port) and every wrapper
(echo canceller, frame logger, reopening port) follows the same rules:

* ``await read(max_bytes=4096, timeout=None)`` returns 1..``max_bytes`` bytes as soon
  as at least one byte is there. If nothing arrives within ``timeout`` seconds it
  raises :class:`TransportTimeout` (a ``TimeoutError``); ``timeout=None`` waits forever.
  When the peer closed or the device vanished it raises :class:`TransportClosed`
  (a ``ConnectionError``) once the buffered bytes are consumed.
* ``await read_exactly(n, timeout=None)`` returns exactly ``n`` bytes or raises; on
  timeout the bytes received so far stay buffered for the next read (nothing is lost).
* ``await read_until(terminator, max_bytes, timeout)`` returns up to and including
  the terminator.
* ``await write(data)`` queues bytes; ``await drain()`` returns when they have left
  (serial: ``tcdrain``; virtual line: the last stop bit was sent).
* ``discard_input()`` drops everything received and not yet read (and the OS input
  queue of a serial port): call it before sending a request to start clean.
* ``line`` is the current :class:`~meterbridge.transports.line.LineSettings` (``None`` for
  sockets that have no line); ``await set_line(settings)`` drains what was written at
  the old settings, then switches (IEC 62056-21: sign on at 300 7E1, acknowledge, switch).
  On sockets ``set_line`` only records the settings (a TCP-to-serial gateway has its own).
* ``clock`` is the :class:`~meterbridge.transports.clock.Clock` timeouts are measured on.
* ``await close()`` is idempotent; a closed transport raises :class:`TransportClosed`.
* One reader at a time: reads are not meant to run concurrently on one transport
  (a write may run while a read waits).

Time-outs are measured on the transport's clock, so a transport used with a
``VirtualClock`` times out in virtual time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol, runtime_checkable

from meterbridge.errors import TransportError
from meterbridge.transports.clock import Clock, RealClock
from meterbridge.transports.line import LineSettings

__all__ = [
    "MAX_BUFFERED",
    "BufferedTransport",
    "EventCallback",
    "Transport",
    "TransportClosed",
    "TransportEvent",
    "TransportTimeout",
    "TransportWrapper",
]

MAX_BUFFERED: Final = 1 << 20
"""Unread input a transport holds before it stops reading from its source (1 MiB)."""


class TransportTimeout(TransportError, TimeoutError):
    """Nothing (or not enough) arrived within the time-out. ``received`` bytes stay buffered."""

    def __init__(self, message: str, *, received: int = 0) -> None:
        super().__init__(message)
        self.received = received


class TransportClosed(TransportError, ConnectionError):
    """The transport was closed, the peer hung up, or the device vanished."""


@dataclass(frozen=True, slots=True)
class TransportEvent:
    """Something that happened to a port: ``opened``, ``lost``, ``retry``, ``reopened``, ``closed``."""

    kind: str
    name: str
    at: datetime
    detail: str = ""
    attempt: int = 0


@runtime_checkable
class Transport(Protocol):
    """An async byte stream with an optional serial line (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def line(self) -> LineSettings | None: ...

    @property
    def closed(self) -> bool: ...

    async def read(self, max_bytes: int = 4096, timeout: float | None = None) -> bytes: ...

    async def read_exactly(self, n: int, timeout: float | None = None) -> bytes: ...

    async def read_until(
        self, terminator: bytes, max_bytes: int = 65536, timeout: float | None = None
    ) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def discard_input(self) -> None: ...

    async def set_line(self, line: LineSettings) -> None: ...

    async def close(self) -> None: ...


class BufferedTransport:
    """Base of the concrete transports: an input buffer fed by callbacks, read by coroutines.

    A subclass calls :meth:`_feed` with bytes that arrived and :meth:`_feed_eof` when the
    source ended, and implements ``_send``, ``_apply_line``, ``_close`` (and optionally
    ``_drain``, ``_discard_os_input``, ``_pause_source``/``_resume_source``).
    """

    def __init__(self, name: str, *, clock: Clock | None = None, line: LineSettings | None = None) -> None:
        self.name = name
        self.clock: Clock = clock if clock is not None else RealClock()
        self._line = line
        self._rx = bytearray()
        self._eof: BaseException | None = None
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    # ----------------------------------------------------------------- source side
    def _feed(self, data: bytes) -> None:
        if not data:
            return
        self._rx += data
        self._wake()
        if len(self._rx) > MAX_BUFFERED and not self._paused:
            self._paused = True
            self._pause_source()

    def _feed_eof(self, exc: BaseException | None = None) -> None:
        if self._eof is None:
            self._eof = exc if exc is not None else TransportClosed(f"{self.name}: closed by the peer")
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _pause_source(self) -> None:  # pragma: no cover - overridden where a source can pause
        pass

    def _resume_source(self) -> None:  # pragma: no cover
        pass

    # ----------------------------------------------------------------- reader side
    @property
    def line(self) -> LineSettings | None:
        return self._line

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosed(f"{self.name}: transport is closed")

    async def _wait_input(self, deadline: float | None, wanted: int) -> None:
        """Wait until at least ``wanted`` bytes are buffered, the source ended, or the deadline."""
        while len(self._rx) < wanted:
            self._check_open()
            if self._eof is not None:
                raise self._eof_error()
            remaining = None if deadline is None else deadline - self.clock.monotonic()
            if remaining is not None and remaining <= 0:
                raise TransportTimeout(
                    f"{self.name}: timed out waiting for {wanted - len(self._rx)} more byte(s)",
                    received=len(self._rx),
                )
            loop = asyncio.get_running_loop()
            self._waiter = waiter = loop.create_future()
            try:
                await self.clock.wait_for(waiter, remaining)
            except TimeoutError:
                if len(self._rx) >= wanted:
                    return
                raise TransportTimeout(
                    f"{self.name}: timed out waiting for {wanted - len(self._rx)} more byte(s)",
                    received=len(self._rx),
                ) from None
            finally:
                if self._waiter is waiter:
                    self._waiter = None
                if not waiter.done():
                    waiter.cancel()

    def _eof_error(self) -> BaseException:
        eof = self._eof
        assert eof is not None
        if isinstance(eof, TransportClosed):
            return TransportClosed(str(eof))
        err = TransportClosed(f"{self.name}: {eof}")
        err.__cause__ = eof
        return err

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else self.clock.monotonic() + max(0.0, timeout)

    def _take(self, n: int) -> bytes:
        data = bytes(self._rx[:n])
        del self._rx[:n]
        if self._paused and len(self._rx) <= MAX_BUFFERED // 2:
            self._paused = False
            self._resume_source()
        return data

    async def read(self, max_bytes: int = 4096, timeout: float | None = None) -> bytes:
        if max_bytes <= 0:
            raise ValueError(f"{self.name}: read needs max_bytes >= 1, got {max_bytes}")
        await self._wait_input(self._deadline(timeout), 1)
        return self._take(max_bytes)

    async def read_exactly(self, n: int, timeout: float | None = None) -> bytes:
        if n < 0:
            raise ValueError(f"{self.name}: read_exactly needs n >= 0, got {n}")
        await self._wait_input(self._deadline(timeout), n)
        return self._take(n)

    async def read_until(
        self, terminator: bytes, max_bytes: int = 65536, timeout: float | None = None
    ) -> bytes:
        if not terminator:
            raise ValueError(f"{self.name}: read_until needs a non-empty terminator")
        deadline = self._deadline(timeout)
        searched = 0
        while True:
            idx = self._rx.find(terminator, max(0, searched - len(terminator) + 1))
            if idx >= 0 and idx + len(terminator) <= max_bytes:
                return self._take(idx + len(terminator))
            if len(self._rx) >= max_bytes:
                raise TransportError(
                    f"{self.name}: no {terminator.hex(' ')} within {max_bytes} bytes "
                    f"(the bytes stay buffered; discard_input() drops them)"
                )
            searched = len(self._rx)
            await self._wait_input(deadline, len(self._rx) + 1)

    def discard_input(self) -> None:
        self._rx.clear()
        self._discard_os_input()
        if self._paused:
            self._paused = False
            self._resume_source()

    def _discard_os_input(self) -> None:
        pass

    # ----------------------------------------------------------------- writer side
    async def write(self, data: bytes) -> None:
        self._check_open()
        if self._eof is not None and not isinstance(self._eof, TransportClosed):
            raise self._eof_error()
        if data:
            await self._send(bytes(data))

    async def drain(self) -> None:
        self._check_open()
        await self._drain()

    async def set_line(self, line: LineSettings) -> None:
        self._check_open()
        if not isinstance(line, LineSettings):
            raise TypeError(f"{self.name}: set_line needs LineSettings, got {type(line).__name__}")
        await self._drain()
        await self._apply_line(line)
        self._line = line

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        finally:
            self._wake()

    # ----------------------------------------------------------------- to implement
    async def _send(self, data: bytes) -> None:
        raise NotImplementedError

    async def _drain(self) -> None:
        pass

    async def _apply_line(self, line: LineSettings) -> None:
        pass

    async def _close(self) -> None:
        pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.name} {state} line={self._line}>"


class TransportWrapper:
    """Forwards everything to ``inner``; wrappers override ``_read`` and what else they change.

    ``read_exactly`` and ``read_until`` are built on ``read`` so that a filtering wrapper
    (echo cancellation) applies to them too; bytes read past what was asked are kept
    in a push-back buffer and returned first by the next read.
    """

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self._pushback = b""

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    @property
    def line(self) -> LineSettings | None:
        return self.inner.line

    @property
    def closed(self) -> bool:
        return self.inner.closed

    async def read(self, max_bytes: int = 4096, timeout: float | None = None) -> bytes:
        if max_bytes <= 0:
            raise ValueError(f"{self.name}: read needs max_bytes >= 1, got {max_bytes}")
        if self._pushback:
            data, self._pushback = self._pushback[:max_bytes], self._pushback[max_bytes:]
            return data
        return await self._read(max_bytes, timeout)

    async def _read(self, max_bytes: int, timeout: float | None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    def _unread(self, data: bytes) -> None:
        if data:
            self._pushback = bytes(data) + self._pushback

    def _remaining(self, deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - self.clock.monotonic())

    async def read_exactly(self, n: int, timeout: float | None = None) -> bytes:
        if n < 0:
            raise ValueError(f"{self.name}: read_exactly needs n >= 0, got {n}")
        deadline = None if timeout is None else self.clock.monotonic() + max(0.0, timeout)
        out = bytearray()
        try:
            while len(out) < n:
                out += await self.read(n - len(out), self._remaining(deadline))
        except TransportTimeout:
            got = len(out)
            self._unread(bytes(out))
            raise TransportTimeout(
                f"{self.name}: timed out waiting for {n - got} more byte(s)", received=got
            ) from None
        except BaseException:
            self._unread(bytes(out))
            raise
        return bytes(out)

    async def read_until(
        self, terminator: bytes, max_bytes: int = 65536, timeout: float | None = None
    ) -> bytes:
        if not terminator:
            raise ValueError(f"{self.name}: read_until needs a non-empty terminator")
        deadline = None if timeout is None else self.clock.monotonic() + max(0.0, timeout)
        out = bytearray()
        while True:
            idx = out.find(terminator)
            if idx >= 0 and idx + len(terminator) <= max_bytes:
                self._unread(bytes(out[idx + len(terminator) :]))
                return bytes(out[: idx + len(terminator)])
            if len(out) >= max_bytes:
                self._unread(bytes(out))
                raise TransportError(f"{self.name}: no {terminator.hex(' ')} within {max_bytes} bytes")
            try:
                out += await self.read(max_bytes - len(out), self._remaining(deadline))
            except BaseException:
                self._unread(bytes(out))
                raise

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def drain(self) -> None:
        await self.inner.drain()

    def discard_input(self) -> None:
        self._pushback = b""
        self.inner.discard_input()

    async def set_line(self, line: LineSettings) -> None:
        await self.inner.set_line(line)

    async def close(self) -> None:
        await self.inner.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} around {self.inner!r}>"


EventCallback = Callable[[TransportEvent], None]
"""Receives :class:`TransportEvent` (port lost, reopened ...); must not block."""
