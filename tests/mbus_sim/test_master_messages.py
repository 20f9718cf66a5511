"""The M-Bus master says in words why a meter could not be read (no answer, a collision)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from meterbridge.drivers.mbus_master import MBusMaster, MBusReadError
from meterbridge.simulator.mbus import MBusSimulator, build_bus
from meterbridge.transports import VirtualClock, VirtualLine
from meterbridge.transports.line import MBUS_2400


def on_virtual_bus(sim: MBusSimulator, body: Callable[[MBusMaster], Awaitable[None]]) -> None:
    """Run ``body(master)`` against ``sim`` on a VirtualLine in virtual time."""
    clock = VirtualClock()

    async def main() -> None:
        line = VirtualLine(MBUS_2400, clock=clock)
        master_port = line.attach("master", role="master")
        task = asyncio.ensure_future(sim.serve(line.attach("bus", role="slave")))
        try:
            await body(MBusMaster(master_port))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        clock.run(main())
    finally:
        clock.close()


def test_no_meter_at_the_address_is_said_in_words() -> None:
    sim = build_bus(2, seed=1)

    async def body(master: MBusMaster) -> None:
        with pytest.raises(MBusReadError) as caught:
            await master.read(99)
        assert str(caught.value) == (
            "primary address 99: no meter answered (no E5 within the reply window) to SND_NKE"
        )
        assert (await master.read(1)).target == "1"  # the label of a good read is unchanged

    on_virtual_bus(sim, body)


def test_two_meters_on_one_address_are_called_a_collision() -> None:
    sim = build_bus(5, seed=3, primary=[1, 2, 3, 3, 4], consecutive=True, first_id=41000000)

    async def body(master: MBusMaster) -> None:
        with pytest.raises(MBusReadError, match="several meters answering at once"):
            await master.read(3)

    on_virtual_bus(sim, body)
