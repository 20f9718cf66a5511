"""M-Bus scan times in virtual line time at 2400 baud, next to the standard's floor.

Runs meterbridge's master against the simulated bus on a ``VirtualLine`` with a
``VirtualClock``: the figures are line time (what the scan would take on a real bus at
2400 baud 8E1), not wall time. Compared with:

* the floor the reply window sets for a primary scan: per address the SND_NKE
  (5 characters) plus the full reply window (330 bit times + 50 ms), 251 addresses;
* FIELD_NOTES: libmbus's primary scan waits 0.3 s per address (about 81 s for 0..250),
  pyMeterBus's defaults (1 s timeout, 5 retries) about 25 minutes.

    .venv/bin/python bench/scan.py [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from meterbridge.drivers.mbus_master import MBusMaster, reply_window
from meterbridge.simulator.mbus import MBusSimulator, build_bus
from meterbridge.transports import VirtualClock, VirtualLine
from meterbridge.transports.line import MBUS_2400

T = TypeVar("T")
LIBMBUS_PRIMARY = 81.0  # FIELD_NOTES, 0..250 at 2400 baud (0.3 s per address)
PYMETERBUS_PRIMARY = 25 * 60.0  # FIELD_NOTES, defaults


def run(sim: MBusSimulator, body: Callable[[MBusMaster], Awaitable[T]]) -> T:
    clock = VirtualClock()

    async def main() -> T:
        line = VirtualLine(MBUS_2400, clock=clock)
        master_port = line.attach("master", role="master")
        task = asyncio.ensure_future(sim.serve(line.attach("bus", role="slave")))
        try:
            return await body(MBusMaster(master_port))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        return clock.run(main())
    finally:
        clock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    floor = 251 * (MBUS_2400.transmit_time(5) + reply_window(MBUS_2400))
    rows: list[tuple[str, int, int, float, str]] = []

    def primary(meters: int, identify: bool) -> None:
        sim = build_bus(meters, seed=args.seed)
        result = run(sim, lambda m: m.scan_primary(identify=identify))
        what = f"primary 0..250, {meters} meters" + (", identify (REQ_UD2)" if identify and meters else "")
        rows.append(
            (
                what,
                len(result.found),
                result.probes,
                result.line_time,
                f"{result.line_time / floor:.3f}x floor",
            )
        )

    def secondary(meters: int, consecutive: bool) -> None:
        sim = build_bus(meters, seed=args.seed, consecutive=consecutive)
        result = run(sim, lambda m: m.scan_secondary())
        what = f"secondary, {meters} meters" + (" (consecutive ids)" if consecutive else " (random ids)")
        note = f"{result.line_time / floor:.2f}x primary floor, {result.collisions} collisions"
        rows.append((what, len(result.found), result.probes, result.line_time, note))

    start = time.perf_counter()
    primary(0, identify=False)
    primary(20, identify=False)
    primary(20, identify=True)
    for meters in (1, 20, 100):
        secondary(meters, consecutive=False)
    for meters in (10, 20, 100):
        secondary(meters, consecutive=True)
    wall = time.perf_counter() - start

    print("M-Bus scans at 2400 baud 8E1, virtual line time (meterbridge master vs simulated bus)")
    print(f"{'scan':<46}{'found':>6}{'probes':>8}{'line time':>12}  note")
    for what, found, probes, seconds, note in rows:
        print(f"{what:<46}{found:>6}{probes:>8}{seconds:>11.1f}s  {note}")
    print()
    print(f"floor of a primary scan (251 x (SND_NKE + 330 bit times + 50 ms)): {floor:.1f} s")
    print(f"libmbus primary scan (FIELD_NOTES, 0.3 s per address):             {LIBMBUS_PRIMARY:.0f} s")
    print(f"pyMeterBus primary scan (FIELD_NOTES, 1 s timeout, 5 retries):      {PYMETERBUS_PRIMARY:.0f} s")
    empty = rows[0][3]
    print(
        f"meterbridge primary scan vs floor: {100 * (empty / floor - 1):+.1f} %; vs libmbus: {LIBMBUS_PRIMARY / empty:.2f}x faster"
    )
    full20 = next(r for r in rows if r[0].startswith("secondary, 20 meters (random"))
    print(
        f"full discovery of 20 meters by secondary scan: {full20[3]:.1f} s = {full20[3] / floor:.2f} of the primary floor"
    )
    print(f"(wall time for all scans: {wall:.1f} s)")


if __name__ == "__main__":
    main()
