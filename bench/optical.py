"""Optical readout of the simulated E450 at 9600 baud, next to the floor set by the bytes on the wire.

The reader (``meterbridge.drivers.optical.OpticalReader``) and the simulated Landis+Gyr E450
(``meterbridge.simulator.e450.E450Simulator``) sit on a ``VirtualLine``: every character takes
its line time at the sender's speed and format, and a receiver set to another speed reads
garbage, so the baud switch must happen at the right instant. The E450 serves a readout of the
guide's OBIS table (energies 1.8.0-2, 2.8.0, 3.8.0, 4.8.0, 9.8.0; powers 1.7.0, 2.7.0, 16.7.0,
36/56/76.7.0; voltages 32/52/72.7.0; currents 31/51/71.7.0; frequency 14.7.0; power factor
13.7.0; THD 32/52/72.7.124 and 31/51/71.7.124; serial number, clock).

The floor is what the bytes cost on the wire, 10 bits per character (7E1):
sign-on + identification + acknowledgement at 300 baud, the readout at 9600 baud.
The meter's reaction time is no part of the floor, so the simulator answers without one
here (``--reaction`` sets one, e.g. 0.2 s as the standard's minimum, to see its cost).

Two runs: on a ``VirtualClock`` (virtual time: exact, shows every wait the session adds to the
line time) and on the real clock (line time passes for real; adds the scheduling and CPU
overhead of this machine). Target: within 20 % of the floor.

    .venv/bin/python bench/optical.py [--readouts 3] [--reaction 0]
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Sequence
from typing import Final
from zoneinfo import ZoneInfo

from meterbridge.drivers.optical import OpticalReader, OpticalReadout
from meterbridge.obis import ObisCode
from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    DataSet,
    DataValue,
    Iec62056Meter,
    OptionSelect,
    SignOn,
)
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.transports import IEC_SIGN_ON, Clock, RealClock, VirtualClock, VirtualLine, shared_topology

_O = ObisCode.parse
# (address in the readout, OBIS code in the model, unit, decimals, divisor)
GUIDE_TABLE: Final = (
    ("1.8.0", _O("1-0:1.8.0"), "kWh", 3, 1000),
    ("1.8.1", _O("1-0:1.8.1"), "kWh", 3, 1000),
    ("1.8.2", _O("1-0:1.8.2"), "kWh", 3, 1000),
    ("2.8.0", _O("1-0:2.8.0"), "kWh", 3, 1000),
    ("3.8.0", _O("1-0:3.8.0"), "kvarh", 3, 1000),
    ("4.8.0", _O("1-0:4.8.0"), "kvarh", 3, 1000),
    ("9.8.0", _O("1-0:9.8.0"), "kVAh", 3, 1000),
    ("16.7.0", _O("1-0:16.7.0"), "kW", 3, 1000),
    ("1.7.0", _O("1-0:1.7.0"), "kW", 3, 1000),
    ("2.7.0", _O("1-0:2.7.0"), "kW", 3, 1000),
    ("36.7.0", _O("1-0:36.7.0"), "kW", 3, 1000),
    ("56.7.0", _O("1-0:56.7.0"), "kW", 3, 1000),
    ("76.7.0", _O("1-0:76.7.0"), "kW", 3, 1000),
    ("32.7.0", _O("1-0:32.7.0"), "V", 1, 1),
    ("52.7.0", _O("1-0:52.7.0"), "V", 1, 1),
    ("72.7.0", _O("1-0:72.7.0"), "V", 1, 1),
    ("31.7.0", _O("1-0:31.7.0"), "A", 2, 1),
    ("51.7.0", _O("1-0:51.7.0"), "A", 2, 1),
    ("71.7.0", _O("1-0:71.7.0"), "A", 2, 1),
    ("14.7.0", _O("1-0:14.7.0"), "Hz", 2, 1),
    ("13.7.0", _O("1-0:13.7.0"), None, 3, 1),
    ("32.7.124", _O("1-0:32.7.124"), "%", 1, 1),
    ("52.7.124", _O("1-0:52.7.124"), "%", 1, 1),
    ("72.7.124", _O("1-0:72.7.124"), "%", 1, 1),
    ("31.7.124", _O("1-0:31.7.124"), "%", 1, 1),
    ("51.7.124", _O("1-0:51.7.124"), "%", 1, 1),
    ("71.7.124", _O("1-0:71.7.124"), "%", 1, 1),
)
BITS_PER_CHAR: Final = IEC_SIGN_ON.bits_per_char  # 7E1: start + 7 + parity + stop = 10


class GuideTableE450(E450Simulator):
    """The simulated E450 whose optical readout lists the guide's whole OBIS table from its model."""

    def guide_readout(self) -> list[tuple[DataSet, ...]]:
        snap = self.snapshot()
        local = snap.at.astimezone(ZoneInfo(self.model.config.timezone))
        serial = str(snap.values[_O("0-0:96.1.0")])
        sets = [
            DataSet("F.F", (DataValue("00"),)),
            DataSet("C.1.0", (DataValue(serial),)),
            DataSet("0.9.1", (DataValue(local.strftime("%H:%M:%S")),)),
            DataSet("0.9.2", (DataValue(local.strftime("%y-%m-%d")),)),
        ]
        for address, code, unit, decimals, divisor in GUIDE_TABLE:
            raw = snap.values[code]
            assert isinstance(raw, int | float)
            value = raw / divisor
            text = f"{math.floor(value * 10**decimals) / 10**decimals:0{decimals + 7}.{decimals}f}"
            sets.append(DataSet(address, (DataValue(text, unit),)))
        return [(s,) for s in sets]

    def _new_meter(self) -> Iec62056Meter:  # the simulator's hook for the meter role it serves
        return Iec62056Meter(self.identification, readout=self.guide_readout, password=None, mode="C")


