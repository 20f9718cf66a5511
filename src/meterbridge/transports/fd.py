"""A transport over a non-blocking POSIX file descriptor watched by the event loop.

Serial ports and PTY masters are file descriptors: the loop's ``add_reader`` calls
back when bytes are there, so no thread is needed. Reading ``EIO`` or end of file
means the device vanished (USB adapter unplugged, PTY peer closed): the transport then
reports :class:`~meterbridge.transports.transport.TransportClosed` to its reader.
"""

from __future__ import annotations

import asyncio
import errno
import os

from meterbridge.transports.clock import Clock
from meterbridge.transports.line import LineSettings
from meterbridge.transports.transport import BufferedTransport, TransportClosed

__all__ = ["FdTransport"]

_READ_CHUNK = 65536


class FdTransport(BufferedTransport):
    """Reads and writes a non-blocking file descriptor through the running event loop.

    Call :meth:`start` from a coroutine (it needs the running loop) before use.
    """

    def __init__(
        self, name: str, fd: int, *, clock: Clock | None = None, line: LineSettings | None = None
    ) -> None:
        super().__init__(name, clock=clock, line=line)
        self._fd = fd
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reading = False

    @property
    def fd(self) -> int:
        return self._fd

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        os.set_blocking(self._fd, False)
        self._add_reader()

    def _add_reader(self) -> None:
        if self._loop is not None and not self._reading and self._fd >= 0:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _remove_reader(self) -> None:
        if self._loop is not None and self._reading:
            self._reading = False
            if not self._loop.is_closed():
                self._loop.remove_reader(self._fd)

    def _pause_source(self) -> None:
        self._remove_reader()

    def _resume_source(self) -> None:
        if self._eof is None and not self._closed:
            self._add_reader()

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._remove_reader()
            what = "device vanished" if exc.errno in (errno.EIO, errno.ENXIO, errno.ENODEV) else "read failed"
            self._feed_eof(TransportClosed(f"{self.name}: {what} ({exc.strerror or exc})"))
            return
        if not data:
            self._remove_reader()
            self._feed_eof(TransportClosed(f"{self.name}: end of file (device vanished or peer closed)"))
            return
        self._feed(data)

    async def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except (BlockingIOError, InterruptedError):
                await self._writable()
                continue
            except OSError as exc:
                self._feed_eof(TransportClosed(f"{self.name}: write failed ({exc.strerror or exc})"))
                raise TransportClosed(f"{self.name}: write failed ({exc.strerror or exc})") from exc
            view = view[n:]

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_writer(self._fd, ready)
        try:
            await fut
        finally:
            loop.remove_writer(self._fd)

    async def _close(self) -> None:
        self._remove_reader()
        self._close_fd()
        self._feed_eof(TransportClosed(f"{self.name}: transport is closed"))

    def _close_fd(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            finally:
                self._fd = -1
