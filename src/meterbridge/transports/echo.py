"""Dropping the echo of our own bytes (cheap M-Bus level converters echo the master).

``EchoCanceller(transport)`` remembers every byte written and removes it again when
it comes back as the first bytes read. An echo is only expected for the transmit time
of what was written plus ``guard`` seconds (default: 20 character times, at least
50 ms): bytes that arrive later are the peer's. A byte that differs from the expected
echo ends the echo (a collision or an adapter that does not echo): it and everything
after it is delivered. Counters: ``echo_dropped`` (bytes removed), ``echo_mismatches``
and ``echo_missing`` (expected echo bytes that never came).
"""

from __future__ import annotations

from meterbridge.transports.transport import Transport, TransportTimeout, TransportWrapper

__all__ = ["EchoCanceller"]


class EchoCanceller(TransportWrapper):
    """Removes the echo of written bytes from the input (see the module docstring)."""

    def __init__(self, inner: Transport, *, guard: float | None = None) -> None:
        super().__init__(inner)
        self.guard = guard
        self._expect = bytearray()
        self._expect_until = 0.0
        self.echo_dropped = 0
        self.echo_mismatches = 0
        self.echo_missing = 0

    def _guard(self) -> float:
        if self.guard is not None:
            return self.guard
        line = self.inner.line
        return max(0.05, 20 * line.char_time) if line is not None else 0.05

    async def write(self, data: bytes) -> None:
        line = self.inner.line
        mask = line.data_mask if line is not None else 0xFF
        now = self.clock.monotonic()
        self._expire(now)
        self._expect += bytes(b & mask for b in data)
        tx = line.transmit_time(len(self._expect)) if line is not None else 0.0
        self._expect_until = now + tx + self._guard()
        await self.inner.write(data)

    def _expire(self, now: float) -> None:
        if self._expect and now > self._expect_until:
            self.echo_missing += len(self._expect)
            self._expect.clear()

    def _filter(self, data: bytes) -> bytes:
        self._expire(self.clock.monotonic())
        i = 0
        expect = self._expect
        while expect and i < len(data):
            if data[i] == expect[0]:
                del expect[0]
                i += 1
                self.echo_dropped += 1
            else:
                self.echo_mismatches += 1
                self.echo_missing += len(expect)
                expect.clear()
        return data[i:]

    async def _read(self, max_bytes: int, timeout: float | None) -> bytes:
        deadline = None if timeout is None else self.clock.monotonic() + max(0.0, timeout)
        while True:
            remaining = None if deadline is None else deadline - self.clock.monotonic()
            if remaining is not None and remaining < 0:
                raise TransportTimeout(f"{self.name}: timed out (only our own echo arrived)")
            data = await self.inner.read(max_bytes, remaining)
            out = self._filter(data)
            if out:
                return out

    def discard_input(self) -> None:
        super().discard_input()
        self._expect.clear()