def floor_seconds(ident_bytes: int, readout_bytes: int, baud: int) -> tuple[float, int, int]:
    """Line time of the session's bytes: (seconds, chars at 300 baud, chars at ``baud``)."""
    slow = len(SignOn().encode()) + ident_bytes + len(OptionSelect("5").encode())
    return slow * BITS_PER_CHAR / 300 + readout_bytes * BITS_PER_CHAR / baud, slow, readout_bytes


async def run(clock: Clock, readouts: int, reaction: float) -> tuple[list[float], OpticalReadout, int]:
    line = VirtualLine(IEC_SIGN_ON, clock=clock, hears=shared_topology, name="optical")
    meter_port = line.attach("e450", role="slave")
    reader_port = line.attach("reader", role="master")
    sim = GuideTableE450(clock=clock, seed=7, reaction_time=reaction)
    server = asyncio.create_task(sim.serve_optical(meter_port))
    reader = OpticalReader(reader_port)
    durations = []
    try:
        for _ in range(readouts):
            result = await reader.readout()
            assert result.attempts == (), result.attempts
            durations.append(result.duration)
    finally:
        await reader_port.close()
        await meter_port.close()
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
    return durations, result, line.line_errors


def report(label: str, durations: Sequence[float], result: OpticalReadout, floor: float) -> float:
    best = min(durations)
    print(
        f"{label:34} {best:9.3f} s {sum(durations) / len(durations):9.3f} s {floor:9.3f} s {best / floor - 1:+9.1%}"
    )
    return best / floor - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readouts", type=int, default=3, help="readouts per run")
    parser.add_argument("--reaction", type=float, default=0.0, help="simulated meter reaction time (s)")
    args = parser.parse_args()

    virtual = VirtualClock()
    with virtual:
        v_durations, result, v_errors = virtual.run(run(virtual, args.readouts, args.reaction))
    r_durations, r_result, r_errors = asyncio.run(run(RealClock(), args.readouts, args.reaction))

    readout_bytes = len(DataMessage(result.lines).encode())
    floor, slow_chars, fast_chars = floor_seconds(
        len(result.identification.encode()), readout_bytes, result.baud
    )
    codes = {r.key for r in result.readings}
    missing = [a for a, code, *_ in GUIDE_TABLE if code not in codes]
    assert not missing, missing
    print(
        f"E450 optical readout, mode C, {result.baud} baud, {len(result.lines)} data lines "
        f"({len(GUIDE_TABLE)} of the guide's table), reaction time {args.reaction} s"
    )
    print(
        f"floor: {slow_chars} chars at 300 baud + {fast_chars} chars at {result.baud} baud, "
        f"{BITS_PER_CHAR:g} bits/char = {floor:.3f} s"
    )
    print(f"{'run':34} {'best':>11} {'mean':>11} {'floor':>11} {'over':>9}")
    over_v = report("virtual clock (line time only)", v_durations, result, floor)
    over_r = report("real clock (line time + overhead)", r_durations, r_result, floor)
    print(f"line errors (wrong speed at a receiver): virtual {v_errors}, real {r_errors}")
    print(
        f"within 20 % of the floor: virtual {'yes' if over_v <= 0.2 else 'NO'}, real {'yes' if over_r <= 0.2 else 'NO'}"
    )


if __name__ == "__main__":
    main()
