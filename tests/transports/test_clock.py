"""Virtual time is deterministic and instant; scaled clocks scale."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from meterbridge.transports import (
    Clock,
    RealClock,
    ScaledClock,
    VirtualClock,
    VirtualTimeDeadlock,
)


def test_virtual_sleep_jumps_exactly() -> None:
    with VirtualClock() as clock:

        async def main() -> float:
            t0 = clock.monotonic()
            await clock.sleep(3600)
            await asyncio.sleep(0.25)  # plain asyncio is virtual too
            return clock.monotonic() - t0

        assert clock.run(main()) == 3600.25
        assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=3600.25)


def _trace() -> list[tuple[float, str]]:
    with VirtualClock() as clock:
        events: list[tuple[float, str]] = []

        async def worker(name: str, period: float, n: int) -> None:
            for _ in range(n):
                await clock.sleep(period)
                events.append((clock.monotonic(), name))

        async def main() -> None:
            await asyncio.gather(worker("a", 0.3, 10), worker("b", 0.7, 5), worker("c", 0.1, 20))

        clock.run(main())
        return events


def test_virtual_time_is_deterministic() -> None:
    first = _trace()
    assert first == _trace()
    assert [t for t, _ in first] == sorted(t for t, _ in first)
    assert first[-1][0] == pytest.approx(3.5)


def test_wait_for_times_out_in_virtual_time() -> None:
    with VirtualClock() as clock:

        async def main() -> float:
            with pytest.raises(TimeoutError):
                await clock.wait_for(asyncio.sleep(10), 2.5)
            return clock.monotonic()

        assert clock.run(main()) == 2.5


def test_deadlock_is_reported_not_hung() -> None:
    with VirtualClock(deadlock_grace=0.01) as clock:

        async def main() -> None:
            await asyncio.get_running_loop().create_future()

        with pytest.raises(VirtualTimeDeadlock):
            clock.run(main())


async def test_real_clock_is_a_clock() -> None:
    clock = RealClock()
    assert isinstance(clock, Clock)
    assert clock.now().tzinfo is not None
    t0 = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= t0
    assert await clock.wait_for(asyncio.sleep(0, result=7), 1) == 7


def test_scaled_clock_runs_faster_than_its_base() -> None:
    start = datetime(2026, 6, 1, 12, tzinfo=UTC)
    with VirtualClock() as base:
        fast = ScaledClock(base, 60, start=start)
        assert isinstance(fast, Clock)

        async def main() -> None:
            await fast.sleep(3600)  # one hour of model time ...

        base.run(main())
        assert base.monotonic() == pytest.approx(60)  # ... is one minute of base time
        assert fast.now() == start + timedelta(hours=1)
        assert fast.monotonic() == pytest.approx(3600)


def test_clock_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="aware"):
        VirtualClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(RealClock(), 0)
