"""Clocks that drivers, simulators and tests share, and a virtual-time event loop.

Everything in meterbridge that waits (reply windows, polling intervals, backoff,
push intervals, a meter model's time) asks a :class:`Clock`:

``now()``                aware UTC ``datetime`` (the time a reading is stamped with)
``monotonic()``          seconds, never jumps backwards (durations and deadlines)
``await sleep(s)``       wait ``s`` seconds
``await wait_for(aw, t)`` await ``aw`` but give up after ``t`` seconds (raises ``TimeoutError``)

Implementations:

* :class:`RealClock` - the running asyncio loop and the system time.
* :class:`VirtualClock` - owns a :class:`VirtualTimeEventLoop` whose ``time()`` only
  moves when every task is waiting: the loop then jumps straight to the next timer.
  A 250-address M-Bus scan at 2400 baud (about a minute of line time) runs in a few
  milliseconds, always in the same order, and ``clock.monotonic()`` afterwards tells
  the line time it would have taken. Because the *loop* is virtual, plain
  ``asyncio.sleep`` / ``asyncio.wait_for`` / ``loop.call_later`` in any library are
  virtual too - nothing needs to be written twice. Tests drive it synchronously::

      clock = VirtualClock()
      result = clock.run(scan_bus(master, clock=clock))
      assert clock.monotonic() == pytest.approx(53.0, rel=0.05)   # line time, not wall time

  Real file descriptors (sockets, PTYs) still work in the virtual loop, but the loop
  does not wait for them when a timer is pending: use virtual time with in-memory
  transports (:func:`~meterbridge.transports.memory.pipe_pair`,
  :class:`~meterbridge.transports.bus.VirtualLine`) and a :class:`RealClock` with real ports.
  When every task waits and neither a timer nor a real file descriptor could wake
  one, the virtual loop raises :class:`VirtualTimeDeadlock` instead of hanging.
* :class:`ScaledClock` - runs ``speed`` times faster than another clock (an accelerated
  simulator: a day of load curve in a minute); ``now()`` starts where you ask.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import time
from collections.abc import Awaitable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

__all__ = [
    "DEFAULT_VIRTUAL_EPOCH",
    "Clock",
    "RealClock",
    "ScaledClock",
    "VirtualClock",
    "VirtualTimeDeadlock",
    "VirtualTimeEventLoop",
]

T = TypeVar("T")

DEFAULT_VIRTUAL_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
"""Where ``VirtualClock.now()`` starts unless told otherwise."""


@runtime_checkable
class Clock(Protocol):
    """What every waiting piece of meterbridge asks for the time."""

    def now(self) -> datetime:
        """Aware UTC wall-clock time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw``; raise ``TimeoutError`` after ``timeout`` seconds (``None``: no limit)."""
        ...


class RealClock:
    """System time and the running asyncio loop's timers."""

    __slots__ = ()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        # asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives in the loop step where the awaited future completes (gh-86296), and a
        # cancelled source then runs on forever.
        async with asyncio.timeout(None if timeout is None else max(0.0, timeout)):
            return await aw

    def __repr__(self) -> str:
        return "RealClock()"


class VirtualTimeDeadlock(RuntimeError):
    """Every task waits, no timer is set and no real I/O is registered: nothing can ever happen."""


class _VirtualSelector(selectors.BaseSelector):
    """A real selector that never blocks while a timer is pending: it jumps the clock instead."""

    def __init__(self, loop: VirtualTimeEventLoop, grace: float) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop
        self._grace = grace
        self._baseline_fds: int | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # Only the loop's own self-pipe is registered: nothing outside can wake us.
            if self._baseline_fds is not None and len(self._real.get_map()) <= self._baseline_fds:
                # A worker thread (to_thread, run_in_executor) may still wake the loop through
                # its self-pipe: give it a moment of real time before declaring a deadlock.
                ready = self._real.select(self._grace)
                if ready:
                    return ready
                raise VirtualTimeDeadlock(
                    "virtual time: every task is waiting, no timer is set and no real I/O is "
                    "registered (a read without timeout on a silent in-memory transport?)"
                )
            return self._real.select(None)
        self._loop._advance(timeout)
        return []


class VirtualTimeEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` jumps to the next timer whenever all tasks wait.

    Deterministic: callbacks run in the order asyncio schedules them, and the clock
    moves only by the exact distance to the next timer. ``deadlock_grace`` is the real
    time a fully idle loop waits for a worker thread before raising
    :class:`VirtualTimeDeadlock`.
    """

    def __init__(self, start: float = 0.0, *, deadlock_grace: float = 2.0) -> None:
        self._virtual_now = float(start)
        selector = _VirtualSelector(self, deadlock_grace)
        super().__init__(selector)
        selector._baseline_fds = len(selector.get_map())

    def time(self) -> float:
        return self._virtual_now

    def _advance(self, seconds: float) -> None:
        if seconds > 0:
            self._virtual_now += seconds


class VirtualClock:
    """A clock in virtual time; owns its :class:`VirtualTimeEventLoop`.

    ``run(coro)`` runs a coroutine to completion on that loop (from synchronous code,
    e.g. a plain test function). ``now()`` is ``epoch`` plus the virtual seconds elapsed.

    ``debug``: asyncio debug mode of the loop. ``python -X dev`` turns it on for every new
    loop, and then each callback and future records the stack it was made in, which makes a
    virtual-time run (nothing but callbacks) 10 to 20 times slower. The virtual loop is
    therefore off by default (``None``) unless ``PYTHONASYNCIODEBUG`` is set explicitly;
    ``True`` forces it on. Scheduling order, and so every result, is the same either way.
    """

    def __init__(
        self,
        epoch: datetime = DEFAULT_VIRTUAL_EPOCH,
        *,
        deadlock_grace: float = 2.0,
        debug: bool | None = None,
    ) -> None:
        if epoch.tzinfo is None:
            raise ValueError("VirtualClock: epoch must be an aware datetime")
        self.epoch = epoch
        self.loop = VirtualTimeEventLoop(deadlock_grace=deadlock_grace)
        if debug is None:
            debug = bool(os.environ.get("PYTHONASYNCIODEBUG"))
        self.loop.set_debug(debug)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the virtual loop until it completes and return its result."""
        asyncio.set_event_loop(self.loop)
        try:
            return self.loop.run_until_complete(coro)
        finally:
            asyncio.set_event_loop(None)

    def close(self) -> None:
        """Cancel what is left on the loop and close it."""
        if self.loop.is_closed():
            return
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def __enter__(self) -> VirtualClock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def now(self) -> datetime:
        return self.epoch + timedelta(seconds=self.loop.time())

    def monotonic(self) -> float:
        return self.loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        # asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives in the loop step where the awaited future completes (gh-86296), and a
        # cancelled source then runs on forever.
        async with asyncio.timeout(None if timeout is None else max(0.0, timeout)):
            return await aw

    def __repr__(self) -> str:
        return f"VirtualClock(t={self.loop.time():.6f}s)"


class ScaledClock:
    """``speed`` times faster than ``base``: ``sleep(60)`` waits 60/speed base seconds.

    ``now()`` starts at ``start`` (default: ``base.now()`` when created) and advances
    ``speed`` seconds per base second; ``monotonic()`` counts scaled seconds.
    """

    def __init__(self, base: Clock, speed: float, start: datetime | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"ScaledClock: speed must be > 0, got {speed!r}")
        self.base = base
        self.speed = float(speed)
        self._start = start if start is not None else base.now()
        if self._start.tzinfo is None:
            raise ValueError("ScaledClock: start must be an aware datetime")
        self._base0 = base.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        return (self.base.monotonic() - self._base0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await self.base.sleep(max(0.0, seconds) / self.speed)

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        return await self.base.wait_for(aw, None if timeout is None else max(0.0, timeout) / self.speed)

    def __repr__(self) -> str:
        return f"ScaledClock({self.base!r}, speed={self.speed})"
