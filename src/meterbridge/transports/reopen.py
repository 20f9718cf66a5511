"""A port that reopens itself when its device disappears and comes back.

USB serial adapters vanish (a loose cable, a hub reset) and return, often under a
new ``/dev/ttyUSBn`` but the same ``/dev/serial/by-id/...`` name; TCP gateways
reboot. :class:`ReopeningTransport` wraps an *opener* (any coroutine function that
returns a fresh transport) and:

* on a lost device (``TransportClosed`` / ``OSError`` from the inner port) closes the
  old port, raises ``TransportClosed`` to the caller (the session on the wire is gone:
  a driver restarts its handshake) and reopens in the background with exponential
  backoff (``initial_delay`` doubling up to ``max_delay``);
* while the port is down, every operation raises ``TransportClosed`` at once;
  ``await wait_open(timeout)`` waits until it is back;
* after a reopen it restores the line settings last given to ``set_line``;
* reports ``opened``, ``lost``, ``retry``, ``reopened`` and ``closed`` as
  :class:`~meterbridge.transports.transport.TransportEvent` to ``on_event`` and keeps
  the last 100 in ``events``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from meterbridge.errors import TransportError
from meterbridge.transports.clock import Clock, RealClock
from meterbridge.transports.line import LineSettings
from meterbridge.transports.transport import (
    EventCallback,
    Transport,
    TransportClosed,
    TransportEvent,
    TransportTimeout,
)

__all__ = ["ReopeningTransport"]

R = TypeVar("R")


class ReopeningTransport:
    """See the module docstring. Create it, then ``await start()``."""

    def __init__(
        self,
        opener: Callable[[], Awaitable[Transport]],
        *,
        name: str,
        clock: Clock | None = None,
        initial_delay: float = 0.5,
        max_delay: float = 30.0,
        on_event: EventCallback | None = None,
        restore_line: bool = True,
    ) -> None:
        if initial_delay <= 0 or max_delay < initial_delay:
            raise ValueError("ReopeningTransport: need 0 < initial_delay <= max_delay")
        self._opener = opener
        self.name = name
        self.clock: Clock = clock if clock is not None else RealClock()
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.on_event = on_event
        self.restore_line = restore_line
        self.events: deque[TransportEvent] = deque(maxlen=100)
        self._inner: Transport | None = None
        self._line: LineSettings | None = None
        self._closed = False
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.reopen_count = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self, *, wait: bool = True, timeout: float | None = None) -> ReopeningTransport:
        """Open now; if that fails keep retrying in the background (``wait``: until it works)."""
        try:
            await self._open(first=True)
        except (TransportError, OSError) as exc:
            self._emit("lost", str(exc))
            self._spawn_reconnect()
            if wait:
                await self.wait_open(timeout)
        return self

    async def wait_open(self, timeout: float | None = None) -> None:
        """Return when the port is open; ``TransportTimeout`` after ``timeout`` seconds."""
        if self._closed:
            raise TransportClosed(f"{self.name}: transport is closed")
        try:
            await self.clock.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            raise TransportTimeout(f"{self.name}: still not back after {timeout} s") from None
        if self._closed:
            raise TransportClosed(f"{self.name}: transport is closed")

    @property
    def is_open(self) -> bool:
        return self._inner is not None

    async def _open(self, *, first: bool, attempt: int = 0) -> None:
        inner = await self._opener()
        if self._closed:
            await inner.close()
            return
        if not first and self.restore_line and self._line is not None:
            await inner.set_line(self._line)
        self._inner = inner
        self._up.set()
        if first:
            self._emit("opened", inner.name)
        else:
            self.reopen_count += 1
            self._emit("reopened", inner.name, attempt)

    def _spawn_reconnect(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = self.initial_delay
        attempt = 0
        while not self._closed:
            attempt += 1
            await self.clock.sleep(delay)
            if self._closed:
                return
            try:
                await self._open(first=False, attempt=attempt)
                return
            except (TransportError, OSError) as exc:
                self._emit("retry", str(exc), attempt)
                delay = min(self.max_delay, delay * 2)

    def _emit(self, kind: str, detail: str = "", attempt: int = 0) -> None:
        event = TransportEvent(kind, self.name, self.clock.now(), detail, attempt)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    async def _lost(self, inner: Transport, exc: BaseException) -> None:
        if self._inner is inner:
            self._inner = None
            self._up.clear()
            with contextlib.suppress(TransportError, OSError):
                await inner.close()
            self._emit("lost", str(exc))
            if not self._closed:
                self._spawn_reconnect()

    def _current(self) -> Transport:
        if self._closed:
            raise TransportClosed(f"{self.name}: transport is closed")
        inner = self._inner
        if inner is None:
            raise TransportClosed(f"{self.name}: port is gone; reopening in the background")
        return inner

    # ------------------------------------------------------------------ Transport
    @property
    def line(self) -> LineSettings | None:
        return self._inner.line if self._inner is not None else self._line

    @property
    def closed(self) -> bool:
        return self._closed

    async def _call(self, op: Callable[[Transport], Awaitable[R]]) -> R:
        inner = self._current()
        try:
            return await op(inner)
        except TransportTimeout:
            raise
        except (TransportClosed, OSError) as exc:
            await self._lost(inner, exc)
            raise TransportClosed(f"{self.name}: port lost ({exc}); reopening in the background") from exc

    async def read(self, max_bytes: int = 4096, timeout: float | None = None) -> bytes:
        return await self._call(lambda t: t.read(max_bytes, timeout))

    async def read_exactly(self, n: int, timeout: float | None = None) -> bytes:
        return await self._call(lambda t: t.read_exactly(n, timeout))

    async def read_until(
        self, terminator: bytes, max_bytes: int = 65536, timeout: float | None = None
    ) -> bytes:
        return await self._call(lambda t: t.read_until(terminator, max_bytes, timeout))

    async def write(self, data: bytes) -> None:
        await self._call(lambda t: t.write(data))

    async def drain(self) -> None:
        await self._call(lambda t: t.drain())

    def discard_input(self) -> None:
        if self._inner is not None:
            self._inner.discard_input()

    async def set_line(self, line: LineSettings) -> None:
        await self._call(lambda t: t.set_line(line))
        self._line = line

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._up.set()  # wake waiters; they see _closed
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        inner, self._inner = self._inner, None
        if inner is not None:
            with contextlib.suppress(TransportError, OSError):
                await inner.close()
        self._emit("closed")

    def __repr__(self) -> str:
        return f"<ReopeningTransport {self.name} {'up' if self._inner else 'down'}>"
